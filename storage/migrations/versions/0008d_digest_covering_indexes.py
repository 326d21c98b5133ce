"""digest: covering indexes for a week of mentions, actions and blocks

Revision ID: 0008d
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008d"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_log_at_action", ["at", "action", "actor_id", "conversation_id"], unique=False
        )
        batch_op.drop_index("ix_audit_log_at")
    with op.batch_alter_table("mention", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mention_received_at_source",
            ["received_at", "source", "conversation_id"],
            unique=False,
        )
        batch_op.drop_index("ix_mention_received_at")
    with op.batch_alter_table("dialogue_session", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dialogue_session_occurrence_start", ["occurrence_start"], unique=False
        )
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_id_team", ["id", "team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_id_team")
    with op.batch_alter_table("dialogue_session", schema=None) as batch_op:
        batch_op.drop_index("ix_dialogue_session_occurrence_start")
    with op.batch_alter_table("mention", schema=None) as batch_op:
        batch_op.create_index("ix_mention_received_at", ["received_at"], unique=False)
        batch_op.drop_index("ix_mention_received_at_source")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
        batch_op.drop_index("ix_audit_log_at_action")
