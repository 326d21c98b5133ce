"""A burst into one Slack channel, within Slack's rate limit (issue "Nobody left waiting", §3).

Targets, against the fake Slack with Slack's documented limit enforced (429 with
Retry-After past about one message per second per channel, a short burst allowed):
1,000 mentions in 10 s through the webhook into one team channel →
- every conversation claimable within 1 s of its 202 (`claim N` and `claim next`);
- the channel never gets a 429;
- the burst card is up within 2 s of the first 202;
- every individual card posted, at the paced rate, none lost, none twice;
- private messages to other people during the burst arrive within 2 s.

    .venv/bin/python -m bench.burst                      # SQLite, Slack's real pace (~17 min)
    .venv/bin/python -m bench.burst --speed 10           # limit and pace 10× faster (~2 min)
    .venv/bin/python -m bench.burst --postgres           # a throwaway PostgreSQL server

A real `App` runs with its webhook on 127.0.0.1 and the Slack adapter in Socket Mode
against tests/fake_slack.py, whose `RateLimit` enforces the limit per channel
(`--speed N` divides Slack's one second, and Inloop's pace, by N: the same shape,
sooner). The client, in the same process, POSTs one mention per request at an even
rate. After every `--claim-every`th 202 somebody types `/inloop claim N` for it; at
each `--next-every`th somebody presses the burst card's Claim next; every half
second someone else types `/inloop queue` in another channel (a private answer).
Times are from the 202 (or the push) to the fake Slack receiving the answer.

Exits 1 if a correctness check fails or a target is missed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bench.common import add_database_options, percentile, run_bench, tests_module, verdict
from bench.intake import SECRET, Answer, post
from bot.app import App, build_platforms
from bot.config import load_settings
from bot.platforms.slack.adapter import SlackPlatform

OWNER, ELSEWHERE = "COWNER", "CELSEWHERE"
TOPICS = ("refund", "delivery", "damaged", "invoice", "")
YOURS = re.compile(r"#(\d+) is yours")
CARD = re.compile(r"#(\d+) ")

TARGET_CLAIM_S = 1.0
TARGET_BURST_CARD_S = 2.0
TARGET_PRIVATE_S = 2.0

fake_slack = tests_module("fake_slack")


def mention(run: str, n: int) -> bytes:
    topic = TOPICS[n % len(TOPICS)]
    body = {
        "source": "bench",
        "external_id": f"{run}-{n}",
        "author": {"name": f"Customer {n}", "handle": f"@customer{n}"},
        "text": f"Order A{n:06d}: something went wrong. #{run}",
        "created_at": "2026-11-26T08:02:11Z",
        "tags": [topic] if topic else [],
    }
    return json.dumps(body).encode()


@dataclass
class Results:
    mentions: int = 0
    seconds: float = 0.0
    claim_s: list[float] = field(default_factory=list)
    next_s: list[float] = field(default_factory=list)
    private_s: list[float] = field(default_factory=list)
    burst_card_s: float | None = None
    refused: int = 0
    cards: int = 0
    #: seconds between consecutive posts in the owner channel, once the backlog formed
    gaps: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    accepted: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Side(Protocol):
    """One chat platform as the burst drives it (the fake Slack here; a real Synapse in
    bench/burst_matrix.py): people typing and pressing, and what they see."""

    app: App
    args: argparse.Namespace
    #: this run's mark on its mentions
    run: str

    async def say(self, uid: str, text: str, where: str) -> float:
        """`uid` types the command TEXT in `where` (OWNER, ELSEWHERE); when it went out."""
        ...

    async def press_next(self, uid: str) -> float:
        """`uid` presses the burst card's Claim next; when it went out."""
        ...

    def person(self, uid: str) -> int:
        """How many private answers `uid` had so far (and now: one more to come)."""
        ...

    async def answer(self, uid: str, after: int) -> tuple[float, str]:
        """When `uid`'s private answer beyond the first `after` arrived, and its text."""
        ...

    def posts(self) -> list[tuple[float, str]]:
        """The bot's messages in the owner channel (not edits, not in threads): when each
        arrived, and its text."""
        ...


