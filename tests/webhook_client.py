"""A chat with the intake webhook on, and a listening tool that posts to it signed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from bot.intake.webhook import sign
from harness import Chat

SECRET = "test-secret-0123456789"


@asynccontextmanager
async def webhook_chat(database_url: str) -> AsyncIterator[Chat]:
    """Inloop with its webhook on a free port and a team `support` to route to."""
    running = await Chat(database_url, INTAKE_SECRET=SECRET, INTAKE_PORT="0").start()
    await running.say("boss", "team add support")
    try:
        yield running
    finally:
        await running.stop()


async def post_signed(chat: Chat, payload: Any) -> int:
    """POST `payload` as a listening tool would (signed, fresh timestamp); the status."""
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
