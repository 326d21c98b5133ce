"""The tables. Ids of people and channels are platform-qualified strings (`slack:U0123`)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, Index, LargeBinary, Text, UniqueConstraint, false
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
    #: a message in the thread under a conversation's card
    REPLY = "reply"
    #: a channel's burst card, posted by the worker itself (born sent): `context` holds
    #: where it is, the row lives while the burst does
    BURST = "burst"


class AdviceStatus(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    ANSWERED = "answered"
    CLOSED = "closed"


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
    #: minutes to claim and to reply before a nudge; None: the settings' defaults
    claim_target_minutes: int | None = Field(default=None)
    reply_target_minutes: int | None = Field(default=None)
    #: working hours, the only time that counts towards the targets; None: always.
    #: ISO weekdays "1,2,3,4,5", local "HH:MM" start and end (not after the start: the
    #: next day), and the IANA zone they are in
    work_days: str | None = Field(default=None, max_length=20)
    work_start: str | None = Field(default=None, max_length=5)
    work_end: str | None = Field(default=None, max_length=5)
    work_tz: str | None = Field(default=None, max_length=64)


class EscalationNudge(SQLModel, table=True):
    """One step of escalation done for one conversation (claim: the team channel was
    nudged; claim_managers, reply, reply_managers): the row, unique per conversation
    and step, is what makes each nudge go out once, across restarts and instances."""

    __tablename__ = "escalation_nudge"

    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True)
    step: str = Field(primary_key=True, max_length=16)
    at: datetime = Field(sa_column=_utc())


class TeamMember(SQLModel, table=True):
    """A person who belongs to a team: it decides what they see first (their queue,
    home and reminders), not what they may do."""

    __tablename__ = "team_member"

    team_id: int = Field(foreign_key="team.id", primary_key=True)
    #: indexed: a person's queue looks up their teams
    person_id: int = Field(foreign_key="person.id", primary_key=True, index=True)
    created_at: datetime = Field(sa_column=_utc())


class Customer(SQLModel, table=True):
    """The person behind one or more identities: what Inloop remembers of the relationship.

    It holds no personal data (names and handles are the identities'), so erasing a
    customer is deleting their identities and texts; this row may stay for the counts.
    """

    id: int | None = Field(default=None, primary_key=True)
    #: the relationship owner set with `customer owner`; None: by default, whoever
    #: owned their last resolved conversation
    owner_id: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = Field(sa_column=_utc())


class CustomerIdentity(SQLModel, table=True):
    """One way a customer reaches us: a handle on a source (`twitter:@giulia`)."""

    __tablename__ = "customer_identity"
    __table_args__ = (UniqueConstraint("source", "handle", name="uq_customer_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    source: str = Field(max_length=64)
    #: the author's handle on the source, or their name where the source gives none
    handle: str = Field(max_length=255)
    display_name: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=_utc())


class Conversation(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("source", "conversation_key", name="uq_conversation_source_key"),
        # a team's unclaimed, counted and its oldest listed, from the index alone
        Index("ix_conversation_team_status_created", "team_id", "status", "created_at", "id"),
        # a week's conversations and what the digest's continuity needs of them
        # (an earlier one of the same customer: ix_conversation_customer_id), from the
        # index alone; it serves every other range of created_at too
        Index(
            "ix_conversation_created_continuity",
            "created_at",
            "customer_id",
            "id",
            "team_id",
            "relationship_owner_id",
            "owner_id",
        ),
        # a customer's earlier conversations (the card's history line) from the index alone
        Index("ix_conversation_customer_id", "customer_id", "id"),
        # a customer's last resolved conversation (who holds the relationship) in one
        # step, however many open ones came after it
        Index("ix_conversation_customer_status", "customer_id", "status", "id", "owner_id"),
        # the digest's continuity: a week's conversations of returning customers, and
        # what it counts of them, from the index alone (not every conversation of it)
        Index(
            "ix_conversation_returning_created",
            "returning_customer",
            "created_at",
            "team_id",
            "relationship_owner_id",
            "owner_id",
        ),
        # PostgreSQL joins a week of mentions / audit entries to their team from this
        # index alone, instead of hashing the whole table (SQLite uses the rowid)
        Index("ix_conversation_id_team", "id", "team_id"),
        # claims in a time range (the digest, escalation), and the digest's "what was
        # opened this week and is not claimed yet" without reading the whole backlog
        Index("ix_conversation_claimed_at_created_at", "claimed_at", "created_at"),
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
    #: indexed (ix_conversation_created_continuity): the digest reads a week of a year
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())
    claimed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    first_reply_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))
    resolved_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    #: where the card was posted, and the platform's reference of that message
    card_channel: str | None = Field(default=None, max_length=255)
    card_ref: str | None = Field(default=None, max_length=255, index=True)
    #: the customer it belongs to, and the identity they wrote as (unlink follows it)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    identity_id: int | None = Field(default=None, foreign_key="customer_identity.id", index=True)
    #: the customer's relationship owner when it came in (the digest's continuity)
    relationship_owner_id: int | None = Field(default=None, foreign_key="person.id")
    #: its customer had a conversation before it (a smaller number): set by routing,
    #: set again for a customer's conversations when they are linked or unlinked
    #: (storage/customers.py `mark_returning`), so the digest need not look back
    returning_customer: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    #: offered to the relationship owner first until then; None: anyone in the team may claim
    held_until: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))
    #: when its customer's data was erased (`customer erase`, RETENTION_DAYS): the row
    #: stays for the counts, its personal columns blank; None: not erased
    erased_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class Mention(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_mention_source_external_id"),
        # the digest counts a week of mentions by source from the index alone
        Index("ix_mention_received_at_source", "received_at", "source", "conversation_id"),
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
    received_at: datetime = Field(sa_column=_utc())


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        # the digest counts a week of actions from the index alone (and joins the team)
        Index("ix_audit_log_at_action", "at", "action", "actor_id", "conversation_id"),
    )

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
    #: the worker delivering the row holds it until then: another instance keeps off it
    leased_until: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    #: the instance holding that lease (bot/duties.py `instance_id`): once it is no longer
    #: alive (`InstanceLease`), the row is free again, whatever `leased_until` says
    leased_by: str | None = Field(default=None, max_length=255)
    #: an earlier attempt may have got through (its worker died mid-send, or the platform
    #: timed out): ask the platform (`find_sent`) before sending again
    maybe_sent: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )


class WatchedChannel(SQLModel, table=True):
    """A chat channel shared with customers: their messages there become mentions."""

    __tablename__ = "watched_channel"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(unique=True, max_length=255)
    team_id: int = Field(foreign_key="team.id")
    created_at: datetime = Field(sa_column=_utc())


class AdviceRequest(SQLModel, table=True):
    """A private question from an owner about one conversation, for a consultant: `N-A1`."""

    __tablename__ = "advice_request"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_advice_seq"),
        # the digest's advice received / answered in a week, from the index alone
        Index(
            "ix_advice_request_created_consultant", "created_at", "consultant_id", "conversation_id"
        ),
        Index(
            "ix_advice_request_answered_consultant",
            "answered_at",
            "consultant_id",
            "created_at",
            "rating",
            "conversation_id",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    #: 1, 2, … within the conversation: the A1 of `3-A1`
    seq: int
    asked_by: int = Field(foreign_key="person.id")
    #: the consultant it is for; None while it waits in the pool
    consultant_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    status: str = Field(default=AdviceStatus.OPEN, max_length=16)
    #: None, "useful" or "not useful", set by the owner
    rating: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(sa_column=_utc())
    taken_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    answered_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    reminded_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class AdviceMessage(SQLModel, table=True):
    """The request's own thread: the question, answers and follow-ups, in order."""

    __tablename__ = "advice_message"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="advice_request.id", index=True)
    author_id: int = Field(foreign_key="person.id")
    #: question | answer | followup
    kind: str = Field(max_length=16)
    text: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=_utc())


