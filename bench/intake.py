"""Intake through the webhook: throughput and POST → card latency (issue "Intake").

Targets, on SQLite: >= 2,000 mentions/s accepted durably in batches of 100,
>= 500/s one per request; POST → card delivered p50 <= 10 ms, p99 <= 50 ms at
50 mentions/s.

    .venv/bin/python -m bench.intake                      # SQLite file in a temp dir
    .venv/bin/python -m bench.intake --postgres           # a throwaway PostgreSQL server
    .venv/bin/python -m bench.intake --database postgresql+asyncpg://user@host/db

A real `App` runs with its webhook on 127.0.0.1 (port 0) and an in-memory platform
defined here, which notes `time.monotonic()` when the outbox hands it each card.
The HTTP client runs in a separate process by default (`--same-process` to share
the bot's event loop instead): the two share the machine's cores, but the client's
JSON, signing and HTTP parsing do not run on the bot's only thread. Both processes
read CLOCK_MONOTONIC, so a POST's start in the client and its card's arrival in the
bot are on one clock.

A mention counts as accepted when its 202 has arrived: the webhook answers only
after the commit. Throughput is accepted mentions over the time from the first
POST's start to the last answer. Each phase also shows the bot process's CPU time
per mention (`time.process_time()`, the client's excluded), which other work on the
machine disturbs far less than the rates.

Exits 1 if a correctness check fails (never for timing), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlmodel import col

from bench.common import QuietPlatform, add_database_options, percentile, run_bench, verdict
from bot.app import App
from bot.config import load_settings
from bot.events import ChannelId, Command, EventId, PersonId
from bot.intake.webhook import sign
from bot.views import Card, Notice, View
from storage.models import Mention

CHANNEL = ChannelId("console:#support")
ADMIN = PersonId("console:admin")
SECRET = "bench-intake-secret-0123456789"
SOURCE = "bench"
ROOT = Path(__file__).resolve().parents[1]

#: the issue's targets
TARGET_BATCH_RATE = 2000.0
TARGET_SINGLE_RATE = 500.0
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0

BATCH_SIZE = 100
TITLE_NUMBER = re.compile(r"#(\d+) ")


# -- the platform ------------------------------------------------------------------------


class BenchPlatform(QuietPlatform):
    """An in-memory chat platform: notes when each card arrives, by conversation number."""

    def __init__(self) -> None:
        #: conversation number → time.monotonic() of each card posted for it
        self.cards: dict[int, list[float]] = {}
        #: every delivery: (kind, target, title or text)
        self.log: list[tuple[str, str, str]] = []
        self._refs = itertools.count(1)

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        at = time.monotonic()
        if isinstance(view, Card) and (found := TITLE_NUMBER.match(view.title)):
            self.cards.setdefault(int(found[1]), []).append(at)
        self.log.append(("send", channel, summary(view)))
        return f"msg-{next(self._refs)}"

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        self.log.append(("update", channel, summary(view)))

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        self.log.append(("private", person, summary(view)))


def summary(view: View) -> str:
    if isinstance(view, Card):
        return view.title
    if isinstance(view, Notice):
        return view.text
    return type(view).__name__


# -- the client (its own process by default) ---------------------------------------------


@dataclass
class Job:
    """What one client run sends. Mentions `first` … are numbered for this `run`."""

    port: int
    run: str
    first: int
    requests: int
    per_request: int
    #: load: this many requests in flight, each sent as soon as one is answered
    clients: int = 4
    #: paced: seconds between two POSTs (open loop), 0 for load
    interval: float = 0.0


@dataclass
class Answer:
    #: time.monotonic(): when the POST was due (paced), sent, and answered
    due: float
    started: float
    answered: float
    status: int
    numbers: list[int]
    duplicates: int
    error: str = ""


def mention(run: str, n: int) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "external_id": f"{run}-{n}",
        "author": {"name": f"Customer {n}", "handle": f"@customer{n}"},
        "text": f"Order A{n:06d} arrived with the box crushed. Can someone help me? #{run}",
        "url": f"https://social.example/customer{n}/status/{run}{n}",
        "created_at": "2026-11-26T08:02:11Z",
        "lang": "en",
        "tags": ["delivery"],
    }


def bodies(job: Job) -> list[bytes]:
    out = []
    for r in range(job.requests):
        start = job.first + r * job.per_request
        items = [mention(job.run, n) for n in range(start, start + job.per_request)]
        out.append(json.dumps(items if job.per_request > 1 else items[0]).encode())
    return out


async def post(http: aiohttp.ClientSession, url: str, body: bytes, due: float) -> Answer:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Inloop-Timestamp": timestamp,
        "X-Inloop-Signature": sign(SECRET, timestamp, body),
    }
    started = time.monotonic()
    try:
        async with http.post(url, data=body, headers=headers) as resp:
            payload = await resp.json()
            status = resp.status
    except (aiohttp.ClientError, ValueError) as exc:
        return Answer(due, started, time.monotonic(), 0, [], 0, f"{type(exc).__name__}: {exc}")
    answered = time.monotonic()
    if status not in (200, 202):
        return Answer(due, started, answered, status, [], 0, str(payload.get("error", payload)))
    items = payload.get("mentions", [payload])
    numbers = [int(item["conversation"]) for item in items]
    duplicates = sum(1 for item in items if item["duplicate"])
    return Answer(due, started, answered, status, numbers, duplicates)


async def drive(job: Job) -> list[Answer]:
    """Send the job's requests; their answers in the order the requests were built."""
    prepared = bodies(job)
    url = f"http://127.0.0.1:{job.port}/v1/mentions"
    connector = aiohttp.TCPConnector(limit=0 if job.interval else job.clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        if job.interval:
            return await _paced(http, url, prepared, job.interval)
        answers: list[Answer | None] = [None] * len(prepared)
        queue = iter(enumerate(prepared))

        async def client() -> None:
            for i, body in queue:
                answers[i] = await post(http, url, body, time.monotonic())

        await asyncio.gather(*(client() for _ in range(job.clients)))
    return [a for a in answers if a is not None]


async def _paced(
    http: aiohttp.ClientSession, url: str, prepared: list[bytes], interval: float
) -> list[Answer]:
    """Open loop: POST i is due at t0 + i × interval, whether or not earlier ones answered."""
    t0 = time.monotonic() + 0.05
    tasks = []
    for i, body in enumerate(prepared):
        due = t0 + i * interval
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(http, url, body, due)))
    return list(await asyncio.gather(*tasks))


