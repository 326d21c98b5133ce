"""The Matrix adapter: matrix-nio's AsyncClient, thin over `translate`.

- Its session (device, access token, sync token) lives in the database, so a
  restart resumes at the last sync whose events were all handled: nothing is
  missed, and a re-delivered event is dropped by the router's dedup. A first
  start skips the rooms' history.
- Every send carries the outbox row's key as the transaction id: a resend after
  a crash is deduplicated by the homeserver.
- Encrypted rooms: nio's end-to-end support with its key store in the database
  (key_store.py), so that another instance can take the device over. Trust
  policy: room keys go to every device of the room's members (membership is the
  access control there, as in any Matrix client that does not require
  verification), and devices of the bot's own homeserver are trusted on first
  use: marked verified the first time they are seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import ClientError
from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    InviteInfo,
    InviteMemberEvent,
    JoinError,
    KeysUploadResponse,
    LocalProtocolError,
    LoginError,
    MegolmEvent,
    ProfileGetDisplayNameResponse,
    RoomCreateError,
    RoomPreset,
    RoomSendResponse,
    SyncError,
    SyncResponse,
    UploadResponse,
    WhoamiError,
)

from bot.account_limit import AccountLimit
from bot.clock import Clock
from bot.config import Settings
from bot.events import ChannelId, NotYet, PersonId, local_part
from bot.people import is_staff
from bot.platform import DeliveryError, EventSink, PersonInfo, StartError
from bot.platforms.matrix import translate
from bot.platforms.matrix.key_store import PICKLE_KEY, DatabaseKeys
from bot.views import Attachment, Card, Chart, Notice, View
from storage import matrix as state
from storage.database import Database
from storage.people import find

log = logging.getLogger(__name__)
T = TypeVar("T")

#: every sync may bring this many events per room: a restart after a long stop catches up
_SYNC_FILTER = {"room": {"timeline": {"limit": 500}}, "presence": {"types": []}}
#: a first start only wants the rooms and pending invites, not the history
_FIRST_SYNC_FILTER = {"room": {"timeline": {"limit": 1}}, "presence": {"types": []}}
_NETWORK_ERRORS = (ClientError, OSError, TimeoutError)
#: seconds between two saves of the sync token (see _save_token)
_SAVE_TOKEN_EVERY = 2.0
#: times a join refused for the rate limit (429) is tried again, when Synapse says
_JOIN_TRIES = 20


class CredentialsError(StartError):
    """The homeserver refused the bot's credentials: `inloop run` exits 2 with one line."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")


@dataclass(frozen=True)
class MatrixSettings:
    homeserver: str
    user_id: str
    password: str
    access_token: str
    device_id: str
    allowed_servers: tuple[str, ...]
    store_dir: str
    #: how long one sync waits for news, in milliseconds (the long poll)
    poll_ms: int = 30_000
    #: reconnect delays: first, then doubled up to the cap
    retry_first: float = 1.0
    retry_cap: float = 60.0


