"""SQLite runs on the loop's thread: if an aiosqlite upgrade changes that, claims get slow."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from storage.database import Database


async def test_statements_run_on_the_event_loop_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    seen: list[int] = []
    try:
        async with db.transaction() as session:
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.create_function("whoami", 0, lambda: seen.append(threading.get_ident()))
            await session.execute(text("SELECT whoami()"))
    finally:
        await db.dispose()
    assert seen == [threading.get_ident()]