def client_process() -> None:
    """The child's entry point: a Job as JSON on stdin, its answers as JSON on stdout."""
    job = Job(**json.loads(sys.stdin.read()))
    answers = asyncio.run(drive(job))
    json.dump([asdict(a) for a in answers], sys.stdout)


async def run_client(job: Job, same_process: bool) -> list[Answer]:
    if same_process:
        return await drive(job)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), *sys.path]))}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import bench.intake; bench.intake.client_process()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    out, _ = await child.communicate(json.dumps(asdict(job)).encode())
    if child.returncode != 0:
        raise RuntimeError(f"the client process exited with {child.returncode}")
    return [Answer(**a) for a in json.loads(out)]


# -- the run -------------------------------------------------------------------------


@dataclass
class Load:
    """A throughput phase."""

    label: str
    answers: list[Answer]
    clients: int
    #: seconds from the last answer until every card was delivered
    drain: float = 0.0
    #: CPU seconds the bot's process used while the client ran, and while draining
    cpu: float = 0.0
    drain_cpu: float = 0.0

    @property
    def accepted(self) -> int:
        return sum(len(a.numbers) - a.duplicates for a in self.answers if a.status == 202)

    @property
    def seconds(self) -> float:
        if not self.answers:
            return 0.0
        return max(a.answered for a in self.answers) - min(a.started for a in self.answers)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def request_ms(self) -> list[float]:
        return [(a.answered - a.started) * 1000 for a in self.answers]


