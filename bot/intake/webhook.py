"""The intake webhook: `POST /v1/mentions` for listening tools, n8n, Zapier, social APIs.

Checks, in this order, each answered with its own status and a JSON reason:

    413  body over 1 MiB                     401  signature missing, wrong, or stale
    415  not application/json               400  not UTF-8, not JSON, a bad field
    202  stored (only after the commit)      200  all of it was stored before
    503  the database could not take it: try again

A request is signed: `X-Inloop-Timestamp: <unix seconds>` and
`X-Inloop-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.events import MentionReceived
from bot.intake.group_commit import GroupCommit, NotReadBack, NotStored
from bot.intake.mentions import MAX_BATCH, Invalid, parse_mention
from bot.platform import EventSink
from storage.database import Database

#: where listening tools POST their mentions
WEBHOOK_PATH = "/v1/mentions"

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_SKEW_SECONDS = 300
ErrorHook = Callable[[BaseException, str], None]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class Webhook:
    def __init__(
        self,
        db: Database,
        secret: str,
        clock: Clock,
        on_error: ErrorHook,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
    ):
        self._db = db
        self._secret = secret
        self._clock = clock
        self._on_error = on_error
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._group: GroupCommit | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (tests ask for port 0: any free one)."""
        return self._port

    async def start(self, sink: EventSink) -> None:
        self._group = GroupCommit(sink, self._db, most=MAX_BATCH)
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(WEBHOOK_PATH, self._mentions)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Bind the socket ourselves so that port 0 tells us which port it got.
        sock = socket.create_server((self._host, self._port), reuse_port=False)
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        log.info("intake webhook listening on http://%s:%d%s", self._host, self.port, WEBHOOK_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._group is not None:
            await self._group.drain()  # a request whose client hung up is still stored

    async def _health(self, request: web.Request) -> web.Response:
        if await self._db.ping():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "database unreachable"}, status=503)

    async def _mentions(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"the body is larger than {MAX_BODY:,} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY:,} bytes")
        if (problem := self._unauthenticated(request, body)) is not None:
            return _error(401, problem)
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        try:
            events, batch = self._parse(body)
        except Invalid as exc:
            return _error(400, exc.error, exc.field, exc.index)
        return await self._store(events, batch)

    def _unauthenticated(self, request: web.Request, body: bytes) -> str | None:
        timestamp = request.headers.get("X-Inloop-Timestamp", "")
        signature = request.headers.get("X-Inloop-Signature", "")
        if not timestamp or not signature:
            return "X-Inloop-Timestamp and X-Inloop-Signature headers are required"
        if not timestamp.isdigit():
            return "X-Inloop-Timestamp must be unix seconds"
        if abs(self._clock().timestamp() - int(timestamp)) > MAX_SKEW_SECONDS:
            return "X-Inloop-Timestamp is more than 5 minutes off: sign each request anew"
        if not hmac.compare_digest(sign(self._secret, timestamp, body), signature):
            return "the signature does not match the body"
        return None

    def _parse(self, body: bytes) -> tuple[list[MentionReceived], bool]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"the body is not valid UTF-8 (byte {exc.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Invalid(f"the body is not JSON: {exc.msg} at line {exc.lineno}") from None
        now = self._clock()
        if isinstance(data, dict):
            return [parse_mention(data, now)], False
        if not isinstance(data, list):
            raise Invalid("the body must be a mention object or a list of them")
        if not data:
            raise Invalid("the list of mentions is empty")
        if len(data) > MAX_BATCH:
            raise Invalid(f"at most {MAX_BATCH:,} mentions per request (got {len(data):,})")
        events = []
        for index, item in enumerate(data):
            try:
                events.append(parse_mention(item, now))
            except Invalid as exc:
                raise Invalid(exc.error, exc.field, index) from None
        return events, True

    async def _store(self, events: list[MentionReceived], batch: bool) -> web.Response:
        assert self._group is not None
        try:
            stored = await self._group.store(events)
        except NotStored as exc:
            self._on_error(exc.__cause__ or exc, "intake webhook")
            return _error(503, "the mentions could not be stored; nothing was kept, try again")
        except NotReadBack as exc:
            # Stored already: saying "nothing was kept" would be a lie. A re-delivery is
            # idempotent and answers 200 with the numbers.
            self._on_error(exc.__cause__ or exc, "intake webhook, reading the numbers back")
            return _error(503, "the mentions were stored; send them again to get their numbers")
        keys = [(e.source, e.external_id) for e in events]
        if missing := next((k for k in keys if k not in stored.numbers), None):
            # Routing failed for a mention (its error is in the log): say so, never pretend.
            return _error(500, f"mention {missing[1]!r} could not be routed; try again later")
        results = [
            {
                "source": e.source,
                "external_id": e.external_id,
                "conversation": stored.numbers[(e.source, e.external_id)],
                "duplicate": not is_new,
            }
            for e, is_new in zip(events, stored.fresh, strict=True)
        ]
        status = 202 if any(stored.fresh) else 200
        payload: dict[str, Any] = {"mentions": results} if batch else results[0]
        return web.json_response(payload, status=status)


def _error(
    status: int, error: str, field: str | None = None, index: int | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    if index is not None:
        body["index"] = index
    return web.json_response(body, status=status)
