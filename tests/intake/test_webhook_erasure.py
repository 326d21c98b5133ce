"""An erased customer's mention delivered again by a listening tool: answered 200
(known), not stored again; a new mention from the same handle is a new customer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col
from webhook_client import post_signed, webhook_chat

from harness import Chat
from storage.models import Mention

GIULIA = {"name": "Giulia Neri", "handle": "@giulianeri"}


def _mention(external_id: str, text: str) -> dict[str, Any]:
    return {
        "source": "twitter",
        "external_id": external_id,
        "conversation_key": "tw-thread-1",
        "author": GIULIA,
        "text": text,
        "url": f"https://twitter.example/giulianeri/{external_id}",
        "created_at": "2026-11-16T08:02:11Z",
    }


@pytest.fixture
async def chat(database_url: str) -> AsyncIterator[Chat]:
    async with webhook_chat(database_url) as running:
        yield running


async def _mentions(chat: Chat) -> list[str]:
    async with chat.app.db.read() as session:
        rows = await session.scalars(select(col(Mention.text)).order_by(col(Mention.id)))
        return list(rows)


async def test_an_erased_customers_mention_delivered_again_is_known_and_not_stored(
    chat: Chat,
) -> None:
    assert await post_signed(chat, [_mention("tw-1", "Scatola rotta, ordine A1234")]) == 202
    assert "Erased" in await chat.say("boss", "customer erase twitter:@giulianeri confirm")
    cards = len(chat.platform.delivered)

    # the listening tool did not hear our 202 and sends it again
    assert await post_signed(chat, [_mention("tw-1", "Scatola rotta, ordine A1234")]) == 200

    assert await _mentions(chat) == [""]
    assert len(chat.platform.delivered) == cards  # no card, no notice
    async with chat.app.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Mention)) == 1

    # a new mention, on the same thread and from the same handle: a new customer
    assert await post_signed(chat, [_mention("tw-2", "Sono di nuovo io")]) == 202
    assert await _mentions(chat) == ["", "Sono di nuovo io"]
    profile = await chat.say("ann", "customer twitter:@giulianeri")
    assert "#2 ·" in profile
    assert "#1 ·" not in profile
    assert "Customer" not in [f.label for f in chat.platform.card(2).fields]
