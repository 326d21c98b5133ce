"""The customer's rights over their data, as an admin lives them: Giulia asks what
Inloop holds about her (export), then asks to be forgotten (erase); and old
conversations are forgotten by themselves (RETENTION_DAYS)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.views import Attachment
from harness import Chat, channel, person
from storage.models import Mention, OutboxRow, OutboxState

GIULIA_FIRST = "La scatola è arrivata rotta"
GIULIA_SECOND = "Il rimborso non è arrivato"
MARCO = "Consegna in ritardo"


async def _giulia_and_marco(chat: Chat) -> None:
    """Giulia's #1 (resolved by Ann, with advice asked of Marta) and #3, Marco's #2."""
    await chat.say("boss", "team add support")
    await chat.say("boss", "role console:marta consultant")
    await chat.mention(
        "Giulia", GIULIA_FIRST, key="g-1", external_id="tw-1", url="https://t.co/giulia1"
    )
    await chat.mention("Marco", MARCO, key="m-1", external_id="tw-2")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "ask 1 Le offro un buono? console:marta")
    await chat.say("ann", "resolve 1")
    chat.clock.advance(days=1)
    await chat.mention("Giulia", GIULIA_SECOND, key="g-2", external_id="tw-3")


def _export(chat: Chat, who: str = "boss") -> dict[str, Any]:
    files = [
        d.view
        for d in chat.platform.delivered
        if d.kind == "private" and d.target == person(who) and isinstance(d.view, Attachment)
    ]
    assert files, f"{who} received no file"
    data: dict[str, Any] = json.loads(files[-1].data)
    return data


async def test_an_admin_exports_everything_held_about_the_customer_and_only_them(
    chat: Chat,
) -> None:
    await _giulia_and_marco(chat)

    told = await chat.say("boss", "customer export twitter:@giulia")

    assert told.splitlines()[0] == (
        "Everything Inloop holds about twitter:@giulia: 1 identities, 2 conversations, "
        "2 mentions, 1 advice requests, and their history. The file follows (JSON)."
    )
    assert "(file) Inloop: the data of customer twitter:@giulia" in told
    data = _export(chat)
    assert data["identities"] == [
        {
            "source": "twitter",
            "handle": "@giulia",
            "name": "Giulia",
            "created_at": "2026-11-16T09:00:00+00:00",
        }
    ]
    assert [c["number"] for c in data["conversations"]] == [1, 3]
    assert data["conversations"][0]["owner"] == "Ann"
    assert data["conversations"][0]["url"] == "https://t.co/giulia1"
    assert [m["text"] for m in data["mentions"]] == [GIULIA_FIRST, GIULIA_SECOND]
    assert ("Ann", "claimed") in [(e["by"], e["action"]) for e in data["audit"]]
    assert data["advice"][0]["id"] == "1-A1"
    assert data["advice"][0]["messages"][0]["text"] == "Le offro un buono?"
    # nothing of Marco's
    everything = json.dumps(data, ensure_ascii=False)
    assert "Marco" not in everything
    assert MARCO not in everything
    assert all(e["conversation"] in (1, 3) for e in data["audit"])


async def test_only_an_admin_may_export_or_erase(chat: Chat) -> None:
    await _giulia_and_marco(chat)
    await chat.say("boss", "role console:maria manager")

    for who in ("ann", "maria", "marta"):
        assert "Not allowed" in await chat.say(who, "customer export #1")
        assert "Not allowed" in await chat.say(who, "customer erase #1 confirm")
    assert not [d for d in chat.platform.delivered if isinstance(d.view, Attachment)], (
        "no file was sent"
    )
    assert GIULIA_FIRST in await chat.say("ann", "show 1")


async def test_erase_without_confirm_says_what_would_go_and_how_to_confirm(chat: Chat) -> None:
    await _giulia_and_marco(chat)

    told = await chat.say("boss", "customer erase #3")

    assert told.splitlines() == [
        "Erasing twitter:@giulia removes for good their identities (twitter:@giulia), the "
        "names, handles, texts and links of 2 conversations and 2 mentions, and the texts "
        "of 1 advice requests, pending messages included. Cards already posted will say "
        "it was erased; the digest keeps its counts; the audit log keeps that you erased it.",
        "To erase, type `!inloop customer erase #3 confirm`.",
    ]
    # nothing happened
    assert GIULIA_SECOND in await chat.say("ann", "show 3")
    assert "Identities: twitter:@giulia" in await chat.say("ann", "customer #3")


async def test_after_an_erasure_nothing_personal_is_left_and_the_counts_are(chat: Chat) -> None:
    await _giulia_and_marco(chat)
    digest_before = await chat.say("boss", "digest this")

    told = await chat.say("boss", "customer erase twitter:@giulia confirm")

    assert told == (
        "Erased at the customer's request: 1 identities, 2 conversations and 2 mentions. "
        "Their cards now say so; this message names nobody, like the audit log."
    )
    shown = await chat.say("ann", "show 1")
    assert shown.splitlines()[:4] == [
        "#1 · twitter · (erased)",
        "Status: Resolved · Owner: Ann · Team: support",
        "Link: —",
        "",
    ]
    assert "Erased at the customer's request." in shown
    assert "Boss erased the customer's data at their request" in shown
    for what in ("Giulia", "giulia", GIULIA_FIRST, "t.co"):
        assert what not in shown
    for number in (1, 3):
        card = chat.platform.card(number)
        assert card.title == f"#{number} · twitter · (erased)"
        assert card.text == "Erased at the customer's request."
        assert card.buttons == ()
    # her profile is gone, by either name
    assert await chat.say("ann", "customer twitter:@giulia") == (
        "No customer is known as twitter:@giulia."
    )
    assert await chat.say("ann", "customer #1") == (
        "The customer of #1 was erased at their request: Inloop holds nothing about them."
    )
    # the export has nothing left to say of her texts; Marco is untouched
    assert GIULIA_FIRST not in await chat.say("bob", "queue")
    assert MARCO in await chat.say("ann", "show 2")
    # the advice's text is gone too
    async with chat.app.db.read() as session:
        texts = [m.text for m in (await session.scalars(select(Mention))).all()]
    assert sorted(texts) == sorted(["", MARCO, ""])
    assert await chat.say("boss", "digest this") == digest_before


