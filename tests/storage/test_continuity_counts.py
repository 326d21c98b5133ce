"""The continuity counts (migration 0018a) under writers of several instances at once."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from pg_server import PostgresServer
from storage.database import Database
from storage.migrate import upgrade
from storage.models import Conversation, Team

MONDAY = datetime(2026, 11, 16, 9, tzinfo=UTC)


async def _returning(conn: AsyncConnection, team: int, key: str) -> None:
    """A returning customer's new conversation for `team`, as routing writes one."""
    await conn.execute(
        insert(Conversation).values(
            source="email",
            conversation_key=key,
            customer_name="Giulia",
            team_id=team,
            created_at=MONDAY,
            updated_at=MONDAY,
            returning_customer=True,
        )
    )


async def test_two_instances_counting_two_teams_in_opposite_orders_both_commit(
    postgres: PostgresServer,
) -> None:
    """Two transactions each write a returning customer's conversation for team A and
    for team B, in the opposite order, at the same time (two instances routing a group
    each): both commit and both are counted, where the second counter row each wanted
    was the other's, and PostgreSQL failed one of them as a deadlock. The triggers are
    made immediate here so that each counter row is written when its conversation is
    (at commit they are written the same way, in the same order, only later)."""
    db = Database(postgres.create_database())
    try:
        await upgrade(db)
        async with db.transaction() as session:
            for name in ("sales", "support"):
                session.add(Team(name=name, channel=f"console:{name}", created_at=MONDAY))
            await session.flush()
            found = await session.execute(text("SELECT name, id FROM team"))
            ids: dict[str, int] = {str(name): int(id_) for name, id_ in found}
        sales, support = ids["sales"], ids["support"]
        first_written = asyncio.Event()
        other_tried = asyncio.Event()

        async def instance(name: str, teams: tuple[int, int]) -> None:
            async with db.engine.connect() as conn, conn.begin():
                await conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
                if name == "second":
                    await first_written.wait()
                await _returning(conn, teams[0], f"{name}-1")
                if name == "first":
                    first_written.set()
                    # the other writes its first row meanwhile (or waits to)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(other_tried.wait(), 0.5)
                else:
                    other_tried.set()
                await _returning(conn, teams[1], f"{name}-2")

        await asyncio.wait_for(
            asyncio.gather(
                instance("first", (sales, support)), instance("second", (support, sales))
            ),
            30,
        )

        async with db.read() as session:
            counted = (
                await session.execute(
                    text(
                        "SELECT team_id, conversations FROM continuity_count "
                        "WHERE conversations <> 0 ORDER BY team_id"
                    )
                )
            ).all()
        assert sorted(counted) == sorted([(sales, 2), (support, 2)])
    finally:
        await db.dispose()
