"""Three `inloop run` on one PostgreSQL, killed with SIGKILL and restarted at random
moments, against one that is never killed: the same burst, the same outcome.

Each run: teams with their owner channels on the fake Slack (Socket Mode: each
instance its own connection, events spread across them, some delivered to two), a
real Synapse (Matrix is a duty), a burst of 2,000 webhook mentions posted to random
instances, claims from several people (commands and ✋ reactions) as the cards
arrive, and dialogue blocks that start during the burst, whose reminders and
check-ins fall due while instances die. Afterwards, a user would see: one
conversation and one card for every mention accepted with 2xx, each reminder and
check-in once, each claim's private answer once (once at most when Slack never got
an acknowledgement, as the person then saw an error), no duty run by two instances
at once, and every duty taken over within 10 s of its holder's death.

The check-ins: a block lasts 15 minutes at least; once its reminder is out, the test
moves the row's next_at a few seconds ahead (what the end of the block would do), so
that the check-in falls due during the chaos too.

The seed is printed first (`CHAOS_SEED=… pytest …` runs the same kills again).
Figures are printed with each run (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from fake_slack import FakeSlack
from instances import (
    CHECK_IN,
    CLAIMANTS,
    REMINDER,
    Chaos,
    Company,
    DutyWatch,
    Fleet,
    Intake,
    LeaseLog,
    failovers,
    overlapping,
    until,
)
from matrix_people import unique
from pg_server import PostgresServer
from storage.database import Database
from synapse_server import SynapseServer

MENTIONS = 2000
TEAMS = 40
COMMITTERS = 8
#: claims per claimant
CLAIMS_EACH = 12
#: what issue 17 asks of a take-over after the holder died
FAILOVER = 10.0
#: a burst card's title (bot/messages/en.py `burst_title`)
BURST = re.compile(r"^\d+ new mentions in the last ")
#: seconds a card has been shown before someone claims it
SEEN_AFTER = 2.0


@dataclass
class Outcome:
    seed: int
    instances: int
    kills: int = 0
    failover_seconds: list[tuple[str, float]] = field(default_factory=list)
    intake_seconds: float = 0.0
    resent: int = 0
    duplicates: int = 0
    #: from the first post until every card, answer, reminder and check-in was out
    total_seconds: float = 0.0
    twice_delivered: int = 0
    #: the most burst cards posted in one team channel (each instance shows its own)
    burst_cards: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        worst = {
            d: max(s for dd, s in self.failover_seconds if dd == d)
            for d, _ in self.failover_seconds
        }
        shown = ", ".join(f"{d} {s:.1f} s" for d, s in sorted(worst.items())) or "none"
        return (
            f"{self.instances} instance(s), seed {self.seed}: {MENTIONS} mentions accepted in "
            f"{self.intake_seconds:.1f} s ({self.resent} posts sent again, {self.duplicates} "
            f"answered as re-deliveries), everything delivered {self.total_seconds:.1f} s after "
            f"the first post; {self.kills} kills, {len(self.failover_seconds)} duty failovers "
            f"(worst: {shown}); {self.twice_delivered} Slack events delivered to two "
            f"instances; at most {self.burst_cards} burst cards in one channel; "
            f"load {os.getloadavg()[0]:.2f}"
        )


@pytest.fixture
def seed() -> int:
    chosen = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    print(f"CHAOS_SEED={chosen}")  # shown with a failure's output
    return chosen


@pytest.mark.chaos
async def test_three_instances_killed_at_random_lose_nothing_and_do_nothing_twice(
    postgres: PostgresServer,
    synapse: SynapseServer,
    fake: FakeSlack,
    tmp_path: Path,
    seed: int,
) -> None:
    outcome = await burst(3, postgres, synapse, fake, tmp_path, seed, kill=True)
    print(outcome.summary())
    assert outcome.problems == [], f"seed {seed}:\n" + "\n".join(outcome.problems)
    assert outcome.kills >= 3 and outcome.failover_seconds, outcome.summary()


async def test_one_instance_takes_the_same_burst(
    postgres: PostgresServer,
    synapse: SynapseServer,
    fake: FakeSlack,
    tmp_path: Path,
    seed: int,
) -> None:
    """The baseline the three are compared with (bench/README.md has both figures)."""
    outcome = await burst(1, postgres, synapse, fake, tmp_path, seed, kill=False)
    print(outcome.summary())
    assert outcome.problems == [], f"seed {seed}:\n" + "\n".join(outcome.problems)


# -- one run -------------------------------------------------------------------------


async def burst(
    count: int,
    postgres: PostgresServer,
    synapse: SynapseServer,
    fake: FakeSlack,
    tmp_path: Path,
    seed: int,
    *,
    kill: bool,
) -> Outcome:
    rng = random.Random(seed)
    outcome = Outcome(seed, count)
    url = postgres.create_database()
    bot, password = synapse.register(unique("inloop"))
    env = {
        "DATABASE_URL": url,
        "INLOOP_ADMINS": "slack:UADMIN",
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_URL": fake.api_url,
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": bot,
        "MATRIX_PASSWORD": password,
        # one key store where every instance reaches it (a shared volume)
        "MATRIX_STORE_DIR": str(tmp_path / "matrix-store"),
    }
    fleet = Fleet(count, env, tmp_path / "instances")
    db = Database(url)
    done = asyncio.Event()
    background: list[asyncio.Task[None]] = []
    try:
        await fleet.start()
        await until(lambda: fake.sockets == count, 30, "one Socket Mode connection each")
        leases = LeaseLog(db)
        await leases.install()
        company = Company(fake, rng, TEAMS, committers=COMMITTERS)
        await company.setup()
        # The blocks start at the first whole minute at least 25 s away: during the burst.
        block = (datetime.now(UTC) + timedelta(seconds=85)).replace(second=0, microsecond=0)
        await company.commit(f"{block:%H:%M}")

        watch = DutyWatch(fleet)
        background.append(asyncio.create_task(watch.run(done)))
        await until(lambda: watch.holder("timers") is not None, 30, "a timers holder")
        chaos = Chaos(fleet, watch, rng)
        if kill:
            background.append(asyncio.create_task(chaos.run(done)))
        intake = Intake(fleet, rng, uuid.uuid4().hex[:8], TEAMS, interval=0.15)
        checkins = asyncio.create_task(pull_check_ins(db, rng, done))
        background.append(checkins)
        began = time.monotonic()
        reserved: set[int] = set()
        await asyncio.gather(
            intake.send(MENTIONS), *(claims(company, uid, reserved) for uid in CLAIMANTS)
        )
        outcome.intake_seconds = intake.ended - intake.began
        outcome.resent, outcome.duplicates = intake.resent, intake.duplicates
        await until(lambda: checked_in(db), 150, "every block's check-in due and handled")
        done.set()
        await asyncio.gather(*background)
        outcome.kills = len(chaos.kills)
        # Every instance is back: what the dead ones left is delivered by now or soon.
        await asyncio.gather(*(i.ready(fleet.http) for i in fleet.instances))
        accepted = {numbers[0] for numbers in intake.accepted.values()}

        async def delivered() -> bool:
            cards = company.cards()
            if any(n not in cards for n in accepted):
                return False
            async with db.read() as session:
                pending = await session.scalar(
                    text("SELECT count(*) FROM outbox WHERE state = 'pending'")
                )
            return bool(pending == 0)

        await until(delivered, 150, "every card and answer delivered")
        outcome.total_seconds = time.monotonic() - began
        await asyncio.sleep(3)  # a second copy of anything would show by now
        outcome.problems += await exactly_once(db, intake, company)
        tenures = await leases.tenures()
        outcome.failover_seconds = failovers(chaos.kills, tenures)
        outcome.problems += [
            f"{t.duty} held by two instances at the same time: {a} and {b}"
            for a, b in overlapping(tenures)
            for t in (a,)
        ]
        outcome.problems += [
            f"at {at:.1f}: instances {slots} both ran {duty}" for at, duty, slots in watch.overlaps
        ]
        outcome.problems += [
            f"{duty} taken over {seconds:.1f} s after its holder was killed"
            for duty, seconds in outcome.failover_seconds
            if seconds >= FAILOVER
        ]
        outcome.twice_delivered = sum(1 for n in fake.deliveries.values() if n > 1)
        bursts = Counter(p.channel for p in fake.posted if BURST.match(p.text))
        outcome.burst_cards = max(bursts.values(), default=0)
        if outcome.problems:
            outcome.problems += said_when(fake, outcome.problems)
            outcome.problems += [f"kill: {kill}" for kill in chaos.kills]
            outcome.problems += [f"tenure: {tenure}" for tenure in tenures]
            outcome.problems.append(fleet.logs())
        return outcome
    finally:
        done.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await fleet.stop()
        await db.dispose()


async def claims(company: Company, uid: str, reserved: set[int]) -> None:
    """`uid` claims CLAIMS_EACH conversations whose cards are out (none claimed by anyone
    else: `reserved`), one every little while, half by command, half by ✋."""
    for i in range(CLAIMS_EACH):
        await asyncio.sleep(company.rng.uniform(0.2, 1.0))

        def free() -> list[int]:
            # cards a person has had time to see (a second at least): a ✋ within
            # milliseconds of a post races the post's booking, which no person does
            seen = time.time() - SEEN_AFTER
            return sorted(
                n for n in set(company.cards()) - reserved if (company.posted_at(n) or seen) <= seen
            )

        await until(lambda: bool(free()), 120, "a card to claim")
        number = company.rng.choice(free())
        reserved.add(number)
        await company.claim(uid, number, reaction=i % 2 == 1)


async def pull_check_ins(db: Database, rng: random.Random, done: asyncio.Event) -> None:
    """Once a block's reminder is out, its end (the check-in) comes a few seconds later."""
    while not done.is_set():
        async with db.transaction() as session:
            await session.execute(
                text(
                    "UPDATE dialogue_session SET next_at = now() + :wait * interval '1 second'"
                    " WHERE outcome = 'reminded' AND next_at > now() + interval '1 minute'"
                ),
                {"wait": rng.uniform(0.0, 6.0)},
            )
        await asyncio.sleep(0.5)