class RoleChannel(SQLModel, table=True):
    """A channel with a purpose, one per platform: the consultants' pool where unassigned
    advice requests wait, the managers' channel where the weekly digest is posted."""

    __tablename__ = "role_channel"

    #: "consultants" or "managers"
    purpose: str = Field(primary_key=True, max_length=16)
    platform: str = Field(primary_key=True, max_length=16)
    channel: str = Field(max_length=255)


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


# -- commitments (weekly dialogue time) ------------------------------------------------------


class DutyLease(SQLModel, table=True):
    """Who runs a duty that must run in one instance at a time (bot/duties.py).

    The holder renews `expires_at` every few seconds; a row past it is anyone's.
    """

    __tablename__ = "duty_lease"

    duty: str = Field(primary_key=True, max_length=64)
    #: the instance: host, process id and a random part (bot/duties.py `instance_id`)
    holder: str = Field(max_length=255)
    #: when this holder took it (kept across renewals)
    since: datetime = Field(sa_column=_utc())
    expires_at: datetime = Field(sa_column=_utc())


class InstanceLease(SQLModel, table=True):
    """An instance's own liveness (PostgreSQL): renewed with its duties' leases. What
    an instance that is no longer alive leased (outbox rows) or received (inbox rows)
    is free for the others to take."""

    __tablename__ = "instance_lease"

    instance: str = Field(primary_key=True, max_length=255)
    since: datetime = Field(sa_column=_utc())
    expires_at: datetime = Field(sa_column=_utc())


