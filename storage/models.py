"""The tables. Ids of people and channels are platform-qualified strings (`slack:U0123`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _utc(nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Role(StrEnum):
    EMPLOYEE = "employee"
    CONSULTANT = "consultant"
    MANAGER = "manager"
    ADMIN = "admin"


class Status(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    REPLIED = "replied"
    RESOLVED = "resolved"


class OutboxKind(StrEnum):
    SEND = "send"
    UPDATE = "update"
    PRIVATE = "private"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, max_length=255)
    display_name: str = Field(max_length=255)
    #: None: not staff (a customer, a guest, someone from another server)
    role: str | None = Field(default=None, max_length=20)
    #: chosen with `lang`; None falls back to the platform locale, then the default
    language: str | None = Field(default=None, max_length=5)
    locale: str = Field(default="", max_length=35)
    timezone: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_column=_utc())


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=80)
    channel: str = Field(max_length=255)
    #: routing tags, space-separated, lower case
    tags: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    is_default: bool = Field(default=False)
    created_at: datetime = Field(sa_column=_utc())


class Conversation(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("source", "conversation_key", name="uq_conversation_source_key"),
        Index("ix_conversation_team_status", "team_id", "status"),
    )

    #: also the public number shown as #N
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    conversation_key: str = Field(max_length=512)
    customer_name: str = Field(max_length=255)
    customer_handle: str = Field(default="", max_length=255)
    url: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    status: str = Field(default=Status.OPEN, max_length=16)
    owner_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    mention_count: int = Field(default=0)
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())
    claimed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    first_reply_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    #: where the card was posted, and the platform's reference of that message
    card_channel: str | None = Field(default=None, max_length=255)
    card_ref: str | None = Field(default=None, max_length=255, index=True)


class Mention(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_mention_source_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=512)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    author_name: str = Field(max_length=255)
    author_handle: str = Field(default="", max_length=255)
    text: str = Field(sa_column=Column(Text, nullable=False))
    url: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    lang: str = Field(default="", max_length=16)
    tags: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(sa_column=_utc())
    received_at: datetime = Field(sa_column=_utc(index=True))


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    actor_id: int | None = Field(default=None, foreign_key="person.id")
    action: str = Field(max_length=32)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    at: datetime = Field(sa_column=_utc())


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_id", "state", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    #: the idempotency key handed to the platform (Matrix txn id, Slack message key)
    key: str = Field(unique=True, max_length=64)
    platform: str = Field(max_length=16)
    kind: str = Field(max_length=16)
    #: channel for send/update, person for private
    target: str = Field(max_length=255)
    #: for private messages: the channel the person spoke in (Slack ephemerals)
    context: str | None = Field(default=None, max_length=255)
    #: the card this row posts (send) or edits (update)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    payload: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default=OutboxState.PENDING, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_column=_utc())
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(sa_column=_utc())
    sent_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class WatchedChannel(SQLModel, table=True):
    """A chat channel shared with customers: their messages there become mentions."""

    __tablename__ = "watched_channel"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(unique=True, max_length=255)
    team_id: int = Field(foreign_key="team.id")
    created_at: datetime = Field(sa_column=_utc())


class Feed(SQLModel, table=True):
    """An RSS or Atom feed polled for mentions (e.g. a blog's comments)."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    #: the team its mentions go to; None: routed by tags like any mention
    team_id: int | None = Field(default=None, foreign_key="team.id")
    title: str = Field(default="", max_length=255)
    etag: str = Field(default="", max_length=255)
    last_modified: str = Field(default="", max_length=64)
    #: entries dated before this are history, not mentions
    since: datetime = Field(sa_column=_utc())
    next_poll_at: datetime = Field(sa_column=_utc(index=True))
    failures: int = Field(default=0)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    #: admins were told about the current run of failures (told once, not every poll)
    reported: bool = Field(default=False)
    added_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = Field(sa_column=_utc())


class ProcessedEvent(SQLModel, table=True):
    """Inbound event ids already handled: Slack retries, Matrix re-syncs, webhook re-deliveries."""

    __tablename__ = "processed_event"

    event_id: str = Field(primary_key=True, max_length=255)
    at: datetime = Field(sa_column=_utc())


class MatrixAccount(SQLModel, table=True):
    """The Matrix bot's session: a restart resumes it (same device, same keys, same sync point)."""

    __tablename__ = "matrix_account"

    user_id: str = Field(primary_key=True, max_length=255)
    device_id: str = Field(max_length=255)
    access_token: str = Field(sa_column=Column(Text, nullable=False))
    #: the `next_batch` of the last sync whose events were all handled; None before the first
    sync_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(sa_column=_utc())


class MatrixDirectRoom(SQLModel, table=True):
    """The room the bot opened to talk privately with one person, reused every time."""

    __tablename__ = "matrix_direct_room"

    person: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=_utc())
