"""Inloop running on Slack (Socket Mode) against the fake Slack, driven like people use it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.app import App, build_platforms
from bot.clock import Clock
from bot.config import load_settings
from bot.events import Event
from bot.inbox import NoInbox
from bot.platform import EventSink
from bot.platforms.slack.adapter import SlackPlatform
from fake_slack import FakeSlack, button, command, event, message, user, view_submission
from harness import eventually

_ids = itertools.count(1)

OWNER = "COWNER"  # team support's owner channel
SHARED = "CSHARED"  # a Slack Connect channel shared with customers


class SlackChat:
    def __init__(
        self, database_url: str, fake: FakeSlack, *, clock: Clock | None = None, **env: str
    ) -> None:
        self.fake = fake
        settings = load_settings(
            {
                "DATABASE_URL": database_url,
                "INLOOP_ADMINS": "slack:UADMIN",
                "SLACK_BOT_TOKEN": fake.bot_token,
                "SLACK_APP_TOKEN": fake.app_token,
                "SLACK_API_URL": fake.api_url,
                **env,
            }
        )
        platforms = build_platforms(settings)
        platform = platforms["slack"]
        assert isinstance(platform, SlackPlatform)
        assert "console" not in platforms  # Slack is set: no console
        # Slack's real pace is one message a second per channel; tests keep the pacing
        # mechanism but make it small.
        platform.pace_seconds = 0.001
        self.platform = platform
        # A test's own clock drives the scheduler itself (`scheduler.run_due`).
        if clock is None:
            self.app = App(settings, platforms)
        else:
            self.app = App(settings, platforms, clock=clock, run_timers=False)
        self.handled = 0
        handle = self.app.handle

        async def counting(event: Event) -> bool:
            try:
                return await handle(event)
            finally:
                self.handled += 1

        # the adapter hands events to app.handle: count them to know when one is done
        setattr(self.app, "handle", counting)  # noqa: B010
        for uid, name in [("UADMIN", "Ada"), ("UANN", "Ann"), ("UBOB", "Bob")]:
            fake.users[uid] = user(uid, name)
        fake.users["UCUST"] = user("UCUST", "Giulia", guest=True, locale="it-IT")
        fake.users["UEXT"] = user("UEXT", "Remo", team="T2")

    @staticmethod
    def null_sink() -> EventSink:
        class Nothing:
            inbox = NoInbox()

            async def handle(self, event: Event) -> bool:
                return True

            async def handle_many(self, events: Sequence[Event]) -> list[bool]:
                return [True] * len(events)

            async def settle(self) -> None:
                pass

        return Nothing()

    async def start(self) -> SlackChat:
        await self.app.start()
        await self.fake.connected()
        return self

    async def stop(self) -> None:
        await self.app.stop()

    async def _deliver(self, kind: str, payload: dict[str, Any], expect: int = 1) -> str:
        before = self.handled
        envelope = await self.fake.push(kind, payload)
        await self.fake.acked(envelope)
        await eventually(lambda: self.handled >= before + expect)
        await self.app.settle()
        return envelope

    async def say(self, uid: str, text: str, where: str = OWNER) -> str:
        """`/inloop TEXT` typed by uid in #where; returns what they were told privately."""
        before = len(self.fake.told(uid))
        await self._deliver("slash_commands", command(uid, where, text, f"trig-{next(_ids)}"))
        return "\n".join(self.fake.told(uid)[before:])

    async def press(
        self, uid: str, action: str, value: str, where: str | None = OWNER, **kw: Any
    ) -> str:
        before = len(self.fake.told(uid))
        payload = button(uid, where, f"inloop:{action}", value, f"trig-{next(_ids)}", **kw)
        await self._deliver("interactive", payload, expect=2 if kw.get("view") else 1)
        return "\n".join(self.fake.told(uid)[before:])

    async def write(
        self, uid: str, text: str, where: str, *, ts: str, thread_ts: str | None = None
    ) -> None:
        await self.send_event(message(uid, where, text, ts, thread_ts=thread_ts))

    async def send_event(self, body: dict[str, Any], event_id: str = "", expect: int = 1) -> str:
        """Push an event; wait until `expect` events reached the core (0: only the ack)."""
        return await self._deliver("events_api", event(body, event_id or f"Ev{next(_ids)}"), expect)

    async def open_form(
        self, uid: str, where: str | None, form: str, value: str, **kw: Any
    ) -> dict[str, Any]:
        """`uid` presses a button that opens `form`; returns the modal Slack shows."""
        opened = self.fake.count("views.open")
        pressed = button(uid, where, f"inloop_form_open:{form}", value, f"trig-{next(_ids)}", **kw)
        await self.fake.acked(await self.fake.push("interactive", pressed))
        await eventually(lambda: self.fake.count("views.open") > opened)
        return list(self.fake.views.values())[-1]

    async def fill_form(
        self, uid: str, modal: dict[str, Any], typed: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """`uid` submits `modal`; returns Slack's ack (`{}` closes it: the command ran)."""
        before = self.handled
        submitted = view_submission(uid, modal, typed, f"V{next(_ids)}")
        ack = await self.fake.acked(await self.fake.push("interactive", submitted))
        if ack == {}:
            await eventually(lambda: self.handled > before)
            await self.app.settle()
        return ack

    async def customer_card(self, text: str, *, ts: str, uid: str = "UCUST") -> None:
        """A customer writes in the watched channel; returns when the card is in #OWNER."""
        cards = len(self.fake.in_channel(OWNER))
        await self.write(uid, text, SHARED, ts=ts)
        await self.until(lambda: len(self.fake.in_channel(OWNER)) > cards)

    async def until(self, check: Callable[[], bool]) -> None:
        await eventually(check)
        await self.app.settle()

    async def setup_team(self, owner: str = OWNER) -> None:
        """Ada makes #owner team support's channel and watches #SHARED."""
        assert "support" in await self.say("UADMIN", "team add support", where=owner)
        assert "support" in await self.say("UADMIN", "team watch", where=SHARED)

    def card(self, number: int) -> tuple[str, list[dict[str, Any]]]:
        """The current text and blocks of conversation #number's card in the owner channel."""
        for posted in self.fake.in_channel(OWNER):
            if posted.blocks and f"#{number} " in str(posted.blocks[0]):
                return posted.text, posted.blocks
        raise AssertionError(f"no card #{number} in {OWNER}")


def refusals(fake: FakeSlack) -> list[str]:
    """What the admin was told of channels that refuse the bot."""
    return [t for t in fake.told("UADMIN") if "could not post" in t]


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        e["action_id"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("type") == "button"
    ]


def shown(blocks: list[dict[str, Any]]) -> str:
    """Every text a person sees in the blocks, in order."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn"):
                out.append(str(node["text"]))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return "\n".join(out)
