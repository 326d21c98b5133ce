"""The Matrix adapter's own state: its login, its sync point, and its direct rooms."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MatrixAccount, MatrixDirectRoom


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
    row.device_id = device_id
    row.access_token = access_token
    row.updated_at = now
    session.add(row)


async def save_sync_token(session: AsyncSession, user_id: str, token: str, now: datetime) -> None:
    row = await session.get(MatrixAccount, user_id)
    if row is not None:
        row.sync_token = token
        row.updated_at = now


async def direct_room(session: AsyncSession, person: str) -> str | None:
    row = await session.get(MatrixDirectRoom, person)
    return row.room_id if row else None


async def save_direct_room(session: AsyncSession, person: str, room_id: str, now: datetime) -> None:
    row = await session.get(MatrixDirectRoom, person)
    if row is None:
        session.add(MatrixDirectRoom(person=person, room_id=room_id, created_at=now))
    else:
        row.room_id = room_id
