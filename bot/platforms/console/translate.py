"""Pure translation for the console: typed lines → events, views → terminal text."""

from __future__ import annotations

import re
import textwrap
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.events import (
    ChannelId,
    Command,
    EventId,
    MentionReceived,
    Message,
    PersonId,
)
from bot.intake.mentions import Invalid, parse_mention
from bot.views import Attachment, Button, Card, Chart, Home, View

PREFIX = "!inloop"


@dataclass(frozen=True)
class SwitchPersona:
    name: str


@dataclass(frozen=True)
class SwitchChannel:
    channel: str


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Problem:
    """A directive typed wrong: the console prints this and carries on."""

    text: str


Directive = SwitchPersona | SwitchChannel | Quit | Problem
Line = Directive | Command | Message | MentionReceived | None

DIRECTIVES_HELP = (
    "  /as NAME            speak as NAME (new names become people)\n"
    "  /in #CHANNEL        move to #CHANNEL\n"
    "  /mention NAME: TEXT a customer called NAME writes TEXT\n"
    "  /quit               leave (end of input works too)\n"
    f"  {PREFIX} help        the bot's commands"
)


def person(name: str) -> PersonId:
    return PersonId(f"console:{name.lower()}")


def channel(name: str) -> ChannelId:
    return ChannelId(f"console:#{name.lstrip('#').lower()}")


def parse_line(line: str, persona: str, where: str, now: datetime) -> Line:
    text = line.strip()
    if not text:
        return None
    event_id = EventId(f"console:{uuid.uuid4().hex}")
    if text.startswith("/"):
        return _directive(text, event_id, now)
    sender, room = person(persona), channel(where)
    head, _, rest = text.partition(" ")
    if head.lower() == PREFIX:
        # As typed: free text keeps its `@marta` and `@here`; the core resolves the
        # arguments that name a person (handlers.people.named_person).
        return Command(event_id, sender, room, rest.strip(), raw={"line": line})
    return Message(event_id, sender, room, text, raw={"line": line})


def _directive(text: str, event_id: EventId, now: datetime) -> Line:
    name, _, rest = text.partition(" ")
    rest = rest.strip()
    match name.lower():
        case "/quit" | "/exit":
            return Quit()
        case "/as":
            if not re.fullmatch(r"[\w.-]{1,40}", rest):
                return Problem("Usage: /as NAME (letters, digits, . _ -)")
            return SwitchPersona(rest.lower())
        case "/in":
            if not re.fullmatch(r"#?[\w.-]{1,80}", rest):
                return Problem("Usage: /in #CHANNEL")
            return SwitchChannel(rest.lstrip("#").lower())
        case "/mention":
            customer, colon, said = rest.partition(":")
            if not colon or not customer.strip() or not said.strip():
                return Problem("Usage: /mention NAME: TEXT")
            body = {
                "source": "console",
                "external_id": event_id.removeprefix("console:"),
                # one conversation per customer: the next /mention from them is a follow-up
                "conversation_key": f"customer:{customer.strip().casefold()}",
                "author": {"name": customer.strip()},
                "text": said.strip(),
            }
            try:
                return parse_mention(body, now)  # the webhook's own rules
            except Invalid as exc:
                return Problem(f"Not a mention: {exc}")
        case "/help":
            return Problem("Directives:\n" + DIRECTIVES_HELP)
    return Problem(f"Unknown directive {name}. Directives:\n" + DIRECTIVES_HELP)


def literal(text: str) -> str:
    """Terminal-safe: control characters (an ANSI escape in customer text could rewrite the
    screen) are shown as visible code points instead of being interpreted. A tab becomes
    four spaces: left to the terminal, it jumps to a tab stop and breaks the card's box."""
    out = []
    for char in text:
        if char == "\n":
            out.append(char)
        elif char == "\t":
            out.append("    ")
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def render(view: View, chart_path: str = "", width: int | None = None) -> str:
    """Terminal text for `view`; with a `width`, every line fits in that many columns
    (a terminal wraps a longer one at its edge, and a card's box falls apart)."""
    if isinstance(view, Chart):
        # one piece: a path cut over two lines could not be copied
        return f"(chart) {literal(view.title)}: {chart_path}"
    if isinstance(view, Attachment):
        return f"(file) {literal(view.title)}: {chart_path}"
    if isinstance(view, Home):
        parts = _wrap(literal(view.title), width)
        if view.buttons:
            parts += _button_rows(view.buttons, width)
        for section in view.sections:
            parts += _wrap(f"== {literal(section.heading)}", width)
            for card in section.cards:
                parts.append(render(card, width=width))
            if not section.cards:
                parts += _wrap(literal(section.empty), width)
        return "\n".join(parts)
    if not isinstance(view, Card):
        return "\n".join(fit(literal(view.text), width))
    inner = None if width is None else width - 2  # after the box's "│ "
    rows = _wrap(literal(view.title), inner)
    rows += _pack([f"{literal(f.label)}: {literal(f.value)}" for f in view.fields], " · ", inner)
    rows += fit(literal(view.text), inner)
    if view.more:
        rows += _wrap(f"({literal(view.more)})", inner)
    if view.link:
        rows.append(literal(view.link))  # one piece, to be copied or clicked
    if view.buttons:
        rows += _button_rows(view.buttons, inner)
    # The box: a corner on its first and last line (the buttons, when there are any).
    edges = ["┌ "] + ["│ "] * (len(rows) - 2) + ["└ "]
    return "\n".join(edge + row for edge, row in zip(edges, rows, strict=True))


def _button_rows(buttons: Sequence[Button], width: int | None) -> list[str]:
    """What to type instead of pressing each button."""
    return _pack([f"[{b.label}] {b.command}" for b in buttons], "   ", width)


def fit(text: str, width: int | None) -> list[str]:
    """Each line of `text`, wrapped to `width`."""
    return [row for line in text.splitlines() or [""] for row in _wrap(line, width)]


#: below this a wrapped line is more breaks than words: past the edge is better
_NARROWEST = 20


def _wrap(line: str, width: int | None) -> list[str]:
    """One line as rows of at most `width` columns, cut between words when it can be;
    an indented line keeps its indent on the rows it wraps onto."""
    if width is None or len(line) <= width:
        return [line]
    width = max(width, _NARROWEST)
    indent = line[: len(line) - len(line.lstrip(" "))][: width // 2]
    rows = textwrap.wrap(
        line, width, subsequent_indent=indent, break_on_hyphens=False, expand_tabs=False
    )
    return rows or [""]


def _pack(pieces: Sequence[str], sep: str, width: int | None) -> list[str]:
    """`pieces` joined by `sep`, a new row where the next piece would not fit: a field or
    a button is cut only when it is wider than a whole row, and then has rows of its own."""
    if width is None:
        return [sep.join(pieces)]
    rows: list[str] = []
    joinable = False  # the last row holds whole pieces only
    for piece in pieces:
        if joinable and len(rows[-1]) + len(sep) + len(piece) <= width:
            rows[-1] += sep + piece
        else:
            cut = _wrap(piece, width)
            rows += cut
            joinable = len(cut) == 1
    return rows or [""]
