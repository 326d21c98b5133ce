"""The feed poller: RSS and Atom feeds (blog comments, forums, review sites) as mentions.

Each feed is polled every FEED_POLL_MINUTES with a conditional GET (ETag and
Last-Modified), so an unchanged feed costs one 304. Each new entry becomes a
mention through the same validation as the webhook; entries dated before the
feed was added are history and are skipped. A failing feed is retried with
exponential backoff (capped at a day) and reported to admins once per run of
failures, not on every poll.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import feedparser

from bot.clock import Clock
from bot.events import EventId, FeedProblem, MentionReceived
from bot.intake.html_text import html_to_text
from bot.intake.mentions import MAX_TEXT, Invalid, parse_mention
from bot.metrics import Metrics
from bot.platform import EventSink
from storage import feeds
from storage.database import Database
from storage.models import Feed, Team

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException, str], None]
MAX_FEED_BYTES = 5 * 1024 * 1024
MAX_BACKOFF = timedelta(days=1)


class FeedError(Exception):
    """A feed could not be fetched or read; the message is what admins are told."""


@dataclass(frozen=True)
class FeedCheck:
    """What fetching a feed once said: its title, or why it cannot be watched."""

    title: str = ""
    #: empty when the address serves an RSS or Atom feed; else what admins are told
    error: str = ""


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    etag: str
    last_modified: str


class FeedPoller:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        on_error: ErrorHook,
        *,
        interval_minutes: int,
        check_every: float = 30.0,
        metrics: Metrics | None = None,
    ):
        self._db = db
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._on_error = on_error
        self._interval = timedelta(minutes=interval_minutes)
        self._check_every = check_every
        self._sink: EventSink | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        self._task = asyncio.create_task(self._run(), name="feeds")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_due()
            except Exception as exc:
                self._on_error(exc, "feed poller")
            await asyncio.sleep(self._check_every)

    async def poll_due(self) -> int:
        """Poll every feed whose time has come; returns how many were polled."""
        async with self._db.transaction() as session:
            due = list(await feeds.due(session, self._clock()))
        for feed in due:
            await self._poll(feed)
        return len(due)

    async def check(self, url: str) -> FeedCheck:
        """Fetch `url` once, as a poll would, to see that a feed is there before it is
        watched. Never inside a transaction: a slow host must not hold the writers."""
        try:
            fetched = await self._get(url, {})
            parsed = _parse(fetched.body)
        except FeedError as exc:
            return FeedCheck(error=str(exc))
        return FeedCheck(title=_title(parsed)[:255])

    async def _poll(self, feed: Feed) -> None:
        assert self._sink is not None
        try:
            fetched = await self._fetch(feed)
            events = [] if fetched.status == 304 else await self._mentions(feed, fetched.body)
            if events:
                await self._sink.handle_many(events)
        except FeedError as exc:
            self._metrics.feed_polled(ok=False)
            await self._failed(feed, str(exc))
            return
        self._metrics.feed_polled(ok=True)
        await self._succeeded(feed, fetched)

    async def _fetch(self, feed: Feed) -> Fetched:
        headers = {}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        fetched = await self._get(feed.url, headers)
        if fetched.status == 304:
            return replace(fetched, etag=feed.etag, last_modified=feed.last_modified)
        return fetched

    async def _get(self, url: str, headers: dict[str, str]) -> Fetched:
        if self._http is None:  # opened on first use: most installations have no feeds
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                headers={"User-Agent": "Inloop feed poller"},
            )
        try:
            async with self._http.get(url, headers=headers) as resp:
                if resp.status == 304:
                    return Fetched(304, b"", "", "")
                if resp.status >= 400:
                    raise FeedError(f"the server answered HTTP {resp.status}")
                body = await resp.content.read(MAX_FEED_BYTES + 1)
                if len(body) > MAX_FEED_BYTES:
                    raise FeedError("the feed is larger than 5 MiB")
                return Fetched(
                    resp.status,
                    body,
                    resp.headers.get("ETag", ""),
                    resp.headers.get("Last-Modified", ""),
                )
        # ValueError: an address no request can be made of (`http://a..b/`, an IDNA error)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise FeedError(f"could not fetch it ({type(exc).__name__}: {exc})") from None

    async def _mentions(self, feed: Feed, body: bytes) -> list[MentionReceived]:
        parsed = _parse(body)
        title = _title(parsed)
        source = (title or urlsplit(feed.url).hostname or "feed")[:64]
        team = ""
        if feed.team_id is not None:
            async with self._db.transaction() as session:
                found = await session.get(Team, feed.team_id)
                team = found.name if found else ""
        feed.title = title[:255]
        now = self._clock()
        events = []
        for entry in parsed.entries:
            item, created = _entry_body(entry, source, now)
            if created < feed.since:
                continue  # history from before the feed was added
            try:
                event = parse_mention(item, now)
            except Invalid as exc:
                log.warning("skipping an entry of %s: %s", feed.url, exc)
                continue
            events.append(replace(event, team=team))
        return events

    async def _succeeded(self, feed: Feed, fetched: Fetched) -> None:
        recovered = feed.reported
        async with self._db.transaction() as session:
            row = await session.get(Feed, feed.id)
            if row is None:
                return  # removed while we polled
            row.title = feed.title or row.title
            row.etag = fetched.etag
            row.last_modified = fetched.last_modified
            row.failures = 0
            row.last_error = ""
            row.reported = False
            row.next_poll_at = self._clock() + self._interval
        if recovered:
            await self._report(feed, "")

    async def _failed(self, feed: Feed, error: str) -> None:
        failures = feed.failures + 1
        delay = min(self._interval * 2 ** min(failures, 16), MAX_BACKOFF)
        log.warning("feed %s failed (%s); next try in %s", feed.url, error, delay)
        async with self._db.transaction() as session:
            row = await session.get(Feed, feed.id)
            if row is None:
                return
            row.failures = failures
            row.last_error = error
            row.reported = True
            row.next_poll_at = self._clock() + delay
        if not feed.reported:
            await self._report(feed, error)

    async def _report(self, feed: Feed, error: str) -> None:
        assert self._sink is not None
        episode = self._clock().isoformat()
        await self._sink.handle(FeedProblem(EventId(f"feed:{feed.id}:{episode}"), feed.url, error))


def _parse(body: bytes) -> Any:
    parsed: Any = feedparser.parse(body)
    if not parsed.get("version") and not parsed.entries:
        raise FeedError("it is not an RSS or Atom feed")
    return parsed


def _title(parsed: Any) -> str:
    return str(parsed.feed.get("title", "")).strip()


def _author(entry: Any, source: str) -> dict[str, str]:
    """The entry's author as a person: their name shown, their address kept as the
    handle. RSS writes `anna@example.com (Anna B)`, Atom a name and an email; feedparser
    takes both apart into `author_detail`."""
    detail = entry.get("author_detail") or {}
    email = str(detail.get("email") or "").strip()
    name = str(detail.get("name") or "").strip() or email or str(entry.get("author") or "")
    author = {"name": (name.strip() or source)[:255]}
    if email:
        author["handle"] = email[:255]
    return author


def _entry_body(entry: Any, source: str, now: datetime) -> tuple[dict[str, Any], datetime]:
    link = str(entry.get("link", ""))
    title = html_to_text(str(entry.get("title", "")))
    summary = html_to_text(str(entry.get("summary", "")))
    text = summary if not title or title in summary else f"{title}\n\n{summary}".strip()
    external_id = str(entry.get("id") or link) or hashlib.sha256(text.encode()).hexdigest()
    struct = entry.get("published_parsed") or entry.get("updated_parsed")
    created = datetime.fromtimestamp(calendar.timegm(struct), UTC) if struct else now
    body = {
        "source": source,
        "external_id": external_id[:512],
        "author": _author(entry, source),
        "text": text[:MAX_TEXT] or link or "(empty entry)",
        "url": link if link.startswith(("http://", "https://")) else "",
        "created_at": created.isoformat(),
    }
    return body, created
