"""Matrix end to end: Inloop's nio adapter against a real Synapse, with real nio clients.

One Synapse serves the whole session (the `synapse` fixture). Each test registers
fresh people and a fresh bot account, so tests do not see each other's rooms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import App, build_platforms
from bot.config import load_settings
from bot.events import ChannelId
from bot.intake.webhook import sign
from bot.platforms.matrix.adapter import MatrixPlatform
from bot.views import Notice
from matrix_people import MatrixPerson, People, unique
from storage.database import Database
from synapse_server import SynapseServer

SECRET = "matrix-test-webhook-secret"


class Bot:
    """Inloop on Matrix, as `inloop run` builds it, with its webhook on a free port."""

    def __init__(
        self,
        hs: SynapseServer,
        tmp: Path,
        admin: MatrixPerson,
        account: tuple[str, str] | None = None,
    ):
        self.hs = hs
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.user_id, self.password = account or hs.register(unique("inloop"))
        self.admin = admin
        self.database = f"sqlite+aiosqlite:///{tmp / 'inloop.db'}"
        self.app: App | None = None

    def settings_env(self, **over: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database,
            "INLOOP_ADMINS": self.admin.person,
            "MATRIX_HOMESERVER": self.hs.url,
            "MATRIX_USER_ID": self.user_id,
            "MATRIX_PASSWORD": self.password,
            "MATRIX_STORE_DIR": str(self.tmp / "store"),
            "INTAKE_SECRET": SECRET,
            "INTAKE_PORT": "0",
            **over,
        }

    async def start(self, **over: str) -> Bot:
        settings = load_settings(self.settings_env(**over))
        db = Database(settings.database_url)
        self.app = App(settings, build_platforms(settings, db), db=db)
        await self.app.start()
        return self

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None

    @property
    def platform(self) -> MatrixPlatform:
        assert self.app is not None
        platform = self.app.platforms["matrix"]
        assert isinstance(platform, MatrixPlatform)
        return platform

    async def mention(self, text: str, n: int = 1) -> dict[str, Any]:
        """A customer mention through the signed webhook, as a listening tool sends it."""
        assert self.app is not None and self.app.webhook is not None
        body = json.dumps(
            {
                "source": "twitter",
                "external_id": f"tw-{n}",
                "author": {"name": "Giulia", "handle": "@giulia"},
                "text": text,
            }
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Inloop-Timestamp": ts,
            "X-Inloop-Signature": sign(SECRET, ts, body),
        }
        url = f"http://127.0.0.1:{self.app.webhook.port}/v1/mentions"
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
            assert r.status == 202, await r.text()
            answer: dict[str, Any] = await r.json()
            return answer


@pytest.fixture
async def admin(people: People) -> MatrixPerson:
    return await people("admin")


@pytest.fixture
async def bot(synapse: SynapseServer, tmp_path: Path, admin: MatrixPerson) -> AsyncIterator[Bot]:
    running = await Bot(synapse, tmp_path, admin).start()
    try:
        yield running
    finally:
        await running.stop()


async def joined(viewer: MatrixPerson, room: str, user_id: str) -> None:
    """Wait until `viewer` sees `user_id` joined (not just invited) in the room."""

    def check() -> bool:
        info = viewer.client.rooms.get(room)
        return info is not None and user_id in info.users and user_id not in info.invited_users

    await viewer.until(check)


def cards(viewer: MatrixPerson, room: str, bot: Bot) -> list[dict[str, Any]]:
    """The bot's cards in a room as `viewer` sees them now (edits applied)."""
    return [
        m
        for m in viewer.messages(room, bot.user_id)
        if "m.relates_to" not in m["content"] and m["content"]["body"].startswith("#")
    ]


async def told(person: MatrixPerson, bot: Bot, words: str) -> str:
    """Wait until the bot told `person` something containing `words` in their DM room."""
    found: str = await person.until(
        lambda: next((b for b in person.direct_messages(bot.user_id) if words in b), "")
    )
    return found


async def setup_team(
    admin: MatrixPerson, bot: Bot, *members: MatrixPerson, encrypted: bool = False
) -> str:
    """An owner room with the bot and `members`, made team support's channel."""
    room = await admin.create_room(bot.user_id, *(m.user_id for m in members), encrypted=encrypted)
    for member in members:
        await joined(member, room, member.user_id)
    await joined(admin, room, bot.user_id)
    await admin.say(room, "!inloop team add support")
    await told(admin, bot, "Team support created")
    return room


# -- end to end ------------------------------------------------------------------------