class Watcher:
    """Notes when the fake Slack received each message (posts and private answers:
    ephemeral, or a DM)."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.posted: list[tuple[float, Any]] = []
        self.told: list[tuple[float, str, str]] = []
        self._seen = 0
        fake.on_post = self._posted
        self._task = asyncio.create_task(self._watch())

    def _posted(self, posted: Any) -> None:
        now = time.monotonic()
        self.posted.append((now, posted))
        if posted.channel in self.fake.users:  # a DM: what a claim's answer is
            self.told.append((now, posted.channel, posted.text))

    async def _watch(self) -> None:
        # Ephemerals have no hook in the fake: look at them every few milliseconds.
        while True:
            new = self.fake.ephemeral[self._seen :]
            self._seen += len(new)
            now = time.monotonic()
            self.told += [(now, e.user, e.text) for e in new]
            await asyncio.sleep(0.005)

    async def answer(self, uid: str, after: int, within: float = 30.0) -> tuple[float, str]:
        """The first private answer to `uid` beyond the first `after` of theirs."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            theirs = [(t, text) for t, u, text in self.told if u == uid]
            if len(theirs) > after:
                return theirs[after]
            await asyncio.sleep(0.005)
        raise TimeoutError(uid)

    def stop(self) -> None:
        self._task.cancel()


class Bench:
    """The burst's `Side` on the fake Slack."""

    def __init__(self, fake: Any, url: str, args: argparse.Namespace) -> None:
        settings = load_settings(
            {
                "DATABASE_URL": url,
                "INLOOP_ADMINS": "slack:UADMIN",
                "INLOOP_LOG_LEVEL": "WARNING",
                "SLACK_BOT_TOKEN": fake.bot_token,
                "SLACK_APP_TOKEN": fake.app_token,
                "SLACK_API_URL": fake.api_url,
                "INTAKE_SECRET": SECRET,
                "INTAKE_HOST": "127.0.0.1",
                "INTAKE_PORT": "0",
            }
        )
        platforms = build_platforms(settings)
        slack = platforms["slack"]
        assert isinstance(slack, SlackPlatform)
        slack.pace_seconds = 1.0 / args.speed
        self.app = App(settings, platforms)
        self.fake = fake
        self.args = args
        self.run = uuid.uuid4().hex[:8]
        self.triggers = itertools.count(1)
        self.counts: dict[str, int] = {}
        self.watcher: Watcher | None = None

    async def say(self, uid: str, text: str, where: str) -> float:
        """`uid` types `/inloop TEXT`; the time the push went out."""
        trigger = f"bench-{next(self.triggers)}"
        started = time.monotonic()
        await self.fake.push("slash_commands", fake_slack.command(uid, where, text, trigger))
        return started

    async def press_next(self, uid: str) -> float:
        trigger = f"bench-{next(self.triggers)}"
        started = time.monotonic()
        pressed = fake_slack.button(uid, OWNER, "inloop:claim", "next", trigger)
        await self.fake.push("interactive", pressed)
        return started

    def person(self, uid: str) -> int:
        """How many private answers `uid` had so far (and now: one more to come)."""
        self.fake.users.setdefault(uid, fake_slack.user(uid, uid.title()))
        n = self.counts.get(uid, 0)
        self.counts[uid] = n + 1
        return n

    async def answer(self, uid: str, after: int) -> tuple[float, str]:
        assert self.watcher is not None
        return await self.watcher.answer(uid, after)

    def posts(self) -> list[tuple[float, str]]:
        assert self.watcher is not None
        return [(t, p.text) for t, p in self.watcher.posted if p.channel == OWNER]


async def run(args: argparse.Namespace, url: str) -> Results:
    results = Results()
    fake = await fake_slack.FakeSlack().start()
    # Slack's documented limit: about one message per second per channel, short bursts.
    fake.rate_limit = fake_slack.RateLimit(per_second=1.0 * args.speed, burst=3)
    bench = Bench(fake, url, args)
    app = bench.app
    watcher = bench.watcher = Watcher(fake)
    fake.users["UADMIN"] = fake_slack.user("UADMIN", "Ada")
    await app.start()
    try:
        await fake.connected()
        n = bench.person("UADMIN")
        await bench.say("UADMIN", "team add support", OWNER)
        await watcher.answer("UADMIN", n)
        await burst(bench, results)
        began = time.monotonic()
        await _drain(bench, results)
        results.drain_s = time.monotonic() - began
        check(bench, results)
        assert fake.rate_limit is not None
        results.refused = sum(1 for _, ch in fake.rate_limit.refused if ch == OWNER)
        results.gaps = [b - a for (a, _), (b, _) in itertools.pairwise(bench.posts())]
    finally:
        watcher.stop()
        await app.stop()
        await fake.stop()
    results.load = os.getloadavg()
    return results


