"""Pure translation for Matrix: raw events → neutral events, views → message content.

Everything here works on plain dicts (an event's JSON as the homeserver sent it,
or as it was decrypted), so it is testable without a homeserver or nio.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, unquote

from bot.events import ChannelId, Command, EventId, Message, PersonId, Reaction, local_part
from bot.views import Attachment, Button, Card, Chart, Home, View

PREFIX = "!inloop"
_MATRIX_TO_USER = re.compile(r"^https://matrix\.to/#/(@[^/?]+)")

Content = dict[str, Any]
ChatEvent = Command | Message | Reaction


def person(user_id: str) -> PersonId:
    return PersonId(f"matrix:{user_id}")


def room_channel(room_id: str) -> ChannelId:
    return ChannelId(f"matrix:{room_id}")


def server_of(user_id: str) -> str:
    """`@ann:example.org` → `example.org` (lower case: server names are DNS names)."""
    return user_id.partition(":")[2].lower()


#: what people send as files: a photo of the broken box, a PDF of the invoice
_FILE_TYPES = frozenset({"m.image", "m.file", "m.video", "m.audio"})


def permalink(room_id: str, event_id: str) -> str:
    return f"https://matrix.to/#/{quote(room_id, safe='!:')}/{quote(event_id, safe='$:')}"


# -- inbound ---------------------------------------------------------------------------


def inbound(source: Mapping[str, Any], room_id: str, own_user: str) -> ChatEvent | None:
    """One room event → a neutral event, or None for what Inloop does not act on."""
    sender = source.get("sender")
    event_id = source.get("event_id")
    if not isinstance(sender, str) or not isinstance(event_id, str) or sender == own_user:
        return None
    content = source.get("content")
    if not isinstance(content, Mapping):
        return None
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, Mapping) else {}
    ids = (EventId(f"matrix:{event_id}"), person(sender), room_channel(room_id))
    kind = source.get("type")
    if kind == "m.reaction":
        if relates.get("rel_type") != "m.annotation":
            return None
        target, key = relates.get("event_id"), relates.get("key")
        if not isinstance(target, str) or not isinstance(key, str):
            return None
        return Reaction(*ids, message_ref=target, emoji=key, raw=source)
    if kind != "m.room.message" or relates.get("rel_type") == "m.replace":
        return None  # edits change text already seen; state and other events are not chat
    thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
    body = content.get("body")
    if not isinstance(body, str):
        return None
    message = Message(
        *ids,
        text="",
        message_ref=event_id,
        thread=thread if isinstance(thread, str) else None,
        url=permalink(room_id, event_id),
        raw=source,
    )
    msgtype = content.get("msgtype")
    if msgtype in _FILE_TYPES:
        # Since Matrix 1.10 a `filename` beside a different `body` makes the body a caption.
        filename = content.get("filename")
        if isinstance(filename, str) and filename and filename != body:
            return replace(message, text=_strip_reply_fallback(body), files=(filename,))
        return replace(message, files=(body,))
    # Notices are what bots say: answering them is how two bots loop forever.
    if msgtype not in ("m.text", "m.emote"):
        return None
    command = command_text(body, content)
    if command is not None:
        return Command(*ids, text=command, raw=source)
    return replace(message, text=_strip_reply_fallback(body))


def command_text(body: str, content: Mapping[str, Any]) -> str | None:
    """`!inloop role @ann:example.org manager` → `role @ann:example.org manager`: the
    text as typed, for the core to resolve the arguments that name a person.

    None when the message is not a command. A pill (a link to a user) is written as the
    user id it links to: its visible text is only a display name.
    """
    text = _strip_reply_fallback(body).strip()
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        # A pill's visible text is a display name; its link is who was meant.
        text = _html_to_text(formatted).strip()
    head, _, rest = text.partition(" ")
    if head.lower() != PREFIX:
        return None
    return rest.strip()


def _strip_reply_fallback(body: str) -> str:
    """A rich reply quotes the message it answers in `> ` lines first: not what was said."""
    lines = body.splitlines()
    if not lines or not lines[0].startswith("> <"):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    if lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pill = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self._skip += 1
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            match = _MATRIX_TO_USER.match(href)
            if match:
                self.parts.append(unquote(match.group(1)))
                self._skip += 1  # the display name inside the pill
                self._pill = True
                return
        elif tag == "br":
            self.parts.append("\n")
        self._pill = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply" or (tag == "a" and self._pill):
            self._skip = max(0, self._skip - 1)
            self._pill = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_to_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


# -- invites ---------------------------------------------------------------------------


def inviter(invite_state: Iterable[Mapping[str, Any]], own_user: str) -> str | None:
    """Who invited the bot, from a room's stripped invite state."""
    for event in invite_state:
        content = event.get("content") or {}
        if (
            event.get("type") == "m.room.member"
            and event.get("state_key") == own_user
            and content.get("membership") == "invite"
        ):
            sender = event.get("sender")
            return sender if isinstance(sender, str) else None
    return None


def accept_invite(
    inviter_id: str,
    own_server: str,
    allowed_servers: Iterable[str],
    staff: bool | None,
) -> bool:
    """Staff may bring the bot anywhere; so may people of the servers the company allows.

    `staff` is what Inloop knows of the inviter (None: not met yet). Someone not met
    yet is staff when they are of the bot's own homeserver (the default role they get).
    """
    server = server_of(inviter_id)
    if server in {s.lower() for s in allowed_servers}:
        return True
    if staff is not None:
        return staff
    return server == own_server.lower()


