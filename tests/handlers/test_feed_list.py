"""`feed list` as an admin reads it: a title, where entries go, and how the feed is doing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from harness import Chat

RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog comments</title>'
    "<link>https://blog.example/</link></channel></rss>"
)


UNTITLED = '<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>'


@pytest.fixture
async def feed_url() -> AsyncIterator[str]:
    """A local feed with a title and no entries yet (and at /untitled, one without)."""
    app = web.Application()

    async def rss(request: web.Request) -> web.Response:
        return web.Response(text=RSS, content_type="application/rss+xml")

    async def untitled(request: web.Request) -> web.Response:
        return web.Response(text=UNTITLED, content_type="application/rss+xml")

    app.router.add_get("/rss", rss)
    app.router.add_get("/untitled", untitled)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/rss"
    await runner.cleanup()


async def test_a_new_feed_has_the_title_it_was_checked_with_and_was_not_polled(
    chat: Chat, feed_url: str
) -> None:
    untitled = feed_url.replace("/rss", "/untitled")
    await chat.say("boss", "team add support")
    await chat.say("boss", f"feed add {feed_url}")
    await chat.say("boss", f"feed add {untitled} support")

    assert (await chat.say("boss", "feed list")).splitlines() == [
        f"1. Blog comments — {feed_url} → the team its routing tags choose — not polled yet",
        f"2. (no title yet) — {untitled} → support — not polled yet",
    ]


async def test_after_a_poll_the_feed_has_its_title_and_works(chat: Chat, feed_url: str) -> None:
    await chat.say("boss", f"feed add {feed_url}")

    await chat.app.feeds.poll_due()
    await chat.app.settle()

    assert await chat.say("boss", "feed list") == (
        f"1. Blog comments — {feed_url} → the team its routing tags choose — working"
    )


async def test_feed_list_in_italian(chat: Chat, feed_url: str) -> None:
    untitled = feed_url.replace("/rss", "/untitled")
    await chat.say("boss", "lang it")
    await chat.say("boss", f"feed add {untitled}")

    assert await chat.say("boss", "feed list") == (
        f"1. (ancora senza titolo) — {untitled} → "
        "il team scelto dai tag di smistamento — non ancora controllato"
    )