async def checked_in(db: Database) -> bool:
    async with db.read() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM dialogue_session WHERE outcome = 'checkin'")
        )
    return bool(count == COMMITTERS)


async def exactly_once(db: Database, intake: Intake, company: Company) -> list[str]:
    """What a user would notice, as a list of problems."""
    problems: list[str] = []
    # every mention accepted with 2xx: one conversation, the one every answer named
    answered: dict[str, int] = {}
    for external_id, numbers in intake.accepted.items():
        if len(set(numbers)) != 1:
            problems.append(f"{external_id} was answered with conversations {numbers}")
        answered[external_id] = numbers[0]
    if len(answered) != MENTIONS:
        problems.append(f"{len(answered)} of {MENTIONS} mentions accepted")
    async with db.read() as session:
        rows = (
            await session.execute(
                text("SELECT external_id, conversation_id FROM mention WHERE source = :source"),
                {"source": "listening"},
            )
        ).all()
    stored: dict[str, list[int]] = {}
    for external_id, conversation in rows:
        stored.setdefault(external_id, []).append(conversation)
    for external_id, number in answered.items():
        if stored.get(external_id) != [number]:
            problems.append(f"{external_id}: answered #{number}, stored {stored.get(external_id)}")
    if len(set(answered.values())) != len(answered):
        problems.append("two mentions were given one conversation")
    # one card each, and none for anything else
    cards = company.cards()
    for number in sorted(set(answered.values())):
        if cards.get(number, 0) != 1:
            posts = ", ".join(f"{at:.3f}" for at in company.posts_of(number))
            problems.append(f"#{number}: {cards.get(number, 0)} cards (posted at {posts})")
    problems += [
        f"#{n}: a card, but no accepted mention" for n in set(cards) - set(answered.values())
    ]
    # every reminder and check-in once
    for uid in company.committer_ids:
        for words in (REMINDER, CHECK_IN):
            if (n := company.told_count(uid, words)) != 1:
                problems.append(f"{uid} was sent {n} × {words!r}")
    # every private answer once (at most once when Slack saw no acknowledgement)
    async with db.read() as session:
        handled = set(
            (await session.execute(text("SELECT event_id FROM processed_event"))).scalars()
        )
    for claim in company.claims:
        said = company.answers_about(claim.uid, claim.number)
        how = "✋" if claim.reaction else "claim"
        if len(said) == 1 or (not claim.acked and not said):
            continue
        posted = company.posted_at(claim.number) or 0.0
        problems.append(
            f"{claim.uid}'s {how} of #{claim.number} ({'' if claim.acked else 'not '}"
            f"acknowledged, {'handled' if claim.event_id in handled else 'never handled'}, sent"
            f" at {claim.at:.3f}, {claim.at - posted:.3f} s after the card was posted)"
            f" was answered {said}"
        )
    return problems


def said_when(fake: FakeSlack, problems: list[str]) -> list[str]:
    """For each answer told twice: when Slack was asked to show it, each time."""
    out = []
    for problem in problems:
        if "was answered ['" not in problem:
            continue
        said = problem.split("was answered ['", 1)[1].split("'", 1)[0]
        times = [
            f"{method} at {at:.3f}"
            for (method, args), at in zip(fake.calls, fake.call_times, strict=True)
            if args.get("text") == said
        ]
        out.append(f"{said[:20]}…: {', '.join(times)}")
    return out
