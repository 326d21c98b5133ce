"""Several instances on one PostgreSQL (issue 17, "Measure"): the webhook's batched
intake rate with 3 instances against 1, where the CPU goes, and the duty failover
time after SIGKILL.

    .venv/bin/python -m bench.instances                 # 1 and 3 instances, 5 failovers
    .venv/bin/python -m bench.instances --instances 3 --mentions 20000 --failovers 10

Each phase starts its instances as `inloop run` processes (tests/instances.py, the
harness of tests/test_instances.py) on a fresh database of one throwaway PostgreSQL,
with the fake Slack as their chat (Socket Mode, one connection each). The client, in
this process, posts batches of 100 mentions to a random instance, `--clients` in
flight, as a load balancer spreads them. A mention counts when its 202 has arrived
(the webhook answers after the commit).

Where the time goes: the CPU seconds of the instances (all together), of PostgreSQL
(the postmaster and its backends) and of this client during the phase, from /proc,
against the wall time × the machine's cores; and PostgreSQL's commits per second
(pg_stat_database). Failover: the holder of the duties is killed with SIGKILL, and
the time until another instance holds each duty is read from the lease table's
change log (the database's clock, as the kill's); the killed one is restarted, and
the next sample waits until everything is held again.

Exits 1 if a check fails (a mention not accepted, answers that disagree), 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import percentile, start_postgres, tests_module
from storage.database import Database

_TICKS = os.sysconf("SC_CLK_TCK")
DUTIES = ("timers", "feeds")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of a process (and of its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the name: state ppid … utime(12) stime(13) cutime(14) cstime(15), 0-based from state
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / _TICKS


def postgres_cpu(datadir: Path) -> float:
    """The postmaster's CPU with its reaped backends', plus the live backends'."""
    postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                total += cpu_seconds(int(entry.name))
    return total


@dataclass
class Phase:
    instances: int
    mentions: int = 0
    seconds: float = 0.0
    resent: int = 0
    instances_cpu: float = 0.0
    postgres_cpu: float = 0.0
    client_cpu: float = 0.0
    commits: int = 0
    load: tuple[float, float] = (0.0, 0.0)
    #: PostgreSQL's active statements, sampled: statement's start → times seen running
    active: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    @property
    def rate(self) -> float:
        return self.mentions / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    phases: list[Phase] = field(default_factory=list)
    #: duty → seconds from each kill of its holder until another instance held it
    failovers: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


