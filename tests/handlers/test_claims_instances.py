"""Two instances on one PostgreSQL claiming the same conversation at the same moment.

A claim writes its change, its history line and reads what the card shows in one
statement on PostgreSQL (`storage.conversations.save_change`), after the row lock: a
claim that waited for the lock sees everything the holder committed, as the card's own
read after the lock did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import text

from harness import Chat
from pg_server import PostgresServer
from recording import field_value
from storage.database import Database
from storage.models import AdviceRequest, AdviceStatus

T = TypeVar("T")


@asynccontextmanager
async def two_instances(postgres: PostgresServer) -> AsyncIterator[tuple[Chat, Chat, str]]:
    """Two Inloop instances on one database, seen through one chat."""
    url = postgres.create_database()
    first = await Chat(url).start()
    second = Chat(url)
    second.platform = second.app.platforms["console"] = first.platform
    await second.start()
    try:
        yield first, second, url
    finally:
        await second.stop()
        await first.stop()


async def waiting_for_a_lock(db: Database, count: int) -> None:
    """Until `count` sessions of this database wait for a row lock (fails after 10 s)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while True:
            async with db.read() as session:
                if (await session.scalar(query) or 0) >= count:
                    return
            await asyncio.sleep(0.02)


async def within(step: Awaitable[T], seconds: float = 20) -> T:
    async with asyncio.timeout(seconds):
        return await step


async def claimed_lines(db: Database, number: int) -> list[str]:
    """Who each `claimed` line of #number's history names."""
    async with db.read() as session:
        rows = await session.execute(
            text(
                "SELECT person.ref FROM audit_log JOIN person ON person.id = audit_log.actor_id"
                " WHERE audit_log.conversation_id = :n AND audit_log.action = 'claimed'"
                " ORDER BY audit_log.id"
            ),
            {"n": number},
        )
        return [ref for (ref,) in rows]


async def test_two_instances_claiming_at_once_one_wins_the_other_is_told_who(
    postgres: PostgresServer,
) -> None:
    async with two_instances(postgres) as (first, second, url):
        await first.say("boss", "team add support")
        await first.say("ada", "teams")
        await second.say("bob", "teams")
        await first.mention("Giulia", "Il pacco non è arrivato")
        holder = Database(url)
        try:
            # Something else holds #1's row: both claims wait for it, then race for it.
            async with holder.transaction() as session:
                await session.execute(text("SELECT id FROM conversation WHERE id = 1 FOR UPDATE"))
                ada = asyncio.create_task(first.say("ada", "claim 1"))
                bob = asyncio.create_task(second.say("bob", "claim 1"))
                await waiting_for_a_lock(holder, 2)
            answers = {"Ada": await within(ada), "Bob": await within(bob)}
            await within(first.app.settle())
            await within(second.app.settle())
            lines = await claimed_lines(holder, 1)
        finally:
            await holder.dispose()

        winners = [name for name, said in answers.items() if said.startswith("#1 is yours")]
        assert len(winners) == 1, answers
        [winner] = winners
        [loser] = set(answers) - {winner}
        assert answers[loser] == f"#1 is already claimed by {winner}."
        assert lines == [f"console:{winner.lower()}"]
        card = first.platform.card(1)
        assert field_value(card, "Owner") == winner
        assert field_value(card, "Status") == "Claimed"
        assert len(first.platform.card_messages(1)) == 1


async def test_a_claim_that_waited_for_the_lock_shows_what_the_holder_added_on_its_card(
    postgres: PostgresServer,
) -> None:
    """The holder adds a request for advice (the card counts them) without changing the
    conversation's row, and commits while the claim waits: the claim's card shows it."""
    async with two_instances(postgres) as (first, second, url):
        await first.say("boss", "team add support")
        await second.say("bob", "teams")
        await first.mention("Giulia", "Il pacco non è arrivato")
        holder = Database(url)
        try:
            async with holder.transaction() as session:
                await session.execute(text("SELECT id FROM conversation WHERE id = 1 FOR UPDATE"))
                boss = await session.scalar(
                    text("SELECT id FROM person WHERE ref = 'console:boss'")
                )
                claim = asyncio.create_task(second.say("bob", "claim 1"))
                await waiting_for_a_lock(holder, 1)
                session.add(
                    AdviceRequest(
                        conversation_id=1,
                        seq=1,
                        asked_by=boss,
                        status=AdviceStatus.OPEN,
                        created_at=datetime.now(UTC),
                    )
                )
            assert (await within(claim)).startswith("#1 is yours")
            await within(second.app.settle())
            assert await claimed_lines(holder, 1) == ["console:bob"]
        finally:
            await holder.dispose()

        card = first.platform.card(1)
        assert field_value(card, "Owner") == "Bob"
        assert field_value(card, "Advice") == "1 open, 0 answered"
