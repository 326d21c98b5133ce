"""matrix keys: the bot's end-to-end encryption store in the database, shared by instances

Revision ID: 0016b_matrix_keys
Revises: 0016a_inbox_instances
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016b_matrix_keys"
down_revision: str | None = "0016a_inbox_instances"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "matrix_key",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("device_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "kind", "name"),
    )


def downgrade() -> None:
    # The keys go with it: an older Inloop keeps them in MATRIX_STORE_DIR, as far as
    # that directory is still there and current.
    op.drop_table("matrix_key")
