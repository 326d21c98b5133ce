"""Neutral outbound views. Adapters turn them into Block Kit, Matrix HTML or console text.

All text here is plain text: adapters escape it for their platform, so customer
text can never become markup or a mass ping.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, Literal

ButtonStyle = Literal["default", "primary", "danger"]


@dataclass(frozen=True)
class Button:
    label: str
    action: str
    value: str
    style: ButtonStyle = "default"
    #: what to type where there are no buttons (console, Matrix)
    command: str = ""
    #: another way where there are no buttons, in the reader's words (e.g. "or react ✋")
    also: str = ""
    #: the form (see `Form`) that asks what the command still needs, where the platform
    #: has forms (Slack modals); elsewhere `command` says what to type
    form: str = ""


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    multiline: bool = False
    required: bool = True
    max_length: int = 3000
    initial: str = ""
    #: the command reads it as one word: spaces typed in it are dropped ("mon, wed")
    one_word: bool = False


@dataclass(frozen=True)
class Form:
    """What a button asks before it acts (a modal, in Slack); submitted, it becomes a
    command: `command` is a template over the field names and `value`, the button's
    value, e.g. `ask {value} {question}`."""

    form_id: str
    title: str
    submit: str
    fields: tuple[FormField, ...]
    command: str


@dataclass(frozen=True)
class Field:
    label: str
    value: str


@dataclass(frozen=True)
class Card:
    title: str
    fields: tuple[Field, ...] = ()
    text: str = ""
    #: shown under the text when it was trimmed, e.g. "Full text: !inloop show 3"
    more: str = ""
    link: str = ""
    buttons: tuple[Button, ...] = ()
    #: a short plain line for notifications and clients that cannot render the card
    fallback: str = ""
    #: the conversation whose full text `show` gives, for a card trimmed or with `more`
    #: (Slack: a "Show full text" button); "" when the card is not a conversation's
    show: str = ""


@dataclass(frozen=True)
class Notice:
    """A plain message, mostly a private answer. Its text mixes Inloop's words with
    other people's (a customer's follow-up, a question, a name), so every platform shows
    all of it exactly as written: no mrkdwn in Slack, no pills in Matrix."""

    text: str


@dataclass(frozen=True)
class Chart:
    """An image to attach (Slack file upload, Matrix m.image, a file path on the console)."""

    title: str
    filename: str
    png: bytes = field(repr=False)


@dataclass(frozen=True)
class Attachment:
    """A file for one person (a customer's data export): a Slack file in their DM with
    the app, a Matrix `m.file`, a file in the files folder on the console."""

    title: str
    filename: str
    data: bytes = field(repr=False)
    mimetype: str = "application/json"


@dataclass(frozen=True)
class HomeSection:
    heading: str
    cards: tuple[Card, ...] = ()
    #: shown when there are no cards
    empty: str = ""


@dataclass(frozen=True)
class Home:
    """A person's own overview: Slack's Home tab; a private message where there is none."""

    title: str
    sections: tuple[HomeSection, ...] = ()
    #: what the person can start from here (e.g. commit time: a form in Slack)
    buttons: tuple[Button, ...] = ()


View = Card | Notice | Chart | Attachment | Home


def view_to_dict(view: View) -> dict[str, Any]:
    """Serialise a view for the outbox row."""
    if isinstance(view, Chart):
        png = base64.b64encode(view.png).decode("ascii")
        return {"kind": "chart", "title": view.title, "filename": view.filename, "png": png}
    if isinstance(view, Attachment):
        data = base64.b64encode(view.data).decode("ascii")
        return {
            "kind": "file",
            "title": view.title,
            "filename": view.filename,
            "data": data,
            "mimetype": view.mimetype,
        }
    kind = "card" if isinstance(view, Card) else "home" if isinstance(view, Home) else "notice"
    return {"kind": kind, **_plain_fields(view)}


def _plain_fields(part: Any) -> dict[str, Any]:
    """`dataclasses.asdict` for views, without its deep copy of every value (their values
    are str, int, bool and tuples of parts: nothing to copy). A card is written for
    every conversation, and asdict was a third of its outbox row's cost (bench.slack)."""
    kind: type = type(part)
    return {name: _plain(getattr(part, name)) for name in _field_names(kind)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(type(value), "__dataclass_fields__"):
        return _plain_fields(value)
    return value


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def view_from_dict(data: dict[str, Any]) -> View:
    body = {k: v for k, v in data.items() if k != "kind"}
    if data["kind"] == "notice":
        return Notice(**body)
    if data["kind"] == "chart":
        return Chart(body["title"], body["filename"], base64.b64decode(body["png"]))
    if data["kind"] == "file":
        return Attachment(
            body["title"], body["filename"], base64.b64decode(body["data"]), body["mimetype"]
        )
    if data["kind"] == "home":
        return Home(
            title=body["title"],
            sections=tuple(
                HomeSection(
                    heading=s["heading"],
                    cards=tuple(_card(c) for c in s.get("cards", ())),
                    empty=s.get("empty", ""),
                )
                for s in body.get("sections", ())
            ),
            buttons=tuple(_button(b) for b in body.get("buttons", ())),
        )
    return _card(body)


def _card(body: dict[str, Any]) -> Card:
    return Card(
        title=body["title"],
        fields=tuple(Field(**f) for f in body.get("fields", ())),
        text=body.get("text", ""),
        more=body.get("more", ""),
        link=body.get("link", ""),
        buttons=tuple(_button(b) for b in body.get("buttons", ())),
        fallback=body.get("fallback", ""),
        show=body.get("show", ""),
    )


def _button(body: dict[str, Any]) -> Button:
    # Only the fields this version knows: a row written by a newer version (several
    # instances mid-deploy) still loads, without what it added.
    return Button(**{k: v for k, v in body.items() if k in _BUTTON_FIELDS})


_BUTTON_FIELDS = frozenset(f.name for f in fields(Button))