class MatrixPlatform:
    name = "matrix"
    command_prefix = translate.PREFIX
    # Synapse rate-limits per user, not per room: no pace per room. The outbox keeps an
    # estimate of the account's bucket, from Synapse's documented default `rc_message`
    # (ten messages, then one every five seconds) until the homeserver shows otherwise
    # (a 429, or more getting through), with a reserve for private answers
    # (bot/account_limit.py).
    pace_seconds = 0.0
    account_limit = AccountLimit(burst=10, per_second=0.2)

    def __init__(self, settings: MatrixSettings, db: Database, clock: Clock):
        self._settings = settings
        self._clock = clock
        # The App's database (not one of its own): the App disposes of it.
        self._db = db
        # MATRIX_STORE_DIR/<user> is where an older Inloop kept nio's key store: imported
        self._keys_db = DatabaseKeys(
            db, clock, Path(settings.store_dir) / re.sub(r"[^\w.-]", "_", settings.user_id)
        )
        self._own_server = translate.server_of(settings.user_id)
        self._client: AsyncClient | None = None
        self._sink: EventSink | None = None
        self._token: str | None = None
        self._saved_at = float("-inf")
        #: the sync token being saved in the background (`_save_soon`)
        self._saving: asyncio.Task[None] | None = None
        #: whether the homeserver marks each event with the bot's membership (Matrix
        #: 1.11, `unsigned.membership`): then the bot's own messages need not come back
        self._marks_membership = False
        #: `_SYNC_FILTER` with the bot's own messages left out, once it marks them: its
        #: own cards, five a second in a burst, would otherwise end every long poll at
        #: once, and a command typed meanwhile would wait for the round trip under way
        #: and one more
        self._news_filter = {
            **_SYNC_FILTER,
            "room": {"timeline": {"limit": 500, "not_senders": [settings.user_id]}},
        }
        #: loop time of the last sync that succeeded (`connected`)
        self._synced_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._direct_lock = asyncio.Lock()
        #: person → their private room, as stored (read once per person)
        self._direct: dict[PersonId, str] = {}
        #: joins waiting out a 429 (`_join_later`)
        self._joins: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        """A sync succeeded within two long polls and a margin: a sync answers at the
        latest when its poll ends, so an older one means the homeserver is not answering."""
        recent = 2 * self._settings.poll_ms / 1000 + 5
        return asyncio.get_running_loop().time() - self._synced_at < recent

    @property
    def client(self) -> AsyncClient:
        assert self._client is not None, "the Matrix platform is not started"
        return self._client

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        try:
            await self._until_reachable("log in", self._login)
            await self._until_reachable("sync", self._first_sync)
        except BaseException:  # wrong credentials, or stopped while waiting: leave nothing open
            await self.stop()
            raise
        self._task = asyncio.create_task(self._sync_forever(), name="matrix-sync")
        log.info("Matrix: %s is online on %s", self._settings.user_id, self._settings.homeserver)

    async def stop(self) -> None:
        for join in list(self._joins):
            join.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            with contextlib.suppress(Exception):  # a database that is gone must not block exit
                if self._saving is not None:
                    await self._saving  # an older token must not land after the last one
                await self._save_token()
        await self._keys_db.stop()
        if self._client is not None:
            await self._client.close()

    async def _until_reachable(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run `step`, retrying with backoff while the homeserver cannot be reached."""
        delay = self._settings.retry_first
        while True:
            try:
                return await step()
            except _NETWORK_ERRORS as exc:
                reason = str(exc) or type(exc).__name__
            except _Unavailable as exc:
                reason = str(exc)
            log.warning(
                "Matrix: cannot %s at %s (%s); retrying in %.0fs",
                what,
                self._settings.homeserver,
                reason,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(self._settings.retry_cap, delay * 2)

    async def _login(self) -> None:
        s = self._settings
        async with self._db.read() as session:
            saved = await state.account(session, s.user_id)
        if s.access_token:
            restore: tuple[str, str] | None = (s.device_id, s.access_token)
        else:
            restore = (saved.device_id, saved.access_token) if saved is not None else None
        # The device's keys, as the last instance that ran it left them.
        await self._keys_db.prepare(s.user_id, restore[0] if restore else None)
        client = await self._new_client()
        if restore is not None:
            client.restore_login(s.user_id, *restore)
        else:
            await self._password_login(client)
        who = await client.whoami()
        if isinstance(who, WhoamiError):
            if who.status_code != "M_UNKNOWN_TOKEN":
                raise _Unavailable(f"{who.status_code}: {who.message}")
            if s.access_token or not s.password:
                raise CredentialsError(
                    "MATRIX_ACCESS_TOKEN", f"the homeserver does not accept it ({who.message})"
                )
            log.warning("Matrix: the saved session was logged out; logging in again")
            # A new client: nio keeps the first store it loaded, the old device's keys.
            await self._keys_db.prepare(s.user_id, None)
            client = await self._new_client()
            await self._password_login(client)
        async with self._db.transaction() as session:
            await state.save_login(
                session, s.user_id, client.device_id, client.access_token, self._clock()
            )
            saved = await state.account(session, s.user_id)
            self._token = saved.sync_token if saved else None
        await self._keys_db.save()  # a new device's account, or the keys imported
        self._keys_db.start()

    async def _new_client(self) -> AsyncClient:
        s = self._settings
        config = AsyncClientConfig(
            max_limit_exceeded=0,  # the outbox waits 429s out, with the row kept
            max_timeouts=0,  # and retries a homeserver that went away
            store_sync_tokens=False,  # the database keeps the sync token
            encryption_enabled=True,
            request_timeout=s.poll_ms / 1000 + 30,
            store=self._keys_db.make,  # the keys in the database
            pickle_key=PICKLE_KEY,
        )
        if self._client is not None:
            await self._client.close()
        # nio wants a store path (and ignores it: the store is the database)
        self._client = AsyncClient(s.homeserver, s.user_id, store_path=s.store_dir, config=config)
        return self._client

    async def _password_login(self, client: AsyncClient) -> None:
        answer = await client.login(self._settings.password, device_name="Inloop")
        if isinstance(answer, LoginError):
            if answer.status_code in ("M_FORBIDDEN", "M_INVALID_USERNAME", "M_USER_DEACTIVATED"):
                raise CredentialsError(
                    "MATRIX_PASSWORD",
                    f"the homeserver refused to log in {self._settings.user_id} ({answer.message})",
                )
            raise _Unavailable(f"{answer.status_code}: {answer.message}")
        self._token = None  # a new device starts from now

    async def _first_sync(self) -> None:
        # First start: learn the rooms, take pending invites, skip the history.
        # Resuming: nio forgot the rooms' state, so ask for all of it with the news.
        resuming = self._token is not None
        answer = await self.client.sync(
            timeout=0,
            sync_filter=_SYNC_FILTER if resuming else _FIRST_SYNC_FILTER,
            since=self._token,
            full_state=resuming or None,
        )
        if isinstance(answer, SyncError):
            raise _Unavailable(f"{answer.status_code}: {answer.message}")
        await self._handle(answer, history=resuming)

    async def _sync_forever(self) -> None:
        delay = self._settings.retry_first
        failing = False
        while True:
            try:
                news = self._news_filter if self._marks_membership else _SYNC_FILTER
                answer = await self.client.sync(
                    timeout=self._settings.poll_ms, sync_filter=news, since=self._token
                )
                if isinstance(answer, SyncError):
                    if answer.status_code == "M_UNKNOWN_TOKEN" and not self._settings.access_token:
                        await self._logged_out(answer.message)
                        continue
                    raise _Unavailable(f"{answer.status_code}: {answer.message}")
            except (*_NETWORK_ERRORS, _Unavailable) as exc:
                failing = True
                log.warning(
                    "Matrix: homeserver %s unreachable (%s); retrying in %.0fs",
                    self._settings.homeserver,
                    str(exc) or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(self._settings.retry_cap, delay * 2)
                continue
            if failing:
                log.warning("Matrix: homeserver %s is back", self._settings.homeserver)
                failing = False
                delay = self._settings.retry_first
            try:
                await self._handle(answer, history=True)
            except _NETWORK_ERRORS as exc:
                log.warning("Matrix: key exchange failed (%s); will retry", exc)
            except Exception:  # a bug must not end the sync: the sync point is not saved
                log.exception("Matrix: could not handle a sync; trying it again")
                await asyncio.sleep(delay)

    async def _logged_out(self, reason: str) -> None:
        """The device was logged out (by an admin, or a password change): log in again."""
        log.error("Matrix: the homeserver logged the bot out (%s); logging in again", reason)
        try:
            await self._until_reachable("log in", self._login)
        except CredentialsError as exc:
            log.error("Matrix: cannot log in again (%s); Matrix is off until a restart", exc)
            raise
        await self._until_reachable("sync", self._first_sync)

    async def _handle(self, answer: SyncResponse, *, history: bool) -> None:
        """Hand a sync's events to the core, then remember that they were handled."""
        assert self._sink is not None
        for room_id, invite in answer.rooms.invite.items():
            await self._invited(room_id, invite)
        if history:
            for room_id, joined in answer.rooms.join.items():
                for item in self._since_joined(joined.timeline.events):
                    if isinstance(item, MegolmEvent):
                        log.warning(
                            "Matrix: cannot decrypt %s in %s (no room key)", item.event_id, room_id
                        )
                        continue
                    event = translate.inbound(item.source, room_id, self._settings.user_id)
                    if event is not None:
                        try:
                            await self._sink.handle(event)
                        except NotYet as exc:  # no inbox here to keep it for a retry
                            log.warning("Matrix: %s dropped (%s)", event.event_id, exc)
        await self._keys()
        # Before the next sync: that one lets the homeserver drop the to-device messages
        # that brought this one's room keys (key_store.py).
        await self._keys_db.save()
        self._token = answer.next_batch
        loop_now = asyncio.get_running_loop().time()
        self._synced_at = loop_now
        if not history:
            await self._save_token()
            self._saved_at = loop_now
        elif loop_now - self._saved_at >= _SAVE_TOKEN_EVERY:
            self._save_soon(loop_now)

    def _save_soon(self, loop_now: float) -> None:
        """Save the sync token without holding up the next sync: in a burst the write
        waits for the database (SQLite's one writer, busy with the intake), and every
        command typed meanwhile would wait with it. One save at a time: a later one
        takes whatever token is the latest handled by then."""
        if self._saving is not None and not self._saving.done():
            return

        async def save() -> None:
            try:
                await self._save_token()
            except Exception as exc:  # tried again at the next sync after _SAVE_TOKEN_EVERY
                log.warning("Matrix: could not save the sync token (%s)", exc)
                self._saved_at = float("-inf")

        self._saved_at = loop_now
        self._saving = asyncio.create_task(save(), name="matrix-sync-token")

    async def _save_token(self) -> None:
        # Saved at most every _SAVE_TOKEN_EVERY seconds (and at stop), off the path from a
        # customer's message to its card. After a crash the bot resumes from a token up to
        # that much older: the homeserver sends those events again, and the router's dedup
        # by event id drops every one it had handled.
        if self._token is None or self._client is None:
            return
        async with self._db.transaction() as session:
            await state.save_sync_token(session, self._settings.user_id, self._token, self._clock())

    def _since_joined(self, events: list[Any]) -> list[Any]:
        """A room joined in this sync shows some of its past: only what follows the join is news.

        Where the homeserver marks each event with the bot's membership after it
        (`unsigned.membership`), that says it, even with the bot's own join left out of
        the sync; otherwise the bot's own join event in the timeline does."""
        marks = [(getattr(e, "source", {}).get("unsigned") or {}).get("membership") for e in events]
        if events and all(marks):
            self._marks_membership = True
            return [e for e, mark in zip(events, marks, strict=True) if mark == "join"]
        for index in range(len(events) - 1, -1, -1):
            source = getattr(events[index], "source", {})
            if (
                source.get("type") == "m.room.member"
                and source.get("state_key") == self._settings.user_id
                and (source.get("content") or {}).get("membership") == "join"
                and ((source.get("unsigned") or {}).get("prev_content") or {}).get("membership")
                != "join"
            ):
                return events[index + 1 :]
        return events

    async def _keys(self) -> None:
        client = self.client
        if client.olm is None:
            return
        if client.should_upload_keys:
            await self._upload_keys(client)
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()
        # Trust on first use for staff devices (see the module docstring).
        for user_id in list(client.device_store.users):
            if translate.server_of(user_id) != self._own_server:
                continue
            for device in client.device_store.active_user_devices(user_id):
                if not device.verified and not device.blacklisted:
                    client.verify_device(device)

    async def _upload_keys(self, client: AsyncClient) -> None:
        """nio's `keys_upload`, with the account saved between making new one-time keys
        and uploading them: the homeserver may hand them out at once, and a message made
        with one the next holder of the device lacks could never be read."""
        keys = client.olm.share_keys()
        client.olm.save_account()
        await self._keys_db.save()
        method, path, data = Api.keys_upload(client.access_token, keys)
        await client._send(KeysUploadResponse, method, path, data)

    async def _invited(self, room_id: str, invite: InviteInfo) -> None:
        # nio keeps the membership apart from `source` (whose content it drops): rebuild it.
        states = [
            {
                "type": "m.room.member",
                "state_key": e.state_key,
                "sender": e.sender,
                "content": {"membership": e.membership},
            }
            for e in invite.invite_state
            if isinstance(e, InviteMemberEvent)
        ]
        inviter = translate.inviter(states, self._settings.user_id)
        if inviter is None:
            return
        async with self._db.read() as session:
            met = await find(session, translate.person(inviter))
        staff = is_staff(met) if met is not None else None
        if translate.accept_invite(
            inviter, self._own_server, self._settings.allowed_servers, staff
        ):
            answer = await self.client.join(room_id)
            if isinstance(answer, JoinError) and answer.status_code == "M_LIMIT_EXCEEDED":
                self._join_later(room_id, answer)
            elif isinstance(answer, JoinError):
                log.warning("Matrix: could not join %s: %s", room_id, answer.message)
            else:
                log.info("Matrix: joined %s, invited by %s", room_id, inviter)
        else:
            await self.client.room_leave(room_id)
            log.info("Matrix: declined the invite to %s from %s (not staff)", room_id, inviter)

    def _join_later(self, room_id: str, refused: JoinError) -> None:
        """Join when the homeserver says: Synapse counts a join against the bot's message
        rate, and an invite shows in one sync only (a join given up is a room lost)."""

        async def join() -> None:
            answer = refused
            for _ in range(_JOIN_TRIES):
                await asyncio.sleep((answer.retry_after_ms or 1000) / 1000)
                try:
                    joined = await self.client.join(room_id)
                except _NETWORK_ERRORS as exc:
                    log.warning("Matrix: joining %s: %s; trying again", room_id, exc)
                    continue
                if not isinstance(joined, JoinError):
                    log.info("Matrix: joined %s (after a rate limit)", room_id)
                    return
                answer = joined
                if answer.status_code != "M_LIMIT_EXCEEDED":
                    break
            log.warning("Matrix: could not join %s: %s", room_id, answer.message)

        task = asyncio.create_task(join(), name=f"join {room_id}")
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)

    # -- Platform ------------------------------------------------------------------------

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        room = translate.room_of(channel)
        return await self._send(room, await self._content(room, view), key)

    async def reply(self, channel: ChannelId, message_ref: str, view: View, key: str) -> str:
        room = translate.room_of(channel)
        content = await self._content(room, view)
        return await self._send(room, translate.in_thread(content, message_ref), key)

    async def _content(
        self, room_id: str, view: View, mention: str | None = None
    ) -> translate.Content:
        if not isinstance(view, Chart | Attachment):
            return translate.render(view, mention=mention)
        # A chart (a file) is uploaded first (encrypted for an encrypted room), then sent
        # as m.image (m.file).
        if room_id not in self.client.rooms:
            await self._wait_for_room(room_id)
        encrypt = self.client.rooms[room_id].encrypted
        data = view.png if isinstance(view, Chart) else view.data
        try:
            answer, keys = await self.client.upload(
                io.BytesIO(data),
                content_type="image/png" if isinstance(view, Chart) else view.mimetype,
                filename=view.filename,
                encrypt=encrypt,
                filesize=len(data),
            )
        except _NETWORK_ERRORS as exc:
            raise _unreachable(exc) from exc
        if not isinstance(answer, UploadResponse):
            raise _delivery_error(answer)
        if isinstance(view, Attachment):
            return translate.file(view, answer.content_uri, keys if encrypt else None)
        return translate.image(view, answer.content_uri, keys if encrypt else None)

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        room = translate.room_of(channel)
        content = translate.render(view)
        await self._send(room, translate.edit(content, message_ref), key)
        if isinstance(view, Card) and view.fallback:
            # What changed also goes in the card's thread: the card shows now, the thread when.
            line = translate.render(Notice(view.fallback))
            await self._send(room, translate.in_thread(line, message_ref), f"{key}-thread")

    def messages_per_update(self, view: View) -> int:
        """The messages `update` sends (each counts against the account's limit)."""
        return 2 if isinstance(view, Card) and view.fallback else 1

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        user = translate.user_of(person)
        room = await self._direct_room(person, user)
        await self._send(room, await self._content(room, view, mention=user), key)

    async def find_sent(
        self,
        target: str,
        key: str,
        *,
        since: datetime,
        thread: str | None = None,
        private: bool = False,
    ) -> None:
        # A resend carries the same transaction id: the homeserver answers it with the
        # event it already made, so there is nothing to look up.
        return None

    async def user_info(self, person: PersonId) -> PersonInfo:
        user = translate.user_of(person)
        name = self._known_name(user)
        if not name and self._client is not None:  # once per person: the core stores it
            with contextlib.suppress(*_NETWORK_ERRORS):
                answer = await self.client.get_displayname(user)
                if isinstance(answer, ProfileGetDisplayNameResponse) and answer.displayname:
                    name = answer.displayname
                elif (
                    isinstance(answer, ErrorResponse)
                    and answer.status_code == "M_NOT_FOUND"
                    and not self._is_member(user)
                ):
                    # No such user: a typo in a command must not become a person.
                    raise LookupError(person)
        return PersonInfo(
            display_name=name or local_part(person),
            # People of the bot's own homeserver are the company's; others are customers.
            is_staff=translate.server_of(user) == self._own_server,
        )

    def _is_member(self, user: str) -> bool:
        """Whether `user` is in a room the bot is in (then they exist, profile or not)."""
        rooms = self._client.rooms.values() if self._client is not None else ()
        return any(user in room.users for room in rooms)

    def _known_name(self, user: str) -> str:
        """The display name from the rooms' member lists, which sync keeps: the core asks
        while holding its write transaction, so no network call when this knows."""
        if self._client is None:
            return ""
        for room in self._client.rooms.values():
            member = room.users.get(user)
            if member is not None and member.display_name:
                return str(member.display_name)
        return ""

    async def _send(self, room_id: str, content: dict[str, Any], key: str) -> str:
        if room_id not in self.client.rooms:
            await self._wait_for_room(room_id)
        try:
            answer = await self.client.room_send(
                room_id, "m.room.message", content, tx_id=key, ignore_unverified_devices=True
            )
        except _NETWORK_ERRORS as exc:
            raise _unreachable(exc) from exc
        except LocalProtocolError as exc:
            raise DeliveryError(f"cannot send to {room_id} yet: {exc}") from exc
        if isinstance(answer, RoomSendResponse):
            return str(answer.event_id)
        raise _delivery_error(answer)

    async def _wait_for_room(self, room_id: str, within: float = 10.0) -> None:
        """A room just joined or created is usable once a sync has shown it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while room_id not in self.client.rooms:
            if loop.time() > deadline:
                raise DeliveryError(f"the bot is not in {room_id} (yet)")
            await asyncio.sleep(0.05)

    async def _direct_room(self, person: PersonId, user: str) -> str:
        async with self._direct_lock:  # two answers at once must not open two rooms
            room = self._direct.get(person)
            if room is None:
                async with self._db.read() as session:
                    room = await state.direct_room(session, person)
            known = self.client.rooms.get(room) if room is not None else None
            if room is not None and (known is None or user in known.users):
                self._direct[person] = room
                return room
            # They left the private room (or it is gone): a message there would reach nobody.
            try:
                answer = await self.client.room_create(
                    is_direct=True, invite=[user], preset=RoomPreset.trusted_private_chat
                )
            except _NETWORK_ERRORS as exc:
                raise _unreachable(exc) from exc
            if isinstance(answer, RoomCreateError):
                raise _delivery_error(answer)
            async with self._db.transaction() as session:
                await state.save_direct_room(session, person, answer.room_id, self._clock())
            self._direct[person] = str(answer.room_id)
            return str(answer.room_id)


class _Unavailable(Exception):
    """The homeserver answered, but not usefully (5xx, a gateway error): try again later."""


def _delivery_error(answer: ErrorResponse) -> DeliveryError:
    code = str(answer.status_code or "")
    reason = f"{code}: {answer.message}"
    if code == "M_LIMIT_EXCEEDED":
        retry_ms = getattr(answer, "retry_after_ms", None) or 1000
        return DeliveryError(reason, retry_after=retry_ms / 1000)
    # Not in the room any more, or the room is gone: resending cannot help.
    return DeliveryError(reason, refused=code in ("M_FORBIDDEN", "M_NOT_FOUND"))


def matrix_settings(settings: Settings) -> MatrixSettings:
    """The Matrix part of the app settings."""
    return MatrixSettings(
        homeserver=settings.matrix_homeserver,
        user_id=settings.matrix_user_id,
        password=settings.matrix_password,
        access_token=settings.matrix_access_token,
        device_id=settings.matrix_device_id,
        allowed_servers=settings.matrix_allowed_servers,
        store_dir=settings.matrix_store_dir,
    )


def _unreachable(exc: BaseException) -> DeliveryError:
    return DeliveryError(f"homeserver unreachable: {exc or type(exc).__name__}")
