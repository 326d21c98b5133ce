"""`inloop customer export REF --out FILE` and `inloop customer erase REF --confirm`:
an admin answers a customer's request from the command line, the bot stopped or not."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from test_cli import EXIT_CONFIG, inloop, sqlite_url

from harness import Chat


async def _giulia_wrote(url: str) -> None:
    chat = await Chat(url).start()
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "La scatola è arrivata rotta", key="g-1")
    await chat.mention("Marco", "Consegna in ritardo", key="m-1")
    await chat.say("ann", "claim 1")
    await chat.stop()


async def test_export_then_erase_from_the_command_line(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "inloop.db")
    env = {"DATABASE_URL": url}
    await _giulia_wrote(url)

    done = await asyncio.to_thread(
        inloop, tmp_path, "customer", "export", "#1", "--out", "giulia.json", env=env
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "giulia.json").read_text(encoding="utf-8"))
    assert [m["text"] for m in data["mentions"]] == ["La scatola è arrivata rotta"]
    assert [c["number"] for c in data["conversations"]] == [1]

    # without --confirm: what would go, and nothing goes
    done = await asyncio.to_thread(
        inloop, tmp_path, "customer", "erase", "twitter:@giulia", env=env
    )
    assert done.returncode == EXIT_CONFIG
    assert "Erasing twitter:@giulia removes for good" in done.stdout
    assert "inloop customer erase twitter:@giulia --confirm" in done.stdout

    done = await asyncio.to_thread(
        inloop, tmp_path, "customer", "erase", "twitter:@giulia", "--confirm", env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Erased at the customer's request: 1 identities, 1 conversations")

    chat = await Chat(url).start()
    try:
        await chat.app.settle()  # the card's edit waited in the outbox for the bot
        shown = await chat.say("ann", "show 1")
        assert "(erased)" in shown and "scatola" not in shown
        assert "Inloop erased the customer's data at their request" in shown
        assert chat.platform.card(1).text == "Erased at the customer's request."
        assert "Consegna in ritardo" in await chat.say("ann", "show 2")
    finally:
        await chat.stop()


def test_a_ref_that_names_no_customer_is_one_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqlite_url(tmp_path / "inloop.db")}

    done = inloop(tmp_path, "customer", "erase", "twitter:@nobody", "--confirm", env=env)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == ["inloop: No customer is known as twitter:@nobody."]
