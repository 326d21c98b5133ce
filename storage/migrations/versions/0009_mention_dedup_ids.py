"""every stored mention has its dedup id in processed_event

Mentions from watched channels used to be deduplicated under `watch:<platform event
id>`. Since every door dedupes a mention by (source, external_id) instead, such a
message arriving again (under another platform event id) was taken for new, and its
insert hit the mention's unique key. This back-fills the ids.

Revision ID: 0009
Revises: 0008d
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
MAX_EVENT_ID = 255


def _event_id(source: str, external_id: str) -> str:
    # A frozen copy of `MentionReceived.event_id`: a migration must not change with the code.
    natural = f"mention:{len(source)}:{source}:{external_id}"
    if len(natural) <= MAX_EVENT_ID:
        return natural
    return "mention:sha256:" + hashlib.sha256(natural.encode()).hexdigest()


def upgrade() -> None:
    connection = op.get_bind()
    read = sa.text(
        "SELECT id, source, external_id, received_at FROM mention"
        " WHERE id > :after ORDER BY id LIMIT :chunk"
    )
    # ON CONFLICT DO NOTHING: the same words on SQLite (3.24+) and PostgreSQL.
    write = sa.text(
        "INSERT INTO processed_event (event_id, at) VALUES (:event_id, :at) ON CONFLICT DO NOTHING"
    )
    after = 0
    while rows := connection.execute(read, {"after": after, "chunk": CHUNK}).all():
        connection.execute(
            write,
            [{"event_id": _event_id(source, ext), "at": at} for _, source, ext, at in rows],
        )
        after = rows[-1][0]


def downgrade() -> None:
    # The ids are true of the mentions whatever the revision: nothing to undo.
    pass
