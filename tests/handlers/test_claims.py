"""The claim lifecycle as people live it: a mention arrives, someone claims, replies, resolves."""

from __future__ import annotations

from harness import Chat, channel, person
from recording import button_actions, field_value


async def _team_with_one_conversation(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Ordine #A1234 arrivato con la scatola rotta.")


async def test_a_new_mention_posts_one_card_with_a_claim_button(chat: Chat) -> None:
    await _team_with_one_conversation(chat)

    cards = chat.platform.in_channel(channel("support"))
    assert len(cards) == 1
    card = chat.platform.card(1)
    assert card.title == "#1 · twitter · Giulia (@giulia)"
    assert "scatola rotta" in card.text
    assert field_value(card, "Owner") == "nobody yet"
    assert button_actions(card) == ["claim"]


async def test_claim_reply_resolve_updates_the_same_card(chat: Chat) -> None:
    await _team_with_one_conversation(chat)

    told = await chat.say("ann", "claim 1")
    assert "#1 is yours" in told
    assert field_value(chat.platform.card(1), "Owner") == "Ann"
    assert button_actions(chat.platform.card(1)) == ["replied", "release", "resolve", "ask"]

    assert "marked replied" in await chat.say("ann", "replied 1")
    assert field_value(chat.platform.card(1), "Status") == "Replied"

    assert "#1 is resolved" in await chat.say("ann", "resolve 1")
    assert field_value(chat.platform.card(1), "Status") == "Resolved"
    assert button_actions(chat.platform.card(1)) == ["reopen"]
    # every change edited the one card message; none posted a second card
    assert len(chat.platform.card_messages(1)) == 1


async def test_the_claim_button_does_what_the_command_does(chat: Chat) -> None:
    await _team_with_one_conversation(chat)

    assert "#1 is yours" in await chat.press("ann", "claim", "1")
    assert "already claimed by Ann" in await chat.press("bob", "claim", "1")


async def test_a_second_claimer_is_told_privately_who_owns_it(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")

    told = await chat.say("bob", "claim 1")

    assert told == "#1 is already claimed by Ann."
    assert field_value(chat.platform.card(1), "Owner") == "Ann"
    # nothing about Bob's attempt reached the channel
    assert all("Bob" not in d.text for d in chat.platform.in_channel(channel("support")))


async def test_only_the_owner_or_a_manager_may_release_or_resolve(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")

    assert "Only Ann (the owner) or a manager" in await chat.say("bob", "release 1")
    assert "Only Ann (the owner) or a manager" in await chat.say("bob", "resolve 1")
    assert field_value(chat.platform.card(1), "Owner") == "Ann"

    await chat.say("boss", "role console:carla manager")
    assert "back with the team" in await chat.say("carla", "release 1")
    assert "Carla released #1" in chat.platform.last_private(person("ann"))
    assert field_value(chat.platform.card(1), "Owner") == "nobody yet"


async def test_reassign_is_for_managers_and_tells_both_people(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")

    refused = await chat.say("bob", "reassign 1 console:bob")
    assert refused.startswith("Not allowed")

    await chat.say("boss", "reassign 1 console:bob")

    assert field_value(chat.platform.card(1), "Owner") == "Bob"
    assert "Boss gave you #1" in chat.platform.last_private(person("bob"))
    assert "Boss gave #1 to Bob; it is no longer yours" in chat.platform.last_private(person("ann"))


async def test_reassigning_to_the_owner_says_so_and_changes_nothing(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("boss", "role console:marta manager")
    await chat.say("boss", "reassign 1 console:marta")
    delivered = len(chat.platform.delivered)
    history = await chat.say("marta", "show 1")

    told = await chat.say("boss", "reassign 1 console:marta")

    assert told == "#1 already belongs to Marta: nothing changed."
    # only the answer itself: no card update, nobody else told
    assert [d.kind for d in chat.platform.delivered[delivered:]] == ["private", "private"]
    assert await chat.say("marta", "show 1") == history  # no new history entry


async def test_reopen_gives_the_conversation_back_to_its_owner(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")

    assert "open again" in await chat.say("bob", "reopen 1")

    card = chat.platform.card(1)
    assert field_value(card, "Status") == "Claimed"
    assert field_value(card, "Owner") == "Ann"
    assert "Bob reopened #1" in chat.platform.last_private(person("ann"))


async def test_claiming_a_resolved_or_missing_conversation_says_why_not(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")

    assert await chat.say("bob", "claim 1") == "#1 is resolved. `reopen 1` first."
    assert await chat.say("bob", "claim 7") == "There is no conversation #7."
    assert "`abc` is not a conversation number." in await chat.say("bob", "claim abc")


async def test_marking_an_unclaimed_conversation_replied_claims_it(chat: Chat) -> None:
    await _team_with_one_conversation(chat)

    await chat.say("ann", "replied 1")

    card = chat.platform.card(1)
    assert field_value(card, "Owner") == "Ann"
    assert field_value(card, "Status") == "Replied"


async def test_every_change_is_in_the_history(chat: Chat) -> None:
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")
    await chat.say("ann", "replied 1")
    await chat.say("ann", "resolve 1")

    shown = await chat.say("bob", "show 1")

    assert "Ordine #A1234 arrivato con la scatola rotta." in shown
    history = shown.split("History:")[1]
    actions = [line.split("] ", 1)[1] for line in history.strip().splitlines()]
    assert actions == [
        "Inloop created the conversation",
        "Ann claimed it",
        "Ann marked it replied",
        "Ann resolved it",
    ]


async def test_replied_again_at_the_same_instant_is_kept_in_the_history_twice(
    chat: Chat,
) -> None:
    """The second `replied` changes nothing on the conversation (same status, same time:
    the clock stands still): it is still written to the history, and the card stays."""
    await _team_with_one_conversation(chat)
    await chat.say("ann", "claim 1")

    assert "marked replied" in await chat.say("ann", "replied 1")
    assert "marked replied" in await chat.say("ann", "replied 1")

    shown = await chat.say("ann", "show 1")
    assert [line.split("] ", 1)[1] for line in shown.splitlines() if "] Ann " in line] == [
        "Ann claimed it",
        "Ann marked it replied",
        "Ann marked it replied",
    ]
    assert field_value(chat.platform.card(1), "Status") == "Replied"
    assert field_value(chat.platform.card(1), "Owner") == "Ann"
