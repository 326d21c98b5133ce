"""Several `inloop run` processes on one PostgreSQL, killed and restarted on purpose.

The pieces of tests/test_instances.py and of bench/instances.py:

- `Instance`: one `python -m bot run` (the command operators run), with its own
  webhook port and its log in a file; started, killed with SIGKILL, restarted on
  the same port (as a supervisor would);
- `Fleet`: the instances of one deployment, and which of them are alive;
- `LeaseLog`: a trigger that copies every change of the `duty_lease` table, with
  the database's clock, into a table of the test's own: who held which duty from
  when, to measure a failover from the kill to the next holder;
- `DutyWatch`: asks each live instance's /metrics (`inloop_duty_held`) a few times
  a second which duties its work runs for, and notes any moment when two say yes;
- `Chaos`: kills a random instance (half the time the holder of the timers) at
  random moments, seeded, and restarts it a moment later;
- `Intake`: a listening tool posting batches of mentions to a random live instance,
  sending a batch again elsewhere when its instance died before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from sqlalchemy import text

from bot.intake.webhook import sign
from storage.database import Database

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SECRET = "instances-webhook-secret-0123456789"
SOURCE = "listening"
#: settings of the machine running the tests that must not leak into an instance
_OURS = ("DATABASE_URL", "INLOOP_", "OUTBOX_", "INTAKE_", "FEED_", "SLACK_", "MATRIX_", "METRICS_")
_HELD = re.compile(r'^inloop_duty_held\{duty="([^"]+)"\} ([0-9.]+)$', re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until(check: Callable[[], bool | Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until `check()` (awaited if need be) held; fails after `within` saying `what`."""
    start = time.monotonic()
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            break
        assert time.monotonic() - start < within, f"{what}: not within {within:g} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - start


# -- one instance -----------------------------------------------------------------------


class Instance:
    """One `inloop run` process, in `slot` of the fleet (its port and log stay the slot's)."""

    def __init__(self, slot: int, env: Mapping[str, str], workdir: Path):
        self.slot = slot
        self.port = free_port()
        self.workdir = workdir
        clean = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        self.env = {
            **clean,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")])),
            **env,
            "INTAKE_SECRET": SECRET,
            "INTAKE_HOST": "127.0.0.1",
            "INTAKE_PORT": str(self.port),
            # /metrics is served on the webhook's port once a metrics port is set
            "METRICS_PORT": str(free_port()),
        }
        self.process: asyncio.subprocess.Process | None = None
        #: /readyz said 200 in this life
        self.is_ready = False
        self.lives = 0
        self._log: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return f"instance {self.slot}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"instance-{self.slot}-life-{self.lives}.log"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        assert not self.alive
        self.lives += 1
        self.is_ready = False
        if self._log is not None:
            self._log.close()
        self._log = self.log_path.open("wb")
        # The working directory is empty: no `.env` of the developer's is read.
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=self.workdir,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def ready(self, http: aiohttp.ClientSession, within: float = 90.0) -> None:
        """Wait for /readyz to answer 200 (database, migrations, platforms), or for the
        process to be killed (by the test's chaos) before it was ready."""

        async def check() -> bool:
            assert self.process is not None
            if self.process.returncode == -signal.SIGKILL:
                return True  # killed again while it started: nothing to wait for
            assert self.alive, f"{self.name} exited: {self.tail()}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(self.url("/readyz"), timeout=aiohttp.ClientTimeout(2)) as r:
                    self.is_ready = r.status == 200
                    return self.is_ready
            return False

        await until(check, within, f"{self.name} ready")

    async def kill(self, after: float = 0.0) -> float:
        """SIGKILL: nothing of it runs any more; the wall-clock time of the kill.

        With `after`, the signal is sent that many seconds later by a thread of its own,
        not by this event loop: the loop also runs the fake Slack, and a kill sent as the
        loop wakes from a stall came in the same turn as the fake's catching up with the
        requests that had waited meanwhile (kills landed within milliseconds after the
        fake took a message, before the instance could hear so, far more often than at
        random moments; a real Slack and a real kill do not share a loop)."""
        assert self.process is not None
        pid = self.process.pid
        self.is_ready = False

        def now() -> float:
            if after:
                time.sleep(after)
            at = time.time()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return at

        at = await asyncio.to_thread(now) if after else now()
        await self.process.wait()
        return at

    async def stop(self) -> None:
        """SIGTERM, as a supervisor stops it; SIGKILL if it takes too long."""
        if self.process is not None and self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def held(self, http: aiohttp.ClientSession) -> frozenset[str] | None:
        """The duties this instance runs now, from its /metrics; None if it did not answer."""
        try:
            async with http.get(self.url("/metrics"), timeout=aiohttp.ClientTimeout(2)) as r:
                if r.status != 200:
                    return None
                body = await r.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        return frozenset(duty for duty, value in _HELD.findall(body) if float(value) == 1.0)

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Fleet:
    """The instances of one deployment, all on one database."""

    def __init__(self, count: int, env: Mapping[str, str], workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.instances = [Instance(slot, env, workdir) for slot in range(count)]
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.alive]

    def ready(self) -> list[Instance]:
        return [i for i in self.instances if i.alive and i.is_ready]

    async def start(self) -> None:
        """Every instance at once (they migrate once: the others wait, then find it done)."""
        for instance in self.instances:
            await instance.start()
        await asyncio.gather(*(i.ready(self.http) for i in self.instances))

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.instances))
        await self.http.close()

    def logs(self) -> str:
        return "\n".join(f"--- {i.name} (life {i.lives}):\n{i.tail()}" for i in self.instances)


