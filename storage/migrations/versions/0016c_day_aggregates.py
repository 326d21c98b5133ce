"""day aggregates: the digest's figures of each closed day, and the waits to be claimed

Revision ID: 0016c_day_aggregates
Revises: 0016b_matrix_keys

`day_total` holds one row per closed local day of the digest's zone, and one per
closed week (its seven days together, what a week's digest reads); `day_wait` the
working minutes the conversations claimed that day had waited, by the day they
arrived. Both are written by the digest's day-closing job (`handlers/digest.py`
`close_days`), which is also the backfill: its first run closes every day from the
first conversation on, a few days per minute, each in its own transaction. It is not
done here because a day is a day of the digest's zone and a wait is counted in each
team's working hours: the zone is a setting (read in bot/config.py only) and the
working hours are bot code, neither of which a migration may read. Until a day is
closed, the digest computes it from the rows, as it did before this revision, so the
figures are exact from the first start.

`conversation (claimed_at, created_at)` replaces `(claimed_at)`: the digest's
conversations opened in a week and not claimed yet are read from it, instead of the
whole backlog of never-claimed conversations.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016c_day_aggregates"
down_revision: str | None = "0016b_matrix_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The digest's "opened this week, not claimed yet" reads (claimed_at IS NULL,
    # created_at in the week) from the index; claims by time use its first column.
    op.create_index(
        "ix_conversation_claimed_at_created_at", "conversation", ["claimed_at", "created_at"]
    )
    op.drop_index("ix_conversation_claimed_at", table_name="conversation")
    op.create_table(
        "day_total",
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("claims", sa.LargeBinary(), nullable=False),
        sa.Column("replies", sa.LargeBinary(), nullable=False),
        sa.Column("team_claims", sa.LargeBinary(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tz", "day", "days"),
    )
    op.create_table(
        "day_wait",
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("claimed_day", sa.Date(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tz", "day", "claimed_day", "team_id", "minutes"),
    )


def downgrade() -> None:
    op.drop_table("day_wait")
    op.drop_table("day_total")
    op.create_index("ix_conversation_claimed_at", "conversation", ["claimed_at"])
    op.drop_index("ix_conversation_claimed_at_created_at", table_name="conversation")
