"""Alembic, driven from code: `inloop run` and `inloop db upgrade` both call `upgrade`.

Several instances may start together on one PostgreSQL. Each would find the
schema missing and create it, and the losers' CREATE TABLEs collide in
PostgreSQL's catalogue. So the upgrade runs under a transaction-scoped advisory
lock: the first instance migrates, the others wait for its commit and then find
the revision current. On SQLite, `BEGIN IMMEDIATE` already serialises writers.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from storage.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"

#: the advisory lock key the migrations run under: any fixed number, Inloop's own
MIGRATION_LOCK = 0x1D100B


class SchemaTooNew(Exception):
    """The database was migrated by a newer Inloop than this one: nothing is changed."""

    def __init__(self, revision: str):
        super().__init__(
            f"the database is at revision {revision}, which this version of Inloop does "
            "not know: it was upgraded by a newer Inloop. Run the newer version."
        )
        self.revision = revision


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`; raises SchemaTooNew if the database is ahead."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = alembic_config()
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and not _known(config, current):
            raise SchemaTooNew(current)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


def _known(config: Config, revision: str) -> bool:
    return any(s.revision == revision for s in ScriptDirectory.from_config(config).walk_revisions())


async def current_revision(db: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)
