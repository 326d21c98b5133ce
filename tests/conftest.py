"""Fixtures: every storage-touching test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fake_slack import FakeSlack
from harness import Chat
from matrix_people import MatrixPerson, People
from pg_server import PostgresServer
from slack_chat import SlackChat
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


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """A fake Slack on a free port (tests/fake_slack.py)."""
    server = await FakeSlack().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def slack(database_url: str, fake: FakeSlack) -> AsyncIterator[SlackChat]:
    """Inloop connected to the fake Slack, on the test's database."""
    chat = await SlackChat(database_url, fake).start()
    try:
        yield chat
    finally:
        await chat.stop()


@pytest.fixture
async def people(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[People]:
    """Matrix people on the test's Synapse, each started by name; all stopped after."""
    started: list[MatrixPerson] = []

    async def make(name: str) -> MatrixPerson:
        person = await MatrixPerson(synapse, name, tmp_path / "people" / name).start()
        started.append(person)
        return person

    yield make
    for person in started:
        await person.stop()