# -- duty holdings --------------------------------------------------------------------


_LEASE_LOG = [
    """CREATE TABLE IF NOT EXISTS chaos_lease_log (
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        duty text NOT NULL, holder text, since timestamptz, expires_at timestamptz)""",
    """CREATE OR REPLACE FUNCTION chaos_lease_log() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO chaos_lease_log (duty) VALUES (OLD.duty);
        ELSE
            INSERT INTO chaos_lease_log (duty, holder, since, expires_at)
            VALUES (NEW.duty, NEW.holder, NEW.since, NEW.expires_at);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS chaos_lease_log ON duty_lease",
    """CREATE TRIGGER chaos_lease_log AFTER INSERT OR UPDATE OR DELETE ON duty_lease
    FOR EACH ROW EXECUTE FUNCTION chaos_lease_log()""",
]


@dataclass(frozen=True)
class Tenure:
    """One holder's hold of one duty: from the lease taken to its last renewal's end
    (or its release)."""

    duty: str
    holder: str
    start: float
    end: float

    @property
    def pid(self) -> int:
        """The holder's process id (an instance id is host:pid:random, bot/duties.py)."""
        return int(self.holder.split(":")[-2])


class LeaseLog:
    """Every change of the duty leases, on the database's clock (wall time, as the kills)."""

    def __init__(self, db: Database):
        self.db = db

    async def install(self) -> None:
        async with self.db.transaction() as session:
            for statement in _LEASE_LOG:
                await session.execute(text(statement))

    async def tenures(self) -> list[Tenure]:
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT duty, holder, extract(epoch FROM at), extract(epoch FROM since),"
                        " extract(epoch FROM expires_at) FROM chaos_lease_log ORDER BY at"
                    )
                )
            ).all()
        out: list[Tenure] = []
        current: dict[str, Tenure] = {}
        for duty, holder, at, since, expires in rows:
            held = current.get(duty)
            if holder is None:  # released: free at once
                if held is not None:
                    out.append(Tenure(duty, held.holder, held.start, float(at)))
                    del current[duty]
                continue
            if held is not None and held.holder == holder:
                current[duty] = Tenure(duty, holder, held.start, float(expires))
                continue
            if held is not None:
                out.append(held)
            current[duty] = Tenure(duty, holder, float(since), float(expires))
        return out + list(current.values())


def overlapping(tenures: Sequence[Tenure]) -> list[tuple[Tenure, Tenure]]:
    """Pairs of tenures of one duty, by two holders, that overlap in time."""
    found = []
    by_duty: dict[str, list[Tenure]] = {}
    for tenure in tenures:
        by_duty.setdefault(tenure.duty, []).append(tenure)
    for held in by_duty.values():
        held.sort(key=lambda t: t.start)
        for a, b in itertools.pairwise(held):
            if b.start < a.end and a.holder != b.holder:
                found.append((a, b))
    return found


