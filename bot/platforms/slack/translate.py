"""Pure translation for Slack: payloads → neutral events, neutral views → Block Kit.

No I/O here, so every rule (what is skipped, how text is escaped, where Block Kit's
limits cut) is tested on plain dicts. Messages (cards, notices, the Home tab) are built
as the plain dicts Slack receives, every limit cut here: `slack_sdk.models`' objects
and their `to_dict()` (validation, attribute walks) cost a card more than its share of
the routing transaction (bench.slack, session 7). The dicts are exactly what those
objects give: keys sorted, empty values left out (tests/platforms/test_slack_blocks.py
compares them). Modals, rarer, are still built with `slack_sdk.models`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View as SlackView

from bot.events import (
    Action,
    ChannelId,
    Command,
    EventId,
    Message,
    PersonId,
    Reaction,
)
from bot.platform import PersonInfo
from bot.views import Attachment, Button, Card, Chart, Form, Home, Notice, View

PREFIX = "/inloop"
#: Block Kit's limits (docs: Block Kit reference, "blocks" and "text object")
SECTION_TEXT_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LABEL_LIMIT = 75
MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100
FIELD_LIMIT = 2000
#: the top-level `text` of a message (notifications); Slack truncates beyond 40,000
FALLBACK_LIMIT = 3000
#: a Home tab keeps to a readable size (and under the 100-block limit)
HOME_CARDS_LIMIT = 10
#: action ids of the card buttons carry the verb; the value carries the conversation number
ACTION_PREFIX = "inloop:"
SHOW_FULL = "inloop_show_full"
#: interactions with no channel (Home tab buttons) answer by DM
NO_CHANNEL = ChannelId("slack:-")
FORM_PREFIX = "inloop_form:"
#: a card button that opens a form first (`Button.form`)
FORM_OPEN_PREFIX = "inloop_form_open:"


def person(user_id: str) -> PersonId:
    return PersonId(f"slack:{user_id}")


def channel(channel_id: str) -> ChannelId:
    return ChannelId(f"slack:{channel_id}")


# -- text ------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's rule: `&`, `<`, `>` are control characters; escaped, `<!channel>`,
    `<@U1>` and `<https://evil|label>` show as typed and ping or link nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Slack sends message text escaped; the core keeps plain text (re-escaped on output)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def command_text(text: str) -> str:
    """A command's text as typed: `<@U123|ann>` stays, for the core to resolve where an
    argument names a person; in free text it stays what was written (shown escaped)."""
    return unescape(text).strip()


def clip(text: str, limit: int) -> tuple[str, bool]:
    """At most `limit` characters, cut at a line or word end when one is near; True if cut."""
    if len(text) <= limit:
        return text, False
    cut = text[: limit - 1]
    for sep in ("\n", " "):
        at = cut.rfind(sep)
        if at > limit * 0.8:
            cut = cut[:at]
            break
    return cut.rstrip() + "…", True


def _fit(text: str, limit: int) -> tuple[str, bool]:
    """The longest start of `text` whose escaped form fits in `limit` (escaping makes text
    longer); True if cut. The cut is made in the plain text, never inside an entity."""
    if len(escape(text)) <= limit:
        return text, False
    # the longest clip that still fits once escaped: binary search on the plain length
    low, high = 1, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape(clip(text, middle)[0])) <= limit:
            low = middle
        else:
            high = middle - 1
    return clip(text, low)[0], True


def _escaped_clip(text: str, limit: int) -> tuple[str, bool]:
    plain, cut = _fit(text, limit)
    return escape(plain), cut


# -- inbound ---------------------------------------------------------------------------


def command_event(body: Mapping[str, Any]) -> Command:
    """A slash command. Slack gives commands no event id: the trigger id is unique per use."""
    return Command(
        event_id=EventId(f"slack:command:{body['trigger_id']}"),
        sender=person(body["user_id"]),
        channel=channel(body["channel_id"]),
        text=command_text(body.get("text") or ""),
        raw=body,
    )


def action_event(body: Mapping[str, Any], action: Mapping[str, Any]) -> Action | None:
    """A card button (`inloop:claim` with value "42"); None for buttons that are not verbs."""
    action_id = str(action.get("action_id", ""))
    if not action_id.startswith(ACTION_PREFIX):
        return None
    where = (body.get("channel") or {}).get("id")
    return Action(
        event_id=EventId(f"slack:action:{body.get('trigger_id') or action.get('action_ts')}"),
        sender=person(body["user"]["id"]),
        channel=channel(where) if where else NO_CHANNEL,
        action=action_id.removeprefix(ACTION_PREFIX),
        value=str(action.get("value", "")),
        raw=body,
    )


#: subtypes that are still a person writing; edits, joins, bot posts etc. are not
_PLAIN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


def permalink(workspace_url: str, channel_id: str, ts: str, thread: str | None = None) -> str:
    """Slack's message link, built the way Slack builds it (no chat.getPermalink call)."""
    if not workspace_url or not ts:
        return ""
    link = f"{workspace_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"
    return f"{link}?thread_ts={thread}&cid={channel_id}" if thread else link


