"""Advice: an owner asks an outside expert, who answers privately and sees nothing else."""

from __future__ import annotations

from datetime import timedelta

from bot.views import Card
from harness import Chat, channel, person
from recording import field_value


async def _owner_with_a_conversation(chat: Chat) -> None:
    chat.platform.guests.add("giulia")
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team watch", where="community")
    await chat.say("boss", "role console:expert consultant")
    await chat.say("boss", "role console:sage consultant")
    await chat.post("giulia", "Il rimborso R-5521 non arriva", "community", ref="m1")
    await chat.say("ann", "claim 1")


async def test_ask_take_answer_reaches_the_owner_privately_and_the_card_thread(
    chat: Chat,
) -> None:
    await _owner_with_a_conversation(chat)
    await chat.say("boss", "consultants here", where="experts")

    told = await chat.say("ann", "ask 1 Possiamo rimborsare\nsenza ricevuta?")
    assert told.startswith("Asked 1-A1 of the consultants' pool.")

    pool = chat.platform.everything_in(channel("experts"))
    assert len(pool) == 1
    request = pool[0].view
    assert isinstance(request, Card)
    assert request.title == "Advice wanted: 1-A1 · console · Giulia"
    assert field_value(request, "Question") == "Possiamo rimborsare\nsenza ricevuta?"
    assert "Il rimborso R-5521 non arriva" in request.text
    assert field_value(chat.platform.card(1), "Advice") == "1 open, 0 answered"

    assert await chat.say("expert", "take 1-A1") == "1-A1 is yours to answer: `answer 1-A1 ADVICE`."
    assert await chat.say("sage", "take 1-A1") == "1-A1 is already taken by Expert."

    sent = await chat.say("expert", "answer 1-A1 Sì, con la prova d'acquisto dalla banca.")
    assert sent == "Your advice on 1-A1 went to Ann, privately."

    assert chat.platform.last_private(person("ann")).startswith(
        "Advice from Expert on #1 (1-A1): Sì, con la prova d'acquisto dalla banca."
    )
    assert chat.platform.thread_of(1) == [
        "Advice for the owner, not a reply to the customer. "
        "1-A1 from Expert: Sì, con la prova d'acquisto dalla banca."
    ]
    assert field_value(chat.platform.card(1), "Advice") == "0 open, 1 answered"
    # nothing the consultant wrote reached the customers' channel
    assert chat.platform.everything_in(channel("community")) == []


async def test_a_named_consultant_is_asked_privately(chat: Chat) -> None:
    await _owner_with_a_conversation(chat)

    told = await chat.say("ann", "ask 1 Cosa rispondo? console:sage")

    assert told.startswith("Asked 1-A1 of Sage.")
    request = chat.platform.last_private(person("sage"))
    assert request.startswith("Advice wanted: 1-A1 · console · Giulia")
    assert "Question: Cosa rispondo?" in request
    assert chat.platform.private(person("expert")) == ["Boss made you consultant in Inloop."]
    assert await chat.say("expert", "answer 1-A1 io!") == "1-A1 is not yours."


async def test_follow_ups_keep_the_thread_going_both_ways(chat: Chat) -> None:
    await _owner_with_a_conversation(chat)
    await chat.say("ann", "ask 1 Rimborso? console:expert")
    await chat.say("expert", "answer 1-A1 Sì.")

    assert await chat.say("ann", "followup 1-A1 Anche senza ricevuta?") == "Sent to Expert."
    assert chat.platform.last_private(person("expert")) == (
        "Ann follows up on 1-A1: Anche senza ricevuta?"
    )
    await chat.say("expert", "answer 1-A1 Anche senza, con l'estratto conto.")
    assert "Anche senza, con l'estratto conto." in chat.platform.last_private(person("ann"))
    assert len(chat.platform.thread_of(1)) == 2

    listed = await chat.say("ann", "advice")
    assert listed.splitlines()[0] == "Waiting for advice (1):"
    assert "1-A1 · #1 · answered" in listed
    assert await chat.say("ann", "rate 1-A1 useful") == "Noted: 1-A1 was useful."
    assert await chat.say("ann", "close 1-A1") == "1-A1 is closed."
    assert chat.platform.last_private(person("expert")) == "Ann closed 1-A1. Thank you."
    assert await chat.say("expert", "answer 1-A1 ancora") == "1-A1 is closed."


async def test_a_consultant_sees_only_what_they_were_asked_about(chat: Chat) -> None:
    await _owner_with_a_conversation(chat)
    await chat.mention("Marco", "Altro problema")  # conversation #2, nobody asked about it
    await chat.say("ann", "ask 1 Rimborso? console:expert")

    assert "Il rimborso R-5521 non arriva" in await chat.say("expert", "show 1")
    assert await chat.say("expert", "show 2") == (
        "Not allowed: consultants see only the conversations they were asked about."
    )
    for command in ("claim 2", "replied 1", "resolve 1", "release 1", "queue", "ask 1 x"):
        assert (await chat.say("expert", command)).startswith("Not allowed"), command
    assert field_value(chat.platform.card(1), "Owner") == "Ann"


