"""Feeds over real HTTP: a local server serves RSS and Atom, with ETags, and breaks on demand."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from harness import Chat, channel, person
from recording import field_value


@dataclass
class Entry:
    id: str
    title: str
    body: str
    author: str
    published: datetime


@dataclass
class FeedServer:
    entries: list[Entry] = field(default_factory=list)
    broken: bool = False
    #: the address serves a web page instead of the feed (a site moved its feed)
    page_instead: bool = False
    #: while set, /slow keeps its answer until the test lets it go
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    #: set when /slow has a request waiting
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[dict[str, str]] = field(default_factory=list)
    version: int = 1
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.version += 1

    async def rss(self, request: web.Request) -> web.Response:
        return self._answer(request, "application/rss+xml", self._rss())

    async def atom(self, request: web.Request) -> web.Response:
        return self._answer(request, "application/atom+xml", self._atom())

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>not a feed</body></html>", content_type="text/html")

    async def slow(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        self.asked.set()
        await self.hold.wait()
        return web.Response(text=self._rss(), content_type="application/rss+xml")

    def _answer(self, request: web.Request, kind: str, body: str) -> web.Response:
        self.requests.append(dict(request.headers))
        if self.broken:
            return web.Response(status=500, text="boom")
        if self.page_instead:
            return web.Response(text="<html><body>moved</body></html>", content_type="text/html")
        etag = f'"v{self.version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=body, content_type=kind, headers={"ETag": etag})

    def _rss(self) -> str:
        items = "".join(
            f"<item><guid>{e.id}</guid><title>{e.title}</title>"
            f"<link>https://blog.example/{e.id}</link><author>{e.author}</author>"
            f"<description><![CDATA[{e.body}]]></description>"
            f"<pubDate>{format_datetime(e.published)}</pubDate></item>"
            for e in self.entries
        )
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog comments</title>'
            f"<link>https://blog.example/</link>{items}</channel></rss>"
        )

    def _atom(self) -> str:
        entries = "".join(
            f"<entry><id>urn:{e.id}</id><title>{e.title}</title>"
            f'<link href="https://forum.example/{e.id}"/><author><name>{e.author}</name></author>'
            f'<content type="html"><![CDATA[{e.body}]]></content>'
            f"<updated>{e.published.isoformat()}</updated></entry>"
            for e in self.entries
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>Community forum</title><id>urn:forum</id>"
            f"<updated>2026-11-16T09:00:00Z</updated>{entries}</feed>"
        )


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    feed = FeedServer()
    app = web.Application()
    app.router.add_get("/rss", feed.rss)
    app.router.add_get("/atom", feed.atom)
    app.router.add_get("/page", feed.page)
    app.router.add_get("/slow", feed.slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    feed.port = runner.addresses[0][1]
    yield feed
    await runner.cleanup()


async def _poll(chat: Chat) -> None:
    await chat.app.feeds.poll_due()
    await chat.app.settle()


async def test_new_rss_entries_become_conversations_and_history_is_skipped(
    chat: Chat, server: FeedServer
) -> None:
    now = chat.clock()
    server.add(Entry("old-1", "Old", "from last year", "Ada", now - timedelta(days=300)))
    await chat.say("boss", "team add support")
    told = await chat.say("boss", f"feed add {server.url('/rss')}")
    assert told.startswith("Feed 1 added:")

    chat.clock.advance(minutes=1)
    server.add(
        Entry("c-42", "Re: post", "<p>Ma chi risponde <b>davvero</b>?</p>", "lettore", chat.clock())
    )
    await _poll(chat)

    cards = chat.platform.in_channel(channel("support"))
    assert [c.view.title for c in cards] == ["#1 · Blog comments · lettore"]  # type: ignore[union-attr]
    card = chat.platform.card(1)
    assert card.text == "Re: post\n\nMa chi risponde davvero?"
    assert card.link == "https://blog.example/c-42"


async def test_an_rss_author_written_with_an_address_is_shown_by_name(
    chat: Chat, server: FeedServer
) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", f"feed add {server.url('/rss')}")
    server.add(Entry("c-1", "Hi", "first", "anna@example.com (Anna B)", chat.clock()))
    server.add(Entry("c-2", "Hey", "second", "bea@example.com", chat.clock()))
    server.add(Entry("c-3", "Yo", "third", "Carla", chat.clock()))

    await _poll(chat)

    titles = [chat.platform.card(n).title for n in (1, 2, 3)]
    assert titles == [
        "#1 · Blog comments · Anna B (anna@example.com)",  # the address is her handle
        "#2 · Blog comments · bea@example.com",  # all the feed says of her
        "#3 · Blog comments · Carla",
    ]


async def test_an_unchanged_feed_is_asked_with_its_etag_and_costs_nothing(
    chat: Chat, server: FeedServer
) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", f"feed add {server.url('/rss')}")
    server.add(Entry("c-1", "Hi", "first", "Ada", chat.clock() + timedelta(seconds=1)))
    await _poll(chat)

    chat.clock.advance(minutes=10)
    await _poll(chat)

    assert server.requests[-1]["If-None-Match"] == f'"v{server.version}"'
    assert len(chat.platform.in_channel(channel("support"))) == 1

    chat.clock.advance(minutes=10)
    server.add(Entry("c-2", "Again", "second", "Bea", chat.clock()))
    await _poll(chat)
    assert len(chat.platform.in_channel(channel("support"))) == 2


async def test_a_feed_is_not_polled_before_its_interval(chat: Chat, server: FeedServer) -> None:
    await chat.say("boss", f"feed add {server.url('/rss')}")
    assert len(server.requests) == 1  # fetched once, to see it is a feed
    await _poll(chat)
    chat.clock.advance(minutes=9)
    await _poll(chat)
    assert len(server.requests) == 2


async def test_an_atom_feed_for_a_named_team_goes_to_that_team(
    chat: Chat, server: FeedServer
) -> None:
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add community", where="community")
    await chat.say("boss", f"feed add {server.url('/atom')} community")
    server.add(Entry("t-7", "Export?", "Does the app export CSV?", "Lena", chat.clock()))

    await _poll(chat)

    card = chat.platform.card(1)
    assert card.title == "#1 · Community forum · Lena"
    assert field_value(card, "Team") == "community"
    assert card.link == "https://forum.example/t-7"


async def test_a_failing_feed_is_reported_once_then_its_recovery(
    chat: Chat, server: FeedServer
) -> None:
    await chat.say("boss", f"feed add {server.url('/rss')}")
    server.broken = True

    for _ in range(3):
        await _poll(chat)
        chat.clock.advance(days=1)

    reports = [m for m in chat.platform.private(person("boss")) if "fails" in m]
    assert reports == [
        f"The feed {server.url('/rss')} fails: the server answered HTTP 500. "
        "I will keep trying, less often, and tell you when it works again."
    ]
    assert len(server.requests) == 1 + 3  # the check when added, then three polls
    assert "failing ×3: the server answered HTTP 500" in await chat.say("boss", "feed list")

    server.broken = False
    await _poll(chat)
    assert chat.platform.last_private(person("boss")) == (
        f"The feed {server.url('/rss')} works again."
    )


async def test_a_feed_that_turns_into_a_page_is_reported(chat: Chat, server: FeedServer) -> None:
    await chat.say("boss", f"feed add {server.url('/rss')}")
    server.page_instead = True
    await _poll(chat)
    assert "it is not an RSS or Atom feed" in chat.platform.last_private(person("boss"))


def _closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_feed_add_fetches_the_feed_once_and_refuses_what_is_not_one(
    chat: Chat, server: FeedServer
) -> None:
    missing = server.url("/missing.xml")
    assert await chat.say("boss", f"feed add {missing}") == (
        f"I did not add {missing}: the server answered HTTP 404. Nothing was stored."
    )
    page = server.url("/page")
    assert await chat.say("boss", f"feed add {page}") == (
        f"I did not add {page}: it is not an RSS or Atom feed. Nothing was stored."
    )
    nowhere = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    told = await chat.say("boss", f"feed add {nowhere}")
    assert told.startswith(f"I did not add {nowhere}: could not fetch it (")
    assert told.endswith("). Nothing was stored.")
    assert (await chat.say("boss", "feed add http://a..b/feed.xml")).startswith(
        "I did not add http://a..b/feed.xml: could not fetch it (UnicodeError: "
    )
    assert await chat.say("boss", "feed list") == "No feeds yet. `feed add URL [team]` adds one."
    await chat.say("boss", "lang it")
    assert await chat.say("boss", f"feed add {missing}") == (
        f"Non ho aggiunto {missing}: the server answered HTTP 404. Non ho salvato nulla."
    )

    # a feed is accepted, and known by its title at once
    assert (await chat.say("boss", f"feed add {server.url('/rss')}")).startswith("Feed 1 ")
    assert (await chat.say("boss", "feed list")).startswith("1. Blog comments — ")


async def test_a_slow_feed_host_holds_up_nobody_else(chat: Chat, server: FeedServer) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "hello?")
    adding = asyncio.create_task(chat.say("boss", f"feed add {server.url('/slow')}"))
    await asyncio.wait_for(server.asked.wait(), timeout=5)  # the host has it, and keeps it

    # meanwhile others work on: nothing waits for the feed host to answer
    told = await asyncio.wait_for(chat.say("ann", "claim 1"), timeout=5)
    assert told.startswith("#1 is yours.")

    server.hold.set()
    assert (await adding).startswith("Feed 1 added:")


async def test_only_an_admin_s_feed_add_fetches_anything(chat: Chat, server: FeedServer) -> None:
    assert (await chat.say("ann", f"feed add {server.url('/rss')}")).startswith("Not allowed")
    assert server.requests == []


async def test_feed_commands_check_their_input(chat: Chat, server: FeedServer) -> None:
    assert await chat.say("boss", "feed add ftp://x.example/f") == (
        "`ftp://x.example/f` is not an http(s) address."
    )
    assert "There is no team called nope" in await chat.say(
        "boss", f"feed add {server.url('/rss')} nope"
    )
    await chat.say("boss", f"feed add {server.url('/rss')}")
    assert await chat.say("boss", f"feed add {server.url('/rss')}") == (
        "That feed is already watched (feed 1)."
    )
    assert await chat.say("boss", "feed remove 1") == f"Feed 1 removed: {server.url('/rss')}."
    assert await chat.say("boss", "feed remove 1") == "There is no feed 1. `feed list` shows them."
    assert await chat.say("boss", "feed list") == "No feeds yet. `feed add URL [team]` adds one."
    assert (await chat.say("ann", "feed list")).startswith("Not allowed")
