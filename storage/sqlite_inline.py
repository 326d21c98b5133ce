"""SQLite statements run on the event loop's own thread.

aiosqlite hands every cursor operation to a worker thread and waits for the
answer: four thread hops per statement. On a small machine a hop costs more than
the statement itself (an indexed SQLite query takes microseconds; a WAL commit
with synchronous=NORMAL does not fsync), and a claim is ~20 statements, so the
hops were most of a claim's latency. Here the same aiosqlite connection runs each
operation inline instead.

The price: a statement blocks the loop while it runs. Inloop keeps that short:
its own writers are serialised by an asyncio lock (storage.database), so the
only wait on SQLite's lock is another process (`inloop db upgrade` run while the
bot runs), bounded by busy_timeout. Deployments with heavy load use PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite


class InlineConnection(aiosqlite.Connection):
    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Same contract as aiosqlite's, minus the queue to its thread.
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def connect(path: str) -> InlineConnection:
    """For `create_async_engine(..., async_creator=...)`."""

    def connector() -> sqlite3.Connection:
        # Opened by aiosqlite's thread, used from the loop's: hence check_same_thread.
        return sqlite3.connect(path, check_same_thread=False)

    connection = InlineConnection(connector, iter_chunk_size=64)
    # As SQLAlchemy does for aiosqlite: an engine never disposed must not hang the exit.
    connection._thread.daemon = True
    return connection
