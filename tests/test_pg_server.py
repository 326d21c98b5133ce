"""The throwaway PostgreSQL server used by the tests really starts and isolates databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pg_server import PostgresServer


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def test_server_starts_quickly(pg: PostgresServer) -> None:
    assert pg.port > 0
    # Generous bound: it normally takes about a second; this only catches pathologies.
    assert pg.startup_seconds < 30, f"server took {pg.startup_seconds:.1f}s to start"


@pytest.mark.asyncio
async def test_connects_with_sqlalchemy(pg: PostgresServer) -> None:
    url = pg.create_database("smoke")
    assert url == f"postgresql+asyncpg://inloop@127.0.0.1:{pg.port}/smoke"
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            version = (await conn.execute(text("SHOW server_version"))).scalar_one()
            assert int(str(version).split(".")[0]) >= 12, version
            who = (await conn.execute(text("SELECT current_user, current_database()"))).one()
            assert tuple(who) == ("inloop", "smoke")
            assert (await conn.execute(text("SHOW fsync"))).scalar_one() == "off"
            assert int((await conn.execute(text("SHOW max_connections"))).scalar_one()) >= 200
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_databases_are_independent(pg: PostgresServer) -> None:
    url_a = pg.create_database()
    url_b = pg.create_database()
    assert url_a != url_b
    engine_a = create_async_engine(url_a)
    engine_b = create_async_engine(url_b)
    exists = text("SELECT to_regclass('public.only_in_a') IS NOT NULL")
    try:
        async with engine_a.begin() as conn:
            await conn.execute(text("CREATE TABLE only_in_a (id integer PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO only_in_a VALUES (1)"))
        async with engine_a.connect() as conn:
            assert (await conn.execute(exists)).scalar_one() is True
        async with engine_b.connect() as conn:
            assert (await conn.execute(exists)).scalar_one() is False
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


def test_stop_removes_everything() -> None:
    server = PostgresServer()
    with server:
        tmpdir = server.tmpdir
        assert (tmpdir / "data" / "postmaster.pid").exists()
    assert not tmpdir.exists()
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.url("x")
