"""What differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def upsert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT (both dialects spell it the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def table(model: type[SQLModel]) -> Table:
    """A model's table, for Core statements: bulk inserts skip the ORM's per-row work."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]
