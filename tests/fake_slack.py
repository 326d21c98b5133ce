"""A fake Slack on 127.0.0.1, in the spirit of bolt-python's tests/mock_web_api_server.

It answers the Web API methods Inloop uses, opens Socket Mode connections
(`apps.connections.open` → a websocket that pushes envelopes and collects acks),
keeps what a user would see (channel messages as edited, ephemeral messages,
DMs, modals, Home tabs), and fails on demand (an error, or 429 + Retry-After).
Like Slack, it answers `missing_scope` to a method the app was not granted: by
default the app has the bot scopes of the repository's slack-manifest.yaml.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from aiohttp import WSMsgType, web

BOT_USER = "UBOT"
TEAM = "T1"
MANIFEST = Path(__file__).resolve().parents[1] / "slack-manifest.yaml"
_HISTORY = ("channels:history", "groups:history", "im:history", "mpim:history")
#: a channel id's first letter → the scope that reads it (C public, G private, D a DM)
_HISTORY_OF = {"C": "channels:history", "G": "groups:history", "D": "im:history"}
#: the bot scopes Slack documents for each method the fake answers (any one will do);
#: methods not listed need none (auth.test, views.*) or an app-level token
SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "users.info": ("users:read",),
    "conversations.open": ("im:write", "mpim:write", "channels:manage", "groups:write"),
    "conversations.join": ("channels:join",),
    "conversations.history": _HISTORY,
    "conversations.replies": _HISTORY,
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}


def manifest_scopes() -> frozenset[str]:
    manifest = yaml.safe_load(MANIFEST.read_text())
    return frozenset(manifest["oauth_config"]["scopes"]["bot"])


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    #: every version, the first post included (chat.update appends)
    versions: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    #: the message_ts Slack answers (unique and rising with every message, as posts' are)
    ts: str = ""


@dataclass
class Failure:
    error: str
    status: int = 200
    retry_after: float | None = None
    #: the call takes effect and only then fails (the answer of a Slack in trouble)
    after_effect: bool = False


def _refusal(error: str) -> web.HTTPOk:
    """Slack's answer to a call it will not do: HTTP 200, ok false (raise it)."""
    return web.HTTPOk(
        text=json.dumps({"ok": False, "error": error}), content_type="application/json"
    )


def user(
    uid: str,
    name: str,
    *,
    team: str = TEAM,
    guest: bool = False,
    locale: str = "en-US",
    tz: str = "Europe/Rome",
) -> dict[str, Any]:
    return {
        "id": uid,
        "team_id": team,
        "name": name.lower(),
        "real_name": name,
        "is_restricted": guest,
        "is_ultra_restricted": False,
        "is_bot": False,
        "deleted": False,
        "locale": locale,
        "tz": tz,
        "profile": {"display_name": name, "real_name": name, "team": team},
    }


@dataclass
class RateLimit:
    """Slack's documented limit for posting messages: about one per second per channel,
    short bursts allowed. A token bucket per channel: `burst` posts at once, refilled at
    `per_second`; past it, 429 with Retry-After (whole seconds, as Slack sends)."""

    per_second: float = 1.0
    burst: int = 3
    methods: frozenset[str] = frozenset({"chat.postMessage"})
    #: channel → (tokens left, when counted)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the posts refused: (method, channel)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def wait(self, method: str, channel: str) -> float:
        """0 if the call may go now (and it is counted), else the seconds to wait."""
        if method not in self.methods:
            return 0.0
        now = time.monotonic()
        tokens, at = self.buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens >= 1.0:
            self.buckets[channel] = (tokens - 1.0, now)
            return 0.0
        self.buckets[channel] = (tokens, now)
        self.refused.append((method, channel))
        return (1.0 - tokens) / self.per_second


