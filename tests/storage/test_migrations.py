"""Migrations bring an empty database to the current schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection

from harness import Chat, channel
from recording import field_value
from storage.database import Database
from storage.migrate import SchemaTooNew, alembic_config, current_revision, upgrade
from storage.models import Conversation

TABLES = {
    "advice_message",
    "advice_request",
    "alembic_version",
    "audit_log",
    "away",
    "commitment",
    "continuity_count",
    "conversation",
    "customer",
    "customer_identity",
    "duty_lease",
    "day_total",
    "day_wait",
    "dialogue_session",
    "escalation_nudge",
    "feed",
    "inbox",
    "instance_lease",
    "matrix_account",
    "matrix_direct_room",
    "matrix_key",
    "mention",
    "outbox",
    "person",
    "processed_event",
    "role_channel",
    "team",
    "team_member",
    "watched_channel",
}

#: the tables of 0016a_inbox_instances
_0016A = {"inbox", "instance_lease"}
_0016B = {"matrix_key"}
_0016C = {"day_total", "day_wait"}
_0018A = {"continuity_count"}


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _restarted(database_url: str, chat: Chat) -> Chat:
    """Inloop started again on the database (which upgrades it), in the same chat."""
    again = Chat(database_url)
    again.platform = again.app.platforms["console"] = chat.platform
    await again.start()
    return again


async def test_an_empty_database_is_migrated_to_the_current_schema(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await current_revision(db) is None
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert await current_revision(db) == head
        await upgrade(db)  # a second start changes nothing and does not fail
        assert await current_revision(db) == head
    finally:
        await db.dispose()


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    """A model changed without a migration would break the first user who upgrades."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401

    db = Database(database_url)
    try:
        await upgrade(db)

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            return list(compare_metadata(context, SQLModel.metadata))

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


async def test_a_watched_message_stored_before_0009_arriving_again_is_a_retry(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 0009, watched channels deduped a message under its platform event id only:
    the same message under another event id was taken for new, and its insert failed."""
    first = await Chat(database_url).start()
    first.platform.guests.add("giulia")
    await first.say("boss", "team add support", where="support")
    await first.say("boss", "team watch", where="community")
    await first.post("giulia", "La scatola è arrivata rotta", "community", ref="m1")
    await first.stop()
    # What a database written before 0009 holds: no `mention:` dedup id for it.
    db = Database(database_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: _downgrade(sync, "0008d"))
        await conn.execute(text("DELETE FROM processed_event WHERE event_id LIKE 'mention:%'"))
    await db.dispose()

    again = await _restarted(database_url, first)  # upgrades
    try:
        await again.post("giulia", "La scatola è arrivata rotta", "community", ref="m1")
        await again.post("giulia", "Nessuna risposta?", "community", ref="m2")

        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert field_value(again.platform.card(1), "Messages") == "1"
        assert again.platform.card(2).text == "Nessuna risposta?"
        assert len(again.platform.in_channel(channel("support"))) == 2
    finally:
        await again.stop()


async def test_instances_that_start_together_on_one_database_migrate_once(
    database_url: str,
) -> None:
    """Three instances started at once on an empty PostgreSQL: one died with
    `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`."""
    dbs = [Database(database_url) for _ in range(3)]
    try:
        # Without the migration lock they collide, or wait on each other for ever.
        await asyncio.wait_for(asyncio.gather(*(upgrade(db) for db in dbs)), timeout=60)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert [await current_revision(db) for db in dbs] == [head] * 3
        async with dbs[0].engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
    finally:
        for db in dbs:
            await db.dispose()


async def test_an_older_inloop_refuses_a_database_a_newer_one_upgraded(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
        with pytest.raises(SchemaTooNew, match=r"0099_future.*newer Inloop"):
            await upgrade(db)
        assert await current_revision(db) == "0099_future"  # untouched
    finally:
        await db.dispose()


async def test_team_members_go_with_a_downgrade_and_come_back_with_the_upgrade(
    database_url: str,
) -> None:
    """0011 adds memberships: downgrading drops them and nothing else, upgrading again
    starts with nobody a member."""
    chat = await Chat(database_url).start()
    await chat.say("boss", "team add support", where="support")
    await chat.say("ann", "team join support")
    await chat.stop()
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: _downgrade(sync, "0010"))
            # and the revisions after it (0012d, 0013, 0014, 0016a, 0016b, 0016c)
            later = {"team_member", "escalation_nudge", "customer", "customer_identity"}
            assert (
                await conn.run_sync(_tables)
                == TABLES - later - {"duty_lease"} - _0016A - _0016B - _0016C - _0018A
            )
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
    finally:
        await db.dispose()

    again = await Chat(database_url).start()
    try:
        assert await again.say("boss", "team members support") == (
            "support has no members. `team join support` joins it."
        )
    finally:
        await again.stop()


async def test_team_targets_go_with_a_downgrade_and_the_defaults_come_back(
    database_url: str,
) -> None:
    """0012d adds each team's targets and hours, and the nudges done: downgrading drops
    them and nothing else; upgrading again, the team is back on the settings' defaults."""
    chat = await Chat(database_url).start()
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team target support claim 30m reply 2h")
    await chat.say("boss", "team hours support mon-fri 09:00-18:00 Europe/Rome")
    await chat.stop()
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: _downgrade(sync, "0011_team_members"))
            later = {"escalation_nudge", "customer", "customer_identity"}  # 0012d and 0013
            # and 0014, 0016a, 0016b, 0016c
            assert (
                await conn.run_sync(_tables)
                == TABLES - later - {"duty_lease"} - _0016A - _0016B - _0016C - _0018A
            )
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("team")}
            )
            assert "claim_target_minutes" not in columns and "work_tz" not in columns
        await upgrade(db)
    finally:
        await db.dispose()

    again = await Chat(database_url).start()
    try:
        assert await again.say("boss", "team target support") == (
            "support: claim within 1h, reply within 4h, counted around the clock "
            "(no working hours)."
        )
    finally:
        await again.stop()