def message_event(
    body: Mapping[str, Any], bot_user_id: str, workspace_url: str = ""
) -> Message | Command | None:
    """A message in a channel the bot is in, or None for what is not someone writing."""
    event = body.get("event") or {}
    if event.get("subtype") not in _PLAIN_SUBTYPES or event.get("bot_id"):
        return None
    user = event.get("user")
    if not user or user == bot_user_id or not event.get("channel"):
        return None
    ts = str(event.get("ts", ""))
    # A thread's own first message is not "in" it: its thread_ts is its ts.
    thread = str(event["thread_ts"]) if event.get("thread_ts") not in (None, "", ts) else None
    if event.get("channel_type") == "im":
        # A DM to the app is a command line: "claim 3" there is `/inloop claim 3`.
        words = command_text(event.get("text") or "")
        return Command(
            event_id=EventId(f"slack:{body.get('event_id') or ts}"),
            sender=person(user),
            channel=channel(event["channel"]),
            text=re.sub(r"^/?inloop\b", "", words, flags=re.IGNORECASE).strip(),
            raw=body,
        )
    return Message(
        event_id=EventId(f"slack:{body.get('event_id') or ts}"),
        sender=person(user),
        channel=channel(event["channel"]),
        text=unescape(event.get("text") or ""),
        message_ref=ts,
        thread=thread,
        url=permalink(workspace_url, event["channel"], ts, thread),
        # In Slack Connect channels a file may come without its name ("check_file_info")
        files=tuple(
            str(f.get("name") or f.get("title") or "")
            for f in event.get("files") or ()
            if isinstance(f, Mapping)
        ),
        raw=body,
    )


def reaction_event(body: Mapping[str, Any]) -> Reaction | None:
    event = body.get("event") or {}
    item = event.get("item") or {}
    if item.get("type") != "message" or not event.get("user"):
        return None
    return Reaction(
        event_id=EventId(f"slack:{body['event_id']}"),
        sender=person(event["user"]),
        channel=channel(item["channel"]),
        message_ref=str(item["ts"]),
        emoji=str(event.get("reaction", "")),
        raw=body,
    )


def home_opened_event(body: Mapping[str, Any]) -> Command | None:
    """Opening the Home tab asks the core for the person's overview (`home`)."""
    event = body.get("event") or {}
    if event.get("tab", "home") != "home" or not event.get("user"):
        return None
    return home_command(event["user"], str(body["event_id"]), event.get("channel"), body)


def home_command(
    user: str, event_id: str, channel_id: str | None = None, raw: Mapping[str, Any] | None = None
) -> Command:
    """`home` for `user`: their Home tab (re)published."""
    return Command(
        event_id=EventId(f"slack:{event_id}"),
        sender=person(user),
        channel=channel(channel_id) if channel_id else NO_CHANNEL,
        text="home",
        raw=raw or {},
    )


def person_info(user: Mapping[str, Any], home_team: str) -> PersonInfo:
    """`users.info` → what Inloop needs. Guests and people of other workspaces (Slack
    Connect) are never staff on their own: an admin gives them a role if they are."""
    profile = user.get("profile") or {}
    name = (
        profile.get("display_name")
        or profile.get("real_name")
        or user.get("real_name")
        or user.get("name")
        or str(user.get("id", ""))
    )
    guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
    team = user.get("team_id") or profile.get("team")
    foreign = bool(home_team and team and team != home_team)
    not_a_person = bool(user.get("is_bot") or user.get("deleted") or user.get("id") == "USLACKBOT")
    return PersonInfo(
        display_name=str(name),
        is_staff=not (guest or foreign or not_a_person),
        locale=str(user.get("locale") or ""),
        timezone=str(user.get("tz") or ""),
    )


# -- outbound --------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """The adapter's own words (from bot/messages), in the channel language."""

    show_full: str
    full_text_title: str
    close: str


