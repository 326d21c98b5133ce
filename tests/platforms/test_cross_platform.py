"""One Inloop on Slack and Matrix at once: an owner on Slack gets advice from a consultant
on Matrix, who sees nothing else and says nothing to the customer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_matrix import Bot, told

from fake_slack import FakeSlack, command, user
from harness import eventually
from matrix_people import MatrixPerson
from slack_chat import OWNER, SHARED
from synapse_server import SynapseServer


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    yield server
    await server.stop()


async def test_an_owner_on_slack_gets_advice_from_a_consultant_on_matrix(
    synapse: SynapseServer, tmp_path: Path, fake: FakeSlack
) -> None:
    expert = await MatrixPerson(synapse, "expert", tmp_path / "expert").start()
    admin = await MatrixPerson(synapse, "madmin", tmp_path / "madmin").start()
    for uid, name in [("UADMIN", "Ada"), ("UANN", "Ann")]:
        fake.users[uid] = user(uid, name)
    fake.users["UCUST"] = user("UCUST", "Giulia", guest=True)
    bot = Bot(synapse, tmp_path / "bot", admin)
    await bot.start(
        INLOOP_ADMINS=f"slack:UADMIN,{admin.person}",
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_APP_TOKEN=fake.app_token,
        SLACK_API_URL=fake.api_url,
    )
    assert bot.app is not None
    assert set(bot.app.platforms) == {"slack", "matrix"}
    await fake.connected()
    try:

        async def slash(uid: str, text: str, where: str = OWNER) -> str:
            before = len(fake.told(uid))
            await fake.push("slash_commands", command(uid, where, text, f"trig-{text}"))
            await eventually(lambda: len(fake.told(uid)) > before, within=20)
            return "\n".join(fake.told(uid)[before:])

        assert "support" in await slash("UADMIN", "team add support")
        assert "Watching" in await slash("UADMIN", "team watch", where=SHARED)
        assert "consultant" in await slash("UADMIN", f"role {expert.person} consultant")
        await bot.mention("La mia scatola è arrivata rotta")
        await eventually(lambda: len(fake.in_channel(OWNER)) >= 1, within=20)
        assert "is yours" in await slash("UANN", "claim 1")

        asked = await slash("UANN", f"ask 1 Cosa le rispondo? {expert.person}")
        assert "Asked 1-A1 of" in asked
        # the consultant, on Matrix, gets the context privately
        request = await told(expert, bot, "Advice wanted: 1-A1")
        assert "Cosa le rispondo?" in request and "La mia scatola" in request
        # its button says how to answer on Matrix, not with Slack's /inloop
        assert "!inloop answer 1-A1" in request and "/inloop" not in request

        room = next(r for r, i in expert.client.rooms.items() if bot.user_id in i.users)
        await expert.say(room, "!inloop answer 1-A1 Scusati e offri il reso gratuito.")
        await eventually(
            lambda: any("offri il reso gratuito" in t for t in fake.told("UANN")), within=20
        )
        card_ts = fake.in_channel(OWNER)[0].ts
        await eventually(
            lambda: any(p.thread_ts == card_ts for p in fake.in_channel(OWNER)), within=20
        )
        # ...and nothing reached the customers' channel
        assert all("reso gratuito" not in p.text for p in fake.in_channel(SHARED))

        await expert.say(room, "!inloop show 2")
        assert "Not allowed" in await told(expert, bot, "Not allowed")
        await expert.say(room, "!inloop claim 1")
        await told(expert, bot, "needs the role")
    finally:
        await bot.stop()
        await expert.stop()
        await admin.stop()
