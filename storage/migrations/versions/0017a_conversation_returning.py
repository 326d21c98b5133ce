"""conversation.returning_customer: the digest's continuity without looking back

Revision ID: 0017a_conversation_returning
Revises: 0016d_digest_live_parts

The digest's continuity counts the week's conversations of returning customers: those
whose customer had a conversation before (a smaller number). It found them by probing,
for each conversation of the week, the customer's earlier ones: some 100 ms a week on a
10M-mention year where most conversations have a customer. The answer is now kept on
the conversation: routing sets it when the conversation is stored (it reads the
customer's history then anyway), and `customer link` / `unlink` set it again for the
conversations of the customers they change (storage/customers.py `mark_returning`).
Erasure keeps a conversation's customer (and removes the identities, so that the
next mention of that author is a new customer's): no flag changes.

The index `(returning_customer, created_at, team_id, relationship_owner_id, owner_id)`
gives the digest a week's conversations of returning customers, with what it counts of
them, as one range of entries: not the week's other conversations, nor any history.

The backfill is here: every conversation stored before gets the flag from its rows,
by the same rule (one statement; each conversation's probe reads `(customer_id, id)`):
9.6 s on SQLite and 22.7 s on PostgreSQL for a year of 419,218 conversations (load ~9).
On PostgreSQL it leaves the old versions of the rows it marks for autovacuum, and
until that has run the digest's index-only scan visits their pages.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017a_conversation_returning"
down_revision: str | None = "0016d_digest_live_parts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_conversation_returning_created"


def upgrade() -> None:
    # ADD COLUMN with a constant default: SQLite adds it in place (no rebuild of
    # `conversation`, which the rows pointing at it would not survive), PostgreSQL
    # without rewriting the table.
    op.add_column(
        "conversation",
        sa.Column("returning_customer", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    conversation = sa.table(
        "conversation",
        sa.column("id", sa.Integer()),
        sa.column("customer_id", sa.Integer()),
        sa.column("returning_customer", sa.Boolean()),
    )
    earlier = sa.table("conversation", sa.column("id"), sa.column("customer_id")).alias("earlier")
    op.execute(
        conversation.update()
        .where(
            conversation.c.customer_id.is_not(None),
            sa.select(earlier.c.id)
            .where(
                earlier.c.customer_id == conversation.c.customer_id,
                earlier.c.id < conversation.c.id,
            )
            .exists(),
        )
        .values(returning_customer=sa.true())
    )
    op.create_index(
        _INDEX,
        "conversation",
        ["returning_customer", "created_at", "team_id", "relationship_owner_id", "owner_id"],
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="conversation")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE conversation DROP COLUMN returning_customer")
    else:
        op.drop_column("conversation", "returning_customer")
