"""escalation: each team's targets and working hours, and the nudges done

Revision ID: 0012d_escalation
Revises: 0011_team_members
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012d_escalation"
down_revision: str | None = "0011_team_members"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE … ADD/DROP COLUMN, not batch mode: on SQLite a batch drop copies
# the table, and dropping `team` fails on the foreign keys of the tables that name it.
# SQLite has dropped columns in place since 3.35.
_COLUMNS = (
    ("claim_target_minutes", sa.Integer()),
    ("reply_target_minutes", sa.Integer()),
    ("work_days", sa.String(length=20)),
    ("work_start", sa.String(length=5)),
    ("work_end", sa.String(length=5)),
    ("work_tz", sa.String(length=64)),
)


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("team", sa.Column(name, kind, nullable=True))
    op.create_table(
        "escalation_nudge",
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.PrimaryKeyConstraint("conversation_id", "step"),
    )


def downgrade() -> None:
    op.drop_table("escalation_nudge")
    for name, _ in reversed(_COLUMNS):
        op.drop_column("team", name)