async def test_an_erased_customers_mention_delivered_again_is_not_stored_again(
    chat: Chat,
) -> None:
    await _giulia_and_marco(chat)
    await chat.say("boss", "customer erase #1 confirm")
    cards_before = len(chat.platform.in_channel(channel("support")))

    await chat.mention("Giulia", GIULIA_FIRST, key="g-1", external_id="tw-1")

    assert len(chat.platform.in_channel(channel("support"))) == cards_before
    async with chat.app.db.read() as session:
        assert GIULIA_FIRST not in [m.text for m in (await session.scalars(select(Mention)))]
    assert "(erased)" in await chat.say("ann", "show 1")


async def test_a_new_mention_from_an_erased_handle_is_a_new_customer(chat: Chat) -> None:
    await _giulia_and_marco(chat)
    await chat.say("boss", "customer erase #1 confirm")

    # the same thread key too: it opens a new conversation, not a follow-up of #1
    await chat.mention("Giulia", "Sono di nuovo io", key="g-1", external_id="tw-9")

    card = chat.platform.card(4)
    assert card.title == "#4 · twitter · Giulia (@giulia)"
    assert "Customer" not in [f.label for f in card.fields]  # not "Returning"
    profile = await chat.say("ann", "customer #4")
    assert "#4 ·" in profile
    assert "#1 ·" not in profile
    assert "#3 ·" not in profile


async def test_pending_messages_carry_no_customer_text_after_an_erasure(chat: Chat) -> None:
    await _giulia_and_marco(chat)
    await chat.say("boss", "consultants here", where="experts")
    await chat.say("ann", "reopen 1")
    await chat.say("ann", "claim 1")
    # Slack is slow right now: what follows waits in the outbox
    chat.platform.rate_limited = 1000
    chat.platform.retry_after = 3600
    await chat.mention("Giulia", "Ma quindi il rimborso?", key="g-1", external_id="tw-4")
    await chat.say("ann", "ask 1 Le rimborso la scatola?")  # to the consultants' pool
    async with chat.app.db.read() as session:
        pending = (
            await session.scalars(
                select(OutboxRow).where(col(OutboxRow.state) == OutboxState.PENDING)
            )
        ).all()
    assert any("Giulia" in row.payload for row in pending), "the test needs pending rows"
    assert any(row.target == "console:#experts" for row in pending), "and a pool post"

    await chat.say("boss", "customer erase #1 confirm")

    async with chat.app.db.read() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
    for row in rows:
        for what in ("Giulia", "giulia", "rimborso", "scatola", "t.co/giulia"):
            assert what not in row.payload, (row.state, row.kind, row.payload)
    pending = [r for r in rows if r.state == OutboxState.PENDING]
    assert {json.loads(r.payload)["title"] for r in pending if r.kind == "update"} >= {
        "#1 · twitter · (erased)"
    }


@pytest.fixture
async def kept_thirty_days(database_url: str) -> AsyncIterator[Chat]:
    running = await Chat(database_url, RETENTION_DAYS="30").start()
    try:
        yield running
    finally:
        await running.stop()


async def test_retention_erases_only_conversations_resolved_longer_ago(
    kept_thirty_days: Chat,
) -> None:
    chat = kept_thirty_days
    await chat.say("boss", "team add support")
    start = chat.clock.now
    await chat.mention("Giulia", GIULIA_FIRST, key="g-1")
    await chat.mention("Marco", MARCO, key="m-1")
    await chat.mention("Luca", "Ancora aperta", key="l-1")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")
    chat.clock.advance(days=20)
    await chat.say("ann", "claim 2")
    await chat.say("ann", "resolve 2")

    # day 31 at 03:00: #1 was resolved 31 days ago, #2 11 days ago, #3 is still open
    await chat.at(start.replace(hour=3) + timedelta(days=31))

    assert "(erased)" in await chat.say("ann", "show 1")
    assert GIULIA_FIRST not in await chat.say("ann", "show 1")
    assert "Inloop erased the customer's data (RETENTION_DAYS)" in await chat.say("ann", "show 1")
    assert chat.platform.card(1).text == "Erased at the customer's request."
    assert MARCO in await chat.say("ann", "show 2")
    assert "Ancora aperta" in await chat.say("ann", "show 3")
    # Giulia had no other conversation: her identity went with it
    assert await chat.say("ann", "customer twitter:@giulia") == (
        "No customer is known as twitter:@giulia."
    )

    # twenty days later #2 is past it too
    await chat.at(start.replace(hour=3) + timedelta(days=51))
    assert MARCO not in await chat.say("ann", "show 2")
    assert "Ancora aperta" in await chat.say("ann", "show 3")


async def test_without_retention_days_nothing_is_erased(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    start = chat.clock.now
    await chat.mention("Giulia", GIULIA_FIRST, key="g-1")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")

    await chat.at(start.replace(hour=3) + timedelta(days=400))

    assert GIULIA_FIRST in await chat.say("ann", "show 1")
