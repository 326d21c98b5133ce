"""`/healthz`, `/readyz` and `/metrics`: what a load balancer and Prometheus ask.

    GET /healthz   200 {"status": "ok"} while the process answers (liveness: restart
                   it when this fails). It reads nothing: a database outage is not a
                   reason to restart Inloop.
    GET /readyz    200 when this instance can do its work, else 503; the body says
                   each check and, when not ready, the reasons:
                     database     reachable (one read, bounded by READY_TIMEOUT)
                     migrations   the database is at this code's revision (or at a newer
                                  one: during a roll-out the old instances keep serving)
                     platforms    each chat platform connected (Platform.connected)
    GET /metrics   the Prometheus text format (bot/metrics.py), when metrics are on

They are served on the intake webhook's port (bot/intake/webhook.py) and on
METRICS_PORT (`OpsServer`, below).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from bot.metrics import Metrics
from bot.platform import Platform
from storage.database import Database
from storage.migrate import alembic_config

log = logging.getLogger(__name__)

#: seconds the readiness check gives the database (a dead PostgreSQL host would
#: otherwise hold the probe for the driver's own minute)
READY_TIMEOUT = 3.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    #: each check: "ok", or what is wrong
    checks: Mapping[str, str] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [f"{name}: {state}" for name, state in self.checks.items() if state != "ok"]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ready" if self.ready else "not ready"}
        if not self.ready:
            body["reasons"] = self.reasons
        body["checks"] = dict(self.checks)
        return body


class Health:
    """Answers "is this instance ready?" from the database and the platforms."""

    def __init__(
        self,
        db: Database,
        platforms: Mapping[str, Platform],
        *,
        runs_here: Callable[[str], bool] = lambda platform: True,
    ):
        self._db = db
        self._platforms = platforms
        #: whether this instance is meant to run a platform now (one that is a duty, held
        #: by another instance, is not this one's to be connected)
        self._runs_here = runs_here
        # Read once: the code's revisions do not change while it runs.
        scripts = ScriptDirectory.from_config(alembic_config())
        self._head = scripts.get_current_head()
        self._known = {s.revision for s in scripts.walk_revisions()}

    async def ready(self) -> Readiness:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                revision = await self._revision()
        except TimeoutError:
            checks["database"] = f"did not answer within {READY_TIMEOUT:g} s"
            checks["migrations"] = "unknown (no database)"
        except Exception as exc:
            checks["database"] = f"unreachable ({_reason(exc)})"
            checks["migrations"] = "unknown (no database)"
        else:
            checks["database"] = "ok"
            checks["migrations"] = self._migrations(revision)
        for name, platform in self._platforms.items():
            if self._runs_here(name):
                checks[f"platform {name}"] = "ok" if platform.connected else "not connected"
        return Readiness(all(state == "ok" for state in checks.values()), checks)

    async def _revision(self) -> str | None:
        try:
            return await self._read_revision()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection had died (a server restart): the pool dropped them all;
            # whether the database answers is for a fresh connection to say.
            return await self._read_revision()

    async def _read_revision(self) -> str | None:
        # The read engine: on SQLite it begins deferred, so the probe never takes (nor
        # waits for) the write lock.
        async with self._db.read() as session:
            connection = await session.connection()
            return await connection.run_sync(_current_revision)

    def _migrations(self, revision: str | None) -> str:
        if revision == self._head:
            return "ok"
        if revision is None:
            return f"the database has no schema: run `inloop db upgrade` (to {self._head})"
        if revision not in self._known:
            # A newer Inloop migrated it (a roll-out): this one keeps serving until it is
            # replaced, as the migrations keep old code working (README, "Rolling out").
            return "ok"
        return f"the database is at {revision}, behind {self._head}: run `inloop db upgrade`"


class OpsRoutes:
    """The three routes, for whichever aiohttp application serves them."""

    def __init__(self, health: Health, metrics: Metrics | None):
        self._health = health
        #: None: metrics are off, /metrics is not served
        self._metrics = metrics

    @property
    def paths(self) -> tuple[str, ...]:
        return ("/healthz", "/readyz", *(("/metrics",) if self._metrics else ()))

    def add_to(self, app: web.Application, **route: Any) -> None:
        """Route the GETs (and HEADs) of `paths`; `route`: aiohttp's options for each."""
        app.router.add_get("/healthz", self.healthz, **route)
        app.router.add_get("/readyz", self.readyz, **route)
        if self._metrics is not None:
            app.router.add_get("/metrics", self.metrics, **route)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = await self._health.ready()
        return web.json_response(readiness.body(), status=200 if readiness.ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        assert self._metrics is not None
        body = await self._metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class OpsServer:
    """The routes on a port of their own (METRICS_HOST:METRICS_PORT)."""

    def __init__(self, routes: OpsRoutes, *, host: str = "127.0.0.1", port: int = 9464):
        self._routes = routes
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (tests ask for port 0: any free one)."""
        return self._port

    async def start(self) -> None:
        app = web.Application()
        self._routes.add_to(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.create_server((self._host, self._port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        log.info("metrics and health on http://%s:%d/metrics", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _reason(exc: BaseException) -> str:
    """The driver's error and the first line of its message (which names no password)."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    inner = inner.__cause__ or inner  # SQLAlchemy's asyncpg adapter wraps asyncpg's own
    text = str(inner).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(inner).__name__}: {first}"[:200] if first else type(inner).__name__
