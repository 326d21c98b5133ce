"""The intake webhook: `POST /v1/mentions` for listening tools, n8n, Zapier, social APIs.

Checks, in this order, each answered with its own status and a JSON reason:

    404 / 405 / 417  another path or method; an Expect other than 100-continue
    413  body over 1 MiB                     408  body not there 10 s after the headers
    401  signature missing, malformed, wrong, or stale
    415  not application/json               400  not UTF-8, not JSON, too deep, a bad field
    202  stored (only after the commit)      200  all of it was stored before
    503  the database could not take it (or too many connections): try again

The same port answers `GET /healthz`, `/readyz` and, when metrics are on, `/metrics`
(bot/health.py); every answer but theirs is counted by status (bot/metrics.py).

A request is signed: `X-Inloop-Timestamp: <unix seconds>` and
`X-Inloop-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`.

Whatever bytes a client sends, the answer is a 4xx with a reason (or a 2xx), and
nothing is stored unless it is a 2xx: every value is checked before it is parsed or
stored, so an exception while answering is a bug in Inloop (a 500, with its
traceback in the log). A client's mistake is one rate-limited WARNING line
(`client_errors`). Slow clients are cut off: see `Limits`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from bot.clock import Clock
from bot.events import MentionReceived
from bot.health import Health, OpsRoutes
from bot.intake.client_errors import ClientErrors
from bot.intake.group_commit import GroupCommit, NotReadBack, NotStored
from bot.intake.mentions import MAX_BATCH, Invalid, parse_mention
from bot.metrics import Metrics
from bot.platform import EventSink
from storage.database import Database

#: where listening tools POST their mentions
WEBHOOK_PATH = "/v1/mentions"

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_SKEW_SECONDS = 300
#: deeper JSON is refused before anything walks it (a mention is 3 levels deep)
MAX_DEPTH = 32
#: a longer number is refused before int() spends time on it (no field holds a number)
MAX_DIGITS = 100
ErrorHook = Callable[[BaseException, str], None]

# Checked before they are used: a timestamp of other digits ("²") or too many of them
# would make int() or the float arithmetic raise; a signature with other characters
# would make hmac.compare_digest raise.
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the webhook (the README's "Slow clients")."""

    #: a connection must deliver a request's complete headers this soon after it opens,
    #: or after its previous answer (aiohttp's keep-alive timeout)
    headers_seconds: float = 5.0
    #: and then the whole body this soon after its headers (else 408)
    body_seconds: float = 10.0
    #: after an answer, the rest of a body still arriving is read and dropped this long
    #: (so the client can read the answer), then the connection is closed
    linger_seconds: float = 2.0
    #: open connections at most; one more is answered 503 and closed at once
    connections: int = 128


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
        limits: Limits = Limits(),  # frozen: one shared default is safe
        metrics: Metrics | None = None,
        ops: OpsRoutes | None = None,
    ):
        self._db = db
        self._metrics = metrics or Metrics()
        #: /healthz, /readyz (and /metrics when metrics are on): bot/health.py
        self._ops = ops or OpsRoutes(Health(db, {}), None)
        self._secret = secret
        self._clock = clock
        self._on_error = on_error
        self._host = host
        self._port = port
        self._limits = limits
        self._client_errors = ClientErrors(log)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._group: GroupCommit | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (tests ask for port 0: any free one)."""
        return self._port

    async def start(self, sink: EventSink) -> None:
        self._group = GroupCommit(sink, self._db, most=MAX_BATCH)
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._counted])
        # Every request is routed here, whatever its path and method: aiohttp's own 404s
        # and 405s would meet an Expect header with its own handler (below).
        app.router.add_post(WEBHOOK_PATH, self._mentions, expect_handler=self._expect)
        self._ops.add_to(app, expect_handler=self._expect)
        app.router.add_route("*", "/{anything:.*}", self._elsewhere, expect_handler=self._expect)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            # aiohttp closes a connection still waiting for complete headers when this
            # runs out: at the start of a connection (aiohttp >= 3.14.4) and after each answer.
            keepalive_timeout=self._limits.headers_seconds,
            lingering_time=self._limits.linger_seconds,
            # What aiohttp itself refuses (a malformed request line, header or chunk)
            # is a client's mistake too: a warning, not its ERROR with a traceback.
            logger=_ServerLog(logging.getLogger("aiohttp.server"), self._client_errors),
        )
        await self._runner.setup()
        # Bind the socket ourselves so that port 0 tells us which port it got.
        sock = socket.create_server((self._host, self._port), reuse_port=False)
        self._port = sock.getsockname()[1]
        # Our own listener rather than a web.SockSite: each new connection passes
        # through `_connection`, which refuses those over the cap.
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._connection, sock=sock)
        log.info("intake webhook listening on http://%s:%d%s", self._host, self.port, WEBHOOK_PATH)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self._group is not None:
            await self._group.drain()  # a request whose client hung up is still stored
        self._client_errors.close()

    def _connection(self) -> asyncio.BaseProtocol:
        """The protocol for a new connection: aiohttp's, or a 503 if too many are open."""
        assert self._runner is not None and self._runner.server is not None
        server = self._runner.server
        if len(server.connections) >= self._limits.connections:
            self._client_errors.warn(
                "503 too many connections",
                f"intake webhook: {self._limits.connections} connections are open already:"
                " a new one was answered 503",
            )
            self._metrics.webhook_answered(503)
            return _Busy()
        return server()

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """`Expect: 100-continue` (curl sends it for a large body): go on. aiohttp's own
        handler echoes any other value in a 417, and fails (a 500) if it is not UTF-8."""
        if request.version != HttpVersion11:
            return None
        if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
            self._metrics.webhook_answered(417)  # (answered before the middleware)
            return self._refuse(request, 417, "the only Expect understood is 100-continue")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the 100 is not the answer (as aiohttp's handler does)
        return None

    @web.middleware
    async def _counted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every answer but a probe's or a scrape's is counted by its status."""
        if request.path in self._ops.paths and request.method in ("GET", "HEAD"):
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._metrics.webhook_answered(exc.status)
            raise
        self._metrics.webhook_answered(response.status)
        return response

    async def _elsewhere(self, request: web.Request) -> web.Response:
        if request.path == WEBHOOK_PATH or request.path in self._ops.paths:
            allowed = "POST" if request.path == WEBHOOK_PATH else "GET, HEAD"
            response = self._refuse(request, 405, f"{request.path} answers {allowed} only")
            response.headers[hdrs.ALLOW] = allowed
            return response
        return self._refuse(request, 404, f"nothing here: mentions go to POST {WEBHOOK_PATH}")

    async def _mentions(self, request: web.Request) -> web.Response:
        try:
            return await self._answer(request)
        except Exception as exc:
            # Every client's mistake is answered 4xx before this: what reaches here is ours.
            self._on_error(exc, "intake webhook")
            return _error(500, "Inloop failed on this request; the error is logged")

    async def _answer(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._refuse(request, 413, f"the body is larger than {MAX_BODY:,} bytes")
        try:
            async with asyncio.timeout(self._limits.body_seconds):
                body = await request.read()
        except TimeoutError:
            return self._refuse(
                request,
                408,
                f"the body did not arrive within {self._limits.body_seconds:g} seconds",
                close=True,
            )
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(request, 413, f"the body is larger than {MAX_BODY:,} bytes")
        except web.RequestPayloadError as exc:  # a bad chunk, a body cut short, bad gzip
            return self._refuse(request, 400, f"the body is malformed: {exc}", kind="400 body")
        except ConnectionError:
            # Hung up mid-body: nobody reads this answer, but the log says what happened.
            return self._refuse(request, 400, "the client hung up before its body arrived")
        if (problem := self._unauthenticated(request, body)) is not None:
            return self._refuse(request, 401, problem)
        if request.content_type != "application/json":
            return self._refuse(request, 415, "Content-Type must be application/json")
        try:
            events, batch = self._parse(body)
        except Invalid as exc:
            kind = f"400 {exc.field or 'body'}"  # a few kinds: the fields' names
            return self._refuse(request, 400, exc.error, exc.field, exc.index, kind=kind)
        return await self._store(events, batch)

    def _refuse(
        self,
        request: web.Request,
        status: int,
        error: str,
        field: str | None = None,
        index: int | None = None,
        *,
        kind: str | None = None,
        close: bool = False,
    ) -> web.Response:
        """A client's mistake: answered with its reason, and logged as a warning."""
        self._client_errors.warn(
            kind or f"{status} {error}",
            f"intake webhook: {status} to {request.remote}: {error}",
        )
        response = _error(status, error, field, index)
        if close:
            response.force_close()
        return response

    def _unauthenticated(self, request: web.Request, body: bytes) -> str | None:
        timestamp = request.headers.get("X-Inloop-Timestamp", "")
        signature = request.headers.get("X-Inloop-Signature", "")
        if not timestamp or not signature:
            return "X-Inloop-Timestamp and X-Inloop-Signature headers are required"
        if not _UNIX_SECONDS.fullmatch(timestamp):
            return "X-Inloop-Timestamp must be unix seconds"
        if abs(self._clock().timestamp() - int(timestamp)) > MAX_SKEW_SECONDS:
            return "X-Inloop-Timestamp is more than 5 minutes off: sign each request anew"
        if not _SIGNATURE.fullmatch(signature):
            return "X-Inloop-Signature must be sha256= followed by 64 hex digits"
        # Hex is hex in either case (some tools print it in capitals).
        if not hmac.compare_digest(sign(self._secret, timestamp, body), signature.lower()):
            return "the signature does not match the body"
        return None

    def _parse(self, body: bytes) -> tuple[list[MentionReceived], bool]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"the body is not valid UTF-8 (byte {exc.start})") from None
        data = parse_json(text)
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


