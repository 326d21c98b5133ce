"""ix_conversation_customer_status: a customer's last resolved conversation at once

Revision ID: 0018b_customer_status
Revises: 0018a_continuity_counts

Routing reads, for each customer of a message, who holds the relationship: the
customer's owner, else whoever claimed the customer's last resolved conversation
(storage/customers.py `relationship_owners`). That last resolved one was found by
walking the customer's conversations from the newest back (`(customer_id, id)`) until
one was resolved: one step for most customers, but every conversation of one whose
newest are all open — a customer who writes a lot, each mention a new thread — and
on every message of theirs (0.07 ms a message in `bench.slack --throughput 2000`,
whose customer has up to 2,000 open conversations; growing with them). With
`(customer_id, status, id, owner_id)` it is one step whatever the history, from the
index alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018b_customer_status"
down_revision: str | None = "0018a_continuity_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_conversation_customer_status"


def upgrade() -> None:
    op.create_index(_INDEX, "conversation", ["customer_id", "status", "id", "owner_id"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="conversation")
