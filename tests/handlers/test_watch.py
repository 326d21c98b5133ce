"""Watched channels and reactions: what a Slack Connect channel or a public room looks like."""

from __future__ import annotations

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
