"""continuity_count: the digest's continuity counted by UTC week, kept by triggers

Revision ID: 0018a_continuity_counts
Revises: 0017a_conversation_returning

The digest's continuity (conversations of returning customers, by team and relationship
owner, and how many of them that owner has) was read from the week's conversations:
~21 ms a read on a 10M-mention year (42,077 returning conversations a week), twice a
digest. Its inputs change long after the day (`owner_id` by claim, release, reassign;
`relationship_owner_id`, `returning_customer` by customer link, unlink, merge, erase;
`team_id` by reassign), so a closed day's figure cannot be frozen. The counts are kept
instead by triggers on `conversation`, in the writing transaction: an insert adds the
row's contribution, a delete takes it out, an update of a column that counts takes the
old row's out and adds the new one's. Exact whatever changes, whenever, through any code.

Keyed by the UTC week, not the local day or hour: the digest's zone is a setting a
trigger does not know, and a local week is the nearest UTC weeks' counts corrected by
the hours between (`storage.customers.continuity`: 1-2 hours in Europe/Rome). Rows a
week reads on the 10M year with customers (42,085 returning conversations in W27):
2,325 by UTC week, against 8,822 by UTC day and 30,351 by UTC hour (bench/README.md,
"Session 8"): one row per (team, relationship owner) a week.

The backfill is one INSERT … SELECT … GROUP BY: 12.2 s on SQLite for the 10M year
(4,186,855 conversations, load ~4.5), 1.6 s on PostgreSQL.

`team_id` / `holder_id` 0 stand for none (ids start at 1): a key column must be a value.
A count that goes to 0 keeps its row (read with `HAVING`): a later change may need it.

On PostgreSQL the triggers are deferred constraint triggers: the counter rows are
written at commit, so a transaction holds their locks for the commit's last moment, not
for its whole length (many conversations share a row: the week's, team's, no owner);
and under one advisory lock (`_COUNTING`), so that two instances' commits cannot
deadlock on two counter rows taken in opposite orders.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018a_continuity_counts"
down_revision: str | None = "0017a_conversation_returning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the columns whose change moves a conversation's contribution
_COUNTED = "returning_customer, created_at, team_id, relationship_owner_id, owner_id"


def _key(row: str, week: str) -> str:
    return f"{week}, coalesce({row}.team_id, 0), coalesce({row}.relationship_owner_id, 0)"


def _mine(row: str) -> str:
    # NULL = anything is not true: no owner, or no relationship owner, is not "by owner"
    return f"CASE WHEN {row}.owner_id = {row}.relationship_owner_id THEN 1 ELSE 0 END"


def _sqlite_week(row: str) -> str:
    # created_at is stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]', naive UTC: the Monday on
    # or before it (to the next Sunday, then six days back)
    return f"date({row}.created_at, 'weekday 0', '-6 days')"


def _postgres_week(row: str) -> str:
    return f"(date_trunc('week', {row}.created_at AT TIME ZONE 'UTC'))::date"


def _take_out(row: str, week: str) -> str:
    return (
        "UPDATE continuity_count SET conversations = conversations - 1, "
        f"by_owner = by_owner - {_mine(row)} "
        f"WHERE (week, team_id, holder_id) = ({_key(row, week)})"
    )


def _add(row: str, week: str) -> str:
    # VALUES, not SELECT: SQLite cannot tell a SELECT's ON from an upsert's
    return (
        "INSERT INTO continuity_count (week, team_id, holder_id, conversations, by_owner) "
        f"VALUES ({_key(row, week)}, 1, {_mine(row)}) "
        "ON CONFLICT (week, team_id, holder_id) DO UPDATE SET "
        "conversations = continuity_count.conversations + excluded.conversations, "
        "by_owner = continuity_count.by_owner + excluded.by_owner"
    )


def _changed() -> str:
    return " OR ".join(
        f"OLD.{c} IS NOT NEW.{c}"
        if op.get_bind().dialect.name == "sqlite"
        # PostgreSQL spells it IS DISTINCT FROM
        else f"OLD.{c} IS DISTINCT FROM NEW.{c}"
        for c in _COUNTED.split(", ")
    )


def _sqlite_triggers() -> list[str]:
    old, new = _sqlite_week("OLD"), _sqlite_week("NEW")
    return [
        "CREATE TRIGGER continuity_count_insert AFTER INSERT ON conversation "
        f"WHEN NEW.returning_customer BEGIN {_add('NEW', new)}; END",
        "CREATE TRIGGER continuity_count_delete AFTER DELETE ON conversation "
        f"WHEN OLD.returning_customer BEGIN {_take_out('OLD', old)}; END",
        f"CREATE TRIGGER continuity_count_update AFTER UPDATE OF {_COUNTED} ON conversation "
        f"WHEN (OLD.returning_customer OR NEW.returning_customer) AND ({_changed()}) BEGIN "
        f"{_take_out('OLD', old)} AND OLD.returning_customer; "
        # an INSERT's VALUES cannot be skipped by a WHERE: the upsert of a row that does
        # not count adds nothing (a conversation not returning adds 0 and 0)
        f"{_add_if('NEW', new)}; END",
    ]


def _add_if(row: str, week: str) -> str:
    """`_add`, adding nothing for a row that is not a returning customer's."""
    counts = f"{row}.returning_customer"
    return (
        "INSERT INTO continuity_count (week, team_id, holder_id, conversations, by_owner) "
        f"SELECT {_key(row, week)}, 1, {_mine(row)} WHERE {counts} "
        "ON CONFLICT (week, team_id, holder_id) DO UPDATE SET "
        "conversations = continuity_count.conversations + excluded.conversations, "
        "by_owner = continuity_count.by_owner + excluded.by_owner"
    )


