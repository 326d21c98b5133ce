"""commitments: weekly dialogue time, its sessions, and away periods

Revision ID: 0004c
Revises: 0004a
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004c"
down_revision: str | None = "0004a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "away",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_table(
        "commitment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("days", sa.String(length=20), nullable=False),
        sa.Column("start", sa.String(length=5), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("commitment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commitment_person_id"), ["person_id"], unique=False)

    op.create_table(
        "dialogue_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("commitment_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("minutes_planned", sa.Integer(), nullable=False),
        sa.Column("minutes_given", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["commitment_id"], ["commitment.id"]),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        # the exactly-once guard: one row, hence one reminder, per occurrence
        sa.UniqueConstraint(
            "commitment_id", "occurrence_start", name="uq_dialogue_session_occurrence"
        ),
    )
    with op.batch_alter_table("dialogue_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dialogue_session_next_at"), ["next_at"], unique=False)
        batch_op.create_index(
            "ix_dialogue_session_person_start", ["person_id", "occurrence_start"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dialogue_session", schema=None) as batch_op:
        batch_op.drop_index("ix_dialogue_session_person_start")
        batch_op.drop_index(batch_op.f("ix_dialogue_session_next_at"))
    op.drop_table("dialogue_session")
    with op.batch_alter_table("commitment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitment_person_id"))
    op.drop_table("commitment")
    op.drop_table("away")
