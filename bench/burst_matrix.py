"""A burst into one Matrix room on a real Synapse with its default rate limits (issue
"Nobody left waiting", §3): the burst of bench/burst.py, on Matrix.

Synapse limits each user's messages in all rooms and private rooms together: by
default one message every 5 s after a burst of 10 (`rc_message`). Targets, as on
Slack: 1,000 mentions in 10 s through the webhook into one team room →
- every conversation claimable within 1 s of its 202 (`claim N`, and Claim next:
  ✋ on the burst card);
- the burst card up within 2 s of the first 202;
- cards posted at the paced rate (measured over `--window` seconds after the burst:
  all of them would take 80 minutes), none lost, none twice;
- private messages to other people during the burst within 2 s;
and how many 429s the homeserver answered.

    .venv/bin/python -m bench.burst --matrix                 # Synapse's defaults for everyone
    .venv/bin/python -m bench.burst --matrix --modest        # a load the default can carry
    .venv/bin/python -m bench.burst --matrix --lifted        # the bot's limit lifted (README)

The default load asks for 25 private answers in the 10 s (a claim every 100th 202, a
Claim next every 200th, someone else every second): more than the account may send
then (12 messages), so it shows what the limit makes impossible; `--modest` asks for
6 (claim every 500th, Claim next every 1000th, someone else every 4 s). Claims are
also timed as the bot recorded them (its `claimed_at`), and a claim by number's time
is split where it went: the bench's loop, the person's client, Synapse to the bot's
sync and the handler, the outbox and the send, Synapse to the person's sync.

Synapse (tests/synapse_server.py) runs with `rc_message` at its default for every
user. `--lifted` then lifts the bot's own limit as README says (admin API
`override_ratelimit`, 0 and 0). Inloop runs as `inloop run` builds it, with its
webhook on 127.0.0.1. The people are nio clients (tests/matrix_people.py), each
with a private room with the bot already (staff who have used Inloop before; making
one would cost the bot two messages of its allowance each). They type in the team
room (`!inloop claim N`), react ✋ to the burst card (Claim next), or type
`!inloop queue` in another room (someone else's private answer); in the burst their
clients sync only their private rooms (`--people-see-all`: every room, as real
clients on other machines would, but forty of them parsing every card in this process
share the bot's event loop). Times are from the 202 (or the message sent) to the
answer arriving in the person's client.

Exits 1 if a correctness check fails or a target is missed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bench.burst import (
    ELSEWHERE,
    OWNER,
    TARGET_CLAIM_S,
    Results,
    burst,
    burst_options,
    card_numbers,
    check,
    report_latencies,
)
from bench.common import percentile, run_bench, tests_module, verdict
from bench.intake import SECRET
from bot.app import App, build_platforms
from bot.config import load_settings
from storage import matrix as matrix_state
from storage.database import Database
from storage.models import Conversation, OutboxKind, OutboxRow, OutboxState

synapse_server = tests_module("synapse_server")
matrix_people = tests_module("matrix_people")

#: seconds between the set-up and the burst
REFILL_S = 5.0
#: `--modest`: a load Synapse's default limit can carry: six private answers in the
#: burst's ten seconds (2 claims, 1 Claim next, 3 others): the account's reserve of five,
#: and one of the two messages it refills meanwhile (the claims' card changes want some)
MODEST = {"claim_every": 500, "next_every": 1000, "private_every": 4.0}
CLAIM = re.compile(r"claim (\d+)$")
YOURS = re.compile(r"#(\d+) is yours")
#: where the time of a claim by number goes, in order (bench/README.md)
STAGES = (
    "202 → typed (the bench's own loop)",
    "typed → at Synapse (the person's client)",
    "Synapse → claim recorded (the bot's sync, the handler's commit)",
    "recorded → answer at Synapse (the outbox, the send)",
    "answer at Synapse → in the person's client (their sync)",
)


@dataclass
class MatrixResults(Results):
    #: claim N: from the 202 to the bot recording the claim; Claim next: from the press
    applied_s: list[float] = field(default_factory=list)
    next_applied_s: list[float] = field(default_factory=list)
    #: each claim by number's time, stage by stage (STAGES)
    stages: list[tuple[float, ...]] = field(default_factory=list)
    #: private answers the people asked for during the burst, and the card changes
    asked: int = 0
    changes: int = 0


class RateLimits(logging.Handler):
    """Counts the 429s the homeserver answered the bot (the outbox logs each)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "M_LIMIT_EXCEEDED" in record.getMessage():
            self.count += 1


