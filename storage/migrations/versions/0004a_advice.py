"""advice

Revision ID: 0004a
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004a"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "role_channel",
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("purpose", "platform"),
    )
    op.create_table(
        "advice_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("asked_by", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rating", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["asked_by"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_advice_seq"),
    )
    with op.batch_alter_table("advice_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_advice_request_consultant_id"), ["consultant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_advice_request_conversation_id"), ["conversation_id"], unique=False
        )

    op.create_table(
        "advice_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["advice_request.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("advice_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_advice_message_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("advice_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_advice_message_request_id"))

    op.drop_table("advice_message")
    with op.batch_alter_table("advice_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_advice_request_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_advice_request_consultant_id"))

    op.drop_table("advice_request")
    op.drop_table("role_channel")
