"""The Platform protocol every chat adapter (console, Slack, Matrix) implements.

Errors raised by adapters while delivering (the outbox decides what to do with them):

    DeliveryError            the message did not get through
     ├── retry_after set     the platform said when to try again (HTTP 429 Retry-After)
     ├── permanent=True      trying again cannot help (channel gone, bot removed)
     │    └── refused=True   because the channel takes nothing from the bot (gone,
     │                       archived, the bot removed): admins are told
     └── uncertain=True      it may have got through all the same (a timeout, an HTTP 5xx)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.account_limit import AccountLimit
from bot.events import ChannelId, Event, PersonId
from bot.views import View


class DeliveryError(Exception):
    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        uncertain: bool = False,
        refused: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent or refused
        self.uncertain = uncertain
        self.refused = refused


class StartError(Exception):
    """A platform cannot start (e.g. its token was rejected): one line, exit code 2."""


@dataclass(frozen=True)
class PersonInfo:
    """What the platform knows about a person, used when Inloop first meets them."""

    display_name: str
    #: a full member of the company's own workspace / homeserver (not a guest, not federated)
    is_staff: bool
    locale: str = ""
    timezone: str = ""


class InboxPort(Protocol):
    """Where an adapter records what it acknowledges before handling it (bot/inbox.py)."""

    async def record(self, platform: str, key: str, body: Mapping[str, Any]) -> None:
        """Keep the request, committed, before acknowledging it (raises if it cannot)."""
        ...

    async def done(self, key: str) -> None:
        """The request is handled."""
        ...

    async def later(self, key: str) -> bool:
        """The request's handling said "not yet" (`NotYet`): keep it to be replayed a
        little later, within a bound (False: dropped instead)."""
        ...

    async def recover(
        self, platform: str, replay: Callable[[Mapping[str, Any]], Awaitable[None]]
    ) -> None:
        """Replay the requests a crash left unhandled, until cancelled."""
        ...


class EventSink(Protocol):
    """What an adapter hands its inbound events to."""

    @property
    def inbox(self) -> InboxPort:
        """Requests acknowledged and not handled yet, kept through a crash."""
        ...

    async def handle(self, event: Event) -> bool:
        """Handle one event; False if it had been handled before (a re-delivery)."""
        ...

    async def handle_many(self, events: Sequence[Event]) -> list[bool]:
        """Handle a batch atomically (intake): stored all together, or not at all."""
        ...

    async def settle(self) -> None:
        """Return once every message that is due has been delivered (console, tests)."""
        ...


class Platform(Protocol):
    name: str
    #: how people write commands there: "/inloop" (Slack) or "!inloop"
    command_prefix: str
    #: the least time between two messages to one channel (the platform's rate limit)
    pace_seconds: float

    @property
    def account_limit(self) -> AccountLimit | None:
        """The platform's documented limit on the bot account's messages, every channel
        and private message counted together (Matrix: Synapse's default `rc_message`);
        None where the limit is per channel only (`pace_seconds`: Slack, the console).
        The outbox starts its estimate of the account's bucket from it, and keeps a
        reserve of it for private answers (bot/account_limit.py)."""
        ...

    def messages_per_update(self, view: View) -> int:
        """How many messages `update` sends for `view`, each counted against
        `account_limit` (Matrix: a card's edit, and a line in its thread when the card
        carries one); 1 where an update is one message."""
        ...

    async def start(self, sink: EventSink) -> None: ...

    async def stop(self) -> None: ...

    @property
    def connected(self) -> bool:
        """Whether it can take and send messages now (`/readyz` asks): the console
        always; Slack while its socket is open, or its HTTP server runs; Matrix while
        its last sync succeeded recently."""
        ...

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        """Post a view; return the platform's reference of the new message.

        `key` is the outbox row's idempotency key: a resend after a crash carries
        the same key so that platforms that can (Matrix txn ids) deduplicate it, and
        platforms that cannot keep it with the message for `find_sent`.
        """
        ...

    async def find_sent(
        self,
        target: str,
        key: str,
        *,
        since: datetime,
        thread: str | None = None,
        private: bool = False,
    ) -> str | None:
        """The message an earlier attempt with `key` posted to `target` (a channel; a person
        if `private`; in the thread `thread` if set) at `since` or later, if there is
        one: its reference ("" if it has none), else None.

        The outbox asks before resending a row that may have got through (its worker
        died mid-send, or the platform timed out). Platforms that deduplicate by key
        themselves answer None, and the resend is dropped by the platform.
        """
        ...

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None: ...

    async def reply(self, channel: ChannelId, message_ref: str, view: View, key: str) -> str:
        """Post in the thread under `message_ref` (Slack thread_ts, Matrix m.thread)."""
        ...

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        """Tell one person privately; `context` is the channel they spoke in, if any
        (Slack uses it for ephemeral replies)."""
        ...

    async def user_info(self, person: PersonId) -> PersonInfo: ...
