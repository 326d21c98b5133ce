"""`/healthz` and `/readyz`, asked over HTTP the way a load balancer asks: ready while
the database answers at the right revision and every platform is connected, and
otherwise 503 with the reason."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import App
from bot.clock import utc_now
from bot.config import load_settings
from bot.platforms.matrix.adapter import MatrixPlatform, matrix_settings
from fake_slack import FakeSlack
from harness import Chat
from matrix_people import unique
from pg_server import PostgresServer
from slack_chat import SlackChat
from storage.database import Database
from storage.migrate import current_revision
from synapse_server import SynapseServer

SECRET = "test-secret-0123456789"


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


def ports(chat: Chat) -> list[str]:
    """The webhook's port and METRICS_PORT: both answer the probes."""
    app = chat.app
    assert app.webhook is not None and app.ops_server is not None
    return [f"http://127.0.0.1:{p}" for p in (app.webhook.port, app.ops_server.port)]


@pytest.fixture
async def chat(database_url: str) -> AsyncIterator[Chat]:
    running = Chat(database_url, INTAKE_SECRET=SECRET, INTAKE_PORT="0", METRICS_PORT="0")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_ready_says_each_check_on_both_ports(chat: Chat) -> None:
    for base in ports(chat):
        assert await get(f"{base}/healthz") == (200, {"status": "ok"})
        assert await get(f"{base}/readyz") == (
            200,
            {
                "status": "ready",
                "checks": {"database": "ok", "migrations": "ok", "platform console": "ok"},
            },
        )


async def test_a_disconnected_platform_makes_the_instance_not_ready(chat: Chat) -> None:
    chat.platform.connected = False

    for base in ports(chat):
        status, body = await get(f"{base}/readyz")
        assert status == 503
        assert body["status"] == "not ready"
        assert body["reasons"] == ["platform console: not connected"]
        assert await get(f"{base}/healthz") == (200, {"status": "ok"})  # alive all the same

    chat.platform.connected = True
    assert (await get(f"{ports(chat)[1]}/readyz"))[0] == 200


async def test_a_database_behind_the_code_is_not_ready_and_a_newer_one_is(chat: Chat) -> None:
    head = await current_revision(chat.app.db)
    base = ports(chat)[0]

    await _set_revision(chat, "0010")
    status, body = await get(f"{base}/readyz")
    assert status == 503
    assert body["reasons"] == [
        f"migrations: the database is at 0010, behind {head}: run `inloop db upgrade`"
    ]

    # A newer Inloop migrated it (a roll-out): this older instance keeps serving.
    await _set_revision(chat, "9999_from_a_newer_inloop")
    assert (await get(f"{base}/readyz"))[0] == 200


async def _set_revision(chat: Chat, revision: str) -> None:
    async with chat.app.db.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


async def test_a_dropped_database_is_not_ready_and_says_why(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    name = make_url(url).database
    chat = Chat(url, INTAKE_SECRET=SECRET, INTAKE_PORT="0", METRICS_PORT="0")
    await chat.start()
    try:
        assert (await get(f"{ports(chat)[0]}/readyz"))[0] == 200
        admin = create_async_engine(postgres.url(), isolation_level="AUTOCOMMIT")
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()

        for base in ports(chat):
            status, body = await get(f"{base}/readyz")
            assert status == 503
            assert body["checks"]["database"].startswith("unreachable (")
            assert f'database "{name}" does not exist' in body["checks"]["database"]
            assert body["checks"]["migrations"] == "unknown (no database)"
            assert await get(f"{base}/healthz") == (200, {"status": "ok"})
    finally:
        await chat.stop()


async def test_a_sqlite_file_gone_is_not_ready(tmp_path: Path) -> None:
    database = tmp_path / "inloop.db"
    chat = Chat(f"sqlite+aiosqlite:///{database}", METRICS_PORT="0")
    await chat.start()
    try:
        assert chat.app.ops_server is not None
        base = f"http://127.0.0.1:{chat.app.ops_server.port}"
        assert (await get(f"{base}/readyz"))[0] == 200
        # The directory goes (a volume unmounted): new connections cannot open the file.
        # Moved away at once, not removed file by file: a worker reconnecting meanwhile
        # would make a new file in it and the removal fail.
        await chat.app.db.dispose()
        gone = tmp_path.with_name(tmp_path.name + "-gone")
        await asyncio.to_thread(tmp_path.rename, gone)
        await asyncio.to_thread(shutil.rmtree, gone, ignore_errors=True)

        status, body = await get(f"{base}/readyz")

        assert status == 503
        assert body["checks"]["database"] == (
            "unreachable (OperationalError: unable to open database file)"
        )
    finally:
        await chat.stop()


async def test_slack_is_ready_while_its_socket_is_open(database_url: str) -> None:
    fake = await FakeSlack().start()
    slack = await SlackChat(database_url, fake, METRICS_PORT="0").start()
    try:
        assert slack.app.ops_server is not None
        readyz = f"http://127.0.0.1:{slack.app.ops_server.port}/readyz"
        status, body = await get(readyz)
        assert (status, body["checks"]["platform slack"]) == (200, "ok")

        await fake.stop()  # Slack is gone: the socket closes and cannot reopen

        # the client notices the closed socket at once or at its next ping
        deadline = asyncio.get_running_loop().time() + 10
        while (answer := await get(readyz))[0] == 200:
            assert asyncio.get_running_loop().time() < deadline, "still ready with Slack gone"
            await asyncio.sleep(0.05)
        status, body = answer
        assert status == 503
        assert body["reasons"] == ["platform slack: not connected"]
    finally:
        await slack.stop()


async def test_matrix_is_ready_while_its_syncs_succeed(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    user_id, password = synapse.register(unique("inloop"))
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}",
            "MATRIX_HOMESERVER": synapse.url,
            "MATRIX_USER_ID": user_id,
            "MATRIX_PASSWORD": password,
            "MATRIX_STORE_DIR": str(tmp_path / "store"),
            "METRICS_PORT": "0",
        }
    )
    db = Database(settings.database_url)
    # Long polls of a second (not 30): a homeserver that stopped answering shows in 7 s.
    matrix = MatrixPlatform(replace(matrix_settings(settings), poll_ms=1000), db, utc_now)
    app = App(settings, {"matrix": matrix}, db=db)
    await app.start()
    try:
        assert app.ops_server is not None
        readyz = f"http://127.0.0.1:{app.ops_server.port}/readyz"
        status, body = await get(readyz)
        assert (status, body["checks"]["platform matrix"]) == (200, "ok")

        await asyncio.to_thread(synapse.stop)
        try:
            status, body = await _until_not_ready(readyz, within=20)
            assert body["reasons"] == ["platform matrix: not connected"]
        finally:
            await asyncio.to_thread(synapse.start)
        # back once a sync succeeds again (the adapter's retries wait at most 60 s)
        await _until_ready(readyz, within=75)
    finally:
        await app.stop()


async def _until_not_ready(url: str, within: float) -> tuple[int, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (answer := await get(url))[0] == 200:
        assert loop.time() < deadline, f"still ready after {within} s"
        await asyncio.sleep(0.2)
    return answer


async def _until_ready(url: str, within: float) -> tuple[int, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (answer := await get(url))[0] != 200:
        assert loop.time() < deadline, f"not ready again after {within} s: {answer}"
        await asyncio.sleep(0.2)
    return answer