_FUNCTION = "continuity_count_change"
#: the advisory lock a transaction takes before its first counter row (not the
#: migrations' key, storage/migrate.py): transactions of several instances write their
#: counter rows one after the other. Each writes them in the order of its own changes
#: (a group of new conversations for two teams, a reassignment), so two writing the
#: same two rows in the opposite order at once would deadlock, and one would fail. Held
#: from the commit's deferred triggers to its end: a moment, and only other commits that
#: change what is counted wait for it.
_COUNTING = 0x1D100C


def _postgres_triggers() -> list[str]:
    old, new = _postgres_week("OLD"), _postgres_week("NEW")
    function = f"""
CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({_COUNTING});
    IF TG_OP <> 'INSERT' THEN
        IF OLD.returning_customer THEN
            {_take_out("OLD", old)};
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.returning_customer THEN
            {_add("NEW", new)};
        END IF;
    END IF;
    RETURN NULL;
END
$$"""
    each = (
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({{when}}) EXECUTE FUNCTION {_FUNCTION}()"
    )
    return [
        function,
        "CREATE CONSTRAINT TRIGGER continuity_count_insert AFTER INSERT ON conversation "
        + each.format(when="NEW.returning_customer"),
        "CREATE CONSTRAINT TRIGGER continuity_count_delete AFTER DELETE ON conversation "
        + each.format(when="OLD.returning_customer"),
        f"CREATE CONSTRAINT TRIGGER continuity_count_update AFTER UPDATE OF {_COUNTED} "
        "ON conversation "
        + each.format(
            when=f"(OLD.returning_customer OR NEW.returning_customer) AND ({_changed()})"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "continuity_count",
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("by_owner", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("week", "team_id", "holder_id"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    # the triggers first: on PostgreSQL CREATE TRIGGER locks out the table's writers
    # until this commits, so the backfill below counts every row there is
    for statement in _sqlite_triggers() if sqlite else _postgres_triggers():
        op.execute(statement)
    week = (_sqlite_week if sqlite else _postgres_week)("conversation")
    op.execute(
        "INSERT INTO continuity_count (week, team_id, holder_id, conversations, by_owner) "
        f"SELECT {_key('conversation', week)}, count(*), sum({_mine('conversation')}) "
        "FROM conversation WHERE returning_customer GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    for name in ("insert", "delete", "update"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER continuity_count_{name}")
        else:
            op.execute(f"DROP TRIGGER continuity_count_{name} ON conversation")
    if op.get_bind().dialect.name != "sqlite":
        op.execute(f"DROP FUNCTION {_FUNCTION}()")
    op.drop_table("continuity_count")
