"""Feeds: `feed add|list|remove` for admins, and telling admins when a feed fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from bot.context import Context
from bot.events import FeedProblem
from bot.intake.feeds import FeedCheck
from bot.messages import Texts
from bot.people import ADMINS
from bot.router import Router, UsageError
from handlers.people import tell_admins
from handlers.text import number
from storage import feeds, teams
from storage.models import Feed, Team

#: fetches a feed once and says what it found (the poller's `check`)
Check = Callable[[str], Awaitable[FeedCheck]]


def register(router: Router, poll_minutes: int, check: Check) -> None:
    async def fetch_first(args: Sequence[str]) -> FeedCheck | None:
        # before the transaction (the router's prepare step): a slow host holds no writer
        url = _url(args)
        return await check(url) if url else None

    async def add(ctx: Context, args: Sequence[str]) -> None:
        await feed_add(ctx, args, poll_minutes)

    router.command("feed add", add, ADMINS, prepare=fetch_first)
    router.command("feed list", feed_list, ADMINS)
    router.command("feed remove", feed_remove, ADMINS)
    router.on(FeedProblem, on_problem)


def _url(args: Sequence[str]) -> str:
    """The feed's address, if `feed add` was given one that may be fetched."""
    if len(args) not in (1, 2):
        return ""
    url = args[0].strip("<>")  # Slack wraps links in <>
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else ""


async def feed_add(ctx: Context, args: Sequence[str], poll_minutes: int) -> None:
    """Watch a feed that was fetched once (the router's prepare step) and is one."""
    if len(args) not in (1, 2):
        raise UsageError()
    texts, url = ctx.texts, _url(args)
    if not url:
        ctx.reply(texts.feed_bad_url.format(url=args[0].strip("<>")))
        return
    team: Team | None = None
    if len(args) == 2:
        team = await teams.by_name(ctx.session, args[1])
        if team is None:
            names = ", ".join(t.name for t in await teams.every(ctx.session)) or "—"
            ctx.reply(texts.team_unknown.format(team=args[1], teams=names))
            return
    if (existing := await feeds.by_url(ctx.session, url)) is not None:
        ctx.reply(texts.feed_exists.format(id=existing.id))
        return
    checked = ctx.prepared
    assert isinstance(checked, FeedCheck), "the router fetches a valid address first"
    if checked.error:
        ctx.reply(texts.feed_refused.format(url=url, error=checked.error))
        return
    feed = Feed(
        url=url,
        title=checked.title,
        team_id=team.id if team else None,
        since=ctx.now,
        next_poll_at=ctx.now,
        added_by=ctx.sender.id,
        created_at=ctx.now,
    )
    ctx.session.add(feed)
    await ctx.session.flush()
    ctx.reply(
        texts.feed_added.format(
            id=feed.id,
            url=url,
            team=team.name if team else texts.feed_any_team,
            minutes=poll_minutes,
        )
    )


async def feed_list(ctx: Context, args: Sequence[str]) -> None:
    if args:
        raise UsageError()
    texts = ctx.texts
    every = await feeds.every(ctx.session)
    if not every:
        ctx.reply(texts.feeds_none)
        return
    names = {t.id: t.name for t in await teams.every(ctx.session)}
    lines = []
    for feed in every:
        team = names.get(feed.team_id) if feed.team_id is not None else None
        lines.append(
            texts.feeds_line.format(
                id=feed.id,
                title=feed.title or texts.feed_no_title,
                url=feed.url,
                team=team or texts.feed_any_team,
                state=_state(texts, feed),
            )
        )
    ctx.reply("\n".join(lines))


def _state(texts: Texts, feed: Feed) -> str:
    if feed.failures:
        return texts.feed_failing_state.format(count=feed.failures, error=feed.last_error)
    # Every poll, good or bad, moves the next one past the moment the feed was added.
    if feed.next_poll_at <= feed.created_at:
        return texts.feed_not_polled
    return texts.feed_working


async def feed_remove(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 1:
        raise UsageError()
    n = number(args[0])
    feed = await ctx.session.get(Feed, n)
    if feed is None:
        ctx.reply(ctx.texts.feed_unknown.format(id=n))
        return
    await ctx.session.delete(feed)
    ctx.reply(ctx.texts.feed_removed.format(id=feed.id, url=feed.url))


async def on_problem(ctx: Context, event: FeedProblem) -> None:
    await tell_admins(
        ctx,
        lambda texts: (
            texts.feed_failing.format(url=event.feed_url, error=event.error)
            if event.error
            else texts.feed_recovered.format(url=event.feed_url)
        ),
    )