async def test_an_upgraded_database_knows_its_returning_customers(database_url: str) -> None:
    """0013 gives the conversations stored before it their customers (by source and
    handle, or name): Giulia's next conversation after the upgrade says she is back."""
    first = await Chat(database_url).start()
    await first.say("boss", "team add support", where="support")
    await first.mention("Giulia", "La scatola è rotta", key="g-1")
    await first.mention("Giulia", "E il rimborso?", key="g-2")
    await first.mention("Paolo", "Ordine in ritardo", key="p-1")
    await first.say("ann", "claim 2")
    await first.say("ann", "resolve 2")
    await first.stop()
    db = Database(database_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: _downgrade(sync, "0012d_escalation"))
        assert "customer" not in await conn.run_sync(_tables)
    await db.dispose()

    again = await _restarted(database_url, first)  # upgrades
    try:
        await again.mention("Giulia", "Sono ancora io", key="g-3")
        await again.mention("Sara", "Prima volta", key="s-1")

        assert field_value(again.platform.card(4), "Customer") == (
            "Returning: 2 before · last 16 Nov with Ann, resolved"
        )
        assert field_value(again.platform.card(4), "Relationship").startswith("Ann's customer")
        assert "Customer" not in {f.label for f in again.platform.card(5).fields}
        assert "Identities: twitter:@paolo (Paolo)" in await again.say("ann", "customer #3")
    finally:
        await again.stop()


async def test_day_totals_go_with_a_downgrade_and_are_closed_again_after_the_upgrade(
    database_url: str,
) -> None:
    """0016c adds the digest's closed days: downgrading drops them (and gives
    `conversation` its claim-time index back); after the upgrade the job closes the
    days again from the rows, and the digest says the same throughout."""
    from datetime import UTC, datetime

    chat = await Chat(database_url, DIGEST_TZ="Europe/Rome").start()
    await chat.say("boss", "team add support", where="support")
    await chat.at(datetime(2026, 11, 17, 9, 0, tzinfo=UTC))
    await chat.mention("Giulia", "Il pacco?")
    await chat.at(datetime(2026, 11, 17, 9, 20, tzinfo=UTC))
    await chat.say("ann", "claim 1")
    await chat.at(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))  # the week is closed
    before = await chat.say("boss", "digest 2026-W47")
    await chat.stop()

    def indexes(sync: Connection) -> set[str]:
        return {i["name"] or "" for i in inspect(sync).get_indexes("conversation")}

    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            assert "day_total" in await conn.run_sync(_tables)
            await conn.run_sync(lambda sync: _downgrade(sync, "0016b_matrix_keys"))
            assert await conn.run_sync(_tables) == TABLES - {"day_total", "day_wait"} - _0018A
            assert "ix_conversation_claimed_at" in await conn.run_sync(indexes)
        await upgrade(db)
    finally:
        await db.dispose()

    again = await Chat(database_url, DIGEST_TZ="Europe/Rome").start()
    try:
        assert await again.say("boss", "digest 2026-W47") == before  # from the rows
        await again.at(datetime(2026, 11, 24, 9, 1, tzinfo=UTC))  # the job closes the days
        async with again.app.db.read() as session:
            closed = await session.scalar(text("SELECT count(*) FROM day_total WHERE days = 7"))
        assert closed == 1
        assert await again.say("boss", "digest 2026-W47") == before
    finally:
        await again.stop()


