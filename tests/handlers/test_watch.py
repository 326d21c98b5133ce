"""Watched channels and reactions: what a Slack Connect channel or a public room looks like."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from bot.events import EventId, Message
from harness import Chat, channel, person
from recording import field_value


async def _watching(chat: Chat) -> None:
    chat.platform.guests.update({"giulia", "marco"})
    await chat.say("boss", "team add support", where="support")
    told = await chat.say("boss", "team watch", where="community")
    assert told.startswith("Watching this channel for team support")


async def test_a_customer_message_in_a_watched_channel_becomes_a_conversation(
    chat: Chat,
) -> None:
    await _watching(chat)

    await chat.post("giulia", "La scatola è arrivata rotta", "community", ref="m1")

    card = chat.platform.card(1)
    assert card.title == "#1 · console · Giulia (giulia)"
    assert card.text == "La scatola è arrivata rotta"
    # the card is in the team's channel; nothing was said in the customers' channel
    assert len(chat.platform.in_channel(channel("support"))) == 1
    assert chat.platform.in_channel(channel("community")) == []


async def test_the_customer_s_replies_in_the_thread_are_follow_ups(chat: Chat) -> None:
    await _watching(chat)
    await chat.post("giulia", "La scatola è rotta", "community", ref="m1")
    await chat.post("giulia", "E manca un pezzo", "community", ref="m2", thread="m1")
    await chat.post("marco", "Anche a me!", "community", ref="m3")

    assert field_value(chat.platform.card(1), "Messages") == "2"
    assert chat.platform.card(1).text == "E manca un pezzo"
    assert chat.platform.card(2).title.startswith("#2 · console · Marco")


async def test_the_owner_s_reply_in_the_thread_marks_it_replied(chat: Chat) -> None:
    await _watching(chat)
    await chat.post("giulia", "La scatola è rotta", "community", ref="m1")
    await chat.say("ann", "claim 1")

    await chat.post("bob", "Ciao Giulia, ci pensa Ann", "community", ref="m2", thread="m1")
    assert field_value(chat.platform.card(1), "Status") == "Claimed"  # Bob is not the owner

    await chat.post("ann", "Ciao Giulia, ti rimborsiamo oggi", "community", ref="m3", thread="m1")

    card = chat.platform.card(1)
    assert field_value(card, "Status") == "Replied"
    assert field_value(card, "Messages") == "1"  # staff replies are not customer mentions
    history = (await chat.say("ann", "show 1")).split("History:")[1]
    assert "Ann marked it replied" in history


async def test_an_unclaimed_conversation_answered_in_the_thread_is_the_replier_s(
    chat: Chat,
) -> None:
    await _watching(chat)
    await chat.post("giulia", "La scatola è rotta", "community", ref="m1")

    await chat.post("ann", "Ciao Giulia!", "community", ref="m2", thread="m1")

    card = chat.platform.card(1)
    assert field_value(card, "Owner") == "Ann"
    assert field_value(card, "Status") == "Replied"


async def test_staff_and_consultants_in_a_watched_channel_are_not_customers(chat: Chat) -> None:
    await _watching(chat)
    await chat.say("boss", "role console:expert consultant")

    await chat.post("ann", "Benvenuti nel canale!", "community", ref="m1")
    await chat.post("expert", "Suggerimento tecnico", "community", ref="m2")

    assert chat.platform.in_channel(channel("support")) == []


async def test_messages_in_channels_that_are_not_watched_are_ignored(chat: Chat) -> None:
    await _watching(chat)
    await chat.post("giulia", "hello?", "random", ref="m1")
    assert chat.platform.in_channel(channel("support")) == []


async def test_watching_is_for_admins_and_not_for_the_team_channel(chat: Chat) -> None:
    await chat.say("boss", "team add support", where="support")
    assert (await chat.say("ann", "team watch", where="community")).startswith("Not allowed")
    assert "owner channel of team support" in await chat.say("boss", "team watch", where="support")
    assert await chat.say("boss", "team unwatch", where="community") == (
        "This channel is not watched."
    )
    await chat.say("boss", "team watch", where="community")
    assert await chat.say("boss", "team unwatch", where="community") == (
        "This channel is no longer watched."
    )


async def test_a_raised_hand_on_the_card_claims_it(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Ordine rotto")
    card_ref = chat.platform.in_channel(channel("support"))[0].ref

    assert "#1 is yours" in await chat.react("ann", card_ref, "✋")
    assert "already claimed by Ann" in await chat.react("bob", card_ref, "✋")
    await chat.react("carla", card_ref, "👍")  # other reactions mean nothing

    assert field_value(chat.platform.card(1), "Owner") == "Ann"
    assert chat.platform.private(person("carla")) == []


async def test_a_customer_s_photo_alone_is_a_message_too(chat: Chat) -> None:
    await _watching(chat)
    await chat.post("giulia", "", "community", ref="m1", files=("scatola-rotta.jpg",))
    assert chat.platform.card(1).text == "📎 scatola-rotta.jpg (file)"

    await chat.post(
        "giulia",
        "Ecco la ricevuta",
        "community",
        ref="m2",
        thread="m1",
        files=("ricevuta.pdf", "<!channel>.png"),
    )
    card = chat.platform.card(1)
    assert field_value(card, "Messages") == "2"
    assert card.text == "Ecco la ricevuta\n📎 ricevuta.pdf (file)\n📎 <!channel>.png (file)"
    await chat.post("giulia", "", "community", ref="m4", files=("",))  # a file with no name
    assert chat.platform.card(2).text == "📎 a file"
    # a message with neither text nor a file is nothing to answer
    before = len(chat.platform.delivered)
    await chat.post("giulia", "  ", "community", ref="m3")
    assert len(chat.platform.delivered) == before


async def test_a_group_of_messages_from_several_channels_is_routed_set_based(chat: Chat) -> None:
    """Messages that arrive together (the Slack adapter's group commit) are handled as one
    batch: each customer's message reaches the team its channel is watched for, new
    threads are numbered in the order they came, replies in a thread (one known, one
    opened in this very group) are follow-ups, and a re-delivered message is ignored;
    with one statement each to dedupe and to open conversations, whatever the group."""
    chat.platform.guests.update({"giulia", "marco", "sara"})
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add billing", where="billing")
    await chat.say("boss", "team watch support", where="community")
    await chat.say("boss", "team watch billing", where="partners")
    await chat.post("giulia", "La scatola è rotta", "community", ref="m1")  # #1

    def said(n: int, who: str, where: str, text: str, ref: str, thread: str = "") -> Message:
        # a thread of "" is none
        return Message(
            EventId(f"group-{n}"), person(who), channel(where), text, ref, thread or None
        )

    group = [
        said(1, "giulia", "community", "E manca un pezzo", "m2", thread="m1"),
        said(2, "marco", "partners", "Fattura sbagliata", "p1"),
        said(3, "sara", "community", "Dov'è il mio ordine?", "m3"),
        said(4, "marco", "partners", "È la numero 12", "p2", thread="p1"),
        said(2, "marco", "partners", "Fattura sbagliata", "p1"),  # Slack's retry
    ]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = chat.app.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert await chat.app.handle_many(group) == [True, True, True, True, False]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    await chat.app.settle()

    assert field_value(chat.platform.card(1), "Messages") == "2"
    assert chat.platform.card(1).text == "E manca un pezzo"
    billing, support = chat.platform.card(2), chat.platform.card(3)
    assert billing.title.startswith("#2 · console · Marco")
    assert (field_value(billing, "Team"), field_value(billing, "Messages")) == ("billing", "2")
    assert billing.text == "È la numero 12"
    assert support.title.startswith("#3 · console · Sara")
    assert field_value(support, "Team") == "support"
    # each new card once, in its team's channel: #2 in billing's, #3 in support's (and
    # #1's follow-up there)
    [posted] = chat.platform.in_channel(channel("billing"))
    assert posted.text.startswith("#2 · console · Marco")
    shown = [m.text.split(" · ")[0] for m in chat.platform.in_channel(channel("support"))]
    assert shown.count("#3") == 1 and set(shown) == {"#1", "#3"}
    inserts = [s.split("(")[0].split()[-1] for s in statements if s.startswith("INSERT INTO")]
    assert inserts.count("processed_event") == 1
    assert inserts.count("conversation") == 1
    assert chat.platform.in_channel(channel("community")) == []
