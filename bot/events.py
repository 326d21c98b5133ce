"""Neutral inbound events: what the platform adapters and intake sources hand to the router.

Identities are platform-qualified strings, so the core never needs to know which
platform a person or channel lives on beyond the prefix:

    PersonId("slack:U0123")      PersonId("matrix:@ann:example.org")   PersonId("console:ann")
    ChannelId("slack:C0456")     ChannelId("matrix:!room:example.org") ChannelId("console:#support")

Every event keeps the raw payload it was made from, for debugging and for the
handlers of later features that need a detail the neutral shape does not carry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NewType

PersonId = NewType("PersonId", str)
ChannelId = NewType("ChannelId", str)
EventId = NewType("EventId", str)
#: the longest event id the dedup table stores
MAX_EVENT_ID = 255

Raw = Mapping[str, Any]


def platform_of(ref: str) -> str:
    """The platform prefix of a qualified id: `slack:U1` → `slack`."""
    platform, sep, rest = ref.partition(":")
    if not sep or not platform or not rest:
        raise ValueError(f"not a platform-qualified id: {ref!r}")
    return platform


def local_part(ref: str) -> str:
    """The platform's own id: `matrix:@ann:example.org` → `@ann:example.org`."""
    platform_of(ref)
    return ref.partition(":")[2]


@dataclass(frozen=True)
class Command:
    """`/inloop claim 3` (Slack) or `!inloop claim 3` (Matrix, console), prefix removed."""

    event_id: EventId
    sender: PersonId
    channel: ChannelId
    text: str
    raw: Raw = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Action:
    """A button press on a card: the same verbs as the commands, e.g. ("claim", "42")."""

    event_id: EventId
    sender: PersonId
    channel: ChannelId
    action: str
    value: str
    raw: Raw = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Message:
    """A plain chat message the bot saw (watched channels use these)."""

    event_id: EventId
    sender: PersonId
    channel: ChannelId
    text: str
    #: the platform's id of this message (Slack ts, Matrix event id)
    message_ref: str = ""
    #: the id of the thread's first message, when this is a reply in a thread
    thread: str | None = None
    #: a link to the message, where the platform has one
    url: str = ""
    #: the names of the files it carries (a photo of the broken box, a PDF); "" for a
    #: file the platform does not name
    files: tuple[str, ...] = ()
    raw: Raw = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Reaction:
    """An emoji reaction to one of the bot's messages."""

    event_id: EventId
    sender: PersonId
    channel: ChannelId
    message_ref: str
    emoji: str
    raw: Raw = field(default_factory=dict, compare=False)


class NotYet(Exception):
    """The event names something on its way that is not known yet (a ✋ on a card whose
    post another instance made, and did not book before it died): nothing of its
    handling is kept, and the adapter hands it again a little later (Slack: its inbox
    row is kept for a retry, bot/inbox.py `Inbox.later`)."""


def bounded(natural: str) -> EventId:
    """An event id that fits the dedup column: as it is, or its kind (what comes before
    the first ":") and a hash of it, so that two long ids never meet."""
    if len(natural) <= MAX_EVENT_ID:
        return EventId(natural)
    kind = natural.partition(":")[0]
    return EventId(f"{kind}:sha256:" + hashlib.sha256(natural.encode()).hexdigest())


@dataclass(frozen=True)
class Author:
    name: str
    handle: str = ""


@dataclass(frozen=True)
class MentionReceived:
    """One customer mention from an intake source, already validated and normalised."""

    source: str
    external_id: str
    conversation_key: str
    author: Author
    text: str
    url: str
    created_at: datetime
    lang: str = ""
    tags: tuple[str, ...] = ()
    #: a source that knows its team (a feed added for one team) names it here
    team: str = ""
    raw: Raw = field(default_factory=dict, compare=False)

    @property
    def event_id(self) -> EventId:
        """(source, external_id) is the mention: whichever door it came through, and
        however often, it is one event (a re-delivery is a retry)."""
        # External ids may be 512 characters: `bounded` fits them to the column.
        return bounded(f"mention:{len(self.source)}:{self.source}:{self.external_id}")


@dataclass(frozen=True)
class FeedProblem:
    """A feed started failing (or works again, `error` empty): admins are told once."""

    event_id: EventId
    feed_url: str
    error: str
    raw: Raw = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class OccurrenceDue:
    """The scheduler says: these commitments' blocks start (started) at `start`.

    One event carries every block of that instant (up to a batch), so that the
    thousand blocks of a busy minute are a few transactions, not a thousand.
    Each running instance fires it; the handler's unique row per occurrence
    decides which one acts. Fired late after a downtime: the handler sends each
    block late or records it missed, by how late it is.
    """

    event_id: EventId
    start: datetime
    commitment_ids: tuple[int, ...]
    raw: Raw = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SessionDue:
    """The scheduler says: a dialogue session's `next_at` has come (snooze over,
    check-in time, check-in unanswered)."""

    event_id: EventId
    session_id: int
    at: datetime
    raw: Raw = field(default_factory=dict, compare=False)


ChatEvent = Command | Action | Message | Reaction


@dataclass(frozen=True)
class Undeliverable:
    """The outbox gave up on a message for a channel (the bot was removed, the channel is
    gone): admins are told, once a day per channel (the id names the day)."""

    event_id: EventId
    channel: ChannelId
    reason: str
    raw: Raw = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Tick:
    """A recurring moment came: the weekly digest's Monday 09:00, the advice SLA sweep.

    Its id names the moment, so every instance fires the same id and the router's
    dedup lets one of them act, once, even across restarts.
    """

    event_id: EventId
    name: str
    at: datetime
    raw: Raw = field(default_factory=dict, compare=False)


Event = (
    ChatEvent | MentionReceived | FeedProblem | OccurrenceDue | SessionDue | Tick | Undeliverable
)