async def test_closed_weeks_are_made_again_with_their_medians_after_0016d(
    database_url: str,
) -> None:
    """0016d gives the digest's live parts their covering indexes (a downgrade gives the
    old ones back) and deletes the closed weeks' rows, which lack their medians: the
    week is read from its days until the job makes its row again, and the digest says
    the same throughout."""
    from datetime import UTC, datetime

    chat = await Chat(database_url, DIGEST_TZ="Europe/Rome").start()
    await chat.say("boss", "team add support", where="support")
    await chat.at(datetime(2026, 11, 17, 9, 0, tzinfo=UTC))
    await chat.mention("Giulia", "Il pacco?")
    await chat.mention("Marco", "La fattura?")
    await chat.at(datetime(2026, 11, 17, 9, 20, tzinfo=UTC))
    await chat.say("ann", "claim 1")
    await chat.at(datetime(2026, 11, 18, 10, 0, tzinfo=UTC))
    await chat.say("bob", "claim 2")
    await chat.at(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))  # the week is closed
    before = await chat.say("boss", "digest 2026-W47")
    await chat.stop()

    def indexes(sync: Connection) -> set[str]:
        inspector = inspect(sync)
        return {
            i["name"] or ""
            for table in ("conversation", "advice_request", "dialogue_session")
            for i in inspector.get_indexes(table)
        }

    new = {
        "ix_conversation_created_continuity",
        "ix_conversation_team_status_created",
        "ix_advice_request_created_consultant",
        "ix_advice_request_answered_consultant",
        "ix_dialogue_session_start_person",
    }
    old = {
        "ix_conversation_created_at",
        "ix_conversation_team_status",
        "ix_advice_request_created_at",
        "ix_advice_request_answered_at",
        "ix_dialogue_session_occurrence_start",
    }

    async def weeks(db: Database) -> int:
        async with db.read() as session:
            found = await session.scalar(text("SELECT count(*) FROM day_total WHERE days = 7"))
        return int(found or 0)

    db = Database(database_url)
    try:
        assert await weeks(db) == 1
        async with db.engine.begin() as conn:
            assert new <= await conn.run_sync(indexes)
            await conn.run_sync(lambda sync: _downgrade(sync, "0016c_day_aggregates"))
            found = await conn.run_sync(indexes)
            assert old <= found and not new & found
        assert await weeks(db) == 1  # kept: the code before reads it as it did
        await upgrade(db)
        async with db.engine.connect() as conn:
            found = await conn.run_sync(indexes)
            assert new <= found and not old & found
        assert await weeks(db) == 0
    finally:
        await db.dispose()

    again = await Chat(database_url, DIGEST_TZ="Europe/Rome").start()
    try:
        assert await again.say("boss", "digest 2026-W47") == before  # from its days
        await again.at(datetime(2026, 11, 24, 9, 1, tzinfo=UTC))  # the job makes the week
        assert await weeks(again.app.db) == 1
        assert await again.say("boss", "digest 2026-W47") == before
    finally:
        await again.stop()


async def test_conversations_stored_before_0017a_know_their_returning_customers(
    database_url: str,
) -> None:
    """0017a keeps on each conversation whether its customer had one before, for the
    digest's continuity; the conversations stored before it get it from their rows:
    Giulia's second conversation, and her email linked to her after the fact, are
    returns; Paolo's only one is not. The digest says the same before and after, and
    a conversation stored after the upgrade is marked by routing."""
    chat = await Chat(database_url).start()
    await chat.say("boss", "team add support", where="support")
    await chat.say("ann", "teams")
    await chat.mention("Giulia", "Il pacco?")
    await chat.say("boss", "customer owner twitter:@giulia @ann")
    await chat.mention("Giulia", "Ancora io")
    await chat.mention("Giulia", "Per email", source="email")
    await chat.mention("Paolo", "Ordine?")
    await chat.say("ann", "claim 2")
    await chat.say("boss", "customer link twitter:@giulia email:@giulia")
    before = await chat.say("boss", "digest this")
    await chat.stop()
    assert "continuity: 2 conversations of returning customers, 50%" in before

    def columns(sync: Connection) -> set[str]:
        return {c["name"] for c in inspect(sync).get_columns("conversation")}

    async def returning(db: Database) -> list[int]:
        async with db.read() as session:
            found = await session.scalars(
                text("SELECT id FROM conversation WHERE returning_customer ORDER BY id")
            )
        return list(found)

    db = Database(database_url)
    try:
        assert await returning(db) == [2, 3]
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: _downgrade(sync, "0016d_digest_live_parts"))
            assert "returning_customer" not in await conn.run_sync(columns)
        await upgrade(db)
        assert await returning(db) == [2, 3]
    finally:
        await db.dispose()

    again = await _restarted(database_url, chat)  # upgrades
    try:
        assert await again.say("boss", "digest this") == before
        await again.mention("Paolo", "Di nuovo io")
        assert await returning(again.app.db) == [2, 3, 5]
    finally:
        await again.stop()


