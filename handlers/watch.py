"""Watched channels: a channel shared with customers (Slack Connect, a public Matrix room).

A customer's message there becomes a mention (the thread is the conversation);
the owner's reply in that thread marks the conversation replied on its own, so
nobody has to type `replied N` for what Inloop saw happen.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import Context
from bot.events import Author, MentionReceived, Message, local_part, platform_of
from bot.people import ADMINS, is_staff
from bot.router import Router, UsageError
from handlers import card, routing
from handlers.customers import Relationships
from storage import conversations, teams, watched
from storage.models import Person, Status, Team, WatchedChannel


def register(router: Router, relationships: Relationships) -> None:
    async def on_watched_messages(ctx: Context, events: Sequence[Message]) -> list[bool]:
        return await on_messages(ctx, events, relationships)

    router.command("team watch", team_watch, ADMINS)
    router.command("team unwatch", team_unwatch, ADMINS)
    router.on_batch(Message, on_watched_messages)


async def team_watch(ctx: Context, args: Sequence[str]) -> None:
    if len(args) > 1 or ctx.channel is None:
        raise UsageError()
    texts = ctx.texts
    team: Team | None
    if args:
        team = await teams.by_name(ctx.session, args[0])
        if team is None:
            names = ", ".join(t.name for t in await teams.every(ctx.session)) or "—"
            ctx.reply(texts.team_unknown.format(team=args[0], teams=names))
            return
    else:
        team = await teams.default(ctx.session)
        if team is None:
            ctx.reply(texts.teams_none)
            return
    if (owner := await teams.by_channel(ctx.session, ctx.channel)) is not None:
        # Staff talk to each other there; watching it would turn them into "customers".
        ctx.reply(texts.watch_owner_channel.format(team=owner.name))
        return
    existing = await watched.by_channel(ctx.session, ctx.channel)
    if existing is None:
        assert team.id is not None
        ctx.session.add(WatchedChannel(channel=ctx.channel, team_id=team.id, created_at=ctx.now))
    else:
        existing.team_id = team.id or existing.team_id
    ctx.reply(texts.watching.format(team=team.name))


async def team_unwatch(ctx: Context, args: Sequence[str]) -> None:
    if args or ctx.channel is None:
        raise UsageError()
    existing = await watched.by_channel(ctx.session, ctx.channel)
    if existing is None:
        ctx.reply(ctx.texts.not_watched)
        return
    await ctx.session.delete(existing)
    ctx.reply(ctx.texts.unwatched)


async def on_messages(
    ctx: Context, events: Sequence[Message], relationships: Relationships
) -> list[bool]:
    """A batch of chat messages (the Slack adapter groups those that arrive together);
    for each, whether it was new. Set-based: one read finds which channels are watched
    and for which team, one read per distinct sender, then the customers' messages go
    to routing together, as a webhook batch does.

    Only a customer's message keeps a row that dedupes it (its mention: the same
    message again is a retry). A message in a channel nobody watches writes nothing,
    and a staff reply is idempotent (a conversation already replied stays as it is).
    Staff replies run in their place in the batch: the customers' messages before one
    are routed first, so a reply always sees the conversation those opened.
    """
    fresh = [True] * len(events)
    watching = await watched.teams_of(
        ctx.session, {e.channel for e in events if e.text.strip() or e.files}
    )
    people: dict[str, Person] = {}
    pending: list[tuple[int, MentionReceived]] = []

    async def route_pending() -> None:
        if not pending:
            return
        kept = await routing.ingest(
            ctx, [m for _, m in pending], relationships, candidates=list(watching.values())
        )
        for (i, _), is_new in zip(pending, kept, strict=True):
            fresh[i] = is_new
        pending.clear()

    for i, event in enumerate(events):
        team = watching.get(event.channel)
        if team is None or not (event.text.strip() or event.files):
            continue
        if (person := people.get(event.sender)) is None:
            person = await ctx.directory.ensure(ctx.session, event.sender, ctx.now)
            people[event.sender] = person
        source = platform_of(event.channel)
        if person.role is None:  # not staff, not a consultant: a customer
            pending.append((i, _mention(ctx, event, person, source, team)))
        elif is_staff(person) and event.thread:
            await route_pending()
            await _staff_replied(ctx.as_sender(person), source, event.thread)
    await route_pending()
    return fresh


def _mention(
    ctx: Context, event: Message, person: Person, source: str, team: Team
) -> MentionReceived:
    return MentionReceived(
        source=source,
        external_id=event.message_ref or event.event_id,
        conversation_key=event.thread or event.message_ref or event.event_id,
        author=Author(person.display_name, local_part(event.sender)),
        text=_with_files(ctx, event),
        url=event.url,
        created_at=ctx.now,
        team=team.name,
        raw=event.raw,
    )


def _with_files(ctx: Context, event: Message) -> str:
    """The message's text, then a line per file: a customer's photo alone is still a
    message (in the team channel's language: it is shown on the card)."""
    lines = [event.text] if event.text.strip() else []
    texts = ctx.channel_texts
    lines += [
        texts.attached_file.format(name=name) if name else texts.attached_file_unnamed
        for name in event.files
    ]
    return "\n".join(lines)


async def _staff_replied(ctx: Context, source: str, thread: str) -> None:
    conversation = await conversations.by_key(ctx.session, source, thread)
    if conversation is None or conversation.status == Status.RESOLVED:
        return
    me = ctx.sender
    if conversation.owner_id not in (None, me.id):
        return  # a colleague chiming in is not the owner's reply
    if conversation.owner_id is None:
        conversation.owner_id = me.id
        conversation.claimed_at = conversation.claimed_at or ctx.now
    if conversation.status == Status.REPLIED and conversation.first_reply_at:
        return
    conversation.status = Status.REPLIED
    conversation.first_reply_at = conversation.first_reply_at or ctx.now
    conversation.updated_at = ctx.now
    ctx.session.add(conversation)
    conversations.audit(ctx.session, conversation.id, me.id, "replied", ctx.now, "in thread")
    await card.refresh(ctx, conversation)