@dataclass
class Results:
    load: list[float] = field(default_factory=list)
    phases: list[Load] = field(default_factory=list)
    #: paced: POST start → card delivered, and POST start → answer (ms)
    card_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    #: paced: how late the client started a POST against its schedule, worst (ms)
    client_late_ms: float = 0.0
    #: CPU seconds the bot's process used in the paced run
    paced_cpu: float = 0.0
    failures: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, database_url: str, args: argparse.Namespace) -> None:
        settings = load_settings(
            {
                "DATABASE_URL": database_url,
                "INLOOP_ADMINS": ADMIN,
                "INLOOP_LOG_LEVEL": "WARNING",
                "INTAKE_SECRET": SECRET,
                "INTAKE_HOST": "127.0.0.1",
                "INTAKE_PORT": "0",
            }
        )
        self.platform = BenchPlatform()
        self.app = App(settings, {"console": self.platform})
        self.args = args
        # unique per run, so that a reused database never sees an external id twice
        self.run = uuid.uuid4().hex[:8]
        self._next = 1
        #: every mention accepted with a 202: conversation number → external ids given it
        self.accepted: dict[int, list[str]] = {}
        #: the first batch of the batch phase, to send again
        self.first_batch: tuple[Job, Answer] | None = None

    @property
    def port(self) -> int:
        assert self.app.webhook is not None
        return self.app.webhook.port

    def job(self, requests: int, per_request: int, clients: int, interval: float = 0.0) -> Job:
        job = Job(self.port, self.run, self._next, requests, per_request, clients, interval)
        self._next += requests * per_request
        return job

    async def settle(self, what: str, results: Results) -> float:
        """Wait for the outbox to deliver everything due; the seconds it took."""
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.args.timeout):
                await self.app.settle()
        except TimeoutError:
            results.failures.append(f"{what}: cards not all delivered in {self.args.timeout:g} s")
        return time.monotonic() - began

    def book(self, label: str, job: Job, answers: list[Answer], results: Results) -> None:
        """Check each answer, and note the accepted mentions' numbers."""
        bad = [a for a in answers if a.status != 202 or a.duplicates]
        if len(answers) != job.requests:
            results.failures.append(f"{label}: {len(answers)} answers to {job.requests} requests")
        if bad:
            first = bad[0]
            results.failures.append(
                f"{label}: {len(bad)} of {len(answers)} requests not answered 202 with fresh "
                f"mentions (first: {first.status} {first.error or f'{first.duplicates} dup'})"
            )
        for r, answer in enumerate(answers):
            if answer.status != 202:
                continue
            if len(answer.numbers) != job.per_request:
                results.failures.append(f"{label}: request {r} got {len(answer.numbers)} numbers")
            start = job.first + r * job.per_request
            for n, number in enumerate(answer.numbers):
                self.accepted.setdefault(number, []).append(f"{self.run}-{start + n}")

    async def load(self, label: str, job: Job, results: Results) -> Load:
        cpu = time.process_time()
        answers = await run_client(job, self.args.same_process)
        phase = Load(label, answers, job.clients, cpu=time.process_time() - cpu)
        self.book(label, job, answers, results)
        cpu = time.process_time()
        phase.drain = await self.settle(label, results)
        phase.drain_cpu = time.process_time() - cpu
        return phase

    async def paced(self, seconds: float, rate: float, results: Results) -> None:
        count = max(1, round(seconds * rate))
        job = self.job(count, 1, clients=1, interval=1 / rate)
        cpu = time.process_time()
        answers = await run_client(job, self.args.same_process)
        self.book("paced", job, answers, results)
        await self.settle("paced", results)
        results.paced_cpu = time.process_time() - cpu
        results.client_late_ms = max(((a.started - a.due) * 1000 for a in answers), default=0)
        for answer in answers:
            if answer.status != 202:
                continue
            results.answer_ms.append((answer.answered - answer.started) * 1000)
            arrived = self.platform.cards.get(answer.numbers[0])
            if arrived:
                results.card_ms.append((arrived[0] - answer.started) * 1000)
            else:
                results.failures.append(f"paced: no card for #{answer.numbers[0]}")

    async def resend(self, results: Results) -> None:
        """The first batch again: 200, the same numbers, no card."""
        if self.first_batch is None:
            return
        job, first = self.first_batch
        cards = len(self.platform.log)
        (again,) = await run_client(
            Job(job.port, job.run, job.first, 1, job.per_request), same_process=True
        )
        await self.settle("re-sent batch", results)
        if again.status != 200 or again.duplicates != job.per_request:
            results.failures.append(
                f"re-sent batch: {again.status} with {again.duplicates} duplicates "
                f"{again.error} (expected 200 and {job.per_request})"
            )
        if again.numbers != first.numbers:
            results.failures.append("re-sent batch: the numbers differ from the first answer")
        if len(self.platform.log) != cards:
            results.failures.append(
                f"re-sent batch: {len(self.platform.log) - cards} messages were delivered"
            )

    async def check(self, results: Results) -> None:
        """One card per accepted mention, numbers unique, every mention stored."""
        twice = {n: ids for n, ids in self.accepted.items() if len(ids) > 1}
        if twice:
            n, ids = next(iter(twice.items()))
            results.failures.append(f"{len(twice)} numbers given twice, e.g. #{n} to {ids}")
        no_card = [n for n in self.accepted if len(self.platform.cards.get(n, [])) == 0]
        many = [n for n in self.accepted if len(self.platform.cards.get(n, [])) > 1]
        stray = [n for n in self.platform.cards if n not in self.accepted]
        for problem, numbers in (
            ("no card", no_card),
            ("more than one card", many),
            ("a card but no accepted mention", stray),
        ):
            if numbers:
                results.failures.append(
                    f"{len(numbers)} conversations with {problem}: #{numbers[0]}"
                )
        other = [entry for entry in self.platform.log if entry[0] != "send" or entry[1] != CHANNEL]
        if other:
            results.failures.append(f"{len(other)} unexpected messages, e.g. {other[0]}")
        async with self.app.db.read() as session:
            stored = await session.scalar(
                select(func.count())
                .select_from(Mention)
                .where(
                    col(Mention.source) == SOURCE,
                    col(Mention.external_id).startswith(f"{self.run}-"),
                )
            )
        if stored != len(self.accepted):
            results.failures.append(f"{stored} mentions stored, {len(self.accepted)} accepted")


