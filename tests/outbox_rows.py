"""Waiting for the outbox's rows, read from the database (another process may write them)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from storage.database import Database
from storage.models import OutboxRow, OutboxState


async def until_rows(url: str, count: int, *where: Any, within: float, what: str) -> None:
    """Wait until exactly `count` outbox rows match `where`; fails after `within` seconds
    saying how many `what` there were."""
    db = Database(url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with db.read() as session:
                found = await session.scalar(
                    select(func.count()).select_from(OutboxRow).where(*where)
                )
            if found == count:
                return
            assert loop.time() < deadline, f"{found} {what}, not {count}"
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()


async def all_sent(url: str, within: float = 30.0) -> None:
    """Wait until every outbox row is booked (sent, or given up): nothing pending."""
    pending = col(OutboxRow.state) == OutboxState.PENDING
    await until_rows(url, 0, pending, within=within, what="outbox rows still pending")


async def stored_cards(url: str, count: int) -> None:
    """Wait until `count` cards are written to the outbox (by another process)."""
    cards = col(OutboxRow.conversation_id).is_not(None)
    await until_rows(url, count, cards, within=20, what="cards written")
