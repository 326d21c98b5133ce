"""Duty leases (bot/duties.py) and what `inloop status` reads: leases and the outbox's backlog.

PostgreSQL only for the leases themselves: the statements use its clock (`now()`),
so that instances whose clocks disagree still agree on when a lease ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, exists, func, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table
from storage.models import DutyLease, InstanceLease, OutboxRow, OutboxState

#: an instance's liveness row is kept this long after it ended (for `inloop status`)
DEAD_KEPT = timedelta(hours=1)


@dataclass(frozen=True)
class Lease:
    duty: str
    holder: str
    since: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Backlog:
    """The outbox rows of one platform waiting to be delivered."""

    platform: str
    pending: int
    oldest: datetime


async def take(
    session: AsyncSession, duties: Iterable[str], holder: str, lease: timedelta
) -> set[str]:
    """Renew the leases `holder` has and take those that are free or expired, in one
    statement; returns the duties `holder` holds now (until now() + `lease`).

    ON CONFLICT DO UPDATE locks the row and checks the WHERE on its latest version, so
    two instances taking one expired lease at once cannot both get it.
    """
    names = sorted(set(duties))  # one lock order for every instance: no deadlock
    if not names:
        return set()
    leases = table(DutyLease)
    now = func.now()
    insert = postgresql.insert(leases).values(
        [{"duty": d, "holder": holder, "since": now, "expires_at": now + lease} for d in names]
    )
    new = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[leases.c.duty],
        set_={
            "holder": new.holder,
            "since": case((leases.c.holder == new.holder, leases.c.since), else_=new.since),
            "expires_at": new.expires_at,
        },
        where=or_(leases.c.holder == new.holder, leases.c.expires_at < now),
    ).returning(leases.c.duty)
    return set((await session.execute(statement)).scalars())


async def alive(session: AsyncSession, instance: str, lease: timedelta) -> None:
    """Renew `instance`'s own liveness until now() + `lease` (taken if it had ended), and
    forget instances that ended long ago."""
    rows = table(InstanceLease)
    now = func.now()
    insert = postgresql.insert(rows).values(instance=instance, since=now, expires_at=now + lease)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[rows.c.instance], set_={"expires_at": insert.excluded.expires_at}
        )
    )
    await session.execute(
        delete(InstanceLease).where(col(InstanceLease.expires_at) < now - DEAD_KEPT)
    )


def gone(instance: Any) -> ColumnElement[bool]:
    """Whether the instance named by `instance` is no longer alive: its liveness row has
    ended, or is not there (PostgreSQL: on the database's clock, like the leases)."""
    lease = table(InstanceLease)
    return ~exists().where(lease.c.instance == instance, lease.c.expires_at > func.now())


async def release(session: AsyncSession, holder: str, duties: Sequence[str] | None = None) -> None:
    """Give leases up (a clean stop, a duty that failed to start): free at once."""
    statement = delete(DutyLease).where(col(DutyLease.holder) == holder)
    if duties is not None:
        statement = statement.where(col(DutyLease.duty).in_(duties))
    await session.execute(statement)


async def leases(session: AsyncSession) -> tuple[list[Lease], datetime]:
    """Every lease row, and the database's time (to tell which have expired)."""
    rows = (await session.scalars(select(DutyLease).order_by(col(DutyLease.duty)))).all()
    now = await session.scalar(select(func.now()))
    assert now is not None
    return [Lease(r.duty, r.holder, r.since, r.expires_at) for r in rows], now


async def backlog(session: AsyncSession) -> list[Backlog]:
    """Per platform: how many outbox rows are pending, and since when the oldest."""
    rows = await session.execute(
        select(col(OutboxRow.platform), func.count(), func.min(col(OutboxRow.created_at)))
        .where(col(OutboxRow.state) == OutboxState.PENDING)
        .group_by(col(OutboxRow.platform))
        .order_by(col(OutboxRow.platform))
    )
    return [Backlog(platform, count, oldest) for platform, count, oldest in rows.all()]
