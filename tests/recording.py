"""An in-memory chat platform for handler tests, in the spirit of errbot's test backend.

It records every message the bot delivers, deduplicates by idempotency key the
way Matrix deduplicates transaction ids, and can be told to fail the way real
platforms fail (429 with Retry-After, a crash right after the send).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from bot.account_limit import AccountLimit
from bot.events import ChannelId, PersonId, local_part
from bot.platform import DeliveryError, EventSink, PersonInfo
from bot.views import Attachment, Card, Chart, Home, Notice, View


@dataclass(frozen=True)
class Delivered:
    kind: str  # send | update | private
    target: str
    view: View
    key: str
    ref: str
    #: for kind "reply": the message whose thread it is in
    thread: str = ""

    @property
    def text(self) -> str:
        if isinstance(self.view, Notice):
            return self.view.text
        if isinstance(self.view, Chart):
            return f"(chart) {self.view.title}"
        if isinstance(self.view, Attachment):
            return f"(file) {self.view.title}"
        if isinstance(self.view, Home):
            return "\n".join(
                [self.view.title]
                + [
                    f"{s.heading}: {len(s.cards)} {s.empty if not s.cards else ''}"
                    for s in self.view.sections
                ]
            )
        assert isinstance(self.view, Card)
        return "\n".join(
            [self.view.title, *(f"{f.label}: {f.value}" for f in self.view.fields), self.view.text]
        )


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the bot catches it."""


@dataclass
class RecordingPlatform:
    name: str = "console"
    command_prefix: str = "!inloop"
    pace_seconds: float = 0.0
    #: a limit on the account's messages in every channel together (None: per channel)
    account_limit: AccountLimit | None = None
    #: False: the platform lost touch (`/readyz` says so)
    connected: bool = True
    guests: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    #: channels that refuse every message, for good (the bot was removed)
    gone: set[str] = field(default_factory=set)
    delivered: list[Delivered] = field(default_factory=list)
    #: every call the bot made, duplicates included (what a platform without dedup would show)
    calls: list[str] = field(default_factory=list)
    #: how many of the next sends fail with 429, and the Retry-After they carry
    rate_limited: int = 0
    retry_after: float = 0.01
    #: how many of the next sends fail with a passing error that is not a rate limit
    failing: int = 0
    #: targets whose sends take this many seconds to answer (a platform busy there)
    slow: dict[str, float] = field(default_factory=dict)
    #: seconds the platform takes to say who someone is (`user_info`)
    slow_lookups: float = 0.0
    #: the next send is recorded, then the "process" dies before the outbox can mark it sent
    crash_after_next_send: bool = False
    _seen: dict[str, str] = field(default_factory=dict)

    async def start(self, sink: EventSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        pass

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        if channel in self.slow:
            await asyncio.sleep(self.slow[channel])
        return self._deliver("send", channel, view, key)

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        self._deliver("update", channel, view, key, ref=message_ref)

    def messages_per_update(self, view: View) -> int:
        return 1

    async def reply(self, channel: ChannelId, message_ref: str, view: View, key: str) -> str:
        return self._deliver("reply", channel, view, key, thread=message_ref)

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        self._deliver("private", person, view, key)

    async def find_sent(
        self,
        target: str,
        key: str,
        *,
        since: datetime,
        thread: str | None = None,
        private: bool = False,
    ) -> None:
        # Like Matrix, this platform drops a resend by its key (`_deliver`).
        return None

    async def user_info(self, person: PersonId) -> PersonInfo:
        if self.slow_lookups:
            await asyncio.sleep(self.slow_lookups)
        name = local_part(person)
        if name in self.unknown:
            raise LookupError(person)
        return PersonInfo(display_name=name.capitalize(), is_staff=name not in self.guests)

    def _deliver(
        self, kind: str, target: str, view: View, key: str, ref: str = "", thread: str = ""
    ) -> str:
        self.calls.append(key)
        if target in self.gone:
            raise DeliveryError("channel_not_found", refused=True)
        if self.rate_limited:
            self.rate_limited -= 1
            raise DeliveryError("ratelimited", retry_after=self.retry_after)
        if self.failing:
            self.failing -= 1
            raise DeliveryError("internal_error")
        if key in self._seen:  # a resend after a crash: the platform drops it
            return self._seen[key]
        ref = ref or f"msg-{len(self.delivered) + 1}"
        self._seen[key] = ref
        self.delivered.append(Delivered(kind, target, view, key, ref, thread))
        if self.crash_after_next_send:
            self.crash_after_next_send = False
            raise Crash()
        return ref

    # -- what a user would see ----------------------------------------------------------

    def private(self, person: str) -> list[str]:
        """The private messages one person received, oldest first."""
        return [d.text for d in self.delivered if d.kind == "private" and d.target == person]

    def last_private(self, person: str) -> str:
        messages = self.private(person)
        assert messages, f"{person} received nothing privately"
        return messages[-1]

    def in_channel(self, channel: str) -> list[Delivered]:
        """What was posted in the channel itself (not private, not in threads)."""
        return [d for d in self.delivered if d.kind in ("send", "update") and d.target == channel]

    def everything_in(self, channel: str) -> list[Delivered]:
        """Whatever anyone in the channel can read, threads included."""
        return [d for d in self.delivered if d.kind != "private" and d.target == channel]

    def thread_of(self, number: int) -> list[str]:
        """The texts in the thread under #number's card."""
        refs = self.card_messages(number)
        return [d.text for d in self.delivered if d.kind == "reply" and d.thread in refs]

    def card(self, number: int) -> Card:
        """The card of conversation #number as it stands now (posted, then every update);
        not the private copies offered to people on duty."""
        prefix = f"#{number} "
        cards = [
            d.view
            for d in self.delivered
            if d.kind != "private" and isinstance(d.view, Card) and d.view.title.startswith(prefix)
        ]
        assert cards, f"no card for #{number}"
        return cards[-1]

    def card_messages(self, number: int) -> set[str]:
        """The distinct chat messages that carry #number's card (must be exactly one)."""
        prefix = f"#{number} "
        return {
            d.ref
            for d in self.delivered
            if d.kind != "private" and isinstance(d.view, Card) and d.view.title.startswith(prefix)
        }


def field_value(card: Card, label: str) -> str:
    for f in card.fields:
        if f.label == label:
            return f.value
    raise AssertionError(f"card has no field {label!r}: {card.fields}")


def button_actions(card: Card) -> list[str]:
    return [b.action for b in card.buttons]
