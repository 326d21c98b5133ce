"""Mentions find their team and their conversation; nothing is lost, nothing doubled."""

from __future__ import annotations

import pytest

from harness import Chat, channel, person
from recording import field_value

HARD_TEXTS = [
    "<!channel> <!here> <!everyone> <@U024BE7LH> rimborso?",
    "@room @everyone ciao",
    '<b>bold</b> <a href="https://evil.example">click</a> <script>alert(1)</script>',
    "<https://evil.example|your invoice> *bold* _it_ ~strike~ `code`",
    "שלום עולם مرحبا بالعالم ‮reversed‬",
    "e\u0301 n\u0303 Z\u0351\u0352\u0353algo",
    "zero\u200bwidth\u200djoin\ufeffbom",
    "line one\n\nline three\ttab",
]


async def test_mentions_go_to_the_team_whose_tags_match_ignoring_case_and_accents(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add billing rimborso refund", where="billing")
    await chat.say("boss", "team add logistics consegna", where="logistics")

    await chat.mention("Anna", "Ho chiesto un RIMBÓRSO tre settimane fa")
    await chat.mention("Luca", "Quando arriva la Consegna?")
    await chat.mention("Sam", "Checkout fails", tags=("Refund",))
    await chat.mention("Lena", "Does your app export data?")

    titles = {
        name: [d.view.title for d in chat.platform.in_channel(channel(name))]  # type: ignore[union-attr]
        for name in ("support", "billing", "logistics")
    }
    assert [t.split(" · ")[2] for t in titles["billing"]] == ["Anna (@anna)", "Sam (@sam)"]
    assert [t.split(" · ")[2] for t in titles["logistics"]] == ["Luca (@luca)"]
    assert [t.split(" · ")[2] for t in titles["support"]] == ["Lena (@lena)"]


async def test_a_redelivered_mention_changes_nothing(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Scatola rotta", external_id="tw-1001")
    await chat.mention("Giulia", "Scatola rotta", external_id="tw-1001")

    assert len(chat.platform.in_channel(channel("support"))) == 1
    assert field_value(chat.platform.card(1), "Messages") == "1"


async def test_a_follow_up_updates_the_card_and_tells_the_owner(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Scatola rotta", key="tw-conv-1001")
    await chat.say("ann", "claim 1")

    await chat.mention("Giulia", "Aggiungo: nessuno risponde al telefono", key="tw-conv-1001")

    card = chat.platform.card(1)
    assert field_value(card, "Messages") == "2"
    assert card.text == "Aggiungo: nessuno risponde al telefono"
    assert chat.platform.last_private(person("ann")) == (
        "New message on #1 from Giulia: Aggiungo: nessuno risponde al telefono"
    )
    assert len(chat.platform.card_messages(1)) == 1


async def test_a_follow_up_on_a_resolved_conversation_reopens_it(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Scatola rotta", key="k1")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")

    await chat.mention("Giulia", "Ancora problemi!", key="k1")

    card = chat.platform.card(1)
    assert field_value(card, "Status") == "Claimed"
    assert field_value(card, "Owner") == "Ann"
    history = (await chat.say("ann", "show 1")).split("History:")[1]
    assert "Inloop reopened it" in history


async def test_mentions_before_any_team_wait_and_are_posted_when_the_first_team_exists(
    chat: Chat,
) -> None:
    await chat.mention("Giulia", "Qualcuno mi risponde?")
    await chat.mention("Marco", "Anch'io aspetto")

    # told once, not once per mention
    assert chat.platform.private(person("boss")) == [
        "Conversation #1 from Giulia has no team to go to. It waits, with any that follow, "
        "until you run `team add NAME` in the channel that should own them."
    ]
    assert chat.platform.in_channel(channel("support")) == []

    answer = await chat.say("boss", "team add support")

    assert "2 waiting conversations were given to support" in answer
    assert field_value(chat.platform.card(1), "Team") == "support"
    assert len(chat.platform.in_channel(channel("support"))) == 2


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", "1 waiting conversation was given to support."),
        ("it", "1 conversazione in attesa è stata data a support."),
    ],
)
async def test_one_waiting_conversation_is_counted_in_the_singular(
    chat: Chat, lang: str, said: str
) -> None:
    await chat.mention("Giulia", "Qualcuno mi risponde?")
    await chat.say("boss", f"lang {lang}")

    answer = await chat.say("boss", "team add support")

    assert answer.splitlines()[-1] == said


@pytest.mark.parametrize("text", HARD_TEXTS)
async def test_customer_text_is_kept_exactly_as_received(chat: Chat, text: str) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", text)

    assert chat.platform.card(1).text == text
    assert text in await chat.say("ann", "show 1")


async def test_a_long_text_is_trimmed_on_the_card_and_whole_in_show(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    long_text = "Lunga storia. " * 400  # 5,600 characters, over Slack's 3,000 per block

    await chat.mention("Giulia", long_text)

    card = chat.platform.card(1)
    assert len(card.text) <= 600
    assert card.text.endswith("…")
    assert card.more == "Text trimmed. Full text: !inloop show 1"
    assert long_text in await chat.say("ann", "show 1")


async def test_queue_lists_mine_first_then_unclaimed_oldest_first(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    for customer in ("Giulia", "Marco", "Anna"):
        await chat.mention(customer, f"Messaggio di {customer}")
        chat.clock.advance(minutes=30)
    await chat.say("ann", "claim 3")

    lines = (await chat.say("ann", "queue")).splitlines()

    assert lines[0] == "Yours (1):"
    assert lines[1].startswith("#3 · twitter · Anna · Claimed · 30m")
    assert lines[2] == "Unclaimed in support (2):"
    assert lines[3].startswith("#1 · twitter · Giulia · Open · 1h")
    assert lines[4].startswith("#2 · twitter · Marco · Open · 1h")


async def test_route_test_says_where_a_text_would_go_and_why(chat: Chat) -> None:
    assert await chat.say("ann", "route test rimborso") == (
        "→ nowhere yet: there is no team. Run `team add NAME` in a channel."
    )
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add billing rimborso", where="billing")

    assert await chat.say("ann", "route test Voglio il RIMBÓRSO!") == (
        "→ team billing: the word `rimborso` in the text matches its routing tags."
    )
    assert await chat.say("ann", "route test dove è il mio pacco") == (
        "→ team support: no routing tag matches, so the default team."
    )
    assert "Usage:" in await chat.say("ann", "route test")


async def test_team_tags_changes_where_new_mentions_go(chat: Chat) -> None:
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add billing", where="billing")
    assert await chat.say("boss", "team tags billing Fattura #Invoice") == (
        "Team billing now routes on: fattura, invoice."
    )
    await chat.mention("Anna", "La mia fattura è sbagliata")
    assert field_value(chat.platform.card(1), "Team") == "billing"
    teams = await chat.say("ann", "teams")
    assert teams.splitlines() == [
        "support (default) — channel console:#support — tags: —",
        "billing — channel console:#billing — tags: fattura, invoice",
    ]