class InboxRow(SQLModel, table=True):
    """An inbound request acknowledged to its platform and not handled yet (bot/inbox.py).

    Written before the acknowledgement, deleted once handled: what a crash leaves here
    is handled again, by this instance's successor or another instance.
    """

    __tablename__ = "inbox"

    #: the platform's id of the request (Slack: event id, trigger id), platform-qualified
    key: str = Field(primary_key=True, max_length=255)
    platform: str = Field(max_length=16)
    #: the request as the platform sent it (JSON)
    body: str = Field(sa_column=Column(Text, nullable=False))
    #: the instance handling it (the one that received it, or the one that took it over)
    receiver: str = Field(max_length=255)
    received_at: datetime = Field(sa_column=_utc())


class SessionOutcome(StrEnum):
    """What became of one occurrence of a commitment (or of a `log`)."""

    #: reminded, the block is still on (or its check-in is still unanswered)
    REMINDED = "reminded"
    SNOOZED = "snoozed"
    STARTED = "started"
    CHECKIN = "checkin"
    DONE = "done"
    PARTIAL = "partial"
    SKIPPED = "skipped"
    NO_ANSWER = "no_answer"
    AWAY = "away"
    #: Inloop was not running when the block started (more than 15 minutes late)
    MISSED = "missed"
    #: dialogue time given outside a block (`log 20m`)
    LOGGED = "logged"


class Commitment(SQLModel, table=True):
    """A person's recurring dialogue time: DAYS at HH:MM for MINUTES, in a time zone.

    The table is the truth the scheduler rebuilds its timers from at every start.
    An ended commitment (`uncommit`) is kept so that past weeks still add up.
    """

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    #: ISO weekdays, 1 (Monday) to 7, comma-separated: "1,3,5"
    days: str = Field(max_length=20)
    #: local wall-clock start, "HH:MM"
    start: str = Field(max_length=5)
    minutes: int
    timezone: str = Field(max_length=64)
    #: the team whose queue the reminder shows (the channel it was made in); None: every team
    team_id: int | None = Field(default=None, foreign_key="team.id")
    created_at: datetime = Field(sa_column=_utc())
    ended_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class DialogueSession(SQLModel, table=True):
    """One occurrence of a commitment, or dialogue time logged outside one.

    The row is created when the occurrence is due, and (commitment_id,
    occurrence_start) is unique: that row is what makes a reminder go out exactly
    once, whatever the restarts and however many instances run. For the weekly
    digest, minutes committed are `minutes_planned` and minutes given are
    `minutes_given` (0 until answered), summed over the rows of a week.
    """

    __tablename__ = "dialogue_session"
    __table_args__ = (
        UniqueConstraint(
            "commitment_id", "occurrence_start", name="uq_dialogue_session_occurrence"
        ),
        Index("ix_dialogue_session_person_start", "person_id", "occurrence_start"),
        # the digest reads one week of everybody's blocks
        Index(
            "ix_dialogue_session_start_person",
            "occurrence_start",
            "person_id",
            "outcome",
            "minutes_planned",
            "minutes_given",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    #: None for `log`
    commitment_id: int | None = Field(default=None, foreign_key="commitment.id")
    person_id: int = Field(foreign_key="person.id")
    #: the block's start (UTC), or when the time was logged
    occurrence_start: datetime = Field(sa_column=_utc())
    #: when the check-in is due (start + length, moved by a snooze or a late start)
    ends_at: datetime = Field(sa_column=_utc())
    outcome: str = Field(max_length=16)
    minutes_planned: int = Field(default=0)
    minutes_given: int = Field(default=0)
    #: the next time the scheduler must act on this row; None once it is settled
    next_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))
    #: a conversation the logged time was for (`log 20m N`)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())


