"""People on a real homeserver for the Matrix tests: each is a nio client of their own.

A `MatrixPerson` syncs in the background, joins every room it is invited to, and
keeps every event it saw (decrypted, in encrypted rooms) so that tests can wait
for what a person would see in their Matrix client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
)

from synapse_server import SynapseServer

Source = dict[str, Any]
_names = itertools.count(1)
_FILTER = {"room": {"timeline": {"limit": 200}}}


def unique(name: str) -> str:
    return f"{name}{next(_names)}"


class MatrixPerson:
    def __init__(self, hs: SynapseServer, name: str, store: Path):
        self.name = unique(name)
        self.user_id, self.password = hs.register(self.name)
        store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(
            hs.url,
            self.user_id,
            store_path=str(store),
            config=AsyncClientConfig(store_sync_tokens=False, encryption_enabled=True),
        )
        self.events: dict[str, list[Source]] = {}
        self.invites: list[str] = []
        #: ids of the events that reached this person encrypted (and were decrypted)
        self.encrypted: set[str] = set()
        #: when this person's client received each event (time.perf_counter), for the bench
        self.seen_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        #: what this person's client asks the homeserver for (a bench leaves out rooms
        #: whose every message would otherwise be parsed by forty clients in its process)
        self.sync_filter: Source = _FILTER

    @property
    def person(self) -> str:
        """How Inloop writes this person."""
        return f"matrix:{self.user_id}"

    async def start(self) -> MatrixPerson:
        answer = await self.client.login(self.password, device_name=self.name)
        assert isinstance(answer, LoginResponse), answer
        await self._sync(0)
        self._task = asyncio.create_task(self._loop())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self._sync(10_000)
            except Exception:  # the homeserver restarting under us: keep trying
                await asyncio.sleep(0.2)

    async def _sync(self, poll_ms: int) -> None:
        answer = await self.client.sync(
            timeout=poll_ms, sync_filter=self.sync_filter, full_state=False
        )
        if not isinstance(answer, SyncResponse):
            await asyncio.sleep(0.2)
            return
        for room_id, invite in answer.rooms.invite.items():
            if any(isinstance(e, InviteMemberEvent) for e in invite.invite_state):
                self.invites.append(room_id)
                await self.client.join(room_id)
        arrived = time.perf_counter()
        for room_id, joined in answer.rooms.join.items():
            seen = self.events.setdefault(room_id, [])
            for event in joined.timeline.events:
                if not isinstance(event, MegolmEvent):
                    seen.append(event.source)
                    self.seen_at[event.event_id] = arrived
                    if getattr(event, "decrypted", False):
                        self.encrypted.add(event.event_id)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())
        await self.client.send_to_device_messages()
        self._changed.set()

    # -- acting ----------------------------------------------------------------------

    async def create_room(self, *invite: str, encrypted: bool = False, direct: bool = False) -> str:
        state = []
        if encrypted:
            state.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        answer = await self.client.room_create(
            invite=list(invite), initial_state=state, is_direct=direct
        )
        assert isinstance(answer, RoomCreateResponse), answer
        await self.until(lambda: answer.room_id in self.client.rooms)
        return str(answer.room_id)

    async def send(self, room_id: str, content: Source, kind: str = "m.room.message") -> str:
        answer = await self.client.room_send(room_id, kind, content, ignore_unverified_devices=True)
        assert isinstance(answer, RoomSendResponse), answer
        return str(answer.event_id)

    async def say(self, room_id: str, text: str, *, thread: str | None = None) -> str:
        content: Source = {"msgtype": "m.text", "body": text}
        if thread:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread}
        return await self.send(room_id, content)

    async def react(self, room_id: str, event_id: str, key: str = "✋") -> str:
        relates = {"rel_type": "m.annotation", "event_id": event_id, "key": key}
        return await self.send(room_id, {"m.relates_to": relates}, "m.reaction")

    # -- seeing ----------------------------------------------------------------------

    async def until(self, check: Callable[[], Any], within: float = 15.0) -> Any:
        """Wait until `check()` gives something truthy (what this person's client shows)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = check()
            if found:
                return found
            remaining = deadline - loop.time()
            assert remaining > 0, f"{self.name} waited {within}s in vain"
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def messages(self, room_id: str, sender: str) -> list[Source]:
        """What `sender` posted in the room, edits applied, edits themselves left out."""
        seen = self.events.get(room_id, [])
        posted = [
            dict(e)
            for e in seen
            if e.get("sender") == sender
            and e.get("type") == "m.room.message"
            and (e.get("content") or {}).get("m.relates_to", {}).get("rel_type") != "m.replace"
        ]
        by_id = {e["event_id"]: e for e in posted}
        for e in seen:
            relates = (e.get("content") or {}).get("m.relates_to") or {}
            if relates.get("rel_type") == "m.replace" and relates.get("event_id") in by_id:
                original = by_id[relates["event_id"]]
                original["content"] = e["content"]["m.new_content"]
                original["edits"] = original.get("edits", 0) + 1
        return posted

    def direct_messages(self, bot: str) -> list[str]:
        """Bodies the bot sent this person in rooms of just the two of them."""
        found = []
        for room_id, room in self.client.rooms.items():
            if set(room.users) <= {bot, self.user_id} and bot in room.users:
                found += [m["content"]["body"] for m in self.messages(room_id, bot)]
        return found


#: the `people` fixture (tests/conftest.py): starts a person by name
People = Callable[[str], Awaitable[MatrixPerson]]