async def run(args: argparse.Namespace, url: str) -> Results:
    bench = Bench(url, args)
    results = Results()
    results.load.append(os.getloadavg()[0])
    try:
        await bench.app.start()
        await bench.app.handle(
            Command(EventId(f"bench-{bench.run}-team"), ADMIN, CHANNEL, "team add support")
        )
        await bench.settle("setup", results)
        bench.platform.log.clear()  # the admin's "team created": not what is checked
        # Warm up (not reported): connections, the statement cache, both request shapes.
        await bench.load("warm-up", bench.job(2, BATCH_SIZE, clients=args.clients), results)
        await bench.load("warm-up", bench.job(20, 1, clients=args.single_clients), results)
        if args.batches:
            job = bench.job(args.batches, BATCH_SIZE, clients=args.clients)
            phase = await bench.load(f"batches of {BATCH_SIZE}", job, results)
            results.phases.append(phase)
            if phase.answers and phase.answers[0].status == 202:
                bench.first_batch = (job, phase.answers[0])
        if args.singles:
            job = bench.job(args.singles, 1, clients=args.single_clients)
            phase = await bench.load("one per request", job, results)
            results.phases.append(phase)
        if args.paced_seconds:
            await bench.paced(args.paced_seconds, args.rate, results)
        await bench.resend(results)
        await bench.check(results)
    finally:
        await bench.app.stop()
    results.load.append(os.getloadavg()[0])
    return results