class DayTotal(SQLModel, table=True):
    """The digest's figures of one closed local day, or of a closed week (its seven
    days together), so that a week's digest reads one row, not the week's mentions,
    claims and audit entries (storage/day_totals.py).

    Written once, when the day (the week's last day) is over (`handlers/digest.py`
    `close_days`), and never changed: every figure kept here is of things that cannot
    change once their day is over. Days are days of `tz`, the digest's zone.
    """

    __tablename__ = "day_total"

    tz: str = Field(primary_key=True, max_length=64)
    #: the day, or the Monday of the week
    day: date = Field(primary_key=True)
    #: 1: a day; 7: the ISO week from `day`
    days: int = Field(primary_key=True)
    #: counts as JSON: mentions by team and source, actions, conversations opened;
    #: and the index of the three lists of minutes below, by team and person
    counts: str = Field(sa_column=Column(Text, nullable=False))
    #: minutes to claim / to first reply, sorted per (team, person) in the index's
    #: order, and per team: 8-byte floats, the exact values the live digest computes
    claims: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    replies: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    team_claims: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    closed_at: datetime = Field(sa_column=_utc())


class DayWait(SQLModel, table=True):
    """How long the conversations claimed on a closed day had waited, in working
    minutes of their team (rounded up), counted by the day they arrived: what the
    digest's "over the target" reads for any claim target (a wait is over a target of
    T minutes exactly when its minutes rounded up are more than T)."""

    __tablename__ = "day_wait"

    tz: str = Field(primary_key=True, max_length=64)
    #: the local day the conversations arrived
    day: date = Field(primary_key=True)
    #: the local day they were claimed (the day whose closing wrote the row)
    claimed_day: date = Field(primary_key=True)
    team_id: int = Field(primary_key=True)
    minutes: int = Field(primary_key=True)
    conversations: int


class ContinuityCount(SQLModel, table=True):
    """The digest's continuity counted by UTC week: the conversations of returning
    customers opened in the week, by team and relationship owner, and how many of them
    that owner has (`owner_id` is the relationship owner).

    Kept exact by triggers on `conversation` (migration 0018a_continuity_counts): a
    row's contribution is taken out when it changes or goes (claim, release, reassign,
    customer link / unlink / merge / erase) and the new one added, in the same
    transaction. Weeks of UTC, not of the digest's zone (a setting, unknown to a
    trigger): a local week is read as the UTC weeks nearest to it, its few hours apart
    corrected from the conversations (storage/customers.py `continuity`)."""

    __tablename__ = "continuity_count"

    #: the Monday of the UTC week the conversations were opened in
    week: date = Field(primary_key=True)
    #: 0: no team (a key column cannot be NULL and still be one key)
    team_id: int = Field(primary_key=True)
    #: the relationship owner; 0: none
    holder_id: int = Field(primary_key=True)
    conversations: int
    #: of those, how many the relationship owner has (`owner_id`)
    by_owner: int


class Away(SQLModel, table=True):
    """`away until DATE`: the person's blocks up to DATE (included) are recorded as away."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    #: the last day away, "YYYY-MM-DD", in the person's own calendar
    until: str = Field(max_length=10)
    created_at: datetime = Field(sa_column=_utc())


class MatrixAccount(SQLModel, table=True):
    """The Matrix bot's session: a restart resumes it (same device, same keys, same sync point)."""

    __tablename__ = "matrix_account"

    user_id: str = Field(primary_key=True, max_length=255)
    device_id: str = Field(max_length=255)
    access_token: str = Field(sa_column=Column(Text, nullable=False))
    #: the `next_batch` of the last sync whose events were all handled; None before the first
    sync_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(sa_column=_utc())


class MatrixKey(SQLModel, table=True):
    """One piece of the Matrix bot's end-to-end encryption state (nio's key store: its
    Olm account, sessions, room keys, devices seen and their trust), kept here so that
    whichever instance holds the `matrix` duty decrypts and sends as the same device
    (bot/platforms/matrix/key_store.py)."""

    __tablename__ = "matrix_key"

    user_id: str = Field(primary_key=True, max_length=255)
    device_id: str = Field(primary_key=True, max_length=255)
    #: account, olm_session, group_session, device, trust, encrypted_room, key_request
    kind: str = Field(primary_key=True, max_length=32)
    #: which one of its kind (a session id, a room id, user|device, …); "" for the account
    name: str = Field(primary_key=True, max_length=1024)
    #: JSON; the pickles in it are encrypted by nio with its pickle key
    value: str = Field(sa_column=Column(Text, nullable=False))
    #: which run of the device wrote it, counting up at each start: a holder that stops
    #: late does not write over what a later one wrote (storage/matrix.py `save_keys`)
    generation: int = Field(default=0)
    updated_at: datetime = Field(sa_column=_utc())


class MatrixDirectRoom(SQLModel, table=True):
    """The room the bot opened to talk privately with one person, reused every time."""

    __tablename__ = "matrix_direct_room"

    person: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=_utc())
