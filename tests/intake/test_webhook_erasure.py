"""An erased customer's mention delivered again by a listening tool: answered 200
(known), not stored again; a new mention from the same handle is a new customer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from bot.intake.webhook import sign
from harness import Chat
from storage.models import Mention

SECRET = "test-secret-0123456789"
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
    running = await Chat(database_url, INTAKE_SECRET=SECRET, INTAKE_PORT="0").start()
    await running.say("boss", "team add support")
    try:
        yield running
    finally:
        await running.stop()


async def _post(chat: Chat, payload: Any) -> int:
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Inloop-Timestamp": ts,
        "X-Inloop-Signature": sign(SECRET, ts, body),
    }
    url = f"http://127.0.0.1:{chat.app.webhook.port}/v1/mentions"  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        status = resp.status
    await chat.app.settle()
    return status


async def _mentions(chat: Chat) -> list[str]:
    async with chat.app.db.read() as session:
        rows = await session.scalars(select(col(Mention.text)).order_by(col(Mention.id)))
        return list(rows)


async def test_an_erased_customers_mention_delivered_again_is_known_and_not_stored(
    chat: Chat,
) -> None:
    assert await _post(chat, [_mention("tw-1", "Scatola rotta, ordine A1234")]) == 202
    assert "Erased" in await chat.say("boss", "customer erase twitter:@giulianeri confirm")
    cards = len(chat.platform.delivered)

    # the listening tool did not hear our 202 and sends it again
    assert await _post(chat, [_mention("tw-1", "Scatola rotta, ordine A1234")]) == 200

    assert await _mentions(chat) == [""]
    assert len(chat.platform.delivered) == cards  # no card, no notice
    async with chat.app.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Mention)) == 1

    # a new mention, on the same thread and from the same handle: a new customer
    assert await _post(chat, [_mention("tw-2", "Sono di nuovo io")]) == 202
    assert await _mentions(chat) == ["", "Sono di nuovo io"]
    profile = await chat.say("ann", "customer twitter:@giulianeri")
    assert "#2 ·" in profile
    assert "#1 ·" not in profile
    assert "Customer" not in [f.label for f in chat.platform.card(2).fields]