async def test_only_the_owner_or_a_manager_asks_and_someone_must_be_there_to_answer(
    chat: Chat,
) -> None:
    await _owner_with_a_conversation(chat)

    assert "Nobody to ask" in await chat.say("ann", "ask 1 Rimborso?")
    assert "Only Ann (the owner) or a manager" in await chat.say("bob", "ask 1 x console:expert")
    assert "Bob is not a consultant" in await chat.say("ann", "ask 1 x console:bob")
    assert "`1-B2` is not an advice request" in await chat.say("expert", "take 1-B2")
    assert await chat.say("expert", "take 1-A9") == "There is no advice request 1-A9."
    assert "Usage:" in await chat.say("ann", "ask 1")


async def test_unanswered_advice_is_chased_once_after_the_sla(chat: Chat) -> None:
    await _owner_with_a_conversation(chat)
    asked_at = chat.clock()
    await chat.say("ann", "ask 1 Rimborso? console:expert")

    await chat.at(asked_at + timedelta(hours=23, minutes=45))
    assert "Still waiting" not in chat.platform.last_private(person("expert"))

    await chat.at(asked_at + timedelta(hours=24, minutes=15))
    assert chat.platform.last_private(person("expert")) == (
        "Still waiting for your advice on 1-A1, asked 24h ago by Ann: `answer 1-A1 ADVICE`."
    )
    assert chat.platform.last_private(person("ann")) == (
        "1-A1 is still unanswered after 24h; I reminded Expert."
    )

    await chat.at(asked_at + timedelta(hours=48))
    reminders = [m for m in chat.platform.private(person("expert")) if "Still waiting" in m]
    assert len(reminders) == 1


async def test_a_request_waiting_in_the_pool_is_chased_in_the_pool(chat: Chat) -> None:
    await _owner_with_a_conversation(chat)
    await chat.say("boss", "consultants here", where="experts")
    asked_at = chat.clock()
    await chat.say("ann", "ask 1 Rimborso?")

    await chat.at(asked_at + timedelta(hours=25))

    pool = [d.text for d in chat.platform.everything_in(channel("experts"))]
    assert pool[-1] == "1-A1 has waited 25h for a consultant: `take 1-A1`."
    assert chat.platform.last_private(person("ann")) == (
        "1-A1 is still unanswered after 25h; I reminded the consultants' pool."
    )


async def test_the_advice_list_names_each_state_from_the_reader_s_side(chat: Chat) -> None:
    await _owner_with_a_conversation(chat)
    await chat.say("boss", "consultants here", where="experts")
    await chat.say("ann", "ask 1 Rimborso? console:sage")
    await chat.say("ann", "ask 1 Spedizione?")  # to the pool
    await chat.say("expert", "take 1-A2")
    await chat.say("expert", "answer 1-A2 Sì.")

    assert await chat.say("sage", "advice") == (
        "To answer (1):\n1-A1 · #1 · for you · 0m — Rimborso?"
    )
    assert await chat.say("expert", "advice") == (
        "To answer (1):\n1-A2 · #1 · answered by you · 0m — Spedizione?"
    )
    assert await chat.say("ann", "advice") == (
        "Waiting for advice (2):\n"
        "1-A1 · #1 · waiting for the consultant · 0m — Rimborso?\n"
        "1-A2 · #1 · answered · 0m — Spedizione?"
    )
    await chat.say("sage", "lang it")
    assert "1-A1 · #1 · per te · 0m" in await chat.say("sage", "advice")


async def test_a_question_ending_in_a_time_or_an_emoji_is_a_question(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", "consultants here", where="experts")
    await chat.mention("Giulia", "Where is it?")
    await chat.say("ann", "claim 1")
    told = await chat.say("ann", "ask 1 They want it by 10:30")
    assert "1-A1" in told
    told = await chat.say("ann", "ask 1 Thanks :pray:")
    assert "1-A2" in told


async def test_a_consultant_s_list_shows_what_waits_in_the_pool_and_how_to_take_it(
    chat: Chat,
) -> None:
    await _owner_with_a_conversation(chat)
    await chat.say("boss", "consultants here", where="experts")
    await chat.say("ann", "ask 1 Rimborso?")  # to the pool, nobody took it
    await chat.say("ann", "ask 1 Spedizione? console:sage")

    assert await chat.say("expert", "advice") == (
        "In the pool, nobody took them yet (1):\n1-A1 · #1 · 0m — Rimborso? · take it: `take 1-A1`"
    )
    assert await chat.say("sage", "advice") == (
        "To answer (1):\n1-A2 · #1 · for you · 0m — Spedizione?\n"
        "In the pool, nobody took them yet (1):\n"
        "1-A1 · #1 · 0m — Rimborso? · take it: `take 1-A1`"
    )
    # the owner's list stays theirs: the pool is the consultants' business
    assert "In the pool" not in await chat.say("ann", "advice")

    await chat.say("expert", "take 1-A1")
    assert await chat.say("expert", "advice") == (
        "To answer (1):\n1-A1 · #1 · for you · 0m — Rimborso?"
    )
    assert "In the pool" not in await chat.say("sage", "advice")
