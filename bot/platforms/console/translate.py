"""Pure translation for the console: typed lines → events, views → terminal text."""

from __future__ import annotations

import re
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
from bot.views import Button, Card, Chart, Home, View

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
    screen) are shown as visible code points instead of being interpreted."""
    out = []
    for char in text:
        if char in "\n\t":
            out.append(char)
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def render(view: View, chart_path: str = "") -> str:
    if isinstance(view, Chart):
        return f"(chart) {literal(view.title)}: {chart_path}"
    if isinstance(view, Home):
        parts = [literal(view.title)]
        if view.buttons:
            parts.append(_button_line(view.buttons))
        for section in view.sections:
            parts.append(f"== {literal(section.heading)}")
            parts += [render(card) for card in section.cards] or [literal(section.empty)]
        return "\n".join(parts)
    if not isinstance(view, Card):
        return literal(view.text)
    lines = [f"┌ {literal(view.title)}"]
    lines.append("│ " + " · ".join(f"{literal(f.label)}: {literal(f.value)}" for f in view.fields))
    for text_line in literal(view.text).splitlines() or [""]:
        lines.append(f"│ {text_line}")
    if view.more:
        lines.append(f"│ ({literal(view.more)})")
    if view.link:
        lines.append(f"│ {literal(view.link)}")
    if view.buttons:
        lines.append("└ " + _button_line(view.buttons))
    else:  # the last line closes the box: no bare corner on a line of its own
        lines[-1] = "└" + lines[-1][1:]
    return "\n".join(lines)


def _button_line(buttons: Sequence[Button]) -> str:
    """What to type instead of pressing each button."""
    return "   ".join(f"[{b.label}] {b.command}" for b in buttons)
