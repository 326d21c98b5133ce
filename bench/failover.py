"""Duty failover (issue 17 §1): from a holder's SIGKILL to another instance holding each duty.

Two instances (`--instances 1`: one), processes of their own, share one PostgreSQL.
Besides `timers` and `feeds`, each runs a `matrix` duty that takes `--slow-start`
seconds to start (a fake platform standing for a Matrix login and first sync on a busy
homeserver, so that no Synapse is needed). For each sample, the holder of the duties is
killed with SIGKILL at a random moment of its renewal period and restarted at once (as a
supervisor would); the time until another instance holds each duty is read from the
`duty_lease` table: the new holder's `since`, on the database's clock, which is this
machine's, as the kill's time is. The duties may end up in the restarted instance or the
other one: whichever claims first.

    .venv/bin/python -m bench.failover                      # a throwaway PostgreSQL
    .venv/bin/python -m bench.failover --samples 10 --slow-start 8
    .venv/bin/python -m bench.failover --instances 1 --start-delay 6   # a slow restart

Reported: per duty, every sample's failover and the worst; the target is 10 s. Exits 1
if a duty was not taken over within `--within` seconds, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from bench.common import add_database_options, load_average, run_bench
from bot.duties import LeaseTiming
from storage.database import Database
from storage.migrate import upgrade
from storage.models import DutyLease

ROOT = Path(__file__).resolve().parents[1]
DUTIES = ("feeds", "matrix", "timers")
TARGET = 10.0

_INSTANCE = """
import asyncio, logging, sys
sys.path.insert(0, {tests!r})
from bot.app import App
from bot.config import load_settings
from recording import RecordingPlatform

class SlowToStart(RecordingPlatform):
    async def start(self, sink):
        await asyncio.sleep({slow!r})
        await super().start(sink)

async def main() -> None:
    await asyncio.sleep(float(sys.argv[1]))  # a restart slow to come up (--start-delay)
    settings = load_settings({{"DATABASE_URL": {url!r}, "INLOOP_ADMINS": "console:boss"}})
    platforms = {{"console": RecordingPlatform(), "matrix": SlowToStart(name="matrix")}}
    app = App(settings, platforms)
    await app.start()
    print(app.instance, flush=True)
    await asyncio.Event().wait()

logging.basicConfig(
    level=logging.WARNING, format="instance %(process)d %(asctime)s %(levelname)s %(message)s"
)
asyncio.run(main())
"""


@dataclass
class Results:
    #: duty -> seconds from each kill to its next holder's lease
    failovers: dict[str, list[float]] = field(default_factory=lambda: {d: [] for d in DUTIES})
    loads: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Instance:
    def __init__(self, url: str, slow: float):
        self._script = _INSTANCE.format(tests=str(ROOT / "tests"), url=url, slow=slow)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, delay: float = 0.0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            self._script,
            str(delay),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )

    async def started(self, within: float) -> None:
        """Until its start ended (it prints its id then)."""
        assert self.process is not None and self.process.stdout is not None
        await asyncio.wait_for(self.process.stdout.readline(), within)

    async def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def _holders(db: Database) -> dict[str, tuple[str, float, float]]:
    """duty -> (holder, since, expires_at), as Unix times."""
    async with db.read() as session:
        rows = (await session.scalars(select(DutyLease).order_by(col(DutyLease.duty)))).all()
    return {r.duty: (r.holder, r.since.timestamp(), r.expires_at.timestamp()) for r in rows}


async def _all_held(db: Database, within: float) -> dict[str, str]:
    """Wait until every duty is held, with a live lease; duty -> holder. (Not always
    by one instance: an Inloop that claimed its duties one after another left `feeds`
    to the other instance while its Matrix started.)"""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = await _holders(db)
        live = {d: held[d][0] for d in DUTIES if d in held and held[d][2] > time.time()}
        if len(live) == len(DUTIES):
            return live
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{', '.join(DUTIES)} not all held within {within:g} s")


async def run(args: argparse.Namespace, url: str) -> Results:
    results = Results()
    if url.startswith("sqlite"):
        results.failures.append("failover needs PostgreSQL: --postgres or --database")
        return results
    db = Database(url)
    await upgrade(db)
    instances = [Instance(url, args.slow_start) for _ in range(args.instances)]
    timing = LeaseTiming()
    rng = random.Random(args.seed)
    try:
        for instance in instances:
            await instance.start()
        for instance in instances:
            await instance.started(args.within + args.slow_start)
        for sample in range(args.samples):
            # the victim: the holder of the timers, and what it holds moves
            held = await _all_held(db, args.within + args.slow_start)
            holder = held["timers"]
            moving = [d for d in DUTIES if held[d] == holder]
            pid = int(holder.split(":")[1])  # an instance's id names its process
            victim = next(i for i in instances if i.process and i.process.pid == pid)
            await asyncio.sleep(rng.uniform(0, timing.renew_every))
            results.loads.append(load_average())
            await victim.kill()
            killed = time.time()
            await victim.start(args.start_delay)  # restarted at once, as a supervisor would
            taken: dict[str, float] = {}
            deadline = time.monotonic() + args.within
            while len(taken) < len(moving) and time.monotonic() < deadline:
                for duty, (who, since, _) in (await _holders(db)).items():
                    if duty in moving and duty not in taken and who != holder:
                        taken[duty] = since - killed
                await asyncio.sleep(0.05)
            for duty in moving:
                if duty in taken:
                    results.failovers[duty].append(taken[duty])
                else:
                    results.failures.append(f"sample {sample + 1}: {duty} not taken over")
            print(
                f"sample {sample + 1}: "
                + ", ".join(f"{d} {taken.get(d, float('nan')):.2f} s" for d in moving)
                + f" (load {results.loads[-1]})",
                flush=True,
            )
            # a standby again
            await victim.started(args.within + args.slow_start + args.start_delay)
    finally:
        for instance in instances:
            await instance.kill()
        await db.dispose()
    return results


def report(results: Results, args: argparse.Namespace, url: str) -> None:
    print(
        f"{args.instances} instance(s), {args.samples} kills; matrix starts in"
        f" {args.slow_start:g} s; a restart waits {args.start_delay:g} s; target {TARGET:g} s"
    )
    for duty, seconds in results.failovers.items():
        if seconds:
            shown = ", ".join(f"{s:.1f}" for s in seconds)
            print(
                f"{duty}: worst {max(seconds):.1f} s, mean {sum(seconds) / len(seconds):.1f} s"
                f" ({shown})"
            )
    print(f"load averages at the kills: {'; '.join(results.loads)}")
    for failure in results.failures:
        print(f"FAILED: {failure}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.failover", description=__doc__.split("\n")[0])
    add_database_options(parser)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--slow-start", type=float, default=8.0, help="matrix's start, seconds")
    parser.add_argument("--within", type=float, default=60.0, help="seconds to wait at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start-delay",
        type=float,
        default=0.0,
        help="seconds a restarted instance takes before its start (a loaded machine)",
    )
    parser.add_argument(
        "--instances", type=int, choices=(1, 2), default=2, help="1: only the restart takes over"
    )
    args = parser.parse_args(argv)
    if not args.database:
        args.postgres = True  # failover needs PostgreSQL
    return run_bench(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
