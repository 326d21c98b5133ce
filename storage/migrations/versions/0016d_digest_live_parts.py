"""digest: what a week's digest still reads from the rows, from indexes alone

Revision ID: 0016d_digest_live_parts
Revises: 0016c_day_aggregates

The closed days (0016c) hold what cannot change once a day is over. What can change
later is still read from the rows at each digest, bounded by the week: returning
customers (a conversation's owner, team, customer and relationship owner change after
its day), advice (answered and rated later), dialogue time (given later), and what
waits now. Each of these now reads one index and never the table, so a week costs a
range of index entries, not a row fetched per conversation:

- `conversation (created_at, customer_id, id, team_id, relationship_owner_id,
  owner_id)` replaces `(created_at)`: the week's conversations for continuity, and
  each one's earlier conversation found in `(customer_id, id)`;
- `conversation (team_id, status, created_at, id)` replaces `(team_id, status)`: a
  team's unclaimed conversations counted, and its oldest ten, in index order instead
  of sorting the team's whole backlog;
- `advice_request (created_at, consultant_id, conversation_id)` and `(answered_at,
  consultant_id, created_at, rating, conversation_id)` replace `(created_at)` and
  `(answered_at)`;
- `dialogue_session (occurrence_start, person_id, outcome, minutes_planned,
  minutes_given)` replaces `(occurrence_start)`.

A closed week's row now keeps its medians too (a person's, a team's), so that a
week's digest reads a few numbers a person instead of every value of the week. The
week rows closed before this revision lack them: they are deleted here, and the
digest's job (`digest-days`) makes them again from their closed days, a few weeks a
minute; until then such a week is read from its seven day rows, with the same
figures. (A migration cannot make them: the medians are bot code.)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016d_digest_live_parts"
down_revision: str | None = "0016c_day_aggregates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table → (new index, its columns, the index it replaces, that one's columns)
_REPLACED = (
    (
        "conversation",
        "ix_conversation_created_continuity",
        ["created_at", "customer_id", "id", "team_id", "relationship_owner_id", "owner_id"],
        "ix_conversation_created_at",
        ["created_at"],
    ),
    (
        "conversation",
        "ix_conversation_team_status_created",
        ["team_id", "status", "created_at", "id"],
        "ix_conversation_team_status",
        ["team_id", "status"],
    ),
    (
        "advice_request",
        "ix_advice_request_created_consultant",
        ["created_at", "consultant_id", "conversation_id"],
        "ix_advice_request_created_at",
        ["created_at"],
    ),
    (
        "advice_request",
        "ix_advice_request_answered_consultant",
        ["answered_at", "consultant_id", "created_at", "rating", "conversation_id"],
        "ix_advice_request_answered_at",
        ["answered_at"],
    ),
    (
        "dialogue_session",
        "ix_dialogue_session_start_person",
        ["occurrence_start", "person_id", "outcome", "minutes_planned", "minutes_given"],
        "ix_dialogue_session_occurrence_start",
        ["occurrence_start"],
    ),
)


def upgrade() -> None:
    for table, name, columns, old, _ in _REPLACED:
        op.create_index(name, table, columns)
        op.drop_index(old, table_name=table)
    op.execute("DELETE FROM day_total WHERE days = 7")


def downgrade() -> None:
    # The week rows made since keep their arrays too: the code before reads them as
    # it did, and ignores their medians.
    for table, name, _, old, old_columns in reversed(_REPLACED):
        op.create_index(old, table, old_columns)
        op.drop_index(name, table_name=table)