@dataclass
class DutyWatch:
    """Samples which instances say they run each duty; two at once is an overlap."""

    fleet: Fleet
    every: float = 0.25
    #: (wall time, duty, slots) for each sample in which two instances ran one duty
    overlaps: list[tuple[float, str, list[int]]] = field(default_factory=list)
    #: slot → the duties it said it ran at the last sample it answered
    last: dict[int, frozenset[str]] = field(default_factory=dict)
    samples: int = 0

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            live = self.fleet.live()
            lives = [i.lives for i in live]
            answers = await asyncio.gather(*(i.held(self.fleet.http) for i in live))
            at = time.time()
            by_duty: dict[str, list[int]] = {}
            for instance, life, held in zip(live, lives, answers, strict=True):
                if held is None or instance.lives != life or not instance.alive:
                    continue  # killed meanwhile: what it said is of a life that ended
                self.last[instance.slot] = held
                for duty in held:
                    by_duty.setdefault(duty, []).append(instance.slot)
            self.overlaps += [(at, d, slots) for d, slots in by_duty.items() if len(slots) > 1]
            self.samples += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.every)

    def all_held(self, duties: Sequence[str]) -> bool:
        """Whether a live instance said it ran each of `duties` at its last sample."""
        return all(self.holder(duty) is not None for duty in duties)

    def holder(self, duty: str) -> Instance | None:
        for instance in self.fleet.live():
            if duty in self.last.get(instance.slot, frozenset()):
                return instance
        return None


@dataclass(frozen=True)
class Kill:
    at: float
    slot: int
    pid: int


@dataclass
class Chaos:
    """Kills an instance at random moments and restarts it after a random pause.

    One failure at a time, as the issue's "another instance takes it over" supposes:
    an instance is killed only while another one is ready, and after every duty has
    a holder again. Half the kills go to the holder of the timers (the duty failover
    is what is measured), the others to any instance, one still starting included.
    """

    fleet: Fleet
    watch: DutyWatch
    rng: random.Random
    duties: Sequence[str] = ("timers", "matrix", "feeds")
    every: tuple[float, float] = (2.0, 6.0)
    down: tuple[float, float] = (0.5, 3.0)
    kills: list[Kill] = field(default_factory=list)
    _restarts: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.rng.uniform(*self.every))
            live, ready = self.fleet.live(), self.fleet.ready()
            if done.is_set() or len(ready) < 2 or not self.watch.all_held(self.duties):
                continue
            holder = self.watch.holder("timers")
            if holder is not None and self.rng.random() < 0.5:
                victim = holder
            else:
                victim = self.rng.choice(live)
            assert victim.process is not None
            pid = victim.process.pid
            # the moment itself drawn apart from the loop's turns (Instance.kill)
            at = await victim.kill(after=self.rng.uniform(0.01, 2.0))
            self.watch.last.pop(victim.slot, None)
            self.kills.append(Kill(at, victim.slot, pid))
            self._restarts.append(asyncio.create_task(self._restart(victim)))
        await asyncio.gather(*self._restarts)

    async def _restart(self, instance: Instance) -> None:
        await asyncio.sleep(self.rng.uniform(*self.down))
        await instance.start()
        await instance.ready(self.fleet.http)


def failovers(kills: Sequence[Kill], tenures: Sequence[Tenure]) -> list[tuple[str, float]]:
    """For each duty whose holder was killed while its lease ran: (duty, seconds from the
    kill until another instance held it; infinite if none ever did)."""
    out = []
    for kill in kills:
        for held in tenures:
            if held.pid != kill.pid or not held.start <= kill.at <= held.end:
                continue
            after = [t.start for t in tenures if t.duty == held.duty and t.start > kill.at]
            out.append((held.duty, min(after, default=math.inf) - kill.at))
    return out


# -- the webhook, as a listening tool posts to it ---------------------------------------


def mention(run: str, n: int, teams: int) -> dict[str, Any]:
    """Mention `n` of the burst, tagged for one of `teams` teams (t0, t1, …)."""
    return {
        "source": SOURCE,
        "external_id": f"{run}-{n}",
        "author": {"name": f"Customer {n}", "handle": f"@customer{run}{n}"},
        "text": f"Order A{n:06d} arrived with the box crushed. Can someone help me?",
        "url": f"https://social.example/customer{n}/status/{run}{n}",
        "created_at": "2026-11-26T08:02:11Z",
        "lang": "en",
        "tags": [f"t{n % teams}"],
    }


