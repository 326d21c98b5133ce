"""duty leases: which instance runs each duty that must run once (bot/duties.py)

Revision ID: 0014_duty_lease
Revises: 0013_customers
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_duty_lease"
down_revision: str | None = "0013_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "duty_lease",
        sa.Column("duty", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("duty"),
    )


def downgrade() -> None:
    op.drop_table("duty_lease")
