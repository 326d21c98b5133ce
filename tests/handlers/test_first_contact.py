"""A new person's first messages arriving at once (a Slack burst) all count."""

from __future__ import annotations

import asyncio

from bot.events import EventId, Message
from bot.views import Card
from harness import Chat, channel, person


async def test_a_burst_from_someone_new_loses_no_message(chat: Chat) -> None:
    chat.platform.guests.add("giulia")
    await chat.say("boss", "team add support")
    await chat.say("boss", "team watch", where="community")

    # Giulia has never been seen: every one of these meets her for the first time
    await asyncio.gather(
        *(
            chat.app.handle(
                Message(
                    EventId(f"burst-{n}"),
                    person("giulia"),
                    channel("community"),
                    f"question {n}",
                    message_ref=f"{n}.0",
                )
            )
            for n in range(10)
        )
    )
    await chat.app.settle()

    cards = chat.platform.in_channel(channel("support"))
    assert len(cards) == 10
    assert {c.view.text for c in cards if isinstance(c.view, Card)} == {
        f"question {n}" for n in range(10)
    }
