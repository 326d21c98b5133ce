"""Routing: a customer mention joins its conversation or opens a new one in the right team.

- the same (source, external_id) again is a re-delivery: nothing happens;
- the same (source, conversation_key) is a follow-up: the card is updated, the
  owner told, and a resolved conversation reopened;
- otherwise a new conversation goes to the first team whose tags match the
  mention's tags or a word of its text (case- and accent-insensitive), else to
  the default team, else it waits, kept, until the first team is created.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from bot.context import Context
from bot.events import MentionReceived
from bot.people import STAFF
from bot.router import Router, UsageError
from bot.views import Notice
from handlers import card
from handlers.claims import reopen_conversation
from handlers.text import one_line
from storage import conversations, people, teams
from storage.models import Conversation, Mention, Person, Role, Status, Team


def register(router: Router) -> None:
    router.on(MentionReceived, on_mention)
    router.command("route test", route_test, STAFF)


def fold(text: str) -> str:
    """Lower case without accents: "Rimborso" and "rimbórso" both fold to "rimborso"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise_tags(tags: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = fold(tag.strip().lstrip("#"))
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def _words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() else " " for c in fold(text)).split())


@dataclass(frozen=True)
class Route:
    team: Team | None
    #: "tag", "word", "named", "default" or "none"
    reason: str
    matched: str = ""


def choose_team(
    candidates: Sequence[Team], tags: Iterable[str], text: str, named: str = ""
) -> Route:
    if named:
        for team in candidates:
            if team.name.casefold() == named.casefold():
                return Route(team, "named", team.name)
    given, words = normalise_tags(tags), _words(text)
    for team in candidates:
        rules = team.tags.split()
        if tag := next((t for t in given if t in rules), None):
            return Route(team, "tag", tag)
        if word := next((t for t in rules if t in words), None):
            return Route(team, "word", word)
    default = next((t for t in candidates if t.is_default), None)
    return Route(default, "default" if default else "none")


async def route_test(ctx: Context, args: Sequence[str]) -> None:
    if not args:
        raise UsageError()
    route = choose_team(await teams.every(ctx.session), (), " ".join(args))
    texts = ctx.texts
    if route.team is None:
        ctx.reply(texts.route_nowhere)
        return
    template = {
        "tag": texts.route_by_tag,
        "word": texts.route_by_word,
        "default": texts.route_default,
    }[route.reason]
    ctx.reply(template.format(team=route.team.name, tag=route.matched))


async def on_mention(ctx: Context, event: MentionReceived) -> None:
    session = ctx.session
    if await conversations.mention(session, event.source, event.external_id) is not None:
        return  # a re-delivery: the first delivery already did everything
    conversation = await conversations.by_key(session, event.source, event.conversation_key)
    is_new = False
    if conversation is None:
        conversation, is_new = await _open(ctx, event)
    assert conversation.id is not None
    session.add(
        Mention(
            source=event.source,
            external_id=event.external_id,
            conversation_id=conversation.id,
            author_name=event.author.name,
            author_handle=event.author.handle,
            text=event.text,
            url=event.url,
            lang=event.lang,
            tags=" ".join(normalise_tags(event.tags)),
            created_at=event.created_at,
            received_at=ctx.now,
        )
    )
    conversation.mention_count += 1
    conversation.updated_at = ctx.now
    if is_new:
        conversations.audit(session, conversation.id, None, "created", ctx.now)
        await _announce(ctx, conversation)
        return
    conversations.audit(session, conversation.id, None, "followup", ctx.now)
    if conversation.status == Status.RESOLVED:
        reopen_conversation(conversation)
        conversations.audit(session, conversation.id, None, "reopened", ctx.now)
    session.add(conversation)
    await session.flush()
    await card.refresh(ctx, conversation)
    if conversation.owner_id is not None:
        owner = await session.get(Person, conversation.owner_id)
        assert owner is not None
        ctx.tell(
            owner,
            Notice(
                ctx.texts_of(owner).followup_for_owner.format(
                    number=conversation.id,
                    customer=event.author.name,
                    excerpt=one_line(event.text, 200),
                )
            ),
        )


async def _open(ctx: Context, event: MentionReceived) -> tuple[Conversation, bool]:
    """A new conversation, or the one a concurrent delivery just opened (then False)."""
    team = choose_team(await teams.every(ctx.session), event.tags, event.text, event.team).team
    conversation = Conversation(
        source=event.source,
        conversation_key=event.conversation_key,
        customer_name=event.author.name,
        customer_handle=event.author.handle,
        url=event.url,
        team_id=team.id if team else None,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(conversation)
    except IntegrityError:
        # Another delivery opened it a moment ago (PostgreSQL runs them concurrently).
        existing = await conversations.by_key(ctx.session, event.source, event.conversation_key)
        assert existing is not None
        return existing, False
    return conversation, True


async def _announce(ctx: Context, conversation: Conversation) -> None:
    await ctx.session.flush()
    team = await ctx.session.get(Team, conversation.team_id) if conversation.team_id else None
    if team is not None:
        await card.post(ctx, conversation, team)
        return
    if len(await conversations.without_team(ctx.session)) > 1:
        return  # admins were told when the first one began to wait
    for admin in await people.with_role(ctx.session, Role.ADMIN):
        ctx.tell(
            admin,
            Notice(
                ctx.texts_of(admin).no_team_for_mention.format(
                    number=conversation.id, customer=conversation.customer_name
                )
            ),
        )
