"""`INLOOP_LOG_FORMAT=json`: one JSON object a line, the same keys on every line, the
event and the conversation where known, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.context import Context
from bot.log_format import FIELDS, JsonFormatter
from bot.masking import Masker
from handlers.claims import conversation_arg
from harness import Chat

SECRET = "xoxb-very-secret-token-4242"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes, as INLOOP_LOG_FORMAT=json writes it, with SECRET
    masked as `inloop` masks it (the record factory is put back afterwards)."""
    factory = logging.getLogRecordFactory()
    Masker.of([SECRET]).install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        logging.setLogRecordFactory(factory)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_failing_command_logs_one_json_line_with_its_event_and_conversation(
    tmp_path: Path, json_lines: io.StringIO
) -> None:
    chat = await Chat(f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}").start()

    async def broken(ctx: Context, args: Sequence[str]) -> None:
        raise RuntimeError(f"Slack refused the token {SECRET}")

    try:
        await chat.say("boss", "team add support")
        await chat.mention("Giulia", "the parcel is broken")
        # `claim 1` names conversation 1, then fails inside (the command's own bug)
        chat.app.router.command("claim", _claim_then(broken))
        await chat.say("ann", "claim 1")
    finally:
        await chat.stop()

    lines = parsed(json_lines)
    assert all(tuple(line) == FIELDS for line in lines)  # the same keys, in one order
    [error] = [line for line in lines if line["level"] == "ERROR"]
    assert error["logger"] == "inloop"
    assert error["event_id"].startswith("cmd-")
    assert error["message"] == f"Command {error['event_id']}: Slack refused the token ***"
    assert error["conversation"] == 1
    assert error["exc_info"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: Slack refused the token ***" in error["exc_info"]
    assert SECRET not in json_lines.getvalue()


def _claim_then(fail: Any) -> Any:
    async def claim(ctx: Context, args: Sequence[str]) -> None:
        await conversation_arg(ctx, args)
        await fail(ctx, args)

    return claim


def test_a_line_outside_any_event_has_the_fields_null(json_lines: io.StringIO) -> None:
    logging.getLogger("inloop.test").warning("disk %s is full", "/var")

    [line] = parsed(json_lines)
    assert line["message"] == "disk /var is full"
    assert line["level"] == "WARNING"
    assert line["logger"] == "inloop.test"
    assert (line["event_id"], line["conversation"], line["exc_info"]) == (None, None, None)
    assert line["time"].endswith("+00:00")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_inloop_run_writes_json_lines_when_asked(tmp_path: Path) -> None:
    """The whole way: `inloop run` with INLOOP_LOG_FORMAT=json prints its log as JSON."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INLOOP_", "INTAKE_"))}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}",
        INLOOP_LOG_FORMAT="json",
        INTAKE_SECRET="webhook-secret-0123456789",
        INTAKE_PORT=str(port),
        PYTHONIOENCODING="utf-8",
    )
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.PIPE,  # the console waits for input: held open until the end
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/mentions"
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:  # until the webhook listens; then an unsigned request: a warning
                try:
                    async with http.post(url, data=b"{}") as resp:
                        assert resp.status == 401
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "inloop run never listened"
                    await asyncio.sleep(0.1)
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(run.communicate(), 30)
    stderr = err.decode()

    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [warning] = [line for line in lines if line["level"] == "WARNING"]
    assert tuple(warning) == FIELDS
    assert warning["logger"] == "bot.intake.webhook"
    assert warning["message"].startswith("intake webhook: 401 to 127.0.0.1: ")