class Deployment:
    """`count` instances on a fresh database, with the fake Slack and one team."""

    def __init__(self, count: int, url: str, workdir: Path, rng: random.Random):
        self.harness: Any = tests_module("instances")
        self.fake: Any = tests_module("fake_slack").FakeSlack()
        self.count = count
        self.url = url
        self.workdir = workdir
        self.rng = rng
        self.fleet: Any = None
        self.db = Database(url)

    async def start(self) -> None:
        await self.fake.start()
        env = {
            "DATABASE_URL": self.url,
            "INLOOP_ADMINS": "slack:UADMIN",
            "INLOOP_LOG_LEVEL": "WARNING",
            "SLACK_BOT_TOKEN": self.fake.bot_token,
            "SLACK_APP_TOKEN": self.fake.app_token,
            "SLACK_API_URL": self.fake.api_url,
        }
        self.fleet = self.harness.Fleet(self.count, env, self.workdir)
        await self.fleet.start()
        await self.harness.Company(self.fake, self.rng, 1).setup()

    async def stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()
        await self.fake.stop()
        await self.db.dispose()

    def intake(self, clients: int) -> Any:
        return self.harness.Intake(
            self.fleet, self.rng, uuid.uuid4().hex[:8], 1, batch=100, in_flight=clients
        )

    async def sample_active(self, phase: Phase, done: asyncio.Event) -> None:
        """PostgreSQL's statements running now, every 50 ms: a sampling profile of the
        database's side (without pg_stat_statements, which needs a server restart)."""
        while not done.is_set():
            async with self.db.read() as session:
                rows = await session.execute(
                    text(
                        "SELECT query FROM pg_stat_activity WHERE state = 'active'"
                        " AND datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                for (query,) in rows.all():
                    key = " ".join(str(query).split())[:90]
                    phase.active[key] = phase.active.get(key, 0) + 1
            phase.samples += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)

    async def commits(self) -> int:
        async with self.db.read() as session:
            value = await session.scalar(
                text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            )
        return int(value or 0)


async def intake_phase(
    count: int, url: str, datadir: Path, args: argparse.Namespace, workdir: Path
) -> Phase:
    phase = Phase(count)
    deployment = Deployment(count, url, workdir, random.Random(args.seed))
    try:
        await deployment.start()
        await deployment.intake(args.clients).send(500)  # warm-up: connections, caches
        pids = [i.process.pid for i in deployment.fleet.instances]
        before = (
            sum(cpu_seconds(p) for p in pids),
            postgres_cpu(datadir),
            time.process_time(),
            await deployment.commits(),
        )
        phase.load = (os.getloadavg()[0], 0.0)
        intake = deployment.intake(args.clients)
        done = asyncio.Event()
        sampler = asyncio.create_task(deployment.sample_active(phase, done))
        await intake.send(args.mentions)
        done.set()
        await sampler
        phase.instances_cpu = sum(cpu_seconds(p) for p in pids) - before[0]
        phase.postgres_cpu = postgres_cpu(datadir) - before[1]
        phase.client_cpu = time.process_time() - before[2]
        phase.commits = await deployment.commits() - before[3]
        phase.load = (phase.load[0], os.getloadavg()[0])
        phase.seconds = intake.ended - intake.began
        phase.mentions = len(intake.accepted)
        phase.resent = intake.resent
        if phase.mentions != args.mentions:
            raise AssertionError(f"{phase.mentions} of {args.mentions} mentions accepted")
    finally:
        await deployment.stop()
    return phase


async def failover_samples(
    url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, list[float]]:
    """Kill the duties' holder `args.failovers` times; the seconds until each was held again."""
    harness: Any = tests_module("instances")
    rng = random.Random(args.seed)
    deployment = Deployment(args.instances, url, workdir, rng)
    kills = []
    try:
        await deployment.start()
        leases = harness.LeaseLog(deployment.db)
        await leases.install()
        watch = harness.DutyWatch(deployment.fleet)
        done = asyncio.Event()
        watching = asyncio.create_task(watch.run(done))
        for _ in range(args.failovers):
            await harness.until(lambda: watch.all_held(DUTIES), 60, "every duty held")
            await asyncio.sleep(rng.uniform(0.0, 1.5))  # anywhere in a renewal period
            holder = watch.holder("timers")
            pid = holder.process.pid
            at = await holder.kill()
            watch.last.pop(holder.slot, None)
            kills.append(harness.Kill(at, holder.slot, pid))
            await harness.until(lambda: watch.all_held(DUTIES), 60, "the duties taken over")
            await holder.start()
            await holder.ready(deployment.fleet.http)
        done.set()
        await watching
        tenures = await leases.tenures()
    finally:
        await deployment.stop()
    out: dict[str, list[float]] = {}
    for duty, seconds in harness.failovers(kills, tenures):
        out.setdefault(duty, []).append(seconds)
    return out


async def run(args: argparse.Namespace) -> Results:
    results = Results()
    server: Any = start_postgres()
    try:
        datadir = Path(server.datadir)
        with tempfile.TemporaryDirectory(prefix="inloop-bench-") as tmp:
            for count in sorted({1, args.instances}):
                url = server.create_database()
                phase = await intake_phase(count, url, datadir, args, Path(tmp) / f"intake-{count}")
                results.phases.append(phase)
            if args.failovers:
                url = server.create_database()
                results.failovers = await failover_samples(url, args, Path(tmp) / "failover")
    except AssertionError as exc:
        results.failures.append(str(exc))
    finally:
        server.stop()
    return results


def report(results: Results, args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    print(
        f"Inloop instances benchmark · PostgreSQL (throwaway) · Python "
        f"{platform.python_version()} · {cores} CPUs · seed {args.seed}\n"
        f"batches of 100 mentions, {args.clients} in flight, to a random instance\n"
    )
    for phase in results.phases:
        busy = phase.instances_cpu + phase.postgres_cpu + phase.client_cpu
        print(
            f"  {phase.instances} instance(s): {phase.mentions:,} mentions in {phase.seconds:.2f} s"
            f" = {phase.rate:,.0f}/s (load {phase.load[0]:.2f} → {phase.load[1]:.2f})\n"
            f"    CPU: instances {phase.instances_cpu:.2f} s, PostgreSQL {phase.postgres_cpu:.2f}"
            f" s, client {phase.client_cpu:.2f} s = {busy / phase.seconds:.2f} of {cores} cores"
            f" busy; per mention: instances {phase.instances_cpu * 1000 / phase.mentions:.2f}"
            f" ms, PostgreSQL {phase.postgres_cpu * 1000 / phase.mentions:.2f} ms;"
            f" {phase.commits / phase.seconds:,.0f} commits/s"
        )
        top = sorted(phase.active.items(), key=lambda kv: -kv[1])[: args.top]
        if top:
            print(f"    PostgreSQL's busiest statements ({phase.samples} samples, 50 ms apart):")
        for query, seen in top:
            print(f"      {seen / phase.samples:5.2f} running on average: {query}")
    for duty, samples in sorted(results.failovers.items()):
        shown = ", ".join(f"{s:.1f}" for s in samples)
        print(
            f"  failover of {duty} after SIGKILL: {shown} s (median "
            f"{percentile(samples, 50):.1f} s, max {max(samples):.1f} s; target < 10 s)"
        )
    if results.failures:
        print(f"\ncorrectness: FAIL ({len(results.failures)})")
        for failure in results.failures:
            print(f"  - {failure}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instances", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--instances", type=int, default=3, help="compared with 1 (default 3)")
    parser.add_argument(
        "--mentions", type=int, default=10000, help="mentions per phase (default 10000)"
    )
    parser.add_argument("--clients", type=int, default=6, help="requests in flight (default 6)")
    parser.add_argument(
        "--failovers", type=int, default=5, help="duty failovers to time (default 5; 0: skip)"
    )
    parser.add_argument("--seed", type=int, default=17, help="seed of the random choices")
    parser.add_argument("--top", type=int, default=6, help="statements shown per phase")
    args = parser.parse_args(argv)
    if args.instances < 1 or args.mentions < 100 or args.clients < 1 or args.failovers < 0:
        parser.error("--instances >= 1, --mentions >= 100, --clients >= 1, --failovers >= 0")
    if args.failovers and args.instances < 2:
        parser.error("a failover needs --instances >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(run(args))
    report(results, args)
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
