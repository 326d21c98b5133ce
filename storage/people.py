"""Queries about people."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Person, Role


async def find(session: AsyncSession, ref: str) -> Person | None:
    return (await session.scalars(_find_statement(), {"ref": ref})).first()


@cache
def _find_statement() -> Select[Person]:
    # Built once: every sender is looked up, and building the statement cost more than
    # running it (bench.slack's profile).
    return select(Person).where(col(Person.ref) == bindparam("ref"))


async def names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(col(Person.id), col(Person.display_name)).where(col(Person.id).in_(ids))
    )
    return {row[0]: row[1] for row in rows if row[0] is not None}


async def count_admins(session: AsyncSession) -> int:
    result = await session.scalar(
        select(func.count()).select_from(Person).where(col(Person.role) == Role.ADMIN)
    )
    return int(result or 0)


async def with_role(session: AsyncSession, role: Role) -> list[Person]:
    return list((await session.scalars(select(Person).where(col(Person.role) == role))).all())
