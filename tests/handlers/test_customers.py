"""Customers as staff live them: Giulia writes again, her card remembers her, and the
person who helped her last is offered her new conversation first."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.events import Author, MentionReceived
from bot.views import Card
from handlers import digest as digests
from handlers.weeks import IsoWeek
from harness import Chat, channel, person
from recording import button_actions, field_value


async def _giulia_helped_by_ann(chat: Chat) -> None:
    """Giulia's first conversation (#1), claimed and resolved by Ann."""
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "La scatola è arrivata rotta", key="thread-1")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")


def _fields(chat: Chat, number: int) -> dict[str, str]:
    return {f.label: f.value for f in chat.platform.card(number).fields}


async def test_a_returning_customers_card_says_so_in_one_line(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    chat.clock.advance(days=2)

    await chat.mention("Giulia", "Ancora io: il rimborso?", key="thread-2")

    fields = _fields(chat, 2)
    assert fields["Customer"] == "Returning: 1 before · last 16 Nov with Ann, resolved"
    # a new customer's card has no such line
    assert "Customer" not in _fields(chat, 1)


async def test_a_follow_up_and_a_new_conversation_attach_to_the_same_customer(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Primo messaggio", key="a")
    await chat.mention("Giulia", "Ancora sul primo", key="a")  # a follow-up of #1
    await chat.mention("Giulia", "Una domanda nuova", key="b")

    assert _fields(chat, 2)["Customer"] == "Returning: 1 before · last 16 Nov, open"
    profile = await chat.say("ann", "customer #2")
    assert "Identities: twitter:@giulia (Giulia)" in profile
    assert "#2 · 16 Nov 2026 · twitter · open · nobody yet" in profile
    assert "#1 · 16 Nov 2026 · twitter · open · nobody yet" in profile


async def test_the_relationship_owner_is_offered_the_new_conversation_first(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    chat.clock.advance(days=1)  # 17 Nov, 09:00

    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")

    told = chat.platform.private(person("ann"))
    assert told[-2] == (
        "Your customer Giulia wrote again: #2 is offered to you first, until 09:30. "
        "Claim it; after that anyone in the team can."
    )
    assert told[-1].startswith("#2 · twitter · Giulia (@giulia)")  # the card, with its Claim
    assert _fields(chat, 2)["Relationship"] == "Ann's customer, offered to them until 09:30"
    assert await chat.say("bob", "claim 2") == (
        "#2 comes from Ann's customer and is offered to them until 09:30: "
        "anyone in the team can claim it after that (a manager can now)."
    )
    assert field_value(chat.platform.card(2), "Owner") == "nobody yet"
    # marking it replied would claim it: held the same way
    assert "offered to them until 09:30" in await chat.say("bob", "replied 2")
    assert field_value(chat.platform.card(2), "Owner") == "nobody yet"

    assert "#2 is yours" in await chat.say("ann", "claim 2")
    assert _fields(chat, 2)["Relationship"] == "Ann's customer"


async def test_when_the_hold_ends_the_card_changes_back_and_anyone_can_claim(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    chat.clock.advance(days=1)
    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")

    await chat.at(chat.clock.now + timedelta(minutes=29))
    assert "until 09:30" in _fields(chat, 2)["Relationship"]
    await chat.at(chat.clock.now + timedelta(minutes=1, seconds=30))

    assert _fields(chat, 2)["Relationship"] == "Ann's customer"
    assert "#2 is yours" in await chat.say("bob", "claim 2")


async def test_a_claim_after_the_hold_works_even_before_the_sweep_came(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    chat.clock.advance(days=1)
    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")
    chat.clock.advance(minutes=31)  # no scheduler pass

    assert "#2 is yours" in await chat.say("bob", "claim 2")
    assert _fields(chat, 2)["Relationship"] == "Ann's customer"


async def test_a_manager_can_claim_a_held_conversation(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.say("boss", "role console:mia manager")
    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")

    assert "#2 is yours" in await chat.say("mia", "claim 2")


async def test_an_owner_away_holds_nothing(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.say("ann", "away until 2026-11-20")
    before = len(chat.platform.private(person("ann")))

    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")

    assert chat.platform.private(person("ann"))[before:] == []
    assert _fields(chat, 2)["Relationship"] == "Ann's customer"
    assert "#2 is yours" in await chat.say("bob", "claim 2")


@pytest.fixture
async def no_hold(database_url: str) -> AsyncIterator[Chat]:
    running = await Chat(database_url, RELATIONSHIP_HOLD_MINUTES="0").start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_hold_of_zero_minutes_turns_the_offer_off(no_hold: Chat) -> None:
    chat = no_hold
    await _giulia_helped_by_ann(chat)
    before = len(chat.platform.private(person("ann")))

    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")

    assert chat.platform.private(person("ann"))[before:] == []
    assert "#2 is yours" in await chat.say("bob", "claim 2")


async def test_customer_owner_gives_the_relationship_to_someone_else(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)

    assert await chat.say("carl", "customer owner #1 console:bob") == (
        "Only the relationship owner of Giulia (Ann) or a manager can change it."
    )
    assert await chat.say("ann", "customer owner twitter:@giulia @bob") == (
        "Bob is now the relationship owner of Giulia."
    )
    assert chat.platform.last_private(person("bob")) == (
        "Ann made you the relationship owner of Giulia: "
        "their new conversations are offered to you first."
    )
    assert "Relationship owner: Bob" in await chat.say("ann", "customer #1")

    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")

    assert _fields(chat, 2)["Relationship"].startswith("Bob's customer, offered to them")
    assert "offered to them until" in await chat.say("ann", "claim 2")
    assert "#2 is yours" in await chat.say("bob", "claim 2")


async def test_only_staff_can_hold_a_relationship(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.say("boss", "role console:marta consultant")

    told = await chat.say("boss", "customer owner #1 console:marta")

    assert (
        told == "Marta is not staff (role: consultant): only staff hold customers' relationships."
    )


async def test_two_sources_linked_are_one_customer_and_unlinked_two_again(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.mention("Giulia", "Pessimo servizio", source="trustpilot", key="review-1")
    assert "Customer" not in _fields(chat, 2)

    told = await chat.say("bob", "customer link twitter:@giulia #2")

    assert told == (
        "Linked: twitter:@giulia and #2 are one customer now (2 identities, 2 conversations)."
    )
    profile = await chat.say("bob", "customer trustpilot:@giulia")
    assert "Identities: twitter:@giulia (Giulia), trustpilot:@giulia (Giulia)" in profile
    await chat.mention("Giulia", "Ancora niente", source="trustpilot", key="review-2")
    assert _fields(chat, 3)["Customer"] == "Returning: 2 before · last 16 Nov, open"
    assert _fields(chat, 3)["Relationship"].startswith("Ann's customer, offered to them")

    assert await chat.say("bob", "customer link #1 #3") == ("#1 and #3 are one customer already.")
    told = await chat.say("bob", "customer unlink trustpilot:@giulia")
    assert told == (
        "Unlinked: trustpilot:@giulia (Giulia) is a customer of its own again, "
        "with its 2 conversations."
    )
    assert await chat.say("bob", "customer unlink #1") == ("#1 is not linked to another identity.")
    await chat.mention("Giulia", "Ci siete?", source="trustpilot", key="review-3")
    assert _fields(chat, 4)["Customer"] == "Returning: 2 before · last 16 Nov, open"
    assert "Relationship" not in _fields(chat, 4)  # Ann's customer is the twitter one


async def test_a_wrong_ref_gets_a_clear_answer(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)

    assert await chat.say("ann", "customer #9") == "There is no conversation #9."
    assert await chat.say("ann", "customer twitter:@nobody") == (
        "No customer is known as twitter:@nobody."
    )
    assert "names no customer" in await chat.say("ann", "customer giulia")
    assert "Usage:" in await chat.say("ann", "customer link #1")


async def test_the_profile_shows_conversations_advice_and_language(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.say("boss", "role console:marta consultant")
    await chat.mention("Giulia", "Il rimborso?", key="thread-2")
    await chat.say("ann", "claim 2")
    await chat.say("ann", "ask 2 Cosa le rispondo sul rimborso? console:marta")

    profile = await chat.say("bob", "customer #1")

    assert profile.splitlines()[:4] == [
        "Customer Giulia",
        "Identities: twitter:@giulia (Giulia)",
        "Relationship owner: Ann (resolved their last conversation)",
        "Language: not known",
    ]
    assert "  #2 · 16 Nov 2026 · twitter · claimed · Ann" in profile
    assert "  #1 · 16 Nov 2026 · twitter · resolved · Ann" in profile
    assert "  2-A1 · waiting for the consultant · Marta: Cosa le rispondo sul rimborso?" in profile


async def test_a_consultant_sees_a_customer_only_through_what_they_were_asked(
    chat: Chat,
) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.say("boss", "role console:marta consultant")
    await chat.mention("Giulia", "Il rimborso?", key="thread-2")
    await chat.say("ann", "claim 2")
    await chat.say("ann", "ask 2 Cosa le rispondo? console:marta")

    profile = await chat.say("marta", "customer #2")

    assert "#2 · 16 Nov 2026" in profile
    assert "#1 ·" not in profile
    refused = "You see a customer only through a conversation you were asked about"
    assert refused in await chat.say("marta", "customer #1")
    assert refused in await chat.say("marta", "customer twitter:@giulia")


async def test_the_card_remembers_in_italian_too(database_url: str) -> None:
    chat = await Chat(database_url, INLOOP_LANGUAGE="it").start()
    try:
        await _giulia_helped_by_ann(chat)
        await chat.mention("Giulia", "Ancora io", key="thread-2")
        fields = _fields(chat, 2)
        assert fields["Cliente"] == "Di ritorno: 1 prima · l'ultima il 16 nov con Ann, risolta"
        assert fields["Relazione"] == "cliente di Ann, proposta a Ann fino alle 09:30"
    finally:
        await chat.stop()


async def test_a_batch_of_mentions_finds_its_customers_together(chat: Chat) -> None:
    """A webhook batch: new and returning customers in one go."""
    await _giulia_helped_by_ann(chat)
    batch = [
        MentionReceived(
            source="twitter",
            external_id=f"b-{i}",
            conversation_key=f"b-{i}",
            author=Author(name, f"@{name.lower()}"),
            text="ciao",
            url="",
            created_at=chat.clock(),
        )
        for i, name in enumerate(["Giulia", "Paolo", "Paolo", "Sara"])
    ]
    assert await chat.app.handle_many(batch) == [True] * 4
    await chat.app.settle()

    assert _fields(chat, 2)["Customer"].startswith("Returning: 1 before")
    assert "Customer" not in _fields(chat, 3)
    profile = await chat.say("ann", "customer twitter:@paolo")
    assert "#3 ·" in profile and "#4 ·" in profile
    assert button_actions(chat.platform.card(2)) == ["claim"]
    assert len(chat.platform.in_channel(channel("support"))) >= 5


async def test_the_digest_counts_how_often_returning_customers_keep_their_person(
    chat: Chat,
) -> None:
    await _giulia_helped_by_ann(chat)
    await chat.mention("Paolo", "Dov'è il mio ordine?", key="paolo-1")
    await chat.say("ann", "claim 2")
    await chat.say("ann", "resolve 2")
    chat.clock.advance(days=1)
    await chat.mention("Giulia", "Di nuovo io", key="thread-2")  # #3, Ann takes it
    await chat.mention("Paolo", "Di nuovo io", key="paolo-2")  # #4, Bob after the hold
    await chat.say("ann", "claim 3")
    chat.clock.advance(minutes=31)
    await chat.say("bob", "claim 4")

    digest = await chat.say("boss", "digest this")

    continuity = (
        "  continuity: 2 conversations of returning customers, "
        "50% handled by their relationship owner"
    )
    lines = digest.splitlines()
    assert lines[lines.index(continuity) - 1].startswith("• Ann:")
    assert lines.count(continuity) == 2  # Ann's, and the team's
    assert any(line.startswith("• support:") for line in lines)

    async with chat.app.db.read() as session:
        figures = await digests.build(session, IsoWeek(2026, 47), "UTC", "", 60, chat.clock())
    assert figures is not None
    rows = {(r["section"], r["name"], r["figure"]): r["value"] for r in digests.as_rows(figures)}
    assert rows[("team", "support", "returning")] == 2
    assert rows[("team", "support", "returning_by_owner")] == 1
    assert rows[("person", "Ann", "continuity")] == 50.0
    exported = json.loads(digests.as_json(figures))
    assert exported["teams"][0]["continuity"] == 50.0
    assert "team,support,continuity,50.0" in digests.as_csv(figures).replace("2026-W47,", "")


async def test_the_relationship_owner_comes_before_whoever_is_on_duty(chat: Chat) -> None:
    def offered(who: str) -> list[str]:
        return [
            d.view.title
            for d in chat.platform.delivered
            if d.kind == "private" and d.target == person(who) and isinstance(d.view, Card)
            if d.view.title.startswith("#")
        ]

    await chat.say("boss", "team add support")
    await chat.say("bob", "team join support")
    await chat.say("bob", "commit daily 10:00 1h UTC")
    await chat.mention("Giulia", "La scatola è arrivata rotta", key="thread-1")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")
    await chat.at(datetime(2026, 11, 16, 10, 0, tzinfo=UTC))  # Bob is on duty

    await chat.mention("Giulia", "Il rimborso?", key="thread-2")

    assert offered("ann") == ["#2 · twitter · Giulia (@giulia)"]
    assert offered("bob") == []  # held for Ann: offered to nobody else
    await chat.say("ann", "away until 2026-11-20")
    await chat.mention("Giulia", "Ci siete?", key="thread-3")
    assert offered("bob") == ["#3 · twitter · Giulia (@giulia)"]  # Ann away: Bob on duty


async def test_claim_next_passes_over_a_conversation_held_for_someone_else(chat: Chat) -> None:
    await _giulia_helped_by_ann(chat)
    chat.clock.advance(days=1)
    await chat.mention("Giulia", "Il rimborso non è arrivato", key="thread-2")  # #2, Ann's
    await chat.mention("Marco", "Dov'è il mio pacco?", key="thread-3")  # #3, anyone's

    assert "#3 is yours" in await chat.say("bob", "claim next")
    assert (await chat.say("bob", "claim next")).startswith("Nothing is waiting to be claimed")
    assert "#2 is yours" in await chat.say("ann", "claim next")