@dataclass(frozen=True)
class SlackMessage:
    """What chat.postMessage / chat.update / chat.postEphemeral take."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def message(view: View, labels: Labels) -> SlackMessage:
    if isinstance(view, Card):
        return SlackMessage(text=_fallback(view), blocks=card_blocks(view, labels))
    if isinstance(view, Home):
        return SlackMessage(text=escape(view.title), blocks=home_blocks(view, labels))
    if isinstance(view, Chart | Attachment):  # the file goes up separately; this is its caption
        return SlackMessage(text=escape(view.title))
    return SlackMessage(text=notice_text(view), blocks=notice_blocks(view))


def notice_text(notice: Notice) -> str:
    # Notices carry customer names and text too: escaped like everything else. With
    # blocks, this is only what notifications show.
    return escape(notice.text)


def notice_blocks(notice: Notice) -> list[dict[str, Any]]:
    """A notice as plain_text sections. Sent as a message's `text` alone, Slack would read
    it as mrkdwn: a customer's `*bold* _it_ ~s~` and backticks would become formatting.
    A notice is plain text (bot.views), so it is shown exactly as written, line breaks
    kept, in as many sections as its length needs."""
    # 600 plain characters escape to at most 3,000 (`&` → `&amp;`): a longer line is cut
    # in such pieces; lines and pieces are packed into sections up to Slack's limit.
    step = SECTION_TEXT_LIMIT // 5
    chunks, size = [""], 0
    for n, line in enumerate(notice.text.splitlines() or [""]):
        for i in range(0, max(len(line), 1), step):
            piece = ("\n" if n and not i else "") + line[i : i + step]
            grown = len(escape(piece))
            if size + grown > SECTION_TEXT_LIMIT:
                piece, grown = piece.removeprefix("\n"), len(escape(piece.removeprefix("\n")))
                chunks.append("")
                size = 0
            chunks[-1] += piece
            size += grown
    return [_section(text=_plain_text(chunk)) for chunk in chunks[:MESSAGE_BLOCKS_LIMIT]]


def _fallback(card: Card) -> str:
    text, _ = _escaped_clip(card.fallback or card.title, FALLBACK_LIMIT)
    return text


def card_blocks(card: Card, labels: Labels) -> list[dict[str, Any]]:
    """customer/source (header), status/owner/team (fields), text, link, buttons."""
    blocks: list[dict[str, Any]] = [
        {"text": _plain_text(card.title, HEADER_LIMIT), "type": "header"}
    ]
    if card.fields:
        # plain_text: a value may be someone's words (the question of an advice
        # request, a name), shown as written, never as mrkdwn
        fields = [
            _plain_text(f"{f.label}\n{f.value}", FIELD_LIMIT)
            for f in card.fields[:10]  # a section has at most 10 fields
        ]
        blocks.append({"fields": fields, "type": "section"})
    trimmed = False
    if card.text.strip():
        # plain_text: customer *bold*, _x_, links and mentions show exactly as written
        text, trimmed = _fit(card.text, SECTION_TEXT_LIMIT)
        blocks.append(_section(text=_plain_text(text)))
    notes: list[dict[str, Any]] = []
    if card.link:
        notes.append(_compact(text=link_markup(card.link), type="mrkdwn", verbatim=True))
    if card.more:
        notes.append(_plain_text(card.more, 1000))
    if notes:
        blocks.append({"elements": notes, "type": "context"})
    buttons = [_button(b) for b in card.buttons[:24]]
    if (trimmed or card.more) and card.show:
        show = _plain_text(labels.show_full, BUTTON_LABEL_LIMIT)
        show_full = _compact(action_id=SHOW_FULL, text=show, type="button", value=card.show[:2000])
        buttons.append(show_full)
    if buttons:
        # unique per card in a view (the Home tab shows many)
        first = card.buttons[0].value if card.buttons else ""
        block_id = f"inloop_card_{card.show or first}"
        blocks.append({"block_id": block_id[:255], "elements": buttons, "type": "actions"})
    return blocks[:MESSAGE_BLOCKS_LIMIT]


def link_markup(url: str) -> str:
    """A clickable link for an http(s) URL; anything else is shown as text. Inside `<…>`
    the URL is escaped and a `|` (Slack's label separator) is percent-encoded, so an
    intake URL cannot smuggle in a label or a mention."""
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > 1000 or " " in url:
        return escape(clip(url, 1000)[0])
    return f"<{escape(url).replace('|', '%7C')}>"


def _button(button: Button) -> dict[str, Any]:
    # a button with a form opens it (a modal); the others act at once
    return _compact(
        action_id=f"{FORM_OPEN_PREFIX}{button.form}"
        if button.form
        else f"{ACTION_PREFIX}{button.action}",
        style=None if button.style == "default" else button.style,
        text=_plain_text(button.label, BUTTON_LABEL_LIMIT),
        type="button",
        value=button.value[:2000],
    )


def _plain(text: str, limit: int = SECTION_TEXT_LIMIT) -> PlainTextObject:
    """`_plain_text` as slack_sdk's object, for the modals."""
    return PlainTextObject(text=_escaped_fit(text, limit), emoji=False)


def _plain_text(text: str, limit: int = SECTION_TEXT_LIMIT) -> dict[str, Any]:
    return {"emoji": False, "text": _escaped_fit(text, limit), "type": "plain_text"}


def _escaped_fit(text: str, limit: int) -> str:
    # Even plain_text is read through Slack's entity decoding: escape it all the same,
    # and fit the limit after escaping (a `&` counts five characters then).
    return escape(_fit(text, limit)[0]) or " "


def _section(**fields: Any) -> dict[str, Any]:
    return {**fields, "type": "section"}


def _compact(**fields: Any) -> dict[str, Any]:
    """A Block Kit object as slack_sdk's `to_dict()` gives it: keys sorted, None and
    empty values left out (an empty button value is sent as no value)."""
    return {
        key: value
        for key, value in sorted(fields.items())
        if value is not None and (not isinstance(value, str | list) or value)
    }


def home_blocks(home: Home, labels: Labels) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"text": _plain_text(home.title, HEADER_LIMIT), "type": "header"}
    ]
    if home.buttons:
        blocks.append({"elements": [_button(b) for b in home.buttons], "type": "actions"})
    for section in home.sections:
        blocks.append({"type": "divider"})
        heading = _compact(text=f"*{escape(section.heading)}*", type="mrkdwn")
        blocks.append(_section(text=heading))
        if not section.cards:
            blocks.append({"elements": [_plain_text(section.empty or "—")], "type": "context"})
        for card in section.cards[:HOME_CARDS_LIMIT]:
            blocks.extend(card_blocks(card, labels))
    return blocks[:VIEW_BLOCKS_LIMIT]


