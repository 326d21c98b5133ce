"""Migrations bring an empty database to the current schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.database import Database
from storage.migrate import alembic_config, current_revision, upgrade

TABLES = {
    "advice_message",
    "advice_request",
    "alembic_version",
    "audit_log",
    "away",
    "commitment",
    "conversation",
    "dialogue_session",
    "feed",
    "matrix_account",
    "matrix_direct_room",
    "mention",
    "outbox",
    "person",
    "processed_event",
    "role_channel",
    "team",
    "watched_channel",
}


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_an_empty_database_is_migrated_to_the_current_schema(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await current_revision(db) is None
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert await current_revision(db) == head
        await upgrade(db)  # a second start changes nothing and does not fail
        assert await current_revision(db) == head
    finally:
        await db.dispose()


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    """A model changed without a migration would break the first user who upgrades."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401

    db = Database(database_url)
    try:
        await upgrade(db)

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            return list(compare_metadata(context, SQLModel.metadata))

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()
