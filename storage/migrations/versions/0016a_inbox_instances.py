"""instances' liveness, the outbox lease's holder, and the inbox (issue 17 §1)

Revision ID: 0016a_inbox_instances
Revises: 0015_customer_erasure

- `instance_lease`: each instance renews its own row with its duties' leases
  (bot/duties.py); what an instance no longer alive holds is free for the others.
- `outbox.leased_by`: the instance delivering a row. Rows written by an older Inloop
  leave it empty and keep the plain time lease (`leased_until`).
- `inbox`: requests acknowledged to a platform and not handled yet (bot/inbox.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016a_inbox_instances"
down_revision: str | None = "0015_customer_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_lease",
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instance"),
    )
    op.create_table(
        "inbox",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("receiver", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    # A plain ADD COLUMN on both (SQLite adds a nullable column in place).
    op.add_column("outbox", sa.Column("leased_by", sa.String(length=255), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE outbox DROP COLUMN leased_by")
    else:
        op.drop_column("outbox", "leased_by")
    op.drop_table("inbox")
    op.drop_table("instance_lease")
