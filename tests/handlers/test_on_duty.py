"""On duty: a new conversation is offered privately to a team member inside their block.

The clock starts on Monday 2026-11-16 at 09:00 UTC; blocks are committed at 10:00
for an hour, so people are on duty from 10:00 to 11:00.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from bot.events import Author, MentionReceived
from bot.views import Card
from harness import Chat, channel, person
from recording import button_actions, field_value

TEN = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
_ids = itertools.count(1)


def offers(chat: Chat, who: str) -> list[Card]:
    """The cards offered privately to `who` (a copy of a conversation's card)."""
    return [
        d.view
        for d in chat.platform.delivered
        if d.kind == "private"
        and d.target == person(who)
        and isinstance(d.view, Card)
        and d.view.title.startswith("#")
    ]


def block_of(chat: Chat, who: str) -> str:
    """The number of the block `who` was last reminded of."""
    reminders = [
        d.view
        for d in chat.platform.delivered
        if d.target == person(who)
        and isinstance(d.view, Card)
        and d.view.title.startswith("Dialogue time")
    ]
    return field_value(reminders[-1], "Block")


async def support_with_members(chat: Chat, *members: str) -> None:
    await chat.say("boss", "team add support", where="support")
    for name in members:
        assert "You are now a member of support" in await chat.say(name, "team join support")


async def burst(chat: Chat, *texts: str) -> None:
    """Mentions arriving together, as a webhook batch: one transaction for all."""
    await chat.app.handle_many(
        [
            MentionReceived(
                source="twitter",
                external_id=f"burst-{n}",
                conversation_key=f"burst-{n}",
                author=Author(f"Customer{n}", f"@c{n}"),
                text=text,
                url="",
                created_at=chat.clock(),
            )
            for n, text in zip(_ids, texts, strict=False)
        ]
    )
    await chat.app.settle()


async def test_a_new_conversation_is_offered_to_the_member_on_duty_with_the_fewest_open(
    chat: Chat,
) -> None:
    await support_with_members(chat, "ann", "bob", "carol")
    await chat.say("ann", "commit daily 10:00 1h UTC")
    await chat.say("bob", "commit daily 10:00 1h UTC")
    await chat.say("dave", "commit daily 10:00 1h UTC")  # on duty, but not in support
    # before anyone is on duty: only the card in the channel
    await chat.mention("Giulia", "Il pacco è arrivato rotto")
    assert "#1 is yours" in await chat.say("bob", "claim 1")
    assert all(offers(chat, who) == [] for who in ("ann", "bob", "carol", "dave"))

    await chat.at(TEN)  # Ann's and Bob's blocks start: both on duty
    await chat.mention("Marco", "Dov'è il mio rimborso?")

    # Ann has no open conversation, Bob has #1: Ann is offered #2, with its Claim
    [offer] = offers(chat, "ann")
    assert offer.title.startswith("#2 · twitter · Marco")
    assert button_actions(offer) == ["claim"]
    assert offer.buttons[0].command == "!inloop claim 2"
    assert field_value(offer, "Why you") == "You are on duty now: claim it if you can take it."
    assert offers(chat, "bob") == offers(chat, "carol") == offers(chat, "dave") == []
    # the card is in the team channel as ever
    assert chat.platform.card(2).title.startswith("#2 · twitter · Marco")
    posted = [d for d in chat.platform.in_channel(channel("support")) if d.kind == "send"]
    assert len(posted) == 2

    assert "#2 is yours" in await chat.press("ann", "claim", "2", where="ann-dm")


async def test_the_reminder_at_the_start_of_a_block_still_lists_the_queue(chat: Chat) -> None:
    await support_with_members(chat, "ann")
    await chat.say("ann", "commit daily 10:00 1h UTC")
    await chat.mention("Giulia", "Il pacco è arrivato rotto")

    await chat.at(TEN)

    [reminder] = [
        d.view
        for d in chat.platform.delivered
        if d.target == person("ann")
        and isinstance(d.view, Card)
        and d.view.title.startswith("Dialogue time")
    ]
    assert "#1" in reminder.text and "Giulia" in reminder.text


async def test_a_burst_is_spread_over_the_people_on_duty(chat: Chat) -> None:
    await support_with_members(chat, "ann", "bob")
    await chat.say("ann", "commit daily 10:00 1h UTC")
    await chat.say("bob", "commit daily 10:00 1h UTC")
    await chat.at(TEN)

    await burst(chat, "uno", "due", "tre", "quattro")

    assert [o.title.split()[0] for o in offers(chat, "ann")] == ["#1", "#3"]
    assert [o.title.split()[0] for o in offers(chat, "bob")] == ["#2", "#4"]


async def test_nobody_is_on_duty_before_a_block_after_it_or_while_it_is_snoozed_or_skipped(
    chat: Chat,
) -> None:
    await support_with_members(chat, "ann", "bob")
    await chat.say("ann", "commit daily 10:00 1h UTC")
    await chat.say("bob", "commit daily 10:00 1h UTC")
    await chat.at(TEN)

    assert "remind you again at 10:15" in await chat.say("ann", f"snooze {block_of(chat, 'ann')}")
    assert "recorded as skipped" in await chat.say("bob", f"skip {block_of(chat, 'bob')}")
    await chat.mention("Giulia", "Il pacco è arrivato rotto")
    assert offers(chat, "ann") == offers(chat, "bob") == []

    # the snooze is over: Ann is on duty again until her block ends
    await chat.at(datetime(2026, 11, 16, 10, 15, tzinfo=UTC))
    await chat.mention("Marco", "Rimborso?")
    assert [o.title.split()[0] for o in offers(chat, "ann")] == ["#2"]

    await chat.at(datetime(2026, 11, 16, 11, 30, tzinfo=UTC))  # the snoozed block ended
    await chat.mention("Sara", "Ciao")
    assert [o.title.split()[0] for o in offers(chat, "ann")] == ["#2"]
    assert offers(chat, "bob") == []


async def test_the_offer_speaks_the_language_of_the_person_on_duty(chat: Chat) -> None:
    await support_with_members(chat, "ann")
    await chat.say("ann", "lang it")
    await chat.say("ann", "commit daily 10:00 1h UTC")
    await chat.at(TEN)

    await chat.mention("Giulia", "Il pacco è arrivato rotto")

    [offer] = offers(chat, "ann")
    assert field_value(offer, "Perché a te") == (
        "Sei di turno ora: prendila in carico se puoi occupartene."
    )
    # the channel's card stays in the channel's language
    assert field_value(chat.platform.card(1), "Team") == "support"


async def test_in_a_burst_nobody_holds_more_than_three_unclaimed_offers(chat: Chat) -> None:
    await support_with_members(chat, "ann")
    await chat.say("ann", "commit daily 10:00 1h UTC")
    await chat.at(TEN)

    await burst(chat, *(f"messaggio {n}" for n in range(10)))

    # the other seven wait in the channel, their cards posted as ever
    assert [o.title.split()[0] for o in offers(chat, "ann")] == ["#1", "#2", "#3"]
    assert len(chat.platform.in_channel(channel("support"))) == 10
    # in a later batch too, until she claims one
    await chat.mention("Marco", "Rimborso?")
    assert len(offers(chat, "ann")) == 3
    assert "#2 is yours" in await chat.say("ann", "claim 2")
    await chat.mention("Sara", "Ciao")
    assert [o.title.split()[0] for o in offers(chat, "ann")] == ["#1", "#2", "#3", "#12"]
    # each offer is in the conversation's history
    assert "Ann was offered it (on duty)" in await chat.say("ann", "show 12")
