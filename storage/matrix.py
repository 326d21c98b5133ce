"""The Matrix adapter's own state: its login, its sync point, its encryption keys, and
its direct rooms."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.dialect import table, upsert
from storage.models import MatrixAccount, MatrixDirectRoom, MatrixKey

#: one key: (kind, name), see MatrixKey
KeyName = tuple[str, str]
#: rows per statement when many keys change at once (an import, a large key query)
_CHUNK = 500
#: the kind of the row that notes the latest run's generation
_RUN = "run"


async def account(session: AsyncSession, user_id: str) -> MatrixAccount | None:
    return await session.get(MatrixAccount, user_id)


async def save_login(
    session: AsyncSession, user_id: str, device_id: str, access_token: str, now: datetime
) -> None:
    row = await session.get(MatrixAccount, user_id)
    if row is None or row.device_id != device_id:
        # A new device has no sync point of its own: it starts from now, not from history.
        row = row or MatrixAccount(
            user_id=user_id, device_id=device_id, access_token="", updated_at=now
        )
        row.sync_token = None
    if row.device_id != device_id:
        # The keys of a device that is gone serve no one (a new device has its own).
        await session.execute(
            delete(MatrixKey).where(
                col(MatrixKey.user_id) == user_id, col(MatrixKey.device_id) != device_id
            )
        )
    row.device_id = device_id
    row.access_token = access_token
    row.updated_at = now
    session.add(row)


async def save_sync_token(session: AsyncSession, user_id: str, token: str, now: datetime) -> None:
    row = await session.get(MatrixAccount, user_id)
    if row is not None:
        row.sync_token = token
        row.updated_at = now


async def keys(session: AsyncSession, user_id: str, device_id: str) -> dict[KeyName, str]:
    """The device's encryption keys, by (kind, name)."""
    rows = await session.execute(
        select(col(MatrixKey.kind), col(MatrixKey.name), col(MatrixKey.value)).where(
            col(MatrixKey.user_id) == user_id,
            col(MatrixKey.device_id) == device_id,
            col(MatrixKey.kind) != _RUN,
        )
    )
    return {(kind, name): value for kind, name, value in rows.all()}


async def next_generation(
    session: AsyncSession, user_id: str, device_id: str, now: datetime
) -> int:
    """A new run of the device: one generation above every earlier run, noted at once
    (a row of its own), so that the next run counts above this one even if this one
    never writes a key."""
    last = await session.scalar(
        select(func.max(col(MatrixKey.generation))).where(
            col(MatrixKey.user_id) == user_id, col(MatrixKey.device_id) == device_id
        )
    )
    generation = (last or 0) + 1
    await save_keys(session, user_id, device_id, {(_RUN, ""): str(generation)}, generation, now)
    return generation


async def save_keys(
    session: AsyncSession,
    user_id: str,
    device_id: str,
    changes: Mapping[KeyName, str | None],
    generation: int,
    now: datetime,
) -> None:
    """Write what changed in the device's keys: a value, or None for a key removed.

    A key a later generation wrote is left alone: a holder that stopped late (its
    lease lost while its event loop was blocked) cannot undo the next one's work."""
    keys = table(MatrixKey)
    written = [(key, value) for key, value in changes.items() if value is not None]
    for start in range(0, len(written), _CHUNK):
        insert = upsert(session, keys).values(
            [
                {
                    "user_id": user_id,
                    "device_id": device_id,
                    "kind": kind,
                    "name": name,
                    "value": value,
                    "generation": generation,
                    "updated_at": now,
                }
                for (kind, name), value in written[start : start + _CHUNK]
            ]
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[keys.c.user_id, keys.c.device_id, keys.c.kind, keys.c.name],
                set_={
                    "value": insert.excluded.value,
                    "generation": insert.excluded.generation,
                    "updated_at": insert.excluded.updated_at,
                },
                where=keys.c.generation <= insert.excluded.generation,
            )
        )
    removed = [key for key, value in changes.items() if value is None]
    for start in range(0, len(removed), _CHUNK):
        await session.execute(
            delete(MatrixKey).where(
                col(MatrixKey.user_id) == user_id,
                col(MatrixKey.device_id) == device_id,
                col(MatrixKey.generation) <= generation,
                tuple_(col(MatrixKey.kind), col(MatrixKey.name)).in_(
                    removed[start : start + _CHUNK]
                ),
            )
        )


async def direct_room(session: AsyncSession, person: str) -> str | None:
    row = await session.get(MatrixDirectRoom, person)
    return row.room_id if row else None


async def save_direct_room(session: AsyncSession, person: str, room_id: str, now: datetime) -> None:
    row = await session.get(MatrixDirectRoom, person)
    if row is None:
        session.add(MatrixDirectRoom(person=person, room_id=room_id, created_at=now))
    else:
        row.room_id = room_id