@dataclass
class Intake:
    """Posts `count` mentions in batches to random live instances, as a load balancer
    would spread them; a batch whose instance died before answering (or answered 5xx)
    is posted again to another one, as a listening tool re-delivers."""

    fleet: Fleet
    rng: random.Random
    run: str
    teams: int
    batch: int = 20
    in_flight: int = 4
    #: seconds between two batches' first posts (0: as fast as answers come)
    interval: float = 0.0
    #: external id → the conversation numbers of every 2xx answer about it
    accepted: dict[str, list[int]] = field(default_factory=dict)
    #: posts that failed and were sent again
    resent: int = 0
    #: mentions a 200 answered as already stored (a re-delivery after a lost answer)
    duplicates: int = 0
    #: wall time of the first post and of the last 2xx answer
    began: float = 0.0
    ended: float = 0.0

    async def send(self, count: int) -> None:
        self.began = time.time()
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        for start in range(0, count, self.batch):
            queue.put_nowait(list(range(start, min(count, start + self.batch))))

        async def poster() -> None:
            while not queue.empty():
                numbers = queue.get_nowait()
                due = time.monotonic() + self.interval * self.in_flight
                await self._post(numbers)
                await asyncio.sleep(max(0.0, due - time.monotonic()))

        await asyncio.gather(*(poster() for _ in range(self.in_flight)))
        self.ended = time.time()

    async def _post(self, numbers: list[int]) -> None:
        items = [mention(self.run, n, self.teams) for n in numbers]
        body = json.dumps(items).encode()
        for _attempt in range(200):
            live = self.fleet.live()
            if not live:
                await asyncio.sleep(0.2)
                continue
            target = self.rng.choice(live)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Inloop-Timestamp": timestamp,
                "X-Inloop-Signature": sign(SECRET, timestamp, body),
            }
            try:
                async with self.fleet.http.post(
                    target.url("/v1/mentions"),
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(30),
                ) as resp:
                    status = resp.status
                    payload = await resp.json() if status < 300 else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                status, payload = 0, None
            if payload is not None and status in (200, 202):
                answers = payload["mentions"]
                assert len(answers) == len(items), payload
                for item, answer in zip(items, answers, strict=True):
                    self.accepted.setdefault(item["external_id"], []).append(
                        int(answer["conversation"])
                    )
                    self.duplicates += bool(answer["duplicate"])
                return
            assert status == 0 or status >= 500, f"{status} from {target.name}: {payload}"
            self.resent += 1
            await asyncio.sleep(0.1)
        raise AssertionError(f"mentions {numbers[0]}…: no instance accepted them")


# -- a company on Slack, and what it does during the burst ----------------------------


ADMIN = "UADMIN"
CLAIMANTS = tuple(f"UCLAIM{i}" for i in range(1, 6))
CARD = re.compile(r"^#(\d+) from ")
REMINDER = "Your dialogue time starts now"
CHECK_IN = "How did your dialogue time go"


def team_channel(k: int) -> str:
    return f"CTEAM{k:03d}"


@dataclass(frozen=True)
class Claim:
    uid: str
    number: int
    #: an instance acknowledged it to Slack
    acked: bool
    #: ✋ on the card (an event), else `/inloop claim N`
    reaction: bool
    #: the router's event id, and when it was sent (time.time())
    event_id: str
    at: float