# -- reporting -----------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    load = " / ".join(f"{x:.2f}" for x in results.load)
    client = "in the bot's process" if args.same_process else "in a separate process"
    print(
        f"Inloop intake benchmark · {shown}\n"
        f"Python {platform.python_version()} · {os.cpu_count()} CPUs · "
        f"load average before / after: {load} · HTTP client {client}, "
        f"{args.clients} / {args.single_clients} requests in flight for batches / singles\n"
    )
    cpu_label = "bot + client CPU" if args.same_process else "bot CPU"
    targets = {f"batches of {BATCH_SIZE}": TARGET_BATCH_RATE, "one per request": TARGET_SINGLE_RATE}
    for phase in results.phases:
        target = targets[phase.label]
        ms = phase.request_ms()
        end_to_end = phase.accepted / (phase.seconds + phase.drain)
        cpu_ms = phase.cpu * 1000 / max(1, phase.accepted)
        all_cpu_ms = (phase.cpu + phase.drain_cpu) * 1000 / max(1, phase.accepted)
        print(
            f"  {phase.label}, {phase.clients} in flight: {phase.accepted:,} mentions accepted in "
            f"{phase.seconds:.2f} s = {phase.rate:,.0f}/s; "
            f"target >= {target:,.0f}/s: {verdict(phase.rate >= target)}\n"
            f"    request p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms; "
            f"cards all delivered {phase.drain:.2f} s after the last answer "
            f"({end_to_end:,.0f} cards/s end to end)\n"
            f"    {cpu_label} per mention: {cpu_ms:.2f} ms until the last answer, "
            f"{all_cpu_ms:.2f} ms with every card delivered "
            f"(at that cost one core does {1000 / max(all_cpu_ms, 1e-6):,.0f}/s)"
        )
    if results.card_ms:
        print(
            f"\n  paced: {len(results.card_ms):,} mentions at {args.rate:g}/s, one per POST "
            f"(client at most {results.client_late_ms:.1f} ms behind its schedule; {cpu_label} "
            f"{results.paced_cpu * 1000 / len(results.card_ms):.2f} ms per mention, "
            f"busy {results.paced_cpu / args.paced_seconds:.0%})"
        )
        print(f"  {'(ms)':<28}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}")
        for label, values in (
            ("POST start → card delivered", results.card_ms),
            ("POST start → 202 received", results.answer_ms),
        ):
            figures = "".join(f"{percentile(values, p):>10.2f}" for p in (50, 90, 99))
            print(f"  {label:<28}{figures}{max(values):>10.2f}")
        p50 = percentile(results.card_ms, 50)
        p99 = percentile(results.card_ms, 99)
        print(
            f"  target p50 <= {TARGET_P50_MS:g} ms: {verdict(p50 <= TARGET_P50_MS)}; "
            f"p99 <= {TARGET_P99_MS:g} ms: {verdict(p99 <= TARGET_P99_MS)}"
        )
    print()
    if results.failures:
        print(f"correctness: FAIL ({len(results.failures)})")
        for failure in results.failures:
            print(f"  - {failure}")
    else:
        print(
            "correctness: OK (one card per accepted mention, unique numbers, all stored, "
            "a re-sent batch answered 200 with the same numbers and no card)"
        )


# -- entry point -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--batches", type=int, default=50, help="POSTs of 100 mentions (default 50; 0: skip)"
    )
    parser.add_argument(
        "--singles", type=int, default=2000, help="POSTs of one mention (default 2000; 0: skip)"
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="batch requests in flight at once (default 4)"
    )
    parser.add_argument(
        "--single-clients",
        type=int,
        default=16,
        help="one-mention requests in flight at once (default 16: 500/s at ~20 ms each)",
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=30.0, help="latency run length (default 30; 0: skip)"
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="mentions per second when paced (default 50)"
    )
    add_database_options(parser)
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="run the HTTP client on the bot's event loop instead of its own process",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the cards of a phase"
    )
    args = parser.parse_args(argv)
    if min(args.batches, args.singles, args.paced_seconds) < 0:
        parser.error("--batches, --singles, --paced-seconds must be >= 0")
    if min(args.clients, args.single_clients) < 1:
        parser.error("--clients and --single-clients must be >= 1")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