class MatrixBench:
    """The burst's `Side` on a real Synapse."""

    def __init__(self, hs: Any, url: str, args: argparse.Namespace, tmp: Path) -> None:
        self.hs = hs
        self.args = args
        self.tmp = tmp
        self.run = uuid.uuid4().hex[:8]
        self.bot_id, password = hs.register("inloop")
        self.admin = matrix_people.MatrixPerson(hs, "admin", tmp / "people" / "admin")
        settings = load_settings(
            {
                "DATABASE_URL": url,
                "INLOOP_ADMINS": self.admin.person,
                "INLOOP_LOG_LEVEL": "WARNING",
                "MATRIX_HOMESERVER": hs.url,
                "MATRIX_USER_ID": self.bot_id,
                "MATRIX_PASSWORD": password,
                "MATRIX_STORE_DIR": str(tmp / "store"),
                "INTAKE_SECRET": SECRET,
                "INTAKE_HOST": "127.0.0.1",
                "INTAKE_PORT": "0",
            }
        )
        self.db = Database(settings.database_url)
        self.app = App(settings, build_platforms(settings, self.db), db=self.db)
        self.rooms: dict[str, str] = {}
        #: people not given a part yet, and who plays which uid
        self._pool: list[Any] = []
        self.people: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        #: what each person typed or pressed: (uid, text, when, event id)
        self.said: list[tuple[str, str, float, str]] = []
        #: each private answer awaited: (uid, after) → its event as the person's client
        #: received it
        self.answers: dict[tuple[str, int], dict[str, Any]] = {}

    async def start(self, people: int) -> None:
        await self.admin.start()
        # The set-up (the bot joins a room per person) is not what is measured: the
        # bot's limit is lifted for it, then (unless --lifted) back to the default.
        self.hs.limit_messages(self.bot_id, 0, 0)
        await self.app.start()
        self._pool = [await self._person(f"p{i}") for i in range(people)]
        everyone = [p.user_id for p in self._pool]
        self.rooms[OWNER] = await self.admin.create_room(self.bot_id, *everyone)
        self.rooms[ELSEWHERE] = await self.admin.create_room(self.bot_id, *everyone)
        for person in [self.admin, *self._pool]:
            await self._private_room(person)
        for room in self.rooms.values():
            await self.admin.until(lambda r=room: self._joined(r, everyone), within=60)
        await self.admin.say(self.rooms[OWNER], "!inloop team add support")
        await self.admin.until(
            lambda: any("Team support" in m for m in self.admin.direct_messages(self.bot_id)),
            within=60,
        )
        if not self.args.people_see_all:
            # In the burst each person's client only needs their private room: forty
            # clients parsing every card, in this process, would share the bot's loop.
            muted = list(self.rooms.values())
            for person in self._pool:
                person.sync_filter = {
                    "room": {"timeline": {"limit": 200, "not_rooms": muted}},
                }
        if not self.args.lifted:
            self.hs.unlimit_messages(self.bot_id)
        await asyncio.sleep(REFILL_S)

    async def stop(self) -> None:
        await self.app.stop()
        for person in [self.admin, *self._pool, *self.people.values()]:
            await person.stop()

    async def _person(self, name: str) -> Any:
        person = matrix_people.MatrixPerson(self.hs, name, self.tmp / "people" / name)
        return await person.start()

    def _joined(self, room: str, users: list[str]) -> bool:
        info = self.admin.client.rooms.get(room)
        if info is None:
            return False
        joined = set(info.users) - set(info.invited_users)
        return {self.bot_id, *users} <= joined

    async def _private_room(self, person: Any) -> None:
        """A private room of `person` and the bot, known to Inloop as theirs."""
        room = await person.create_room(self.bot_id, direct=True)
        platform = self.app.platforms["matrix"]
        client = platform.client  # type: ignore[attr-defined]

        def joined() -> bool:
            info = client.rooms.get(room)
            return info is not None and person.user_id in info.users

        await person.until(
            lambda: joined() and self.bot_id in person.client.rooms[room].users, within=60
        )
        async with self.db.transaction() as session:
            await matrix_state.save_direct_room(session, person.person, room, self.app.clock())

    # -- Side ----------------------------------------------------------------------------

    async def say(self, uid: str, text: str, where: str) -> float:
        started = time.monotonic()
        event = await self.people[uid].say(self.rooms[where], f"!inloop {text}")
        self.said.append((uid, text, started, event))
        return started

    async def press_next(self, uid: str) -> float:
        """✋ on the burst card (typed `claim next` if there is none yet)."""
        owner = self.rooms[OWNER]
        cards = [
            m
            for m in self.admin.messages(owner, self.bot_id)
            if "new mentions" in m["content"].get("body", "")
        ]
        started = time.monotonic()
        if cards:
            event = await self.people[uid].react(owner, cards[0]["event_id"])
        else:
            event = await self.people[uid].say(owner, "!inloop claim next")
        self.said.append((uid, "claim next", started, event))
        return started

    def person(self, uid: str) -> int:
        if uid not in self.people:
            self.people[uid] = self._pool.pop()
        n = self.counts.get(uid, 0)
        self.counts[uid] = n + 1
        return n

    async def answer(self, uid: str, after: int) -> tuple[float, str]:
        """When the person's client received the answer (noted by its sync), and its text."""
        person = self.people[uid]
        told = await person.until(lambda: self._told(person)[after:], within=600)
        event = told[0]
        self.answers[(uid, after)] = event
        # seen_at is time.perf_counter(): the same clock as time.monotonic() on Linux
        return person.seen_at[event["event_id"]], str(event["content"].get("body", ""))

    def _told(self, person: Any) -> list[dict[str, Any]]:
        """The bot's messages in the person's private rooms with it, in order."""
        found: list[dict[str, Any]] = []
        for room_id, room in person.client.rooms.items():
            if set(room.users) <= {self.bot_id, person.user_id} and self.bot_id in room.users:
                found += person.messages(room_id, self.bot_id)
        return found

    async def claimed_at(self) -> dict[int, datetime]:
        """When the bot recorded each claim (its own clock: UTC)."""
        async with self.db.read() as session:
            found = await session.execute(
                select(col(Conversation.id), col(Conversation.claimed_at)).where(
                    col(Conversation.claimed_at).isnot(None)
                )
            )
            return {n: at for n, at in found.all() if n is not None and at is not None}

    async def server_ts(self, uid: str, event_id: str) -> float:
        """When Synapse stamped an event the person sent (wall clock, seconds)."""
        room = self.rooms[OWNER]
        answer = await self.people[uid].client.room_get_event(room, event_id)
        return float(answer.event.source["origin_server_ts"]) / 1000

    def posts(self) -> list[tuple[float, str]]:
        seen = self.admin.seen_at
        # seen_at is time.perf_counter(): the same clock as time.monotonic() on Linux
        return [
            (seen.get(m["event_id"], 0.0), str(m["content"].get("body", "")))
            for m in self.admin.messages(self.rooms[OWNER], self.bot_id)
            if "m.relates_to" not in m["content"]
        ]

    async def waiting(self) -> list[int]:
        """Conversations whose card is still waiting in the outbox."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(col(OutboxRow.conversation_id)).where(
                    col(OutboxRow.kind) == OutboxKind.SEND,
                    col(OutboxRow.state) == OutboxState.PENDING,
                    col(OutboxRow.conversation_id).isnot(None),
                )
            )
            return [n for n in rows.all() if n is not None]


def people_needed(args: argparse.Namespace) -> int:
    claims: int = args.mentions // args.claim_every + 1
    nexts: int = args.mentions // args.next_every + 1
    others = int(args.seconds / args.private_every) + 2
    return claims + nexts + others


async def timings(bench: MatrixBench, results: MatrixResults) -> None:
    """Claims as the bot recorded them, and where a claim by number's time went."""
    # The bot's clock is UTC wall time; the bench's, monotonic.
    wall = time.time() - time.monotonic()
    claimed = {n: at.timestamp() - wall for n, at in (await bench.claimed_at()).items()}
    accepted = {n: a.answered for a in results.accepted for n in a.numbers}
    results.asked = len(bench.answers)
    asked_by: dict[str, int] = {}
    for uid, text, typed, event in bench.said:
        after = asked_by.get(uid, 0)
        asked_by[uid] = after + 1
        answer = bench.answers.get((uid, after))
        yours = YOURS.search(str(answer["content"].get("body", ""))) if answer else None
        if text == "claim next" and yours and int(yours.group(1)) in claimed:
            results.next_applied_s.append(claimed[int(yours.group(1))] - typed)
        if not (m := CLAIM.match(text)) or int(m.group(1)) not in claimed:
            continue
        number = int(m.group(1))
        applied = claimed[number]
        results.applied_s.append(applied - accepted[number])
        if answer is None:
            continue
        person = bench.people[uid]
        at_synapse = await bench.server_ts(uid, event) - wall
        answered = float(answer["origin_server_ts"]) / 1000 - wall
        seen = person.seen_at[answer["event_id"]]
        points = (accepted[number], typed, at_synapse, applied, answered, seen)
        results.stages.append(tuple(b - a for a, b in itertools.pairwise(points)))
    results.changes = len(claimed)