async def test_continuity_counts_are_made_from_the_rows_and_kept_by_the_triggers(
    database_url: str,
) -> None:
    """0018a counts the returning customers' conversations by UTC week, team and
    relationship owner, for the digest; the conversations stored before it are counted
    from their rows (as they are at the upgrade: a change made while downgraded is in),
    and the counts follow every change after it (a claim by the relationship owner, a
    new conversation, one that goes). Downgraded, the triggers go with the table: the
    conversations can still be written."""
    chat = await Chat(database_url).start()
    await chat.say("boss", "team add support", where="support")
    await chat.say("ann", "teams")
    await chat.mention("Giulia", "Il pacco?")
    await chat.say("boss", "customer owner twitter:@giulia @ann")
    await chat.mention("Giulia", "Ancora io")  # #2: a return, Ann's customer
    await chat.mention("Paolo", "Ordine?")
    await chat.mention("Paolo", "Di nuovo")  # #4: a return, no relationship owner
    await chat.say("ann", "claim 2")
    before = await chat.say("boss", "digest this")
    await chat.stop()
    assert "continuity: 2 conversations of returning customers, 50%" in before

    async def counts(db: Database) -> list[tuple[str, str, str, int, int]]:
        async with db.read() as session:
            found = await session.execute(
                text(
                    "SELECT c.week, t.name, coalesce(p.display_name, '-'), c.conversations, "
                    "c.by_owner FROM continuity_count c JOIN team t ON t.id = c.team_id "
                    "LEFT JOIN person p ON p.id = c.holder_id "
                    "WHERE c.conversations <> 0 ORDER BY 1, 2, 3"
                )
            )
        return [(str(w), str(t), str(h), int(n), int(m)) for w, t, h, n, m in found]

    # the week of 16 November 2026 (the chat's clock), team support
    week = "2026-11-16"
    db = Database(database_url)
    try:
        assert await counts(db) == [(week, "support", "-", 1, 0), (week, "support", "Ann", 1, 1)]
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: _downgrade(sync, "0017a_conversation_returning"))
            assert await conn.run_sync(_tables) == TABLES - _0018A
            # no trigger left behind to write to a table that is gone
            await conn.execute(text("UPDATE conversation SET owner_id = NULL WHERE id = 2"))
        await upgrade(db)
        assert await counts(db) == [(week, "support", "-", 1, 0), (week, "support", "Ann", 1, 0)]
        async with db.transaction() as session:
            owner = await session.scalar(text("SELECT id FROM person WHERE display_name = 'Ann'"))
            await session.execute(
                text("UPDATE conversation SET owner_id = :owner WHERE id = 2"), {"owner": owner}
            )
        assert await counts(db) == [(week, "support", "-", 1, 0), (week, "support", "Ann", 1, 1)]
    finally:
        await db.dispose()

    again = await _restarted(database_url, chat)  # upgrades
    try:
        assert await again.say("boss", "digest this") == before
        await again.mention("Giulia", "Terza volta")  # #5: Ann's customer, unclaimed
        assert await counts(again.app.db) == [
            (week, "support", "-", 1, 0),
            (week, "support", "Ann", 2, 1),
        ]
        # one written and deleted by hand, the week after (a Sunday evening in UTC)
        async with again.app.db.transaction() as session:
            team = await session.scalar(text("SELECT id FROM team WHERE name = 'support'"))
            await session.execute(
                insert(Conversation).values(
                    source="email",
                    conversation_key="by-hand",
                    customer_name="Sara",
                    team_id=team,
                    created_at=datetime(2026, 11, 29, 23, 59, tzinfo=UTC),
                    updated_at=datetime(2026, 11, 29, 23, 59, tzinfo=UTC),
                    returning_customer=True,
                )
            )
        assert (await counts(again.app.db))[-1] == ("2026-11-23", "support", "-", 1, 0)
        async with again.app.db.transaction() as session:
            await session.execute(
                text("DELETE FROM conversation WHERE conversation_key = 'by-hand'")
            )
        assert await counts(again.app.db) == [
            (week, "support", "-", 1, 0),
            (week, "support", "Ann", 2, 1),
        ]
    finally:
        await again.stop()


async def test_instances_and_the_inbox_go_with_a_downgrade_and_come_back(
    database_url: str,
) -> None:
    """0016a adds the instances' liveness, the inbox and the outbox lease's holder:
    downgrading drops them and nothing else, upgrading brings them back."""
    db = Database(database_url)
    try:
        await upgrade(db)
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: _downgrade(sync, "0015_customer_erasure"))
            # and the revisions after it (0016b, 0016c)
            assert await conn.run_sync(_tables) == TABLES - _0016A - _0016B - _0016C - _0018A
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("outbox")}
            )
            assert "leased_by" not in columns and "leased_until" in columns
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
    finally:
        await db.dispose()