@dataclass
class Company:
    """Teams with their channels on the fake Slack, people who claim, and people with
    a dialogue block that starts during the burst.

    `fake` is a tests.fake_slack.FakeSlack (typed loosely: bench/ loads tests/ helpers
    at run time)."""

    fake: Any
    rng: random.Random
    teams: int
    committers: int = 0
    triggers: int = 0
    claims: list[Claim] = field(default_factory=list)
    #: what `_index` has read of the fake: cards per number, where, when posted
    _cards: dict[int, int] = field(default_factory=dict)
    _where: dict[int, tuple[str, str]] = field(default_factory=dict)
    _posted_at: dict[int, list[float]] = field(default_factory=dict)
    _posts_read: int = 0
    _calls_read: int = 0

    def __post_init__(self) -> None:
        from fake_slack import user  # tests/ is on the path wherever this is used

        for uid in (ADMIN, *CLAIMANTS, *self.committer_ids):
            self.fake.users[uid] = user(uid, uid.title(), tz="UTC")

    @property
    def committer_ids(self) -> list[str]:
        return [f"UCOMMIT{i}" for i in range(1, self.committers + 1)]

    def trigger(self) -> str:
        self.triggers += 1
        return f"trig-{self.triggers}"

    async def command(self, uid: str, channel: str, line: str) -> bool:
        from fake_slack import command

        payload = command(uid, channel, line, self.trigger())
        acked: bool = await self.fake.deliver("slash_commands", payload, self.rng)
        return acked

    async def setup(self, within: float = 120.0) -> None:
        """`team add` in each team's channel (every one answered before the next)."""
        for k in range(self.teams):
            while not await self.command(ADMIN, team_channel(k), f"team add team{k} t{k}"):
                pass  # not acknowledged (an instance starting): typed again
            await until(self.answered(ADMIN, k + 1), within, f"team {k} added")

    async def commit(self, at: str) -> None:
        """Every committer commits a daily 15-minute block at `at` (HH:MM UTC)."""
        for uid in self.committer_ids:
            while not await self.command(uid, "CLOBBY", f"commit daily {at} 15m UTC"):
                pass
            await until(self.answered(uid, 1), 60, f"{uid} committed")

    def answered(self, uid: str, count: int) -> Callable[[], bool]:
        """Whether `uid` has been told `count` things privately."""
        return lambda: len(self.fake.told(uid)) >= count

    def _index(self) -> None:
        """Read the fake's new posts into the indexes below: the test's own event loop
        runs the fake Slack too, and rescanning thousands of posts at every poll would
        stall it, holding the instances' calls in flight far longer than Slack does."""
        channels = {team_channel(k) for k in range(self.teams)}
        posted = self.fake.posted
        for i in range(self._posts_read, len(posted)):
            if posted[i].channel in channels and (found := CARD.match(posted[i].text)):
                number = int(found[1])
                self._cards[number] = self._cards.get(number, 0) + 1
                self._where.setdefault(number, (posted[i].channel, posted[i].ts))
        self._posts_read = len(posted)
        calls, times = self.fake.calls, self.fake.call_times
        for i in range(self._calls_read, min(len(calls), len(times))):
            method, args = calls[i]
            found = CARD.match(str(args.get("text"))) if method == "chat.postMessage" else None
            if found:
                self._posted_at.setdefault(int(found[1]), []).append(times[i])
        self._calls_read = min(len(calls), len(times))

    def cards(self) -> dict[int, int]:
        """Conversation number → how many cards were posted for it in the team channels."""
        self._index()
        return dict(self._cards)

    def first_posts(self) -> dict[int, float]:
        """Conversation number → when its card was first posted (time.time() of the call)."""
        self._index()
        return {number: at[0] for number, at in self._posted_at.items()}

    def posted_at(self, number: int) -> float | None:
        return self.first_posts().get(number)

    def posts_of(self, number: int) -> list[float]:
        """When Slack was asked to post the card of #number, each time."""
        self._index()
        return list(self._posted_at.get(number, []))

    def card_of(self, number: int) -> tuple[str, str] | None:
        self._index()
        return self._where.get(number)

    async def claim(self, uid: str, number: int, *, reaction: bool) -> None:
        """`uid` claims #number: `/inloop claim N` (sent once, as Slack sends commands)
        or a ✋ on its card (an event: retried until acknowledged, and a third of the
        time delivered to two connections at once)."""
        from fake_slack import command, event

        where = self.card_of(number)
        assert where is not None
        channel, ts = where
        at = time.time()
        if reaction:
            body = {
                "type": "reaction_added",
                "user": uid,
                "reaction": "raised_hand",
                "item": {"type": "message", "channel": channel, "ts": ts},
                "event_ts": f"{time.time():.6f}",
            }
            event_id = f"Ev{self.trigger()}"
            copies = 2 if self.rng.random() < 1 / 3 else 1
            acked = await self.fake.deliver(
                "events_api", event(body, event_id), self.rng, copies=copies
            )
            event_id = f"slack:{event_id}"
        else:
            payload = command(uid, channel, f"claim {number}", self.trigger())
            acked = await self.fake.deliver("slash_commands", payload, self.rng)
            event_id = f"slack:command:{payload['trigger_id']}"
        self.claims.append(Claim(uid, number, acked, reaction, event_id, at))

    def answers_about(self, uid: str, number: int) -> list[str]:
        """What `uid` was told privately about #number."""
        mark = re.compile(rf"#{number}\b")
        return [said for said in self.fake.told(uid) if mark.search(said)]

    def told_count(self, uid: str, words: str) -> int:
        return sum(1 for said in self.fake.told(uid) if words in said)
