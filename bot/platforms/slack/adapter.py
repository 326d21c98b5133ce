"""The Slack adapter: Bolt's AsyncApp for input, the Web API client for output.

Thin on purpose: payloads are translated by `translate` and handed to the core;
views come back through the outbox and are posted, updated or shown privately.

Two ways to receive Slack's events:
- Socket Mode (an app token is set): Inloop dials out to Slack; no public URL.
- HTTP mode: Slack POSTs signed requests to /slack/events on `http_port`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import RetryState
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.internal_utils import get_user_agent

from bot.events import ChannelId, Command, Event, Message, NotYet, PersonId, local_part
from bot.intake.group_commit import GroupCommit, NotStored
from bot.messages import texts_for
from bot.platform import DeliveryError, EventSink, PersonInfo, StartError
from bot.platforms.slack import translate as tr
from bot.views import Attachment, Chart, Form, Home, Notice, View

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
#: answers from Slack that no retry can change
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "user_not_found",
        "user_not_in_channel",
        "account_inactive",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "missing_scope",
        "method_not_supported_for_channel_type",
    }
)
#: answers that Slack documents as "some aspect of the operation may have succeeded"
SLACK_TROUBLE = frozenset({"internal_error", "fatal_error", "request_timeout"})
#: the channel takes nothing from the bot any more (its admins are told)
REFUSALS = frozenset({"channel_not_found", "is_archived"})
#: an ephemeral reply cannot reach the person there: a DM does
EPHEMERAL_FALLBACK = frozenset(
    {"channel_not_found", "not_in_channel", "user_not_in_channel", "is_archived"}
)
BAD_TOKEN = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})
#: Web API methods that make a message: a blind retry of one could make two
POSTING = frozenset({"chat.postMessage", "chat.postEphemeral", "files.completeUploadExternal"})
#: what Inloop's messages carry (message metadata) so that a resend can find them
OUTBOX_EVENT = "inloop_outbox_row"
#: `find_sent` reads pages of this many messages, at most this many pages
FIND_SENT_PAGE = 200
FIND_SENT_PAGES = 25
#: seconds before the row was written that `find_sent` starts at (clocks disagree)
FIND_SENT_MARGIN = 600.0
#: how long an opened "Show full text" modal waits for the core's answer
MODAL_WAIT = 30.0
#: marks a request replayed from the inbox (recorded already)
REPLAYED = "inloop_replayed"
#: marks a channel message stored before its acknowledgement (`SlackPlatform._stored`)
KEPT = "inloop_kept"
#: channel messages stored in one transaction at most (those that arrive together)
MESSAGE_BATCH = 200
#: seconds a busy channel's messages wait for the next before their transaction (each
#: message's share of a transaction's statements and commit shrinks with the group)
MESSAGE_GATHER = 0.002


class ConnectionRetry(AsyncConnectionErrorRetryHandler):
    """Slack's retry of a lost connection, except where the retry could post twice.

    A connection lost after Slack took a post (reset, or closed before the answer)
    looks the same as one lost before: retried here, the card would appear twice.
    Posts are retried only when the connection was never made; otherwise the error
    reaches the outbox, which looks the post up (`find_sent`) before sending again.
    """

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.rsplit("/", 1)[-1] in POSTING:
            return isinstance(error, aiohttp.ClientConnectorError)
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class Turnstile:
    """Messages of one channel reach the core in the order Slack delivered them.

    The Socket Mode client handles envelopes concurrently, so a burst in one channel
    would otherwise become conversations numbered out of order. A ticket is taken on
    receipt (in order) and each message waits for its turn; a ticket whose event never
    comes (dropped on the way) holds the line up for at most `patience` seconds.
    """

    def __init__(self, patience: float = 5.0) -> None:
        self._patience = patience
        self._issued: dict[str, int] = collections.defaultdict(int)
        self._served: dict[str, int] = collections.defaultdict(int)
        self._tickets: dict[str, tuple[str, int]] = {}
        self._changed = asyncio.Condition()

    def take(self, event_id: str, lane: str) -> None:
        self._tickets[event_id] = (lane, self._issued[lane])
        self._issued[lane] += 1

    @contextlib.asynccontextmanager
    async def turn(self, event_id: str) -> AsyncIterator[None]:
        ticket = self._tickets.pop(event_id, None)
        if ticket is None:
            yield
            return
        lane, number = ticket
        async with self._changed:
            # The patience runs from the line's last move, not from arrival: a long
            # queue moving steadily is waited out, only a stuck one is skipped.
            while self._served[lane] < number:
                try:
                    await asyncio.wait_for(self._changed.wait(), self._patience)
                except TimeoutError:
                    break
        try:
            yield
        finally:
            async with self._changed:
                self._served[lane] = max(self._served[lane], number + 1)
                self._changed.notify_all()


class SlackPlatform:
    name = "slack"
    command_prefix = tr.PREFIX
    #: Slack limits messages per channel (about one a second: `pace_seconds`), not the
    #: account's messages all together
    account_limit = None

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str = "",
        signing_secret: str = "",
        api_url: str = "https://slack.com/api/",
        http_host: str = "0.0.0.0",
        http_port: int = 3000,
        language: str = "en",
        pace_seconds: float = 1.0,
        ping_interval: float = 10.0,
        rate_limit_retries: int = 0,
        forms: Mapping[str, Form] | None = None,
    ):
        #: Slack allows about one message a second per channel; the outbox paces to it
        self.pace_seconds = pace_seconds
        self._app_token = app_token
        self._api_url = api_url
        self._http_host = http_host
        self._http_port = http_port
        self._ping_interval = ping_interval
        texts = texts_for(language)
        self._labels = tr.Labels(
            texts.slack_show_full, texts.slack_full_text_title, texts.slack_close
        )
        self._loading = texts.slack_loading
        self._required = texts.form_required
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api_url,
            # The client would otherwise build this string (the OS's name and release)
            # again for every call: a twentieth of a card's cost at a thousand a second.
            headers={"User-Agent": get_user_agent()},
            # A 429 comes back at once (no sleep inside the call): the outbox makes it its
            # channel's "not before" time, and every other channel goes on meanwhile.
            retry_handlers=[
                ConnectionRetry(),
                *(
                    [AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)]
                    if rate_limit_retries
                    else []
                ),
            ],
        )
        self.app = AsyncApp(
            client=self.client,
            # Every value explicit: Bolt would otherwise read its own environment variables.
            signing_secret=signing_secret,
            request_verification_enabled=not app_token,
            name="inloop",
        )
        self.bot_user_id = ""
        self.team_id = ""
        self.workspace_url = ""
        #: the core's forms by id, opened by buttons that name one (`Button.form`)
        self.forms: dict[str, Form] = dict(forms or {})
        self._sink: EventSink | None = None
        self._messages: GroupCommit | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        #: person → the "Show full text" modal waiting for the core's answer
        self._modals: dict[str, tuple[str, float]] = {}
        self._turnstile = Turnstile()
        #: the outbox's posts on their way to Slack now (`send`, `reply`)
        self._posting = 0
        #: replays what a crash left in the inbox, while the adapter runs
        self._recovery: asyncio.Task[None] | None = None
        self._register()

    @property
    def connected(self) -> bool:
        """Socket Mode: its WebSocket is open and not stale; HTTP mode: the server runs."""
        if self._socket is not None:
            client = self._socket.client
            session = client.current_session
            return not client.closed and not client.stale and bool(session and not session.closed)
        return self._runner is not None

    @property
    def http_port(self) -> int:
        """The port HTTP mode listens on (the real one when asked for port 0)."""
        if self._runner is not None:
            for address in self._runner.addresses:
                return int(address[1])
        return self._http_port

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        self._messages = GroupCommit(
            sink, None, most=MESSAGE_BATCH, gather=MESSAGE_GATHER, busy=self._delivering
        )
        # One connection pool for every Web API call (the client opens one per call otherwise).
        self._session = aiohttp.ClientSession()
        self.client.session = self._session
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            await self.stop()
            error = str(exc.response.get("error", ""))
            if error in BAD_TOKEN:
                raise StartError(
                    f"Slack rejected SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token again"
                ) from None
            raise StartError(f"Slack auth.test failed: {error or exc}") from None
        except aiohttp.ClientError as exc:
            await self.stop()
            raise StartError(f"cannot reach Slack at {self._api_url}: {exc}") from None
        self.bot_user_id = str(auth.get("user_id", ""))
        self.team_id = str(auth.get("team_id", ""))
        self.workspace_url = str(auth.get("url", ""))
        if self._app_token:
            await self._start_socket_mode()
        else:
            await self._start_http()
        self._recovery = asyncio.create_task(
            sink.inbox.recover(self.name, self._replay), name="slack inbox"
        )

    async def _start_socket_mode(self) -> None:
        # apps.connections.open takes the app-level token, not the bot token
        socket_client = AsyncWebClient(
            token=self._app_token, base_url=self._api_url, session=self._session
        )
        self._socket = AsyncSocketModeHandler(
            self.app,
            self._app_token,
            web_client=socket_client,
            ping_interval=self._ping_interval,
        )
        # runs for each envelope in arrival order, before Bolt's concurrent dispatch
        self._socket.client.message_listeners.insert(0, self._received)
        # instead of the handler's own listener: a channel message skips Bolt, every other
        # request goes through it (`_on_request`)
        self._socket.client.socket_mode_request_listeners = [self._on_request]
        # The socket client retries every failure forever, a refused token too (an
        # ERROR every ping interval): the token is checked here, as auth.test checks
        # the bot token, and the address it gets is the one the client dials.
        try:
            opened = await socket_client.apps_connections_open(app_token=self._app_token)
        except SlackApiError as exc:
            await self.stop()
            error = str(exc.response.get("error", ""))
            if error in BAD_TOKEN:
                raise StartError(
                    f"Slack rejected SLACK_APP_TOKEN ({error}): copy the App-Level Token "
                    "again (Basic Information → App-Level Tokens)"
                ) from None
            raise StartError(
                f"Slack rejected SLACK_APP_TOKEN ({error}): it needs the connections:write scope"
            ) from None
        except aiohttp.ClientError as exc:
            await self.stop()
            raise StartError(f"cannot reach Slack at {self._api_url}: {exc}") from None
        self._socket.client.wss_uri = str(opened["url"])
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack: connected by Socket Mode as %s", self.bot_user_id)

    async def _start_http(self) -> None:
        self._runner = web.AppRunner(self.app.web_app(path=EVENTS_PATH, port=self._http_port))
        await self._runner.setup()
        await web.TCPSite(self._runner, self._http_host, self._http_port).start()
        log.info("Slack: HTTP mode on port %d, path %s", self.http_port, EVENTS_PATH)

    async def stop(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._messages is not None:
            await self._messages.drain()  # messages received are stored before we go
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    # -- inbound ---------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        @app.middleware
        async def record(
            body: dict[str, Any], context: dict[str, Any], next_: Callable[[], Awaitable[None]]
        ) -> None:
            # Before any listener, so before the acknowledgement: what Slack is told
            # arrived is kept, and handled after a crash (bot/inbox.py). A request that
            # cannot be kept is not acknowledged: Slack delivers it again.
            key = _inbox_key(body)
            if key is not None and not context.get(REPLAYED):
                assert self._sink is not None, "requests arrive only after start()"
                event = _message_event(body, self.bot_user_id, self.workspace_url)
                if event is None:
                    pass  # a bot's message, an edit, a join: nothing to handle, nothing kept
                elif isinstance(event, Message) and await self._stored(event):
                    context[KEPT] = True  # handled already: the listener has nothing to do
                else:
                    await self._sink.inbox.record(self.name, key, body)
            await next_()

        @app.command(tr.PREFIX)
        async def on_command(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
            async with self._handling(body):
                await ack()  # answers arrive as ephemeral messages through the outbox
                await self._hand(tr.command_event(body))

        @app.action(re.compile(f"^{re.escape(tr.ACTION_PREFIX)}"))
        async def on_button(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
            async with self._handling(body):
                await ack()
                for action in body.get("actions", ()):
                    event = tr.action_event(body, action)
                    if event is not None:
                        await self._hand(event)
                if (body.get("view") or {}).get("type") == "home":
                    # the Home tab shows the change at once, as the card in the channel does
                    trigger = body.get("trigger_id")
                    await self._refresh_home(body["user"]["id"], f"home-after:{trigger}")

        @app.action(tr.SHOW_FULL)
        async def on_show_full(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
            async with self._handling(body):
                await self._show_full(ack, body)

        @app.action(re.compile(f"^{re.escape(tr.FORM_OPEN_PREFIX)}"))
        async def on_form_button(
            ack: Callable[..., Awaitable[None]], body: dict[str, Any], action: dict[str, Any]
        ) -> None:
            async with self._handling(body):
                await self._open_form_for(ack, body, action)

        @app.view(re.compile(f"^{re.escape(tr.FORM_PREFIX)}"))
        async def on_form(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
            async with self._handling(body):
                await self._submitted(ack, body)

        @app.event("message")
        async def on_message(body: dict[str, Any], context: dict[str, Any]) -> None:
            if context.get(KEPT):
                return  # stored with its group before Slack was acknowledged (`_stored`)
            event = tr.message_event(body, self.bot_user_id, self.workspace_url)
            if event is None:
                return  # nobody writing: it was not recorded either
            async with self._handling(body):
                if isinstance(event, Message):
                    await self._keep(event)
                else:  # a command typed as a message
                    await self._hand(event)

        @app.event("reaction_added")
        async def on_reaction(body: dict[str, Any]) -> None:
            async with self._handling(body):
                event = tr.reaction_event(body)
                if event is not None:
                    await self._hand(event)

        @app.event("app_home_opened")
        async def on_home(body: dict[str, Any]) -> None:
            async with self._handling(body):
                event = tr.home_opened_event(body)
                if event is not None:
                    await self._hand(event)

    async def _show_full(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        # A trigger id is valid for 3 s: open a modal now, fill it when the core answers.
        try:
            opened = await self.client.views_open(
                trigger_id=body["trigger_id"],
                view=tr.text_modal(self._labels.full_text_title, self._loading, self._labels),
            )
            self._modals[user] = (str(opened["view"]["id"]), _now())
        except (SlackApiError, aiohttp.ClientError) as exc:
            # the trigger expired or Slack said no: the text comes as a reply instead
            log.warning("Slack: could not open the full-text modal: %s", exc)
        for action in body.get("actions", ()):
            event = tr.action_event(body, {**action, "action_id": f"{tr.ACTION_PREFIX}show"})
            if event is not None:
                await self._hand(event)

    async def _open_form_for(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        form_id = str(action["action_id"]).removeprefix(tr.FORM_OPEN_PREFIX)
        if form_id not in self.forms:
            log.warning("Slack: a button asked for form %r, which is not registered", form_id)
            return
        where = (body.get("channel") or {}).get("id")
        try:  # a trigger id is good for 3 s: the modal opens now, the command comes later
            await self.open_form(
                body["trigger_id"],
                form_id,
                tr.channel(where) if where else None,
                str(action.get("value", "")),
                from_home=(body.get("view") or {}).get("type") == "home",
            )
        except (SlackApiError, aiohttp.ClientError) as exc:
            log.warning("Slack: could not open form %s: %s", form_id, exc)

    async def _submitted(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        view = body["view"]
        form = self.forms.get(str(view["callback_id"]).removeprefix(tr.FORM_PREFIX))
        if form is None:
            await ack()
            return
        values = tr.form_values(form, view)
        errors = tr.form_errors(form, values, self._required)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        carried = tr.form_carried(view)
        submitted = tr.form_event(body, form, values, carried)
        await self._hand(submitted)
        if carried.get("home"):  # what it changed shows there at once
            await self._refresh_home(body["user"]["id"], f"home-after:{submitted.event_id}")

    @contextlib.asynccontextmanager
    async def _handling(self, body: Mapping[str, Any]) -> AsyncIterator[None]:
        """The listener's work on a request; then its inbox row goes (a handling cut
        short by a stop keeps it, to be replayed)."""
        key = _inbox_key(body)
        later = False
        try:
            yield
        except NotYet as exc:
            # It names what is on its way (a card another instance posted and has not
            # booked yet): its row stays, and a sweep hands it again in a moment.
            log.info("Slack: %s waits (%s)", key, exc)
            if key is not None and self._sink is not None:
                later = await self._sink.inbox.later(key)
        finally:
            current = asyncio.current_task()
            cancelled = current is not None and current.cancelling() > 0
            if key is not None and not cancelled and not later and self._sink is not None:
                await self._sink.inbox.done(key)

    async def _replay(self, body: Mapping[str, Any]) -> None:
        """A request recorded in the inbox and left unhandled by a crash, dispatched as if
        it had just arrived (no signature to check: it was checked when it came)."""
        request = AsyncBoltRequest(body=dict(body), mode="socket_mode", context={REPLAYED: True})
        await self.app.async_dispatch(request)

    async def _received(
        self, client: AsyncBaseSocketModeClient, envelope: dict[Any, Any], raw: str | None
    ) -> None:
        # No await in here: it must run to the end before the next envelope's turn.
        if envelope.get("type") != "events_api":
            return
        payload = envelope.get("payload") or {}
        event = tr.message_event(payload, self.bot_user_id, self.workspace_url)
        if event is not None:
            self._turnstile.take(event.event_id, event.channel)

    async def _on_request(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """Socket Mode: a channel message is stored with its group (`_stored`) and then
        acknowledged, without Bolt's dispatch (its middleware, listener matching and
        argument building cost a busy channel as much as the message's own share of
        its transaction); a message that is nobody writing is acknowledged at once.
        Everything else, and a message that could not be stored, goes through Bolt,
        whose middleware records it in the inbox first."""
        assert self._socket is not None, "requests arrive only while Socket Mode runs"
        if req.type == "events_api":
            event = _message_event(req.payload, self.bot_user_id, self.workspace_url)
            if event is None or (isinstance(event, Message) and await self._stored(event)):
                await client.send_socket_mode_response(SocketModeResponse(req.envelope_id))
                return
        await self._socket.handle(self._socket.client, req)

    async def _refresh_home(self, user: str, event_id: str) -> None:
        await self._hand(tr.home_command(user, event_id))

    async def _hand(self, event: Event) -> None:
        assert self._sink is not None, "events arrive only after start()"
        async with self._turnstile.turn(event.event_id):
            await self._sink.handle(event)

    async def _stored(self, message: Message) -> bool:
        """Store a channel message with the others that arrive together (one transaction,
        `GroupCommit`), before Slack is acknowledged: kept and handled in one commit, it
        needs no inbox row (which cost a transaction to write and another to delete, per
        message). False when it could not be stored: then it is recorded in the inbox
        before the acknowledgement, and the listener tries again."""
        try:
            await self._submit(message)
        except NotStored as exc:
            log.warning(
                "Slack: message %s not stored yet (%s); kept in the inbox to try again",
                message.event_id,
                exc.__cause__,
            )
            return False
        return True

    async def _keep(self, message: Message) -> None:
        """A channel message joins the next transaction with the others that arrive
        while one runs (group commit, as the intake webhook does): a busy watched
        channel then costs a commit per batch, not per message. Its turn in the
        channel is passed on once it is queued, so the queue keeps Slack's order."""
        try:
            await self._submit(message)
        except NotStored as exc:
            # Slack has been acknowledged already: an ERROR, so that it is not lost silently.
            log.error("Slack: message %s was not kept", message.event_id, exc_info=exc.__cause__)

    async def _submit(self, message: Message) -> None:
        """Queue the message for the next group transaction in Slack's order (its turn
        in the channel is passed on once queued) and wait until it is stored."""
        assert self._messages is not None, "events arrive only after start()"
        async with self._turnstile.turn(message.event_id):
            stored = self._messages.submit([message])
        await stored

    async def open_form(
        self,
        trigger_id: str,
        form_id: str,
        context: ChannelId | None = None,
        value: str = "",
        *,
        from_home: bool = False,
    ) -> None:
        """Open one of the registered forms (the answer to a button that names it)."""
        form = self.forms[form_id]
        where = local_part(context) if context and context != tr.NO_CHANNEL else ""
        carried = tr.form_metadata(where, value, home=from_home)
        await self.client.views_open(
            trigger_id=trigger_id, view=tr.form_modal(form, self._labels.close, carried)
        )

    # -- Platform: outbound ----------------------------------------------------------

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        return await self._post(local_part(channel), view, key)

    async def reply(self, channel: ChannelId, message_ref: str, view: View, key: str) -> str:
        return await self._post(local_part(channel), view, key, thread_ts=message_ref)

    def _delivering(self) -> bool:
        """Whether the outbox has messages on their way here: in a busy watched channel
        each card answers a customer's message and more follow it, so a message that
        finds the group commit idle waits a moment for them (`GroupCommit`'s `busy`)."""
        return self._posting > 0

    async def _post(self, channel: str, view: View, key: str, thread_ts: str | None = None) -> str:
        self._posting += 1
        try:
            return await self._post_or_join(channel, view, key, thread_ts)
        finally:
            self._posting -= 1

    async def _post_or_join(
        self, channel: str, view: View, key: str, thread_ts: str | None = None
    ) -> str:
        try:
            return await self._post_once(channel, view, key, thread_ts)
        except DeliveryError as exc:
            if exc.reason != "not_in_channel":
                raise
        # `/inloop team add` works in a channel the bot was never invited to: a public
        # one it can join by itself (a private one needs `/invite @inloop`).
        try:
            await self._call(self.client.conversations_join, channel=channel)
        except DeliveryError as exc:
            if exc.retry_after is not None or exc.uncertain:
                raise  # Slack is busy: try again later
            # Say why for good: a private channel needs /invite; an app made from an
            # older manifest lacks channels:join; an archived channel takes nobody.
            raise DeliveryError(
                f"not_in_channel, and joining failed: {exc.reason}", refused=True
            ) from None
        log.info("Slack: joined %s to post there", channel)
        return await self._post_once(channel, view, key, thread_ts)

    async def _post_once(
        self, channel: str, view: View, key: str, thread_ts: str | None = None
    ) -> str:
        if isinstance(view, Chart | Attachment):
            return await self._upload(channel, view, thread_ts)
        body = tr.message(view, self._labels)
        response = await self._call(
            self.client.chat_postMessage,
            channel=channel,
            text=body.text,
            blocks=body.blocks or None,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata=_keyed(key),
        )
        return str(response.get("ts", ""))

    async def _upload(
        self, channel: str, chart: Chart | Attachment, thread_ts: str | None = None
    ) -> str:
        """Slack's external upload flow (files.getUploadURLExternal, the upload itself,
        files.completeUploadExternal), which files_upload_v2 walks through."""
        response = await self._call(
            self.client.files_upload_v2,
            channel=channel,
            content=chart.png if isinstance(chart, Chart) else chart.data,
            filename=chart.filename,
            title=chart.title,
            thread_ts=thread_ts,
        )
        files = response.get("files") or [{}]
        return str(files[0].get("id", ""))

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        body = tr.message(view, self._labels)
        await self._call(
            self.client.chat_update,
            channel=local_part(channel),
            ts=message_ref,
            text=body.text,
            blocks=body.blocks or [],
        )

    def messages_per_update(self, view: View) -> int:
        return 1  # chat.update, in place

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        user = local_part(person)
        if isinstance(view, Chart | Attachment):
            # A file can't be ephemeral: it goes to the person's DM with the app.
            opened = await self._call(self.client.conversations_open, users=user)
            await self._upload(str(opened["channel"]["id"]), view)
        elif isinstance(view, Home):
            home = {"type": "home", "blocks": tr.message(view, self._labels).blocks}
            await self._call(self.client.views_publish, user_id=user, view=home)
        elif isinstance(view, Notice) and (view_id := self._waiting_modal(user)) is not None:
            await self._call(
                self.client.views_update,
                view_id=view_id,
                view=tr.text_modal(self._labels.full_text_title, view.text, self._labels),
            )
        else:
            await self._tell(user, view, context, key)

    async def find_sent(
        self,
        target: str,
        key: str,
        *,
        since: datetime,
        thread: str | None = None,
        private: bool = False,
    ) -> str | None:
        """Slack takes no idempotency key, so each message carries its key as message
        metadata, and here the channel's messages since the row was written (or the
        thread's) are searched for it. What cannot carry metadata is not found:
        ephemeral replies (Slack keeps no copy of them) and uploaded charts."""
        if private:  # the person's DM with the app
            opened = await self._call(self.client.conversations_open, users=local_part(target))
            channel = str(opened["channel"]["id"])
        else:
            channel = local_part(target)
        # A margin for clocks that disagree; Slack's `oldest` is a Unix time.
        oldest = f"{since.timestamp() - FIND_SENT_MARGIN:.6f}"
        method = self.client.conversations_replies if thread else self.client.conversations_history
        where = {"ts": thread} if thread else {}
        cursor = None
        for _ in range(FIND_SENT_PAGES):
            response = await self._call(
                method,
                channel=channel,
                oldest=oldest,
                limit=FIND_SENT_PAGE,
                include_all_metadata=True,
                cursor=cursor,
                **where,
            )
            for message in response.get("messages") or ():
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == OUTBOX_EVENT and (
                    (metadata.get("event_payload") or {}).get("key") == key
                ):
                    return str(message.get("ts", ""))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        log.warning("Slack: %s too busy to look through; sending row %s again", channel, key)
        return None

    async def _tell(self, user: str, view: View, context: ChannelId | None, key: str) -> None:
        body = tr.message(view, self._labels)
        if context is not None and context != tr.NO_CHANNEL:
            try:
                await self._call(
                    self.client.chat_postEphemeral,
                    channel=local_part(context),
                    user=user,
                    text=body.text,
                    blocks=body.blocks or None,
                )
                return
            except DeliveryError as exc:
                if exc.reason not in EPHEMERAL_FALLBACK:
                    raise
        # A DM: chat.postMessage to a user id lands in the app's Messages tab.
        await self._call(
            self.client.chat_postMessage,
            channel=user,
            text=body.text,
            blocks=body.blocks or None,
            metadata=_keyed(key),
        )

    async def user_info(self, person: PersonId) -> PersonInfo:
        try:
            response = await self.client.users_info(user=local_part(person), include_locale=True)
        except SlackApiError as exc:
            if exc.response.get("error") == "user_not_found":
                raise LookupError(person) from None
            raise
        return tr.person_info(response.get("user") or {}, self.team_id)

    # -- helpers ---------------------------------------------------------------------

    async def _call(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        """A Web API call; Slack's answers become the outbox's DeliveryError."""
        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error", "")) or f"HTTP {response.status_code}"
            if response.status_code == 429:
                retry_after = _retry_after(response.headers)
                raise DeliveryError("ratelimited", retry_after=retry_after) from None
            raise DeliveryError(
                error,
                permanent=error in PERMANENT_ERRORS,
                refused=error in REFUSALS,
                # Slack's own trouble: the message may have been kept all the same
                uncertain=response.status_code >= 500 or error in SLACK_TROUBLE,
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached Slack before the answer was lost.
            raise DeliveryError(f"{type(exc).__name__}: {exc}", uncertain=True) from None

    def _waiting_modal(self, user: str) -> str | None:
        """The "Show full text" modal waiting for this person's next answer, taken (briefly:
        an answer a minute later belongs to something else)."""
        waiting = self._modals.pop(user, None)
        if waiting is None or _now() - waiting[1] > MODAL_WAIT:
            return None
        return waiting[0]


def _inbox_key(body: Mapping[str, Any]) -> str | None:
    """The request's key in the inbox (as unique as its event ids), or None for a
    request that is not kept (none that reaches the core)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"slack:{body['event_id']}"
    if body.get("command") and body.get("trigger_id"):
        return f"slack:command:{body['trigger_id']}"
    if body.get("type") == "block_actions" and body.get("trigger_id"):
        return f"slack:action:{body['trigger_id']}"
    view = body.get("view") or {}
    if body.get("type") == "view_submission" and view.get("id"):
        return f"slack:form:{view['id']}:{view.get('hash', '')}"
    return None


#: what `_message_event` answers for a request that is not a message event
_NOT_A_MESSAGE = object()


def _message_event(
    body: Mapping[str, Any], bot_user_id: str, workspace_url: str
) -> Message | Command | object | None:
    """A message event's translation (None: nobody writing: a bot's own card, an edit, a
    join), or `_NOT_A_MESSAGE` for any other request."""
    if body.get("type") != "event_callback" or (body.get("event") or {}).get("type") != "message":
        return _NOT_A_MESSAGE
    return tr.message_event(body, bot_user_id, workspace_url)


def _keyed(key: str) -> dict[str, Any]:
    """The outbox row's key, as message metadata: `find_sent` looks for it."""
    return {"event_type": OUTBOX_EVENT, "event_payload": {"key": key}}


def _now() -> float:
    return asyncio.get_running_loop().time()


def _retry_after(headers: Any) -> float:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return 1.0
