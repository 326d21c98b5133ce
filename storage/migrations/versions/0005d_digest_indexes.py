"""digest indexes

Revision ID: 0005d
Revises: 0004c
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005d"
down_revision: str | None = "0004c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("advice_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_advice_request_answered_at"), ["answered_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_advice_request_created_at"), ["created_at"], unique=False
        )

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_claimed_at"), ["claimed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conversation_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conversation_first_reply_at"), ["first_reply_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_first_reply_at"))
        batch_op.drop_index(batch_op.f("ix_conversation_created_at"))
        batch_op.drop_index(batch_op.f("ix_conversation_claimed_at"))

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    with op.batch_alter_table("advice_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_advice_request_created_at"))
        batch_op.drop_index(batch_op.f("ix_advice_request_answered_at"))
