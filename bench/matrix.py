"""Watched-room message → card seen in the owner room, against a minimal nio relay bot.

Target (issue "Matrix"): p50 within 1.3× of the round trip of a minimal nio bot that
relays the same message, measured in the same run on the same Synapse.

    .venv/bin/python -m bench.matrix                 # 50 rounds after 5 warm-up rounds
    .venv/bin/python -m bench.matrix --rounds 200

One throwaway Synapse (tests/synapse_server.py), five accounts: the Inloop bot, the
relay bot, an admin, an employee (the observer) and a customer. Inloop watches room
W and posts cards in owner room O; the relay bot sits in room W2 and, for every
message there, posts its text in room O2 (nio `room_send`, nothing else). The
observer is in O and O2. Each round the customer sends one message to W and waits
until the observer's client has the card, then one to W2 and waits for the relay.
The timer starts before the customer's `room_send` and stops when the observer's
sync hands over the bot's message. Both bots run in this process on one event loop,
alternately, so they see the same machine, homeserver and load.

Exits 1 if a message does not arrive (never for timing), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nio import AsyncClient, LoginResponse, RoomMessageText, SyncResponse

from bench.common import percentile
from bot.app import App, build_platforms
from bot.config import load_settings
from matrix_people import MatrixPerson
from storage.database import Database
from synapse_server import SynapseServer

TARGET_RATIO = 1.3


class RelayBot:
    """The least a nio bot can do: sync, and post every message of one room into another."""

    def __init__(self, hs: SynapseServer, name: str, source: str, target: str):
        self.user_id, self.password = hs.register(name)
        self.client = AsyncClient(hs.url, self.user_id)
        self.source, self.target = source, target
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        answer = await self.client.login(self.password)
        assert isinstance(answer, LoginResponse), answer
        for room in (self.source, self.target):
            await self.client.join(room)
        first = await self.client.sync(timeout=0)
        assert isinstance(first, SyncResponse)
        self._task = asyncio.create_task(self._run(first.next_batch))

    async def _run(self, since: str) -> None:
        while True:
            answer = await self.client.sync(timeout=30_000, since=since)
            if not isinstance(answer, SyncResponse):
                await asyncio.sleep(0.1)
                continue
            since = answer.next_batch
            room = answer.rooms.join.get(self.source)
            for event in room.timeline.events if room else ():
                if isinstance(event, RoomMessageText) and event.sender != self.user_id:
                    await self.client.room_send(
                        self.target, "m.room.message", {"msgtype": "m.notice", "body": event.body}
                    )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.close()


async def arrival(viewer: MatrixPerson, room: str, sender: str, before: int) -> float:
    """When the viewer's client received the next message of `sender` in `room`."""

    def latest() -> float:
        mine = [e for e in viewer.events.get(room, []) if e.get("sender") == sender]
        if len(mine) > before:
            return viewer.seen_at[mine[before]["event_id"]]
        return 0.0

    arrived: float = await viewer.until(latest, within=30)
    return arrived


async def timed(
    customer: MatrixPerson, room: str, viewer: MatrixPerson, target: str, bot: str, n: int
) -> float:
    """Milliseconds from the customer's send in `room` until `viewer` has the bot's message."""
    before = count(viewer, target, bot)
    started = time.perf_counter()
    await customer.say(room, f"Order {n} arrived broken")
    return (await arrival(viewer, target, bot, before) - started) * 1000


def count(viewer: MatrixPerson, room: str, sender: str) -> int:
    return sum(1 for e in viewer.events.get(room, []) if e.get("sender") == sender)


async def main(rounds: int, warmup: int) -> int:
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="inloop-bench-matrix-"))
    with SynapseServer() as hs:
        admin = await MatrixPerson(hs, "admin", tmp / "admin").start()
        ann = await MatrixPerson(hs, "ann", tmp / "ann").start()
        customer = await MatrixPerson(hs, "customer", tmp / "customer").start()
        inloop_id, inloop_pw = hs.register("inloop")
        settings = load_settings(
            {
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'inloop.db'}",
                "INLOOP_ADMINS": admin.person,
                "MATRIX_HOMESERVER": hs.url,
                "MATRIX_USER_ID": inloop_id,
                "MATRIX_PASSWORD": inloop_pw,
                "MATRIX_STORE_DIR": str(tmp / "store"),
            }
        )
        db = Database(settings.database_url)
        app = App(settings, build_platforms(settings, db), db=db)
        await app.start()
        owner = await admin.create_room(inloop_id, ann.user_id)
        watched = await admin.create_room(inloop_id, customer.user_id)
        relay_owner = await admin.create_room(ann.user_id)
        relay_watched = await admin.create_room(customer.user_id)
        relay = RelayBot(hs, "relay", relay_watched, relay_owner)
        await admin.client.room_invite(relay_owner, relay.user_id)
        await admin.client.room_invite(relay_watched, relay.user_id)
        await relay.start()
        for viewer, room in ((ann, owner), (ann, relay_owner), (customer, watched)):
            await viewer.until(lambda v=viewer, r=room: r in v.client.rooms)  # type: ignore[misc]
        await customer.until(lambda: relay_watched in customer.client.rooms)
        await admin.until(lambda: inloop_id in admin.client.rooms[watched].users)
        await asyncio.sleep(1)  # the bot's join has synced back to it
        await admin.say(owner, "!inloop team add support")
        await admin.say(watched, "!inloop team watch")
        await admin.say(watched, f"!inloop role {customer.user_id} none")
        await app.settle()
        await asyncio.sleep(1)

        inloop_ms: list[float] = []
        relay_ms: list[float] = []
        try:
            for n in range(warmup + rounds):
                # Alternate who goes first, so that neither always follows the other's traffic.
                if n % 2:
                    took_relay = await timed(
                        customer, relay_watched, ann, relay_owner, relay.user_id, n
                    )
                    took_inloop = await timed(customer, watched, ann, owner, inloop_id, n)
                else:
                    took_inloop = await timed(customer, watched, ann, owner, inloop_id, n)
                    took_relay = await timed(
                        customer, relay_watched, ann, relay_owner, relay.user_id, n
                    )
                if n >= warmup:
                    inloop_ms.append(took_inloop)
                    relay_ms.append(took_relay)
        except AssertionError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            await relay.stop()
            await app.stop()
            for person in (admin, ann, customer):
                await person.stop()

    print(f"Python {platform.python_version()}, {rounds} rounds after {warmup} warm-up rounds")
    print(f"{'measure (ms)':<28}{'Inloop card':>14}{'nio relay':>12}")
    for p in (50, 90, 99):
        print(f"{f'p{p}':<28}{percentile(inloop_ms, p):>14.1f}{percentile(relay_ms, p):>12.1f}")
    ratio = percentile(inloop_ms, 50) / percentile(relay_ms, 50)
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"p50 ratio Inloop / relay: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matrix", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    return asyncio.run(main(args.rounds, args.warmup))


if __name__ == "__main__":
    sys.exit(cli())