async def run(args: argparse.Namespace, url: str) -> Results:
    results = MatrixResults()
    limits = RateLimits()
    outbox_log = logging.getLogger("bot.outbox")
    outbox_log.setLevel(logging.INFO)
    outbox_log.addHandler(limits)
    for handler in logging.getLogger().handlers:  # the 429 lines are counted, not shown
        handler.setLevel(max(handler.level, logging.WARNING))
    rc = synapse_server.DEFAULT_MESSAGE_LIMIT
    with (
        tempfile.TemporaryDirectory(prefix="inloop-burst-matrix-") as tmp,
        synapse_server.SynapseServer(rc_message=rc) as hs,
    ):
        bench = MatrixBench(hs, url, args, Path(tmp))
        try:
            await bench.start(people_needed(args))
            limits.count = 0
            await burst(bench, results)
            await timings(bench, results)
            # The paced rate, over a window after the burst (all of them: 80 minutes).
            before = len(card_numbers(bench))
            began = time.monotonic()
            await asyncio.sleep(args.window)
            results.drain_s = time.monotonic() - began
            results.gaps = [float(len(card_numbers(bench)) - before)]
            # Nothing more goes out; what was on its way shows in the admin's client.
            await bench.app.outbox.stop()
            await asyncio.sleep(5.0)
            check(bench, results, await bench.waiting())
        finally:
            await bench.stop()
    results.refused = limits.count
    results.load = os.getloadavg()
    return results


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    assert isinstance(results, MatrixResults)
    where = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    limit = "the bot's limit lifted (override_ratelimit)" if args.lifted else "default limits"
    load = "modest load" if args.modest else "heavy load"
    print(
        f"burst: {results.mentions} mentions in {results.seconds:.1f} s through the webhook "
        f"into one Matrix room ({where}; a real Synapse, rc_message 0.2/s burst 10, {limit}; "
        f"{load}: claim every {args.claim_every}, Claim next every {args.next_every}, "
        f"someone else every {args.private_every:g} s)"
    )
    if not args.lifted:
        allowed = 10 + 0.2 * results.seconds
        print(
            f"  asked during the burst: {results.asked} private answers and "
            f"{results.changes} claimed cards' changes; Synapse's default lets the account "
            f"send 10 + 0.2 × {results.seconds:.0f} s = {allowed:.0f} messages in that "
            f"time, everything together (Inloop keeps 5 of the 10 for private answers): "
            f"answers beyond those 5 and the {0.2 * results.seconds:.0f} that refill "
            f"meanwhile (shared with the claimed cards' changes) wait for the account's "
            f"pace, one every 5 s"
        )
    report_latencies(results)
    _report_applied("claim N, 202 → claim recorded by the bot", results.applied_s, results)
    _report_applied("Claim next pressed → claim recorded", results.next_applied_s, results)
    if results.stages:
        print("  where a claim by number's time went (p50 / max):")
        for i, stage in enumerate(STAGES):
            values = [s[i] for s in results.stages]
            print(f"    {stage}: {percentile(values, 50):.3f} / {max(values):.3f} s")
    print(f"  429s Synapse answered the bot (from the first mention on): {results.refused}")
    posted = results.gaps[0] if results.gaps else 0.0
    rate = posted / results.drain_s if results.drain_s else 0.0
    print(
        f"  cards posted: {results.cards} of {results.mentions} so far; in the "
        f"{results.drain_s:.0f} s after the burst {posted:.0f} cards, {rate:.3f} a second "
        f"(the account's limit: 0.2 a second for everything the bot sends)"
    )
    whole = not [f for f in results.failures if "lost" in f or "twice" in f or "one conv" in f]
    print(f"  nothing lost, nothing twice: {verdict(whole)}")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in results.load)}")
    for failure in results.failures:
        print(f"  FAILED: {failure}")


