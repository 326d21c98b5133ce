"""Customers through the webhook: the same person on two sources, linked into one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from webhook_client import post_signed, webhook_chat

from harness import Chat


def _mention(n: int, source: str, author: dict[str, str], key: str) -> dict[str, Any]:
    return {
        "source": source,
        "external_id": f"{source}-{n}",
        "conversation_key": key,
        "author": author,
        "text": "Ordine #A1234 arrivato con la scatola rotta.",
        "created_at": "2026-11-16T08:02:11Z",
        "lang": "it",
    }


TWITTER = {"name": "Giulia Neri", "handle": "@giulianeri"}
#: a review site that gives no handle: the name is the identity
TRUSTPILOT = {"name": "Giulia Neri"}


@pytest.fixture
async def chat(database_url: str) -> AsyncIterator[Chat]:
    async with webhook_chat(database_url) as running:
        yield running


def _fields(chat: Chat, number: int) -> dict[str, str]:
    return {f.label: f.value for f in chat.platform.card(number).fields}


async def test_two_sources_linked_into_one_customer_share_their_history(chat: Chat) -> None:
    # One batch, two sources: two identities, two customers so far.
    assert (
        await post_signed(
            chat,
            [
                _mention(1, "twitter", TWITTER, "tw-1"),
                _mention(1, "trustpilot", TRUSTPILOT, "review-1"),
            ],
        )
        == 202
    )
    await chat.say("ann", "claim 1")
    await chat.say("ann", "resolve 1")
    assert "Customer" not in _fields(chat, 2)

    told = await chat.say("bob", 'customer link twitter:@giulianeri "trustpilot:Giulia Neri"')

    assert told == (
        "Linked: twitter:@giulianeri and trustpilot:Giulia Neri are one customer now "
        "(2 identities, 2 conversations)."
    )
    assert await post_signed(chat, _mention(2, "trustpilot", TRUSTPILOT, "review-2")) == 202
    fields = _fields(chat, 3)
    assert fields["Customer"] == "Returning: 2 before · last 16 Nov, open"
    assert fields["Relationship"] == "Ann's customer, offered to them until 09:30"
    profile = await chat.say("bob", "customer #3")
    assert "Identities: twitter:@giulianeri (Giulia Neri), trustpilot:Giulia Neri" in profile
    assert "Language: it" in profile


async def test_one_batch_with_two_conversations_of_a_new_customer_makes_one_customer(
    chat: Chat,
) -> None:
    batch = [_mention(1, "twitter", TWITTER, "tw-1"), _mention(2, "twitter", TWITTER, "tw-2")]
    assert await post_signed(chat, batch) == 202
    assert await post_signed(chat, batch) == 200  # the listening tool retried: nothing new

    profile = await chat.say("ann", "customer twitter:@giulianeri")

    assert "Identities: twitter:@giulianeri (Giulia Neri)" in profile
    assert [line for line in profile.splitlines() if line.startswith("  #")] == [
        "  #2 · 16 Nov 2026 · twitter · open · nobody yet",
        "  #1 · 16 Nov 2026 · twitter · open · nobody yet",
    ]
    assert _fields(chat, 2)["Customer"] == "Returning: 1 before · last 16 Nov, open"