# -- outbound --------------------------------------------------------------------------


def render(view: View, *, mention: str | None = None) -> Content:
    """A view as `m.notice` content: HTML with a plain fallback; every string escaped.

    `m.mentions` is always present: empty, unless the bot means to ping `mention`,
    so that a user id or `@room` inside customer text pings nobody.
    """
    if isinstance(view, Card):
        body, formatted = _card(view)
    elif isinstance(view, Home):
        body, formatted = _home(view)
    else:
        # A notice is plain text (bot.views): shown as written, a user id in it too
        # (`matrix:@boss:example.org` is text, not a pill).
        text = view.title if isinstance(view, Chart | Attachment) else view.text
        body = text
        formatted = _lines(text)
    mentions: Content = {"user_ids": [mention]} if mention else {}
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": mentions,
    }


def _lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.splitlines()) or ""


def _card(card: Card) -> tuple[str, str]:
    plain = [card.title]
    rich = [f"<b>{html.escape(card.title)}</b>"]
    if card.fields:
        plain.append(" · ".join(f"{f.label}: {f.value}" for f in card.fields))
        rich.append(
            " · ".join(
                f"<b>{html.escape(f.label)}:</b> {html.escape(f.value)}" for f in card.fields
            )
        )
    if card.text:
        plain.extend(f"> {line}" for line in card.text.splitlines())
        rich.append(f"<blockquote>{_lines(card.text)}</blockquote>")
    if card.more:
        plain.append(f"({card.more})")
        rich.append(f"<i>{html.escape(card.more)}</i>")
    if card.link:
        plain.append(card.link)
        if card.link.startswith(("https://", "http://")):
            link = html.escape(card.link, quote=True)
            rich.append(f'<a href="{link}">{link}</a>')
        else:
            rich.append(html.escape(card.link))
    if card.buttons:
        body, formatted = _buttons(card.buttons)
        plain.append(body)
        rich.append(formatted)
    # The plain body is what notifications and old clients show; rich lines join with <br>,
    # except a blockquote, which is already a block.
    formatted = "<br>".join(rich).replace("<br><blockquote>", "<blockquote>")
    formatted = formatted.replace("</blockquote><br>", "</blockquote>")
    return "\n".join(plain), formatted


def edit(content: Content, original: str) -> Content:
    """An `m.replace` edit of `original` that shows `content` from now on."""
    return {
        "msgtype": content["msgtype"],
        "body": f"* {content['body']}",
        "format": content["format"],
        "formatted_body": f"* {content['formatted_body']}",
        "m.new_content": dict(content),
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        "m.mentions": {},
    }


def _buttons(buttons: Sequence[Button]) -> tuple[str, str]:
    """Matrix has no buttons: what to type instead, plain and rich."""
    plain = "   ".join(f"[{b.label}] {b.command}" for b in buttons)
    rich = " · ".join(
        f"{html.escape(b.label)}: <code>{html.escape(b.command)}</code>"
        + (f" {html.escape(b.also)}" if b.also else "")
        for b in buttons
    )
    return plain, rich


def _home(view: Home) -> tuple[str, str]:
    """Matrix has no Home tab: the overview comes as one message, sections one after another."""
    bodies, htmls = [view.title], [f"<h4>{html.escape(view.title)}</h4>"]
    if view.buttons:
        body, formatted = _buttons(view.buttons)
        bodies.append(body)
        htmls.append(f"<p>{formatted}</p>")
    for section in view.sections:
        bodies.append(section.heading)
        htmls.append(f"<p><b>{html.escape(section.heading)}</b></p>")
        if not section.cards:
            bodies.append(section.empty)
            htmls.append(f"<p>{html.escape(section.empty)}</p>")
        for card in section.cards:
            body, formatted = _card(card)
            bodies.append(body)
            htmls.append(formatted)
    return "\n\n".join(bodies), "".join(htmls)


def image(chart: Chart, url: str, encrypted_file: Mapping[str, Any] | None) -> Content:
    """An `m.image` for an uploaded chart: `url` in the clear, or `file` when encrypted."""
    content: Content = {
        "msgtype": "m.image",
        "body": chart.filename,
        "info": {"mimetype": "image/png", "size": len(chart.png)},
        "m.mentions": {},
    }
    if encrypted_file is not None:
        content["file"] = {**encrypted_file, "url": url}
    else:
        content["url"] = url
    return content


def file(attachment: Attachment, url: str, encrypted_file: Mapping[str, Any] | None) -> Content:
    """An `m.file` for an uploaded attachment: `url` in the clear, or `file` when encrypted."""
    content: Content = {
        "msgtype": "m.file",
        "body": attachment.filename,
        "filename": attachment.filename,
        "info": {"mimetype": attachment.mimetype, "size": len(attachment.data)},
        "m.mentions": {},
    }
    if encrypted_file is not None:
        content["file"] = {**encrypted_file, "url": url}
    else:
        content["url"] = url
    return content


def in_thread(content: Content, root: str) -> Content:
    """`content` as a message in the thread under `root` (a card's updates go there)."""
    return {
        **content,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        },
    }


def user_of(person_id: str) -> str:
    """`matrix:@ann:example.org` → `@ann:example.org`."""
    return local_part(person_id)


def room_of(channel: str) -> str:
    return local_part(channel)
