"""A Slack Connect guest who comes back: the fake Slack shows what people see."""

from __future__ import annotations

from slack_chat import SlackChat, buttons, shown


async def test_a_guests_second_conversation_is_returning_and_offered_to_her_owner_first(
    slack: SlackChat,
) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("La scatola è arrivata rotta", ts="200.1")
    assert "#1 is yours" in await slack.press("UANN", "claim", "1")
    assert "resolved" in await slack.say("UANN", "resolve 1")
    seen_by_ann = len(fake.read_by("UANN"))

    # A new message in the channel, not in her first thread: a new conversation.
    await slack.customer_card("Ancora io: il rimborso <!here>?", ts="300.1")

    _, blocks = slack.card(2)
    card = shown(blocks)
    assert "Returning: 1 before · last " in card and " with Ann, resolved" in card
    assert "Ann's customer, offered to them until" in card
    offer = fake.read_by("UANN")[seen_by_ann:]
    assert any(
        "Your customer Giulia wrote again: #2 is offered to you first" in told for told in offer
    )
    assert any("#2" in told and "Claim" in told for told in offer)  # the card, with Claim

    told = await slack.press("UBOB", "claim", "2")
    assert told.startswith("#2 comes from Ann's customer and is offered to them until")
    assert buttons(slack.card(2)[1]) == ["inloop:claim"]

    await slack.press("UANN", "claim", "2")
    # (what Ann is told mixes ephemerals and DMs: look for the answer among them)
    assert any(told.startswith("#2 is yours") for told in fake.told("UANN"))
    await slack.until(lambda: "offered to them" not in shown(slack.card(2)[1]))
    assert "Ann's customer" in shown(slack.card(2)[1])
    profile = await slack.say("UBOB", "customer #2")
    assert "Identities: slack:UCUST (Giulia)" in profile