def _report_applied(label: str, values: list[float], results: Results) -> None:
    if not values:
        print(f"  {label}: no samples")
        return
    ok = max(values) <= TARGET_CLAIM_S
    if not ok:
        results.failures.append(f"{label}: max {max(values):.2f} s > {TARGET_CLAIM_S:g} s")
    print(
        f"  {label} ({len(values)}): p50 {percentile(values, 50):.3f} s, "
        f"max {max(values):.3f} s (target ≤ {TARGET_CLAIM_S:g} s: {verdict(ok)})"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = burst_options("bench.burst --matrix", __doc__, 100, 200)
    parser.set_defaults(private_every=1.0)
    parser.add_argument(
        "--window", type=float, default=120.0, help="seconds after the burst to measure the pace"
    )
    parser.add_argument(
        "--lifted", action="store_true", help="lift the bot's limit (override_ratelimit 0, 0)"
    )
    parser.add_argument(
        "--modest",
        action="store_true",
        help="a load the default limit can carry: " + ", ".join(f"--{k}" for k in MODEST),
    )
    parser.add_argument(
        "--people-see-all",
        action="store_true",
        help="people's clients sync the team rooms too (as before: bench overhead)",
    )
    args = parser.parse_args(argv)
    if args.modest:
        for name, value in MODEST.items():
            setattr(args, name, value)
    args.speed = 1.0
    if args.mentions < 1 or args.seconds <= 0 or args.private_every <= 0 or args.window < 0:
        parser.error("--mentions, --seconds, --private-every and --window must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
