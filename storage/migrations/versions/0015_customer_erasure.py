"""customer erasure: a conversation remembers that its customer's data was erased

Revision ID: 0015_customer_erasure
Revises: 0014_duty_lease

The erased conversation's row stays (the digest's counts keep their numbers) with its
personal columns blank; `erased_at` is what its card, `show N` and the daily
retention job read, instead of guessing from blank columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_customer_erasure"
down_revision: str | None = "0014_duty_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both: SQLite adds a nullable column in place (no rebuild
    # of `conversation`, which the rows pointing at it would not survive).
    op.add_column("conversation", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE conversation DROP COLUMN erased_at")
    else:
        op.drop_column("conversation", "erased_at")
