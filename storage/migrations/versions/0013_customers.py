"""customers: one record per identity (source, handle), linked into customers; a
conversation belongs to its customer and may be held for their relationship owner

Revision ID: 0013_customers
Revises: 0012d_escalation

The conversations already stored are given their customers here (by source and the
author's handle, or name where there is none), so an upgraded database knows who
is returning from the first mention after the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0013_customers"
down_revision: str | None = "0012d_escalation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: the columns a conversation gains, and the table each refers to
_COLUMNS = (
    ("customer_id", "customer"),
    ("identity_id", "customer_identity"),
    ("relationship_owner_id", "person"),
)
_INDEXES = (
    ("ix_conversation_customer_id", ["customer_id", "id"]),
    ("ix_conversation_identity_id", ["identity_id"]),
    ("ix_conversation_held_until", ["held_until"]),
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "customer_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("handle", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "handle", name="uq_customer_identity"),
    )
    op.create_index("ix_customer_identity_customer_id", "customer_identity", ["customer_id"])
    if _sqlite():
        # SQLite adds a column with its reference in place. A batch rebuild of
        # `conversation` (copy, drop, rename) would break every row pointing at it
        # (mentions, history), and its foreign keys cannot be switched off inside the
        # migration's transaction.
        for column, parent in _COLUMNS:
            op.execute(
                f"ALTER TABLE conversation ADD COLUMN {column} INTEGER REFERENCES {parent} (id)"
            )
        op.add_column("conversation", sa.Column("held_until", sa.DateTime(timezone=True)))
    else:
        for column, parent in _COLUMNS:
            op.add_column("conversation", sa.Column(column, sa.Integer(), nullable=True))
            op.create_foreign_key(
                f"fk_conversation_{column}", "conversation", parent, [column], ["id"]
            )
        op.add_column(
            "conversation", sa.Column("held_until", sa.DateTime(timezone=True), nullable=True)
        )
    for name, columns in _INDEXES:
        op.create_index(name, "conversation", columns)
    _backfill()


def _backfill() -> None:
    """One customer per (source, handle or name) of the stored conversations.

    The tables are new and empty, so the ids are given here (1…N, a customer and its
    identity alike) and PostgreSQL's sequences are moved past them afterwards.
    """
    bind = op.get_bind()
    conversation = sa.table(
        "conversation",
        sa.column("id", sa.Integer()),
        sa.column("source", sa.String()),
        sa.column("customer_name", sa.String()),
        sa.column("customer_handle", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("customer_id", sa.Integer()),
        sa.column("identity_id", sa.Integer()),
    )
    rows = bind.execute(
        sa.select(
            conversation.c.source,
            conversation.c.customer_handle,
            conversation.c.customer_name,
            conversation.c.created_at,
        ).order_by(conversation.c.id)
    ).all()
    seen: dict[tuple[str, str], int] = {}
    customers: list[dict[str, object]] = []
    identities: list[dict[str, object]] = []
    for source, handle, name, created_at in rows:
        key = (source, (handle or name)[:255])
        if key in seen:
            continue
        number = len(seen) + 1
        seen[key] = number
        at = created_at or datetime.now(UTC)
        customers.append({"id": number, "owner_id": None, "created_at": at})
        identities.append(
            {
                "id": number,
                "customer_id": number,
                "source": key[0],
                "handle": key[1],
                "display_name": name[:255],
                "created_at": at,
            }
        )
    if not customers:
        return
    customer = sa.table(
        "customer",
        sa.column("id", sa.Integer()),
        sa.column("owner_id", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    identity = sa.table(
        "customer_identity",
        sa.column("id", sa.Integer()),
        sa.column("customer_id", sa.Integer()),
        sa.column("source", sa.String()),
        sa.column("handle", sa.String()),
        sa.column("display_name", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(customer, customers)
    op.bulk_insert(identity, identities)
    handle = sa.case(
        (conversation.c.customer_handle != "", conversation.c.customer_handle),
        else_=conversation.c.customer_name,
    )
    found = (
        sa.select(identity.c.id)
        .where(identity.c.source == conversation.c.source, identity.c.handle == handle)
        .scalar_subquery()
    )
    bind.execute(sa.update(conversation).values(identity_id=found))
    bind.execute(sa.update(conversation).values(customer_id=conversation.c.identity_id))
    if bind.dialect.name == "postgresql":
        for name in ("customer", "customer_identity"):
            bind.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
            )


def downgrade() -> None:
    for name, _ in _INDEXES:
        op.drop_index(name, "conversation")
    columns = [c for c, _ in _COLUMNS] + ["held_until"]
    if _sqlite():
        # (SQLite drops a column that only carries its own reference, without a rebuild)
        for column in columns:
            op.execute(f"ALTER TABLE conversation DROP COLUMN {column}")
    else:
        for column, _ in _COLUMNS:
            op.drop_constraint(f"fk_conversation_{column}", "conversation", type_="foreignkey")
        for column in columns:
            op.drop_column("conversation", column)
    op.drop_index("ix_customer_identity_customer_id", "customer_identity")
    op.drop_table("customer_identity")
    op.drop_table("customer")
