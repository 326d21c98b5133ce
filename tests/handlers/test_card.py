"""The conversation card says true things about who owns the conversation."""

from __future__ import annotations

from harness import Chat
from recording import field_value


async def test_a_card_resolved_without_a_claim_does_not_wait_for_an_owner(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "spam, really")
    assert field_value(chat.platform.card(1), "Owner") == "nobody yet"

    await chat.say("boss", "resolve 1")

    assert field_value(chat.platform.card(1), "Owner") == "nobody (resolved unclaimed)"
    await chat.say("boss", "reopen 1")
    assert field_value(chat.platform.card(1), "Owner") == "nobody yet"


async def test_the_italian_card_says_so_too(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", "lang it")
    await chat.mention("Giulia", "spam, davvero")
    await chat.say("boss", "resolve 1")

    assert "Responsabile: nessuno (risolta senza essere presa in carico)" in await chat.say(
        "boss", "show 1"
    )