async def test_a_mention_becomes_a_card_claimed_by_reaction_and_a_late_claimer_is_told_privately(
    bot: Bot, admin: MatrixPerson, people: People
) -> None:
    ann, bob = await people("ann"), await people("bob")
    carl, mia = await people("consultant"), await people("manager")
    room = await setup_team(admin, bot, ann, bob, carl, mia)
    await admin.say(room, f"!inloop role {carl.user_id} consultant")
    await told(admin, bot, f"{carl.name} is now consultant")
    await admin.say(room, f"!inloop role {mia.user_id} manager")
    await told(admin, bot, f"{mia.name} is now manager")

    await bot.mention("My order arrived broken")

    card = (await ann.until(lambda: cards(ann, room, bot)))[0]
    content = card["content"]
    assert content["msgtype"] == "m.notice"
    assert "Giulia" in content["body"] and "My order arrived broken" in content["body"]
    assert "<blockquote>My order arrived broken</blockquote>" in content["formatted_body"]
    assert content["m.mentions"] == {}  # a new card pings nobody

    await carl.react(room, card["event_id"])  # a consultant cannot own conversations
    await ann.react(room, card["event_id"])

    assert "is yours" in await told(ann, bot, "#1")
    claimed = await ann.until(
        lambda: next((c for c in cards(ann, room, bot) if "Claimed" in c["content"]["body"]), None)
    )
    assert claimed["event_id"] == card["event_id"]  # edited in place, not posted again
    assert ann.name in claimed["content"]["body"]
    # what changed is also in the card's thread
    thread = await ann.until(
        lambda: [
            m
            for m in ann.messages(room, bot.user_id)
            if m["content"].get("m.relates_to", {}).get("event_id") == card["event_id"]
        ]
    )
    assert thread[0]["content"]["m.relates_to"]["rel_type"] == "m.thread"

    await bob.say(room, "!inloop claim 1")
    assert ann.name in await told(bob, bot, "already claimed")
    await bob.say(room, "!inloop queue")
    await bob.until(lambda: len(bob.direct_messages(bot.user_id)) >= 2)
    direct_rooms = [
        r for r, info in bob.client.rooms.items() if set(info.users) == {bot.user_id, bob.user_id}
    ]
    assert len(direct_rooms) == 1  # the bot reuses the one private room it opened
    await bob.client.room_leave(direct_rooms[0])  # bob leaves it: the next answer opens another
    await bob.say(room, "!inloop help")
    await bob.until(
        lambda: any(
            r != direct_rooms[0] and set(info.users) == {bot.user_id, bob.user_id}
            for r, info in bob.client.rooms.items()
        )
    )

    # A manager hands it to bob, naming him with a pill as Element writes it.
    pill = f'<a href="https://matrix.to/#/{bob.user_id}">Bob</a>'
    await mia.send(
        room,
        {
            "msgtype": "m.text",
            "body": "!inloop reassign 1 Bob",
            "format": "org.matrix.custom.html",
            "formatted_body": f"!inloop reassign 1 {pill}",
        },
    )
    assert "gave you #1" in await told(bob, bot, mia.name)
    assert "no longer yours" in await told(ann, bot, "gave #1")
    assert len(cards(admin, room, bot)) == 1

    # A resend after a crash carries the outbox row's key: the homeserver keeps one message.
    channel = ChannelId(f"matrix:{room}")
    first = await bot.platform.send(channel, Notice("#9 resent"), "outbox-key-1")
    again = await bot.platform.send(channel, Notice("#9 resent"), "outbox-key-1")
    assert first == again
    await bot.platform.send(channel, Notice("#10 after"), "outbox-key-2")

    def bodies() -> list[str]:
        return [m["content"]["body"] for m in ann.messages(room, bot.user_id)]

    await ann.until(lambda: "#10 after" in bodies())  # the room's order: any copy came before
    assert bodies().count("#9 resent") == 1


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_a_watched_room_customer_becomes_a_card_and_the_owners_thread_reply_marks_it_replied(
    bot: Bot, admin: MatrixPerson, people: People, encrypted: bool
) -> None:
    ann, customer = await people("ann"), await people("customer")
    owner_room = await setup_team(admin, bot, ann, encrypted=encrypted)
    public = await admin.create_room(
        bot.user_id, ann.user_id, customer.user_id, encrypted=encrypted
    )
    await customer.until(lambda: public in customer.client.rooms)
    await ann.until(lambda: public in ann.client.rooms)
    await joined(admin, public, bot.user_id)
    await admin.say(public, "!inloop team watch")
    await told(admin, bot, "Watching")
    await admin.say(public, f"!inloop role {customer.user_id} none")
    await told(admin, bot, customer.name)

    said = "@room <b>broken</b> order, ask @admin:inloop.test"
    asked = await customer.say(public, said)

    card = (await ann.until(lambda: cards(ann, owner_room, bot)))[0]
    content = card["content"]
    assert said in content["body"]  # shown literally
    assert "&lt;b&gt;broken&lt;/b&gt;" in content["formatted_body"]
    assert "<b>broken</b>" not in content["formatted_body"]
    assert content["m.mentions"] == {}  # neither @room nor the user id pings anyone

    # a photo in the thread, without words, is a follow-up too
    photo = {"msgtype": "m.image", "body": "box.jpg", "url": "mxc://inloop.test/box"}
    await customer.send(
        public, {**photo, "m.relates_to": {"rel_type": "m.thread", "event_id": asked}}
    )
    await ann.until(
        lambda: any(
            "📎 box.jpg (file)" in c["content"]["body"] for c in cards(ann, owner_room, bot)
        )
    )

    await ann.say(owner_room, "!inloop claim 1")
    await told(ann, bot, "is yours")
    await ann.say(public, "Sorry about that, a new one is on its way", thread=asked)

    replied = await ann.until(
        lambda: next(
            (c for c in cards(ann, owner_room, bot) if "Replied" in c["content"]["body"]), None
        )
    )
    assert replied["event_id"] == card["event_id"]
    if encrypted:
        assert card["event_id"] in ann.encrypted and asked in customer.encrypted
        # Trust on first use: the staff member's device is verified by the bot on sight.
        devices = bot.platform.client.device_store.active_user_devices(ann.user_id)
        assert [d.verified for d in devices] == [True]