async def burst(bench: Side, results: Results) -> None:
    """The burst: `--mentions` POSTs evenly over `--seconds`, with claims by number,
    presses of Claim next and other people's commands timed meanwhile."""
    args = bench.args
    assert bench.app.webhook is not None
    url = f"http://127.0.0.1:{bench.app.webhook.port}/v1/mentions"
    interval = args.seconds / args.mentions
    measured: list[asyncio.Task[None]] = []
    claimers = itertools.count(1)

    async def claim(number: int, accepted: float) -> None:
        uid = f"UC{next(claimers)}"
        after = bench.person(uid)
        await bench.say(uid, f"claim {number}", OWNER)
        at, text = await bench.answer(uid, after)
        if f"#{number} is yours" not in text:
            results.failures.append(f"claim {number}: {text!r}")
        results.claim_s.append(at - accepted)

    async def claim_next() -> None:
        uid = f"UN{next(claimers)}"
        after = bench.person(uid)
        pushed = await bench.press_next(uid)
        at, text = await bench.answer(uid, after)
        if not YOURS.search(text):
            results.failures.append(f"claim next: {text!r}")
        results.next_s.append(at - pushed)

    async def private(i: int) -> None:
        uid = f"UP{i}"
        after = bench.person(uid)
        pushed = await bench.say(uid, "queue", ELSEWHERE)
        at, _ = await bench.answer(uid, after)
        results.private_s.append(at - pushed)

    async def others() -> None:
        for i in itertools.count():
            measured.append(asyncio.create_task(private(i)))
            await asyncio.sleep(args.private_every)

    first_202: list[float] = []

    async def one(http: aiohttp.ClientSession, n: int, due: float) -> Answer:
        answer = await post(http, url, mention(bench.run, n), due)
        if answer.status == 202 and answer.numbers:
            if not first_202:
                first_202.append(answer.answered)
            if n % args.claim_every == 0:
                measured.append(asyncio.create_task(claim(answer.numbers[0], answer.answered)))
            if n % args.next_every == args.next_every // 2:
                measured.append(asyncio.create_task(claim_next()))
        return answer

    background = asyncio.create_task(others())
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        t0 = time.monotonic() + 0.05
        tasks = []
        for n in range(args.mentions):
            due = t0 + n * interval
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, n, due)))
        answers = await asyncio.gather(*tasks)
    results.seconds = time.monotonic() - t0
    background.cancel()
    await asyncio.gather(*measured, return_exceptions=True)
    results.accepted = [a for a in answers if a.status == 202]
    results.mentions = len(results.accepted)
    for a in answers:
        if a.status != 202:
            results.failures.append(f"a POST was answered {a.status}: {a.error}")
            break
    bursts = [t for t, text in bench.posts() if "new mentions" in text]
    if bursts and first_202:
        results.burst_card_s = bursts[0] - first_202[0]


async def _drain(bench: Side, results: Results) -> None:
    """Wait until every card is posted (at the pace: about mentions ÷ speed seconds)."""
    want = results.mentions
    limit = want / bench.args.speed * 1.5 + 60
    for _ in range(int(limit / 0.2)):  # looked at five times a second
        if len(set(card_numbers(bench))) >= want:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0 / bench.args.speed)  # anything more would be a card twice


def card_numbers(bench: Side) -> list[int]:
    """The numbers of the conversation cards posted in the owner channel, in order."""
    return [int(m.group(1)) for _, text in bench.posts() if (m := CARD.match(text))]