class FakeSlack:
    def __init__(self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        #: what the app was granted (a test may take one away)
        self.scopes = manifest_scopes()
        self.users: dict[str, dict[str, Any]] = {
            BOT_USER: {**user(BOT_USER, "inloop"), "is_bot": True}
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: when each of `calls` arrived (time.time(), in the same order)
        self.call_times: list[float] = []
        self.posted: list[Posted] = []
        self.ephemeral: list[Ephemeral] = []
        self.homes: dict[str, dict[str, Any]] = {}
        #: uploaded files: id → (bytes, filename); shared ones: (channel, file id, title)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.shared: list[tuple[str, str, str]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections = 0
        #: channels the bot is not a member of (it is of every other one)
        self.outside: set[str] = set()
        #: method → failures to answer with, first first
        self.failures: dict[str, list[Failure]] = {}
        #: every `every`th chat.postMessage answers 429, `storm` times in a row
        self.storm: tuple[int, int, float] | None = None
        self._storm_left = 0
        #: Slack's per-channel posting limit, enforced when set
        self.rate_limit: RateLimit | None = None
        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: envelopes delivered by `deliver`, by envelope id: how many times each was sent
        self.deliveries: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.on_post: Callable[[Posted], None] | None = None
        #: method → (seconds, calls left, set when one arrives): answers that come late
        self._slow: dict[str, tuple[float, int, asyncio.Event]] = {}
        #: set by `stop`: a slow answer still waiting ends then (the server's shutdown
        #: would otherwise wait a minute for it)
        self._stopping = asyncio.Event()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link", self._socket)
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- on demand ---------------------------------------------------------------------

    def fail(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        retry_after: float | None = None,
        times: int = 1,
        after_effect: bool = False,
    ) -> None:
        failure = Failure(error, status, retry_after, after_effect)
        self.failures.setdefault(method, []).extend([failure] * times)

    def answer_slowly(self, method: str, seconds: float, *, times: int = 1) -> asyncio.Event:
        """The next `times` calls of `method` take effect at once and are answered only
        `seconds` later (a slow Slack; or a call whose caller dies before the answer).
        The event is set when the first of them arrives."""
        arrived = asyncio.Event()
        self._slow[method] = (seconds, times, arrived)
        return arrived

    # -- Web API -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                args.update(json.loads(raw or b"{}"))
            else:
                args.update(dict(parse_qsl(raw.decode())))
        for key in ("blocks", "view", "metadata"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append((method, args))
        self.call_times.append(time.time())
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        needed = SCOPES.get(method, ())
        if needed == _HISTORY:  # reading needs the scope of the channel's kind
            needed = (_HISTORY_OF.get(str(args.get("channel", " "))[0], _HISTORY[0]),)
        if needed and not self.scopes.intersection(needed):
            return web.json_response(
                {"ok": False, "error": "missing_scope", "needed": ",".join(needed)}
            )
        if method == "chat.postMessage" and self.storm is not None:
            every, length, retry_after = self.storm
            posts = sum(1 for m, _ in self.calls if m == "chat.postMessage")
            if posts % every == 0:
                self._storm_left = length
            if self._storm_left:
                self._storm_left -= 1
                return self._rate_limited(retry_after)
        if self.rate_limit is not None:
            wait = self.rate_limit.wait(method, str(args.get("channel", "")))
            if wait:
                return self._rate_limited(math.ceil(wait))
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        failures = self.failures.get(method)
        if failures:
            failure = failures.pop(0)
            if failure.status == 429:
                return self._rate_limited(failure.retry_after or 0)
            if failure.after_effect and handler is not None:
                handler(args)
            return web.json_response({"ok": False, "error": failure.error}, status=failure.status)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        body: dict[str, Any] = handler(args)
        slow = self._slow.get(method)
        if slow is not None:
            seconds, times, arrived = slow
            if times <= 1:
                del self._slow[method]
            else:
                self._slow[method] = (seconds, times - 1, arrived)
            arrived.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
        return web.json_response({"ok": True, **body})

    def _rate_limited(self, retry_after: float) -> web.Response:
        return web.json_response(
            {"ok": False, "error": "ratelimited"},
            status=429,
            headers={"Retry-After": str(int(retry_after))},
        )

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "user_id": BOT_USER,
            "team_id": TEAM,
            "url": "https://acme.slack.com/",
            "bot_id": "BBOT",
            "user": "inloop",
            "team": "Acme",
        }

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/link"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self.users.get(args.get("user", ""))
        if found is None:
            raise _refusal("user_not_found")
        return {"user": found}

    def _ts(self) -> str:
        """A message's ts: its Unix time, unique and rising (the counter as microseconds)."""
        n = next(self._ids)
        return f"{int(time.time())}.{n:06d}"

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        if args["channel"] in self.outside:
            raise _refusal("not_in_channel")
        posted = Posted(
            args["channel"],
            self._ts(),
            args.get("text", ""),
            args.get("blocks") or [],
            args.get("thread_ts"),
            args.get("metadata"),
        )
        posted.versions.append((posted.text, posted.blocks))
        self.posted.append(posted)
        if self.on_post is not None:
            self.on_post(posted)
        return {"channel": posted.channel, "ts": posted.ts, "message": {"text": posted.text}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        for posted in self.posted:
            if posted.channel == args["channel"] and posted.ts == args["ts"]:
                posted.text = args.get("text", "")
                posted.blocks = args.get("blocks") or []
                posted.versions.append((posted.text, posted.blocks))
                return {"channel": posted.channel, "ts": posted.ts}
        raise _refusal("message_not_found")

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = self._ts()
        self.ephemeral.append(
            Ephemeral(
                args["channel"], args["user"], args.get("text", ""), args.get("blocks") or [], ts
            )
        )
        return {"message_ts": ts}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": f"D{args['users']}"}}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        """A bot joins a public channel (C…) by itself; a private one (G…) needs an invite."""
        channel = args["channel"]
        if not channel.startswith("C"):
            raise _refusal("method_not_supported_for_channel_type")
        self.outside.discard(channel)
        return {"channel": {"id": channel, "is_member": True}}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The channel's messages, newest first (thread replies are not in it)."""
        channel = self._dm_channel(args["channel"])
        if channel in self.outside:
            raise _refusal("not_in_channel")
        found = [p for p in self.posted if p.channel == channel and p.thread_ts is None]
        return self._messages(found[::-1], args)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """The thread's parent, then its replies, oldest first."""
        channel, ts = self._dm_channel(args["channel"]), args["ts"]
        found = [p for p in self.posted if p.channel == channel and ts in (p.ts, p.thread_ts)]
        return self._messages(found, args)

    def _dm_channel(self, channel: str) -> str:
        # The bot's posts to a user id land in the DM that conversations.open names.
        return channel[1:] if channel.startswith("D") else channel

    @staticmethod
    def _messages(posts: list[Posted], args: dict[str, Any]) -> dict[str, Any]:
        """A page of `posts` as Slack gives it: after `oldest`, `limit` at a time, the
        next page's cursor in response_metadata."""
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        oldest = float(args.get("oldest") or 0)
        posts = [p for p in posts if float(p.ts) > oldest]
        start = int(args.get("cursor") or 0)
        end = start + int(args.get("limit") or 100)
        messages = []
        for p in posts[start:end]:
            message: dict[str, Any] = {"type": "message", "ts": p.ts, "text": p.text}
            if p.thread_ts:
                message["thread_ts"] = p.thread_ts
            if with_metadata and p.metadata:
                message["metadata"] = p.metadata
            messages.append(message)
        more = end < len(posts)
        return {
            "messages": messages,
            "has_more": more,
            "response_metadata": {"next_cursor": str(end) if more else ""},
        }

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids)}"
        self.files[file_id] = (b"", args["filename"])
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.files[file_id] = (await request.read(), self.files[file_id][1])
        return web.Response(text="OK - " + str(len(self.files[file_id][0])))

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        listed = args["files"]
        files = json.loads(listed) if isinstance(listed, str) else listed
        for f in files:
            self.shared.append((args.get("channel_id", ""), f["id"], f.get("title", "")))
        return {"files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = f"V{next(self._ids)}"
        self.views[view_id] = args["view"]
        return {"view": {"id": view_id, **args["view"]}}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self.views[args["view_id"]] = args["view"]
        return {"view": {"id": args["view_id"], **args["view"]}}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        self.homes[args["user_id"]] = args["view"]
        return {"view": {"id": f"V{next(self._ids)}", **args["view"]}}

    # -- Socket Mode -------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {}}))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    envelope = data.get("envelope_id")
                    if envelope:
                        self.acks[envelope] = data.get("payload") or {}
                        waiter = self._ack_waiters.pop(envelope, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(self.acks[envelope])
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def connected(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not self._sockets:
            assert time.monotonic() < deadline, "the bot never connected by Socket Mode"
            await asyncio.sleep(0.01)

    async def drop_connections(self) -> None:
        """Slack closes sockets now and then (and on deploys): the bot must come back."""
        for ws in list(self._sockets):
            await ws.close()

    async def push(
        self, kind: str, payload: dict[str, Any], *, envelope_id: str = "", retry_attempt: int = 0
    ) -> str:
        """Send one envelope (events_api, slash_commands, interactive); returns its id."""
        await self.connected()
        envelope_id = envelope_id or f"env-{next(self._ids)}"
        loop = asyncio.get_running_loop()
        self._ack_waiters[envelope_id] = loop.create_future()
        await self._sockets[-1].send_str(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                    "retry_attempt": retry_attempt,
                    "retry_reason": "timeout" if retry_attempt else "",
                }
            )
        )
        return envelope_id

    @property
    def sockets(self) -> int:
        """Socket Mode connections open now (one per running instance)."""
        return len(self._sockets)

    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        spread: random.Random,
        *,
        copies: int = 1,
        ack_within: float = 3.0,
        retries: int = 3,
    ) -> bool:
        """Deliver an envelope as Slack does to an app with several Socket Mode
        connections: to one of them, picked at random (`spread`), or to `copies` of them
        at once; an event not acknowledged within `ack_within` seconds (its connection
        died, or its instance did) is sent again, `retry_attempt` counting, to a
        connection open then, up to `retries` times. Slash commands and interactions are
        sent once: Slack shows the person an error instead. True when acknowledged.
        """
        envelope_id = f"env-{next(self._ids)}"
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._ack_waiters[envelope_id] = waiter
        attempts = 1 + (retries if kind == "events_api" else 0)
        for attempt in range(attempts):
            await self.connected(within=30.0)
            chosen = spread.sample(self._sockets, min(copies, len(self._sockets)))
            text = json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                    "retry_attempt": attempt,
                    "retry_reason": "timeout" if attempt else "",
                }
            )
            for ws in chosen:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(text)
                    self.deliveries[envelope_id] = self.deliveries.get(envelope_id, 0) + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), ack_within)
                return True
        self._ack_waiters.pop(envelope_id, None)
        return envelope_id in self.acks

    async def acked(self, envelope_id: str, within: float = 5.0) -> dict[str, Any]:
        if envelope_id in self.acks:
            return self.acks[envelope_id]
        return await asyncio.wait_for(self._ack_waiters[envelope_id], within)

    # -- what people see ---------------------------------------------------------------

    def in_channel(self, channel: str) -> list[Posted]:
        return [p for p in self.posted if p.channel == channel]

    def told(self, uid: str) -> list[str]:
        """Everything `uid` was told privately (ephemeral or DM), oldest first."""
        return [text for text, _ in self._private(uid)]

    def read_by(self, uid: str) -> list[str]:
        """What `uid` read privately (ephemeral or DM), oldest first, as Slack shows it."""
        return [read(text, blocks) for text, blocks in self._private(uid)]

    def _private(self, uid: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """`uid`'s ephemeral messages and DMs from the app, in the order they came (the
        ts's counter rises with every message)."""
        said = [(e.ts, e.text, e.blocks) for e in self.ephemeral if e.user == uid]
        said += [(p.ts, p.text, p.blocks) for p in self.posted if p.channel == uid]
        said.sort(key=lambda one: int(one[0].partition(".")[2] or 0))
        return [(text, blocks) for _, text, blocks in said]

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


# -- payloads as Slack sends them -------------------------------------------------------


#: mrkdwn's inline formatting: `*bold*`, `_italic_`, `~strike~`, `` `code` ``
_MRKDWN = re.compile(r"(?<!\w)([*_~`])(?=\S)(.+?)(?<=\S)\1(?!\w)")


def read(text: str, blocks: list[dict[str, Any]]) -> str:
    """What a person reads in a message: its blocks when it has any, else its `text`,
    which Slack renders as mrkdwn. In mrkdwn the formatting characters are consumed
    (`*bold*` reads as bold, without its stars); plain_text shows every character."""
    if not blocks:
        return _rendered(text, "mrkdwn")
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn"):
                out.append(_rendered(str(node["text"]), node["type"]))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return "\n".join(out)


def _rendered(text: str, kind: str) -> str:
    if kind == "mrkdwn":
        text = _MRKDWN.sub(lambda m: m[2], text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def view_submission(
    uid: str, modal: dict[str, Any], typed: Mapping[str, str | None], view_id: str
) -> dict[str, Any]:
    """What Slack sends when `uid` submits `modal` with `typed` (field → text, None: empty)."""
    values = {k: {k: {"type": "plain_text_input", "value": v}} for k, v in typed.items()}
    return {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": uid, "team_id": TEAM},
        "api_app_id": "A1",
        "trigger_id": f"trig-{view_id}",
        "view": {
            **modal,
            "id": view_id,
            "hash": f"h-{view_id}-{len(str(typed))}",
            "type": "modal",
            "state": {"values": values},
        },
    }


def event(body: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A1",
        "event": body,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def message(
    uid: str, channel: str, text: str, ts: str, *, thread_ts: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "type": "message",
        "user": uid,
        "channel": channel,
        "text": text,
        "ts": ts,
        "channel_type": "channel",
        **extra,
    }
    if thread_ts:
        body["thread_ts"] = thread_ts
    return body


def command(uid: str, channel: str, text: str, trigger: str) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "channel_id": channel,
        "user_id": uid,
        "command": "/inloop",
        "text": text,
        "response_url": "http://127.0.0.1:9/unused",
        "trigger_id": trigger,
        "api_app_id": "A1",
    }


def button(
    uid: str,
    channel: str | None,
    action_id: str,
    value: str,
    trigger: str,
    *,
    view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": uid, "team_id": TEAM},
        "api_app_id": "A1",
        "trigger_id": trigger,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
    if channel:
        body["channel"] = {"id": channel}
        body["container"] = {"type": "message", "channel_id": channel}
    if view is not None:
        body["view"] = view
        body["container"] = {"type": "view", "view_id": view.get("id", "VHOME")}
    return body


def sign(secret: str, body: bytes, timestamp: int) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
