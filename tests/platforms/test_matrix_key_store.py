"""The key store's writes to the database, on SQLite and PostgreSQL (the Matrix side is
in test_matrix_keys.py, against a real Synapse)."""

from __future__ import annotations

from pathlib import Path

from nio.crypto import OlmAccount, OlmDevice

from bot.clock import utc_now
from bot.platforms.matrix.key_store import PICKLE_KEY, DatabaseKeys, KeyStore
from storage import matrix as state
from storage.database import Database
from storage.migrate import upgrade

USER, DEVICE = "@inloop:example.org", "BOTDEVICE"


async def run_of_the_device(db: Database, tmp_path: Path) -> tuple[DatabaseKeys, KeyStore]:
    """An instance taking the device over: its keys read, as nio asks for its store."""
    keys = DatabaseKeys(db, utc_now, tmp_path / "no-older-store")
    await keys.prepare(USER, DEVICE)
    return keys, keys.make(USER, DEVICE, "", PICKLE_KEY)


async def test_a_holder_that_stops_late_does_not_write_over_what_the_next_one_wrote(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            await state.save_login(session, USER, DEVICE, "token", utc_now())
        first, first_store = await run_of_the_device(db, tmp_path)
        assert first_store.load_account() is None  # a device nobody ran yet
        first_store.save_account(OlmAccount())
        await first.save()

        # The first holder's lease is lost while its loop is blocked; the next one
        # takes the device over with the account as saved, and uploads new keys.
        second, second_store = await run_of_the_device(db, tmp_path)
        account = second_store.load_account()
        assert account is not None
        account.generate_one_time_keys(5)
        second_store.save_account(account)
        await second.save()

        # The first one's stop comes late, with an account that had changed meanwhile,
        # and a device it had just seen.
        stale = first_store.load_account()
        assert stale is not None
        stale.generate_one_time_keys(3)
        first_store.save_account(stale)
        seen = OlmDevice("@ann:example.org", "ANNPHONE", {"ed25519": "e", "curve25519": "c"})
        first_store.save_device_keys({seen.user_id: {seen.id: seen}})
        await first.stop()

        third, third_store = await run_of_the_device(db, tmp_path)
        kept = third_store.load_account()
        assert kept is not None
        assert kept.one_time_keys == account.one_time_keys  # the second holder's account
        assert kept.identity_keys == account.identity_keys
        # what the second one never wrote is kept from the first
        assert [d.id for d in third_store.load_device_keys().active_user_devices(seen.user_id)] == [
            "ANNPHONE"
        ]
        await third.stop()
        await second.stop()
    finally:
        await db.dispose()