def text_modal(title: str, text: str, labels: Labels) -> dict[str, Any]:
    """A read-only modal (the full text of a trimmed card), split into sections."""
    # 600 plain characters escape to at most 3,000 (`&` → `&amp;`): one section each
    step = SECTION_TEXT_LIMIT // 5
    chunks = [text[i : i + step] for i in range(0, len(text), step)][:VIEW_BLOCKS_LIMIT]
    blocks: list[Block] = [SectionBlock(text=_plain(chunk)) for chunk in chunks or [" "]]
    return SlackView(
        type="modal",
        title=_plain(title, 24),
        close=_plain(labels.close, 24),
        blocks=blocks,
    ).to_dict()


# -- forms (modals with inputs, validated with inline errors) ----------------------------


def form_modal(form: Form, close: str, metadata: str = "") -> dict[str, Any]:
    blocks: list[Block] = [
        InputBlock(
            block_id=f.name,
            label=_plain(f.label, 2000),
            optional=not f.required,
            element=PlainTextInputElement(
                action_id=f.name,
                multiline=f.multiline,
                max_length=f.max_length,
                initial_value=f.initial or None,
            ),
        )
        for f in form.fields
    ]
    return SlackView(
        type="modal",
        callback_id=f"{FORM_PREFIX}{form.form_id}",
        title=_plain(form.title, 24),
        submit=_plain(form.submit, 24),
        close=_plain(close, 24),
        private_metadata=metadata[:3000],
        blocks=blocks,
    ).to_dict()


def form_values(form: Form, view: Mapping[str, Any]) -> dict[str, str]:
    state = (view.get("state") or {}).get("values") or {}
    values = {}
    for f in form.fields:
        entry = (state.get(f.name) or {}).get(f.name) or {}
        values[f.name] = str(entry.get("value") or "").strip()
    return values


def form_errors(form: Form, values: Mapping[str, str], required: str) -> dict[str, str]:
    """block_id → message, shown by Slack under the field (`response_action: errors`)."""
    return {f.name: required for f in form.fields if f.required and not values.get(f.name)}


def form_command(form: Form, values: Mapping[str, str]) -> str:
    squeezed = {f.name for f in form.fields if f.one_word}
    return form.command.format(
        **{k: "".join(v.split()) if k in squeezed else v for k, v in values.items()}
    )


def form_metadata(where: str, value: str, *, home: bool = False) -> str:
    """What a form's modal carries back (Slack returns private_metadata untouched): the
    channel it was opened from, the value of the button that opened it, and whether
    that button was on the Home tab."""
    return json.dumps({"channel": where, "value": value, "home": home})


def form_carried(view: Mapping[str, Any]) -> dict[str, Any]:
    """What `form_metadata` put in the modal, as Slack gives it back."""
    try:
        carried = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return carried if isinstance(carried, dict) else {}


def form_event(
    body: Mapping[str, Any], form: Form, values: Mapping[str, str], carried: Mapping[str, Any]
) -> Command:
    """A valid submission becomes the form's command (`carried`: see `form_carried`)."""
    view = body["view"]
    where, value = str(carried.get("channel") or ""), str(carried.get("value") or "")
    return Command(
        event_id=EventId(f"slack:form:{view['id']}:{view.get('hash', '')}"),
        sender=person(body["user"]["id"]),
        channel=channel(where) if where else NO_CHANNEL,
        text=form_command(form, {**values, "value": value}),
        raw=body,
    )
