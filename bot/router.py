"""Command grammar and dispatch: one pipeline for every inbound event.

    event ─► dedupe by event id ─► who is it (Person) ─► which handler ─► may they? ─► handler
                      └──────────────── one transaction ─────────────────────────┘
                                                              │ commit
                                                              ▼
                                   outbox worker is kicked with the rows just written

Any exception in a handler rolls its transaction back (state and outbox rows
alike), goes to the one error hook, and the sender is told privately that
nothing changed. Listeners of non-command events each run in a savepoint, so one
failing listener does not undo the others, except one that raises `NotYet`: the
event names something not known yet, so it is rolled back whole (its dedup row too)
and its adapter hands it again later. A type with a batch listener (intake
mentions) is handled set-based instead: the listener gets the whole batch, dedupes
it itself, and if it fails the batch is rolled back whole.

A command that must reach the network first (`feed add` fetches the feed) names a
prepare step: it runs before the transaction, for someone whose role may run the
command, and what it returns reaches the handler as `ctx.prepared`. A slow host
then holds no write transaction.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.context import Context, prefix_on
from bot.events import Action, ChannelId, Command, Event, Message, NotYet, PersonId, Reaction
from bot.log_format import handling
from bot.messages import Texts, texts_for
from bot.metrics import Metrics
from bot.outbox import Leased, OutboxWriter
from bot.people import Directory
from bot.views import Notice
from storage import events as processed
from storage.database import Database
from storage.models import Person, ProcessedEvent, Role
from storage.people import find

CommandHandler = Callable[[Context, Sequence[str]], Awaitable[None]]
#: a command's I/O before its transaction, given its arguments (see the module's doc)
Prepare = Callable[[Sequence[str]], Awaitable[object]]
E = TypeVar("E")
ErrorHook = Callable[[BaseException, str], None]
#: handles a batch of events of one type; for each, whether it was new
BatchListener = Callable[[Context, Sequence[E]], Awaitable[list[bool]]]

#: everybody, including people with no role (help, lang)
ANYONE: frozenset[str] = frozenset()


class UsageError(Exception):
    """Raised by a handler when its arguments are wrong: the sender gets the usage line."""

    def __init__(self, problem: str = ""):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class CommandSpec:
    name: str
    run: CommandHandler
    roles: frozenset[str]
    prepare: Prepare | None = None


class Delivery(Protocol):
    """What the router needs of the outbox (`OutboxWorker`): the rows a transaction
    wrote leased in it, and sent once it has committed."""

    async def lease(self, session: AsyncSession, written: Sequence[int]) -> Leased: ...

    def deliver(self, leased: Leased) -> None: ...


class Router:
    def __init__(
        self,
        db: Database,
        directory: Directory,
        clock: Clock,
        on_error: ErrorHook,
        *,
        channel_language: str,
        channel_timezone: str = "UTC",
        prefixes: Mapping[str, str] | None = None,
        outbox: Delivery,
        metrics: Metrics | None = None,
    ):
        self._metrics = metrics or Metrics()
        self._db = db
        self._directory = directory
        self._clock = clock
        self._on_error = on_error
        self._channel_language = channel_language
        self._channel_timezone = channel_timezone
        self._prefixes = dict(prefixes or {})
        self._outbox = outbox
        self._commands: dict[str, CommandSpec] = {}
        self._listeners: dict[type[Any], list[Callable[[Context, Any], Awaitable[None]]]] = (
            defaultdict(list)
        )
        self._batch_listeners: dict[type[Any], BatchListener[Any]] = {}

    # -- registration ---------------------------------------------------------------

    def command(
        self,
        name: str,
        run: CommandHandler,
        roles: frozenset[str] = ANYONE,
        *,
        prepare: Prepare | None = None,
    ) -> None:
        self._commands[name] = CommandSpec(name, run, roles, prepare)

    def on(self, event_type: type[E], listener: Callable[[Context, E], Awaitable[None]]) -> None:
        self._listeners[event_type].append(listener)

    def on_batch(self, event_type: type[E], listener: BatchListener[E]) -> None:
        """The one listener for events of this type, given each batch whole (set-based).

        It dedupes the events itself and says which were new: it knows what makes
        two of them the same (a mention's source and external id), and a watched
        channel's listener hands it mentions too. It runs without a savepoint: if it
        fails, the whole batch is rolled back and `handle_many` raises, so nothing
        of it is half-kept.
        """
        self._batch_listeners[event_type] = listener

    def commands_for(self, role: str | None) -> list[CommandSpec]:
        return [s for s in self._commands.values() if not s.roles or role in s.roles]

    def prefix(self, platform: str) -> str:
        return prefix_on(self._prefixes, platform)

    # -- dispatch -------------------------------------------------------------------

    async def handle(self, event: Event) -> bool:
        """Handle one event; False if it was handled before (a platform's retry)."""
        started = time.perf_counter()
        with handling(event.event_id):  # its log lines carry its id
            try:
                fresh, failed = await self._handle_one(event)
            except NotYet:
                self._count(event, "deferred", started)
                raise  # rolled back: the adapter hands it again later
        self._count(event, "failed" if failed else "handled" if fresh else "duplicate", started)
        return fresh

    async def _handle_one(self, event: Event) -> tuple[bool, bool]:
        """Whether the event was new, and whether handling it failed (then it is new)."""
        leased = Leased()
        try:
            prepared: object = None
            if isinstance(event, Command | Action | Message | Reaction):
                await self._directory.prepare(self._db, event.sender)
            if isinstance(event, Command | Action):
                prepared = await self._prepare(event)
            async with self._db.transaction() as session:
                out = OutboxWriter(session, self._clock())
                fresh = (await self._dispatch(session, out, [event], prepared))[0]
                committing = await self._lease(session, out)
            leased = committing  # only once committed
            return fresh, False
        except NotYet:
            raise
        except Exception as exc:
            self._on_error(exc, _describe(event))
            await self._apologise(event)
        finally:
            self._outbox.deliver(leased)
        return True, True

    async def _lease(self, session: AsyncSession, out: OutboxWriter) -> Leased:
        """The rows the transaction wrote, leased in it for the outbox to send as soon
        as it commits."""
        await session.flush()  # their ids
        return await self._outbox.lease(session, out.written())

    def _count(self, event: Event, result: str, started: float) -> None:
        self._metrics.event_handled(type(event).__name__, result)
        if isinstance(event, Command | Action):
            spec, _ = self._match(_command_words(event))
            name = spec.name if spec is not None else "unknown"
            self._metrics.command_took(name, time.perf_counter() - started)

    async def handle_many(self, events: Sequence[Event]) -> list[bool]:
        """Handle a batch in one transaction: all of it is stored, or none (then it raises).

        For intake batches, where one commit for a hundred mentions is what makes
        thousands a second possible on SQLite. Events whose type has a batch
        listener reach it together; other listeners' errors are still isolated.
        """
        try:
            fresh = await self._handle_batch(events)
        except Exception:
            for event in events:
                self._metrics.event_handled(type(event).__name__, "failed")
            raise
        for event, is_new in zip(events, fresh, strict=True):
            self._metrics.event_handled(type(event).__name__, "handled" if is_new else "duplicate")
        return fresh

    async def _handle_batch(self, events: Sequence[Event]) -> list[bool]:
        leased = Leased()
        # People met for the first time are looked up before the transaction, as in
        # `handle` (a Slack adapter's batch of messages has senders; intake has none).
        chat = (e.sender for e in events if isinstance(e, Command | Action | Message | Reaction))
        for sender in dict.fromkeys(chat):
            await self._directory.prepare(self._db, sender)
        try:
            async with self._db.transaction() as session:
                out = OutboxWriter(session, self._clock())
                fresh = []
                # Runs of one type keep the events' order across types.
                for _, run in itertools.groupby(events, key=type):
                    fresh += await self._dispatch(session, out, list(run))
                committing = await self._lease(session, out)
            leased = committing  # only once committed
        finally:
            self._outbox.deliver(leased)
        return fresh

    async def _prepare(self, event: Command | Action) -> object:
        """The command's prepare step, if it has one and the sender may run it."""
        spec, args = self._match(_command_words(event))
        if spec is None or spec.prepare is None:
            return None
        if spec.roles:
            async with self._db.read() as session:
                person = await find(session, event.sender)
            if person is None or person.role not in spec.roles:
                return None  # no I/O on behalf of someone who will be told "not allowed"
        return await spec.prepare(args)

    async def _dispatch(
        self,
        session: AsyncSession,
        out: OutboxWriter,
        events: Sequence[Event],
        prepared: object = None,
    ) -> list[bool]:
        """Events of one type, in order; for each, whether it was new (not a retry)."""
        now = out.now
        ctx = Context(
            session=session,
            out=out,
            directory=self._directory,
            now=now,
            channel_language=self._channel_language,
            prefixes=self._prefixes,
            channel_timezone=self._channel_timezone,
        )
        if (batch_listener := self._batch_listeners.get(type(events[0]))) is not None:
            return await batch_listener(ctx, events)
        command = events[0]
        if len(events) == 1 and isinstance(command, Command | Action):
            # A command: its dedup row and its sender together (PostgreSQL: one round trip).
            new, sender = await processed.first_time_by(
                session, command.event_id, command.sender, now
            )
            if new:
                await self._dispatch_one(ctx, command, prepared, sender)
            return [new]
        fresh = await processed.first_times(session, [e.event_id for e in events], now)
        for event, is_new in zip(events, fresh, strict=True):
            if is_new:
                await self._dispatch_one(ctx, event, prepared)
        return fresh

    async def _dispatch_one(
        self, ctx: Context, event: Event, prepared: object = None, sender: Person | None = None
    ) -> None:
        """`sender`: the sender's row, when it was read already."""
        if isinstance(event, Command | Action | Message | Reaction):
            ctx = replace(ctx, channel=event.channel, prefix=ctx.prefix_on(event.sender))
        if isinstance(event, Command | Action):
            person = sender or await self._directory.ensure(ctx.session, event.sender, ctx.now)
            command = event.text if isinstance(event, Command) else ""
            ctx = replace(ctx, person=person, command_text=command, prepared=prepared)
            await self._run_command(ctx, _command_words(event))
            return
        # Other senders are resolved by the listener that cares: most messages are in
        # channels Inloop does not watch, and their authors need no row.
        for listener in self._listeners[type(event)]:
            try:
                async with ctx.session.begin_nested():
                    await listener(ctx, event)
            except NotYet:
                raise  # the whole event waits, its dedup row too
            except Exception as exc:
                self._on_error(exc, f"{_describe(event)} in {listener.__qualname__}")

    async def _run_command(self, ctx: Context, words: list[str]) -> None:
        texts = ctx.texts
        spec, args = self._match(words)
        if spec is None:
            ctx.reply(self._unknown(ctx, words))
            return
        role = ctx.sender.role
        if spec.roles and role not in spec.roles:
            ctx.reply(not_allowed(texts, spec.name, spec.roles, role))
            return
        try:
            await spec.run(ctx, args)
        except UsageError as exc:
            lines = [exc.problem] if exc.problem else []
            lines += [texts.usage_intro, f"{ctx.prefix} {texts.usage[spec.name]}"]
            ctx.reply("\n".join(lines))

    def _match(self, words: list[str]) -> tuple[CommandSpec | None, list[str]]:
        head = words[0].lower()
        if len(words) > 1:
            pair = f"{head} {words[1].lower()}"
            if pair in self._commands:
                return self._commands[pair], words[2:]
        return self._commands.get(head), words[1:]

    def _unknown(self, ctx: Context, words: list[str]) -> str:
        texts = ctx.texts
        head = words[0].lower()
        related = [name for name in self._commands if name.split()[0] == head]
        allowed = [s.name for s in self.commands_for(ctx.sender.role)]
        names = related or allowed
        usage = "\n".join(f"{ctx.prefix} {texts.usage[name]}" for name in names)
        return f"{texts.unknown_command.format(command=' '.join(words[:2]))}\n{usage}"

    async def _apologise(self, event: Event) -> None:
        if not isinstance(event, Command | Action):
            return
        try:
            async with self._db.transaction() as session:
                session.add(ProcessedEvent(event_id=event.event_id, at=self._clock()))
                writer = OutboxWriter(session, self._clock())
                texts: Texts = texts_for(self._channel_language)
                writer.tell(PersonId(event.sender), Notice(texts.internal_error), event.channel)
        except Exception as exc:
            self._on_error(exc, f"apologising for {_describe(event)}")


_SPACE = re.compile(r"\s+")


def _words(command: Command) -> list[str]:
    return [w for w in _SPACE.split(command.text.strip()) if w]


def _command_words(event: Command | Action) -> list[str]:
    """What the sender asked for, as words: a button is its action and value; nothing
    at all asks for help."""
    if isinstance(event, Action):
        # a button without a value (Show list: `queue`) is its action alone
        return [w for w in (event.action, event.value) if w]
    return _words(event) or ["help"]


def not_allowed(texts: Texts, command: str, roles: frozenset[str], role: str | None) -> str:
    """The private answer to someone whose role may not do `command`."""
    return texts.not_allowed.format(command=command, roles=_roles(roles), role=role or "none")


def _roles(roles: frozenset[str]) -> str:
    order = [Role.EMPLOYEE, Role.CONSULTANT, Role.MANAGER, Role.ADMIN]
    return " / ".join(r.value for r in order if r in roles)


def _describe(event: Event) -> str:
    return f"{type(event).__name__} {event.event_id}"


__all__ = ["ANYONE", "ChannelId", "CommandSpec", "Router", "UsageError"]