async def test_a_restart_of_the_bot_and_of_synapse_loses_nothing_and_repeats_nothing(
    synapse: SynapseServer, tmp_path: Path, admin: MatrixPerson, people: People
) -> None:
    ann, customer = await people("ann"), await people("customer")
    bot = await Bot(synapse, tmp_path, admin).start()
    try:
        owner_room = await setup_team(admin, bot, ann)
        public = await admin.create_room(bot.user_id, customer.user_id)
        await customer.until(lambda: public in customer.client.rooms)
        await joined(admin, public, bot.user_id)
        await admin.say(public, "!inloop team watch")
        await told(admin, bot, "Watching")
        await admin.say(public, f"!inloop role {customer.user_id} none")
        await told(admin, bot, customer.name)
        await customer.say(public, "first")
        await ann.until(lambda: len(cards(ann, owner_room, bot)) == 1)

        await bot.stop()
        await customer.say(public, "second, while Inloop is down")
        synapse.restart()
        await customer.say(public, "third, after Synapse restarted")
        await bot.start()
        await ann.until(lambda: len(cards(ann, owner_room, bot)) == 3)

        synapse.restart()  # the homeserver goes away under a running bot
        await customer.say(public, "fourth")
        await ann.until(lambda: len(cards(ann, owner_room, bot)) == 4, within=30)
        await ann.say(owner_room, "!inloop claim 4")
        await told(ann, bot, "#4 is yours")
    finally:
        await bot.stop()
    texts = [c["content"]["body"] for c in cards(ann, owner_room, bot)]
    for n, word in enumerate(("first", "second", "third", "fourth"), start=1):
        assert [t for t in texts if f"\n> {word}" in t and t.startswith(f"#{n} ")], texts
    assert len(texts) == 4  # nothing twice
    assert len(ann.direct_messages(bot.user_id)) == 1

    # A first start (a new database, so a new device) does not act on the rooms' history.
    answered = len(admin.direct_messages(bot.user_id))
    account = (bot.user_id, bot.password)
    fresh = await Bot(synapse, tmp_path / "fresh", admin, account).start()
    try:
        await admin.say(owner_room, "!inloop help")
        await admin.until(lambda: len(admin.direct_messages(bot.user_id)) > answered)
    finally:
        await fresh.stop()
    assert len(admin.direct_messages(bot.user_id)) == answered + 1  # help, and nothing old
    assert len(cards(ann, owner_room, bot)) == 4


async def test_a_room_the_bot_joins_later_shows_its_past_which_the_bot_does_not_act_on(
    bot: Bot, admin: MatrixPerson
) -> None:
    # After the set-up the bot's syncs leave out its own messages (Synapse marks each
    # event with the bot's membership): its own join no longer shows in a sync, and the
    # marks alone must tell a room's past from what follows the join.
    await setup_team(admin, bot)
    room = await admin.create_room()
    await admin.say(room, "!inloop help")  # typed before the bot is there
    answered = len(admin.direct_messages(bot.user_id))
    await admin.client.room_invite(room, bot.user_id)
    await joined(admin, room, bot.user_id)
    await admin.say(room, "!inloop queue")
    await admin.until(lambda: len(admin.direct_messages(bot.user_id)) > answered)
    await asyncio.sleep(1.0)  # time for the help to be answered too, if it were
    said = admin.direct_messages(bot.user_id)[answered:]
    assert len(said) == 1 and "Commands (" not in said[0], said


