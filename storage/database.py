"""The engine and the one way to open a transaction.

SQLite allows a single writer. Rather than let concurrent transactions collide
and retry on "database is locked", writes are serialised in-process with a lock
and start with `BEGIN IMMEDIATE`, which takes the write lock up front (so two
processes, e.g. `inloop run` and `inloop db upgrade`, wait for each other instead
of failing half-way). PostgreSQL needs neither: atomic conditional UPDATEs do the
work there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite_inline

#: seconds a PostgreSQL session may sit idle inside a transaction before the server ends
#: it, and lets its row locks go. An instance cut off mid-transaction (its network lost)
#: or frozen (kill -STOP, a paused VM) keeps its connection open in the server's eyes:
#: without a bound its locks (a conversation being claimed, outbox rows being booked)
#: held every other instance's work on those rows for hours (TCP keepalive) or for
#: good. Inloop's transactions wait on purpose only for a platform's look-up of someone
#: new (`Directory.named` lifts the bound for it), but a busy process leaves them idle
#: too: its event loop taken by other work, a first import (alembic's scripts, the
#: chart's library). The instance lease (6 s) was too short for that on a loaded
#: machine (the test suite at load 8 had migrations and a digest cut off), so the
#: bound is half a minute: rows a lost instance locked wait that long, not for good.
IDLE_IN_TRANSACTION = 30.0
#: seconds a transaction may wait on purpose for a platform's answer (`wait_in`): above
#: the longest a platform's HTTP client waits for one (Slack's 30 s, Matrix's 60 s)
PLATFORM_WAIT = 90.0

T = TypeVar("T")


class NoAnswer(Exception):
    """The database took the connection, or had taken it, and then said nothing."""


class Database:
    def __init__(
        self, url: str, *, pool_size: int = 20, server_settings: Mapping[str, str] | None = None
    ):
        """`server_settings`: PostgreSQL settings for every connection of this pool (over
        the defaults: the `IDLE_IN_TRANSACTION` bound)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = make_url(url).database or ":memory:"
            # Every transaction here commits or rolls back, so the pool's extra
            # ROLLBACK on check-in is only a wasted round trip.
            options: dict[str, Any] = {
                "pool_reset_on_return": None,
                "async_creator": partial(sqlite_inline.connect, path),
            }
            self.engine: AsyncEngine = create_async_engine(url, **options)
            _sqlite_pragmas(self.engine, immediate=True)
            # Readers need no write lock in WAL mode: a second engine that begins deferred.
            self._read_engine = create_async_engine(url, **options)
            _sqlite_pragmas(self._read_engine, immediate=False)
        else:
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                connect_args={
                    "connection_class": _BoundedClose,
                    "server_settings": {
                        "idle_in_transaction_session_timeout": _ms(IDLE_IN_TRANSACTION),
                        **(server_settings or {}),
                    },
                },
            )
            self._read_engine = self.engine
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Sessions whose every statement commits on its own (`at_once_session`): the
        # same pool, its connections handed out in AUTOCOMMIT (asyncpg then sends no
        # BEGIN and no COMMIT; the level is set back when the connection returns).
        self._at_once_sessions = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        # Reads on PostgreSQL too: under READ COMMITTED every statement sees its own
        # snapshot, in a transaction or not, so a read-only transaction only added a
        # BEGIN and a COMMIT round trip to every read (the outbox's passes, the people's
        # look-ups), and could not be left idle in a transaction by a lost instance.
        self._readers = (
            async_sessionmaker(self._read_engine, expire_on_commit=False)
            if self.is_sqlite
            else self._at_once_sessions
        )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        lock: AbstractAsyncContextManager[Any] = self._write_lock or nullcontext()
        async with lock, self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def at_once(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose every statement commits on its own: on PostgreSQL no BEGIN
        and COMMIT round trips, for a write that must be durable as soon as possible (a
        message booked as sent right after it went). On SQLite, one transaction."""
        if self.is_sqlite:
            async with self.transaction() as session:
                yield await session.connection()
            return
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def at_once_session(self) -> AsyncIterator[AsyncSession]:
        """`at_once` for ORM statements (an UPDATE … RETURNING of rows as objects): on
        PostgreSQL each statement is its own transaction, one round trip; on SQLite, one
        transaction. Only for work that is one statement, or whose statements need not
        stand or fall together."""
        if self.is_sqlite:
            async with self.transaction() as session:
                yield session
            return
        async with self._at_once_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work: never waits for, nor blocks, the writers. Each of its
        statements sees what was committed when it began (SQLite: when the first began;
        PostgreSQL: no transaction, as READ COMMITTED gives nothing more)."""
        async with self._readers() as session, session.begin():
            yield session

    @property
    def reader_engine(self) -> AsyncEngine:
        """The engine `read` runs on: on SQLite a second one, on PostgreSQL `engine`."""
        return self._read_engine

    async def ping(self) -> bool:
        try:
            async with self._read_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def while_answering(self, work: Awaitable[T], within: float) -> T:
        """`work` on this database, given up (NoAnswer) once the database stops answering:
        while it runs, a `SELECT 1` on a connection of its own comes back within `within`
        seconds, asked at once and then every `within` seconds. Work that is slow (a
        large migration, or the migration lock another instance holds) takes its time; a
        database that takes connections and says nothing (a network gone silent, a
        frozen server or proxy) ends it within `within` (twice that if it goes silent
        later), where it waited for good (a pooled connection) or for asyncpg's minute (a
        new one)."""
        task = asyncio.ensure_future(work)
        if self.is_sqlite:  # a file: it answers or it fails
            return await task
        try:
            while True:
                ping = asyncio.ensure_future(self.ping())
                either: set[asyncio.Future[Any]] = {task, ping}
                answered, _ = await asyncio.wait(either, timeout=within)
                if task in answered:
                    return task.result()
                if ping not in answered:
                    ping.cancel()
                    raise NoAnswer(f"it did not answer within {within:g} s")
                # it answers: the work is only slow
                done, _ = await asyncio.wait({task}, timeout=within)
                if done:
                    return task.result()
        finally:
            # left behind, not awaited: its connection's goodbye is bounded (CLOSE_WITHIN)
            task.cancel()

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self._read_engine.dispose()


async def wait_in(session: AsyncSession, seconds: float = PLATFORM_WAIT) -> None:
    """The transaction is about to wait up to `seconds` on purpose (a platform's answer):
    the server's idle bound is lifted to that, for this transaction only."""
    if session.get_bind().dialect.name == "postgresql":
        bound = _ms(seconds)  # a number: SET takes no bound parameter
        await session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {bound}"))


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


#: seconds a PostgreSQL connection's goodbye may take before its socket is just closed
CLOSE_WITHIN = 2.0


class _BoundedClose(asyncpg.Connection):  # type: ignore[misc]  # asyncpg has no types
    """A connection whose graceful close ends within `CLOSE_WITHIN` seconds.

    asyncpg's `close()` says goodbye (Terminate) and waits for the server to close the
    socket, with no bound by default; SQLAlchemy calls it so when the pool lets a
    connection go (an overflow connection handed back, `dispose`). If the network has
    gone silent, or the server's close never arrives, that wait never ended: it held
    an instance's start up for good (tests/test_duties.py, the proxy cut). After the
    bound, asyncpg aborts the socket, which is all a goodbye is worth by then.
    """

    async def close(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 (asyncpg's)
        with contextlib.suppress(TimeoutError):
            await super().close(timeout=CLOSE_WITHIN if timeout is None else timeout)


def _sqlite_pragmas(engine: AsyncEngine, *, immediate: bool) -> None:
    # The documented SQLAlchemy recipe: take over BEGIN from the driver so that we
    # can say IMMEDIATE, and set the pragmas on every new connection.
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
