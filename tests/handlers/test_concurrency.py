"""Fifty people press Claim on the same conversation at the same moment."""

from __future__ import annotations

import asyncio

from bot.events import Command, EventId
from harness import Chat, channel, person
from recording import field_value


async def test_fifty_simultaneous_claims_have_one_winner_and_49_told(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Ordine arrivato rotto")
    names = [f"emp{i:02d}" for i in range(50)]

    await asyncio.gather(
        *(
            chat.app.handle(
                Command(EventId(f"race-{name}"), person(name), channel("support"), "claim 1")
            )
            for name in names
        )
    )
    await chat.app.settle()

    answers = {name: chat.platform.last_private(person(name)) for name in names}
    winners = [name for name, said in answers.items() if said.startswith("#1 is yours")]
    assert len(winners) == 1
    owner = winners[0].capitalize()
    losers = [said for name, said in answers.items() if name != winners[0]]
    assert losers == [f"#1 is already claimed by {owner}."] * 49
    assert field_value(chat.platform.card(1), "Owner") == owner
    assert len(chat.platform.card_messages(1)) == 1