async def test_an_invite_from_a_stranger_is_declined_and_one_from_staff_accepted(
    bot: Bot, admin: MatrixPerson, people: People
) -> None:
    stranger = await people("stranger")
    await setup_team(admin, bot)
    room = await admin.create_room(bot.user_id)
    await joined(admin, room, bot.user_id)
    await admin.say(room, f"!inloop role {stranger.user_id} none")
    await told(admin, bot, stranger.name)

    theirs = await stranger.create_room(bot.user_id)

    def membership() -> str:
        for event in reversed(stranger.events.get(theirs, [])):
            if event.get("type") == "m.room.member" and event.get("state_key") == bot.user_id:
                return str(event["content"]["membership"])
        return ""

    assert await stranger.until(lambda: membership() == "leave")


async def test_wrong_credentials_stop_inloop_with_one_line_and_exit_code_2(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    user_id, _ = synapse.register(unique("inloop"))
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}",
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": user_id,
        "MATRIX_PASSWORD": "not-the-password",
        "MATRIX_STORE_DIR": str(tmp_path / "store"),
        "INLOOP_LOG_LEVEL": "ERROR",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    stderr = err.decode()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "MATRIX_PASSWORD" in lines[0] and "not-the-password" not in lines[0]


async def test_a_homeserver_that_is_down_at_start_is_retried_with_a_clear_log_line(
    synapse: SynapseServer, tmp_path: Path, admin: MatrixPerson
) -> None:
    bot = Bot(synapse, tmp_path, admin)
    synapse.stop()
    said: asyncio.Queue[str] = asyncio.Queue()

    class Listen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.put_nowait(record.getMessage())

    adapter_log = logging.getLogger("bot.platforms.matrix.adapter")
    listen = Listen(logging.WARNING)
    adapter_log.addHandler(listen)
    starting = asyncio.create_task(bot.start())
    try:
        line = await asyncio.wait_for(said.get(), 10)
        assert "cannot log in" in line and synapse.url in line and "retrying in" in line
        synapse.start()
        await asyncio.wait_for(starting, 30)  # it came up on its own once Synapse did
    finally:
        adapter_log.removeHandler(listen)
        if not synapse.running:
            synapse.start()
        await bot.stop()


async def test_advice_goes_in_the_card_thread_and_the_digest_chart_comes_as_an_image(
    bot: Bot, admin: MatrixPerson, people: People
) -> None:
    ann, expert = await people("ann"), await people("expert")
    room = await setup_team(admin, bot, ann)
    await admin.say(room, f"!inloop role {expert.user_id} consultant")
    await told(admin, bot, f"{expert.name} is now consultant")
    await bot.mention("My order arrived broken")
    card = (await ann.until(lambda: cards(ann, room, bot)))[0]
    await ann.say(room, "!inloop claim 1")
    await told(ann, bot, "is yours")

    await ann.say(room, f"!inloop ask 1 What do I tell her? {expert.user_id}")
    assert "What do I tell her?" in await told(expert, bot, "Advice wanted: 1-A1")
    await expert.client.room_send(
        next(r for r in expert.client.rooms if bot.user_id in expert.client.rooms[r].users),
        "m.room.message",
        {"msgtype": "m.text", "body": "!inloop answer 1-A1 Send the tracking link."},
    )
    assert "Send the tracking link." in await told(ann, bot, "Advice from")
    note = await ann.until(
        lambda: next(
            (
                m
                for m in ann.messages(room, bot.user_id)
                if m["content"].get("m.relates_to", {}).get("event_id") == card["event_id"]
                and "Advice for the owner" in m["content"]["body"]
            ),
            None,
        )
    )
    assert note["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert note["content"]["m.mentions"] == {}

    await admin.say(room, "!inloop digest this")
    image = await admin.until(
        lambda: next(
            (
                m
                for r, info in admin.client.rooms.items()
                if set(info.users) == {bot.user_id, admin.user_id}
                for m in admin.messages(r, bot.user_id)
                if m["content"].get("msgtype") == "m.image"
            ),
            None,
        )
    )
    assert image["content"]["url"].startswith("mxc://")
    assert image["content"]["info"]["mimetype"] == "image/png"
