"""Fixtures: every storage-touching test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness import Chat
from pg_server import PostgresServer
from synapse_server import SynapseServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # No skip: a machine without PostgreSQL fails here with the server's own words.
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
async def chat(database_url: str) -> AsyncIterator[Chat]:
    running = await Chat(database_url).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseServer]:
    # Started once: it takes seconds. No skip: if it cannot start, the error carries its log.
    with SynapseServer() as server:
        yield server
