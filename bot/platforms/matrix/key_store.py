"""The Matrix bot's encryption keys, in the database: every instance can take them over.

With several instances, the one holding the `matrix` duty is the bot's one device.
When it dies, the next holder logs in as the same device (its id and access token
are in `matrix_account`) and must hold the same keys: the Olm account whose
identity and one-time keys the homeserver publishes for that device, the Olm
sessions other devices encrypt to it with, and the room keys (Megolm inbound
sessions) it received. Without them it cannot read what customers write in
encrypted rooms, and it cannot even upload keys for the device.

So nio's key store is the `matrix_key` table, not a directory. nio calls its store
synchronously, from inside a sync or a send; the database is async. `KeyStore` is
nio's store interface (the methods of nio.store.MatrixStore) over a dictionary,
which notes every change; `DatabaseKeys` writes the changes in one transaction:

- at the end of each sync, before the next sync is asked for. That order is what
  makes a failover lose nothing: the homeserver drops the to-device messages that
  brought room keys only when the next sync says it has them, so a key is in the
  database before its message is gone;
- before new one-time keys are uploaded (the homeserver may hand them out at once,
  and a pre-key message made with a key the next holder lacks cannot be read);
- soon after anything else (a send that made Olm sessions), by a task of its own.

Why not a shared volume with nio's own SQLite store: one more thing for operators to
mount, back up and keep consistent with the database, and SQLite on network file
systems is unreliable. The keys are small (a few KB per session) and change rarely.

An Inloop that kept its keys in MATRIX_STORE_DIR (nio's store, before this) has them
imported once, on the first start that finds none in the database for its device.

A stop writes what is left (a clean stop hands the duty over only after it). A holder
that lost its lease still writes its last changes as it stops, which may land after
the next holder started (an event loop blocked past the lease's margin, a slow
database): each run of the device writes with a generation one above the last, and
a key written by a later generation is not written over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from nio.crypto import (
    DeviceStore,
    GroupSessionStore,
    InboundGroupSession,
    OlmAccount,
    OlmDevice,
    OutgoingKeyRequest,
    Session,
    SessionStore,
    TrustState,
)

from bot.clock import Clock
from storage import matrix as state
from storage.database import Database

log = logging.getLogger(__name__)

KeyName = state.KeyName
ACCOUNT, OLM, MEGOLM, DEVICE, TRUST, ROOM, REQUEST = (
    "account",
    "olm_session",
    "group_session",
    "device",
    "trust",
    "encrypted_room",
    "key_request",
)
#: seconds before a save that failed is tried again (the database is away)
_RETRY = 1.0
#: nio's pickle key (AsyncClientConfig's default; the adapter passes it on): the
#: pickles are as safe as the database, which holds the device's access token too
PICKLE_KEY = "DEFAULT_KEY"


class KeyStore:
    """nio's key store (nio.store.MatrixStore's methods) over the rows of `matrix_key`.

    `rows` are the device's keys as stored, by (kind, name); `unsaved` says they are
    not in the database yet (an import). Every save notes a change and calls
    `changed`; `take_changes` hands them to whoever writes them.
    """

    def __init__(
        self,
        user_id: str,
        device_id: str,
        pickle_key: str,
        rows: Mapping[KeyName, str],
        changed: Callable[[], None] = lambda: None,
        *,
        unsaved: bool = False,
    ):
        self.user_id = user_id
        self.device_id = device_id
        self._pickle_key = pickle_key
        self._rows = dict(rows)
        self._changes: dict[KeyName, str | None] = dict(rows) if unsaved else {}
        self._changed = changed

    # -- what the writer uses ----------------------------------------------------------

    def take_changes(self) -> dict[KeyName, str | None]:
        changes, self._changes = self._changes, {}
        return changes

    def put_back(self, changes: Mapping[KeyName, str | None]) -> None:
        """Changes that could not be written: kept, unless changed again meanwhile."""
        self._changes = {**changes, **self._changes}

    @property
    def rows(self) -> dict[KeyName, str]:
        return dict(self._rows)

    def _put(self, kind: str, name: str, value: dict[str, Any] | str | None) -> None:
        key = (kind, name)
        text = value if value is None or isinstance(value, str) else json.dumps(value)
        if self._rows.get(key) == text:
            return
        if text is None:
            self._rows.pop(key, None)
        else:
            self._rows[key] = text
        self._changes[key] = text
        self._changed()

    def _all(self, kind: str) -> Iterable[tuple[str, dict[str, Any]]]:
        for (k, name), value in list(self._rows.items()):
            if k == kind:
                yield name, json.loads(value)

    # -- nio's store: the account ----------------------------------------------------------

    def load_account(self) -> OlmAccount | None:
        row = self._rows.get((ACCOUNT, ""))
        if row is None:
            return None
        saved = json.loads(row)
        account = OlmAccount.from_pickle(
            saved["pickle"].encode(), self._pickle_key, saved["shared"]
        )
        if account.upgrade_pickle:  # a libolm pickle (an import): kept in vodozemac's form
            account.upgrade_pickle = False
            self.save_account(account)
        return account

    def save_account(self, account: OlmAccount) -> None:
        pickle = account.pickle(self._pickle_key).decode()
        self._put(ACCOUNT, "", {"pickle": pickle, "shared": bool(account.shared)})

    # -- Olm sessions (to-device encryption with each device) ----------------------------

    def load_sessions(self) -> SessionStore:
        sessions = SessionStore()
        for _name, saved in self._all(OLM):
            session = Session.from_pickle(
                saved["pickle"].encode(),
                datetime.fromisoformat(saved["created"]),
                self._pickle_key,
                # kept (nio's own store forgets it): the most recently used session with
                # a device is the one to encrypt with, as before the failover
                datetime.fromisoformat(saved["used"]),
            )
            sessions.add(saved["sender_key"], session)
        return sessions

    def save_session(self, curve_key: str, session: Session) -> None:
        self._put(
            OLM,
            session.id,
            {
                "sender_key": curve_key,
                "pickle": session.pickle(self._pickle_key).decode(),
                "created": session.creation_time.isoformat(),
                "used": session.use_time.isoformat(),
            },
        )

    # -- Megolm inbound sessions (room keys) ---------------------------------------------

    def load_inbound_group_sessions(self) -> GroupSessionStore:
        sessions = GroupSessionStore()
        for _name, saved in self._all(MEGOLM):
            sessions.add(
                InboundGroupSession.from_pickle(
                    saved["pickle"].encode(),
                    saved["ed25519"],
                    saved["sender_key"],
                    saved["room_id"],
                    self._pickle_key,
                    saved["forwarding_chain"],
                )
            )
        return sessions

    def save_inbound_group_session(self, session: InboundGroupSession) -> None:
        self._put(
            MEGOLM,
            f"{session.sender_key}|{session.id}",
            {
                "pickle": session.pickle(self._pickle_key).decode(),
                "ed25519": session.ed25519,
                "sender_key": session.sender_key,
                "room_id": session.room_id,
                "forwarding_chain": list(session.forwarding_chain),
            },
        )

    # -- devices seen, and their trust -----------------------------------------------------

    def load_device_keys(self) -> DeviceStore:
        devices = DeviceStore()
        for _name, saved in self._all(DEVICE):
            device = OlmDevice(
                saved["user_id"],
                saved["device_id"],
                saved["keys"],
                display_name=saved["display_name"],
                deleted=saved["deleted"],
            )
            trust = self._rows.get((TRUST, _trust_name(device)))
            device.trust_state = TrustState[trust] if trust else TrustState.unset
            devices.add(device)
        return devices

    def save_device_keys(self, device_keys: Mapping[str, Mapping[str, OlmDevice]]) -> None:
        for user_id, devices in device_keys.items():
            for device_id, device in devices.items():
                self._put(
                    DEVICE,
                    f"{user_id}|{device_id}",
                    {
                        "user_id": user_id,
                        "device_id": device_id,
                        "keys": dict(device.keys),
                        "display_name": device.display_name or "",
                        "deleted": bool(device.deleted),
                    },
                )

    def _trust(self, device: OlmDevice, state: TrustState) -> bool:
        """Set a device's trust; whether it changed (nio's stores answer that)."""
        name = _trust_name(device)
        before = self._rows.get((TRUST, name))
        after = None if state == TrustState.unset else state.name
        device.trust_state = state
        self._put(TRUST, name, after)
        return before != after

    def _is(self, device: OlmDevice, state: TrustState) -> bool:
        return self._rows.get((TRUST, _trust_name(device))) == str(state.name)

    def verify_device(self, device: OlmDevice) -> bool:
        return self._trust(device, TrustState.verified)

    def unverify_device(self, device: OlmDevice) -> bool:
        return self._is(device, TrustState.verified) and self._trust(device, TrustState.unset)

    def is_device_verified(self, device: OlmDevice) -> bool:
        return self._is(device, TrustState.verified)

    def blacklist_device(self, device: OlmDevice) -> bool:
        return self._trust(device, TrustState.blacklisted)

    def unblacklist_device(self, device: OlmDevice) -> bool:
        return self._is(device, TrustState.blacklisted) and self._trust(device, TrustState.unset)

    def is_device_blacklisted(self, device: OlmDevice) -> bool:
        return self._is(device, TrustState.blacklisted)

    def ignore_device(self, device: OlmDevice) -> bool:
        return self._trust(device, TrustState.ignored)

    def unignore_device(self, device: OlmDevice) -> bool:
        return self._is(device, TrustState.ignored) and self._trust(device, TrustState.unset)

    def ignore_devices(self, devices: list[OlmDevice]) -> None:
        for device in devices:
            self._trust(device, TrustState.ignored)

    def is_device_ignored(self, device: OlmDevice) -> bool:
        return self._is(device, TrustState.ignored)

    # -- encrypted rooms, key requests, sync token -------------------------------------------

    def load_encrypted_rooms(self) -> set[str]:
        return {name for (kind, name) in self._rows if kind == ROOM}

    def save_encrypted_rooms(self, rooms: Iterable[str]) -> None:
        for room in rooms:
            self._put(ROOM, room, "")

    def delete_encrypted_room(self, room: str) -> None:
        self._put(ROOM, room, None)

    def load_outgoing_key_requests(self) -> dict[str, OutgoingKeyRequest]:
        return {
            name: OutgoingKeyRequest(
                name, saved["session_id"], saved["room_id"], saved["algorithm"]
            )
            for name, saved in self._all(REQUEST)
        }

    def add_outgoing_key_request(self, request: OutgoingKeyRequest) -> None:
        self._put(
            REQUEST,
            request.request_id,
            {
                "session_id": request.session_id,
                "room_id": request.room_id,
                "algorithm": request.algorithm,
            },
        )

    def remove_outgoing_key_request(self, request: OutgoingKeyRequest) -> None:
        self._put(REQUEST, request.request_id, None)

    def save_sync_token(self, token: str) -> None:
        """Not here: `matrix_account` keeps it (saved once a sync's events are handled)."""

    def load_sync_token(self) -> str | None:
        return None


def _trust_name(device: OlmDevice) -> str:
    # with its key: a device id that comes back with other keys is another device
    return f"{device.user_id}|{device.id}|{device.keys.get('ed25519', '')}"


class DatabaseKeys:
    """Gives nio a `KeyStore` holding the device's keys from the database, and writes
    its changes back (see the module docstring for when)."""

    def __init__(self, db: Database, clock: Clock, legacy_dir: Path):
        self._db = db
        self._clock = clock
        #: MATRIX_STORE_DIR/<user>: where an older Inloop kept nio's SQLite store
        self._legacy_dir = legacy_dir
        self.store: KeyStore | None = None
        self._loaded: tuple[str, dict[KeyName, str], bool] | None = None
        #: this run's generation (storage/matrix.py `save_keys`)
        self._generation = 1
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def prepare(self, user_id: str, device_id: str | None) -> None:
        """Read the keys of the device about to be restored (None: a new device, which
        has none): from the database, else once from MATRIX_STORE_DIR."""
        self._loaded = None
        self._generation = 1  # a new device: nobody ran it before
        if not device_id:
            return
        async with self._db.transaction() as session:
            rows = await state.keys(session, user_id, device_id)
            self._generation = await state.next_generation(
                session, user_id, device_id, self._clock()
            )
        unsaved = False
        if (ACCOUNT, "") not in rows:
            rows = await asyncio.to_thread(_import, self._legacy_dir, user_id, device_id)
            unsaved = bool(rows)
            if rows:
                log.info("Matrix: the encryption keys in %s move to the database", self._legacy_dir)
        self._loaded = (device_id, rows, unsaved)

    def make(
        self,
        user_id: str,
        device_id: str,
        store_path: str = "",
        pickle_key: str = "",
        store_name: str = "",
    ) -> KeyStore:
        """nio's call for a store (AsyncClientConfig.store), at login or its restore."""
        rows: Mapping[KeyName, str] = {}
        unsaved = False
        if self._loaded is not None and self._loaded[0] == device_id:
            _, rows, unsaved = self._loaded
        self.store = KeyStore(user_id, device_id, pickle_key, rows, self._wake.set, unsaved=unsaved)
        return self.store

    async def save(self) -> None:
        """Write what changed since the last save, in one transaction."""
        async with self._lock:
            store = self.store
            if store is None:
                return
            changes = store.take_changes()
            if not changes:
                return
            try:
                async with self._db.transaction() as session:
                    await state.save_keys(
                        session,
                        store.user_id,
                        store.device_id,
                        changes,
                        self._generation,
                        self._clock(),
                    )
            except BaseException:
                store.put_back(changes)
                raise

    def start(self) -> None:
        """Save soon after any change (the sync saves on its own, before the next one)."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_saving(), name="matrix-keys")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # a database that is gone must not block exit
            await self.save()

    async def _keep_saving(self) -> None:
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.save()
            except Exception as exc:
                if not failing:
                    log.warning(
                        "Matrix: cannot save the encryption keys (%s); retrying",
                        str(exc) or type(exc).__name__,
                    )
                failing = True
                self._wake.set()
                await asyncio.sleep(_RETRY)
            else:
                if failing:
                    log.warning("Matrix: the encryption keys are saved again")
                failing = False


def _import(directory: Path, user_id: str, device_id: str) -> dict[KeyName, str]:
    """The device's keys from nio's own store in `directory` (none if it has none)."""
    path = directory / f"{user_id}_{device_id}.db"
    if not path.is_file():
        return {}
    from nio.store import DefaultStore

    old = DefaultStore(user_id, device_id, str(directory), PICKLE_KEY)
    try:
        account = old.load_account()
        if account is None:
            return {}
        into = KeyStore(user_id, device_id, PICKLE_KEY, {})
        into.save_account(account)
        for sender_key, sessions in old.load_sessions().items():
            for session in sessions:
                into.save_session(sender_key, session)
        for group_session in old.load_inbound_group_sessions():
            into.save_inbound_group_session(group_session)
        devices = old.load_device_keys()
        into.save_device_keys({user: dict(by_id) for user, by_id in devices.items()})
        for device in devices:
            if device.trust_state != TrustState.unset:
                into._trust(device, device.trust_state)
        into.save_encrypted_rooms(old.load_encrypted_rooms())
        for request in old.load_outgoing_key_requests().values():
            into.add_outgoing_key_request(request)
        return into.rows
    finally:
        old.database.close()
