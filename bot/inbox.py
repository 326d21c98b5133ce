"""The inbox, the outbox's mirror: what a platform was told arrived is handled, crash or not.

Slack takes an acknowledgement within 3 s and then never delivers the request again;
Inloop acknowledges first and handles after. A crash in between lost the request: a
`claim` acknowledged and never answered. So an adapter records each request here (one
row, committed) before acknowledging it, and deletes the row once it is handled. A row
left behind by a crash is handled again:

- on SQLite (one instance), by the next start, at once: the rows another receiver
  recorded can only be its predecessor's;
- on PostgreSQL, by any instance, once the receiver is no longer alive (its liveness
  lease, bot/duties.py `Liveness`, ended: within 6 s of a kill -9), and the row is a
  few seconds old. Each instance looks every `sweep_every` seconds; a row is taken in
  one statement, so one instance replays it.

A request whose handling raised `NotYet` (it names something on its way: a card posted
by an instance that died before booking it) is kept too, for the next sweep of any
instance, for at most RETRY_FOR after it arrived (`later`).

Handled twice is harmless: the router drops an event id it has handled (in the same
transaction as the handling), so a row replayed after its handling was committed,
but before the row was deleted, changes nothing and answers nobody twice.

Matrix needs no inbox: its sync token is saved only after the sync's events are
handled (bot/platforms/matrix/adapter.py), so after a crash Synapse gives them again.
Nor does a Slack channel message: it is stored, with those that arrive with it, before
it is acknowledged (bot/platforms/slack/adapter.py `_stored`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.duties import Liveness
from storage import inbox as rows
from storage.database import Database

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException, str], None]
#: hands a recorded request to its adapter again, as if it had just arrived
Replay = Callable[[Mapping[str, Any]], Awaitable[None]]
#: seconds between two looks for requests whose receiver died (PostgreSQL)
SWEEP_EVERY = 2.0
#: a request is left to its receiver at least this long
GRACE = timedelta(seconds=5)
#: a request whose handling said "not yet" (`NotYet`) is tried again, at each sweep,
#: for this long after it arrived; then dropped (it names something that never came)
RETRY_FOR = timedelta(seconds=60)
#: a request older than this is dropped, not replayed (a day-old click or command is
#: no longer what the person wants; and nothing else keeps the table small)
STALE = timedelta(hours=1)


class Inbox:
    """Records requests before their acknowledgement and replays those a crash left."""

    def __init__(
        self,
        db: Database,
        liveness: Liveness,
        clock: Clock,
        on_error: ErrorHook,
        *,
        sweep_every: float = SWEEP_EVERY,
    ):
        self._db = db
        self._liveness = liveness
        self._clock = clock
        self._on_error = on_error
        self._sweep_every = sweep_every

    async def record(self, platform: str, key: str, body: Mapping[str, Any]) -> None:
        """Keep the request, committed, before the platform is told it arrived (raises if
        it cannot: then the platform is not told, and delivers it again)."""
        payload = json.dumps(body, ensure_ascii=False, default=str)
        async with self._db.transaction() as session:
            await rows.record(
                session, key, platform, payload, self._liveness.instance, self._clock()
            )

    async def done(self, key: str) -> None:
        """The request is handled (or failed and was reported): nothing to replay."""
        try:
            async with self._db.transaction() as session:
                await rows.done(session, key)
        except Exception as exc:  # a replay would be dropped by the router's dedup
            self._on_error(exc, f"inbox: marking {key} handled")

    async def later(self, key: str) -> bool:
        """The request names something not known yet (`NotYet`): kept, for the next sweep
        of any instance to hand it again, up to RETRY_FOR after it arrived; then dropped.
        Whether it was kept."""
        try:
            async with self._db.transaction() as session:
                kept = await rows.later(session, key, received_after=self._clock() - RETRY_FOR)
        except Exception as exc:
            self._on_error(exc, f"inbox: keeping {key} for a retry")
            return False
        if not kept:
            log.warning("inbox: %s still names what is not known after %s: dropped", key, RETRY_FOR)
        return kept

    async def recover(self, platform: str, replay: Replay) -> None:
        """Replay `platform`'s requests whose receiver died, or kept for a retry (`later`),
        now and every `sweep_every` seconds, until cancelled (the adapter's stop)."""
        while True:
            try:
                await self._sweep(platform, replay)
            except Exception as exc:  # the next sweep tries again
                self._on_error(exc, f"inbox: looking for {platform} requests left by a crash")
            # One instance (SQLite) looks again too: for the requests kept for a retry.
            await asyncio.sleep(self._sweep_every)

    async def _sweep(self, platform: str, replay: Replay) -> None:
        if not self._liveness.alive():
            return  # what it takes would be free for the others at once
        now = self._clock()
        async with self._db.transaction() as session:
            taken = await rows.take_orphans(
                session,
                platform,
                self._liveness.instance,
                # On SQLite the predecessor's rows are taken however young they are.
                before=now - GRACE if not self._liveness.always else now + GRACE,
                instances=not self._liveness.always,
            )
        for key, body, received_at in taken:
            if now - received_at > STALE:
                log.warning("inbox: %s request %s is over %s old: dropped", platform, key, STALE)
                await self.done(key)
                continue
            log.warning(
                "inbox: %s request %s was not handled before a crash, or asked to wait:"
                " handling it now",
                platform,
                key,
            )
            try:
                await replay(json.loads(body))
            except Exception as exc:
                self._on_error(exc, f"inbox: replaying {platform} request {key}")
                await self.done(key)


class NoInbox:
    """Records nothing and replays nothing (a sink that keeps no state: tools, tests)."""

    async def record(self, platform: str, key: str, body: Mapping[str, Any]) -> None:
        return None

    async def done(self, key: str) -> None:
        return None

    async def later(self, key: str) -> bool:
        return False

    async def recover(self, platform: str, replay: Replay) -> None:
        return None


__all__ = ["GRACE", "Inbox", "NoInbox", "Replay"]
