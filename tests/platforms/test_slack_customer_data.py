"""A Slack Connect guest's data on Slack: the export arrives as a file in the admin's
DM with the app, and after an erasure her card in the team channel says so."""

from __future__ import annotations

import json

from slack_chat import OWNER, SlackChat, buttons, shown


async def test_the_export_is_a_file_and_the_erased_card_says_so(slack: SlackChat) -> None:
    fake = slack.fake
    await slack.setup_team()
    await slack.customer_card("La scatola è arrivata rotta", ts="200.1")
    assert "#1 is yours" in await slack.press("UANN", "claim", "1")

    told = await slack.say("UADMIN", "customer export #1")
    assert "Everything Inloop holds about slack:UCUST" in told
    await slack.until(lambda: any(name.endswith(".json") for _, name in fake.files.values()))
    (data,) = [body for body, name in fake.files.values() if name == "inloop-customer-1.json"]
    exported = json.loads(data)
    assert [m["text"] for m in exported["mentions"]] == ["La scatola è arrivata rotta"]
    assert exported["identities"][0]["name"] == "Giulia"

    told = await slack.say("UADMIN", "customer erase #1 confirm")
    assert told.startswith("Erased at the customer's request: 1 identities, 1 conversations")

    def erased() -> bool:
        return "Erased at the customer's request." in shown(slack.card(1)[1])

    await slack.until(erased)
    text, blocks = slack.card(1)
    card = shown(blocks)
    assert "La scatola" not in card and "Giulia" not in card
    assert "Giulia" not in text
    assert buttons(blocks) == []
    # the card was edited in place: one message in the channel carries #1
    assert len([p for p in fake.in_channel(OWNER) if "#1 " in str(p.blocks[:1])]) == 1