def check(bench: Side, results: Results, waiting: Sequence[int] = ()) -> None:
    """Nothing lost, nothing twice: each conversation's card posted once, or (`waiting`)
    still waiting in the outbox to be posted."""
    numbers = sorted(n for a in results.accepted for n in a.numbers)
    cards = card_numbers(bench)
    results.cards = len(cards)
    if len(set(numbers)) != len(numbers):
        results.failures.append("two mentions became one conversation")
    # A card both posted and still waiting was on its way when the outbox stopped: its
    # row goes again with the same key, which the platform deduplicates.
    missing = set(numbers) - set(cards) - set(waiting)
    twice = len(cards) - len(set(cards))
    if missing:
        results.failures.append(f"{len(missing)} cards never posted (lost)")
    if twice:
        results.failures.append(f"{twice} cards posted twice")


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    where = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    pace = 1.0 / args.speed
    print(
        f"burst: {results.mentions} mentions in {results.seconds:.1f} s through the webhook "
        f"into one Slack channel ({where}; Slack's limit and Inloop's pace: one post per "
        f"{pace:g} s per channel, burst 3)"
    )
    report_latencies(results)
    if results.refused:
        results.failures.append(f"the channel got {results.refused} × 429")
    print(f"  429s in the channel: {results.refused} (target 0: {verdict(not results.refused)})")
    gaps = results.gaps
    if gaps:
        steady = gaps[len(gaps) // 10 :]
        rate = len(steady) / sum(steady) if sum(steady) else 0.0
        print(
            f"  cards posted: {results.cards} of {results.mentions}, drained "
            f"{results.drain_s:.0f} s after the burst; posts in the channel every "
            f"{percentile(steady, 50):.3f} s (p50), min gap {min(gaps):.3f} s, "
            f"{rate:.2f} posts/s (pace {args.speed:g}/s)"
        )
    print(f"  load average: {' '.join(f'{x:.2f}' for x in results.load)}")
    for failure in results.failures:
        print(f"  FAILED: {failure}")


def report_latencies(results: Results) -> None:
    """The timed lines every platform's burst shares, each against its target."""

    def line(label: str, values: list[float], target: float) -> None:
        if not values:
            print(f"  {label}: no samples")
            results.failures.append(f"{label}: no samples")
            return
        worst = max(values)
        ok = worst <= target
        if not ok:
            results.failures.append(f"{label}: max {worst:.2f} s > {target:g} s")
        print(
            f"  {label} ({len(values)}): p50 {percentile(values, 50):.3f} s, "
            f"p99 {percentile(values, 99):.3f} s, max {worst:.3f} s "
            f"(target ≤ {target:g} s: {verdict(ok)})"
        )

    line("claim N, 202 → 'is yours'", results.claim_s, TARGET_CLAIM_S)
    line("Claim next pressed → 'is yours'", results.next_s, TARGET_CLAIM_S)
    line("someone else's private answer", results.private_s, TARGET_PRIVATE_S)
    burst = results.burst_card_s
    ok = burst is not None and burst <= TARGET_BURST_CARD_S
    if not ok:
        results.failures.append(f"burst card: {burst} s")
    shown = f"{burst:.2f} s" if burst is not None else "never"
    print(
        f"  burst card up after the first 202: {shown} (target ≤ {TARGET_BURST_CARD_S:g} s: "
        f"{verdict(ok)})"
    )


def burst_options(
    prog: str, doc: str, claim_every: int, next_every: int
) -> argparse.ArgumentParser:
    """The options every platform's burst shares (with its own defaults)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    add_database_options(parser)
    parser.add_argument("--mentions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="to send them in")
    parser.add_argument(
        "--claim-every", type=int, default=claim_every, help="claim N after every Nth 202"
    )
    parser.add_argument(
        "--next-every", type=int, default=next_every, help="press Claim next every N"
    )
    parser.add_argument(
        "--private-every",
        type=float,
        default=0.5,
        help="someone else types a command elsewhere every N seconds",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = burst_options("bench.burst", __doc__, 50, 100)
    parser.add_argument(
        "--speed", type=float, default=1.0, help="Slack's limit and the pace, N× faster"
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="against a real Synapse instead (bench/burst_matrix.py: its own options)",
    )
    args = parser.parse_args(argv)
    if args.mentions < 1 or args.seconds <= 0 or args.speed <= 0 or args.private_every <= 0:
        parser.error("--mentions, --seconds, --speed and --private-every must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--matrix" in argv:
        # imported only then: it needs Synapse's package, and imports this module
        from bench.burst_matrix import main as matrix_main

        argv.remove("--matrix")
        return matrix_main(argv)
    return run_bench(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