def parse_json(text: str) -> Any:
    """JSON with bounds: nothing in the answer makes a later step recurse or raise."""
    try:
        data = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Invalid(f"the body is not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:  # nested about 1,000 deep: the parser's own stack ran out
        raise Invalid(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    if _depth(data) > MAX_DEPTH:
        raise Invalid(f"the body is nested more than {MAX_DEPTH} levels deep")
    return data


def _bounded_int(digits: str) -> int:
    # Before int(): past 4,300 digits it raises, and it is quadratic up to there.
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise Invalid(f"the body has a number of more than {MAX_DIGITS} digits")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise Invalid(f"the body is not JSON: {name} is not a number in JSON")


def _depth(data: Any) -> int:
    """How deep lists and objects nest (walked with a stack of our own: no recursion)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            todo.extend((item, depth + 1) for item in value if isinstance(item, (dict, list)))
    return deepest


class _Busy(asyncio.Protocol):
    """A connection over the cap: told 503 at once and closed, before it can hold anything."""

    ANSWER = json.dumps({"error": "too many open connections; try again shortly"}).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 1\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(self.ANSWER)).encode() + b"\r\n\r\n" + self.ANSWER
        )
        transport.close()


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """The logger aiohttp's request handler writes to.

    aiohttp answers a request it cannot parse with a 400 itself, and logs it as an ERROR
    with a traceback: that is a client's mistake, so it becomes a rate-limited warning.
    Anything else it logs passes through unchanged.
    """

    def __init__(self, logger: logging.Logger, client_errors: ClientErrors):
        super().__init__(logger, {})
        self._client_errors = client_errors

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        # (At DEBUG aiohttp logs what it deems noise, e.g. TLS sent to the HTTP port: kept so.)
        if (
            isinstance(exc, HttpProcessingError)
            and 400 <= (exc.code or 400) < 500
            and level >= logging.WARNING
        ):
            self._client_errors.warn(
                "400 malformed HTTP",
                f"intake webhook: {exc.code or 400}, a malformed request: {exc.message}",
            )
            return
        super().log(level, msg, *args, **kwargs)


def _error(
    status: int, error: str, field: str | None = None, index: int | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    if index is not None:
        body["index"] = index
    return web.json_response(body, status=status)
