"""Routing: a customer mention joins its conversation or opens a new one in the right team.

- the same (source, external_id) again is a re-delivery: nothing happens;
- the same (source, conversation_key) is a follow-up: the card is updated, the
  owner told, and a resolved conversation reopened;
- otherwise a new conversation goes to the first team whose tags match the
  mention's tags or a word of its text (case- and accent-insensitive), else to
  the default team, else it waits, kept, until the first team is created.

Its card goes to the team channel. A returning customer's new conversation is
offered first to their relationship owner, who holds it alone for a while
(handlers.customers); any other is offered, as a private copy (with Claim), to one
of the team's members on duty (inside a commitment block), if any is:
`choose_offer` says whom.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.context import Context
from bot.events import ChannelId, MentionReceived
from bot.people import STAFF
from bot.router import Router, UsageError
from bot.views import Card, Field, Notice
from handlers import card, customers
from handlers.claims import reopen_conversation
from handlers.customers import Arrival, Relationships
from handlers.people import tell_admins
from handlers.text import one_line
from storage import conversations, duty, teams
from storage import events as processed
from storage.cards import CardFacts
from storage.duty import OnDuty
from storage.models import Conversation, Person, Status, Team

_TAG_SEPARATORS = re.compile(r"[,\s]+")


def register(router: Router, relationships: Relationships) -> None:
    async def ingest_batch(ctx: Context, events: Sequence[MentionReceived]) -> list[bool]:
        return await ingest(ctx, events, relationships)

    router.on_batch(MentionReceived, ingest_batch)
    router.command("route test", route_test, STAFF)


def fold(text: str) -> str:
    """Lower case without accents: "Rimborso" and "rimbórso" both fold to "rimborso"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise_tags(tags: Iterable[str]) -> list[str]:
    """Tags folded, without `#`, once each, in order; each item split on commas and
    spaces, as `commit` days are (`refund,rimborso` is two tags, never one)."""
    seen: dict[str, None] = {}
    for item in tags:
        for tag in _TAG_SEPARATORS.split(item):
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


#: unclaimed offers a person on duty holds at most: in a burst the rest wait in the
#: channel, rather than pile up in one person's private messages
OFFER_LIMIT = 3


def choose_offer(
    conversation: Conversation, on_duty: Sequence[OnDuty], offered: Mapping[int, int]
) -> OnDuty | None:
    """Whom a new conversation is offered to, privately, among its team's members on
    duty: the one with the fewest open conversations, counting offers still unclaimed
    (those made earlier in their block, and `offered` in this batch: a burst is
    spread, not heaped on one person); then by name. Nobody holds more than
    OFFER_LIMIT unclaimed offers. None: nobody to offer it to, and the card in the
    team channel is all there is.

    Every rule of who is offered what is here: one that comes first (a customer's
    relationship owner) goes before this choice.
    """

    def offers(d: OnDuty) -> int:
        return d.offers_waiting + offered.get(d.person.id or 0, 0)

    free = [d for d in on_duty if offers(d) < OFFER_LIMIT]
    if not free:
        return None
    return min(
        free,
        key=lambda d: (
            d.open_conversations + offers(d),
            d.person.display_name.casefold(),
            d.person.id or 0,
        ),
    )


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


async def ingest(
    ctx: Context,
    events: Sequence[MentionReceived],
    relationships: Relationships,
    *,
    candidates: Sequence[Team] | None = None,
) -> list[bool]:
    """Route a batch of mentions with a fixed handful of statements, whatever its size;
    for each, whether it was new (the same source and external id again is a retry).

    Webhook batches of hundreds are the common case, so this is set-based: one
    statement dedupes, one read finds the conversations the mentions join, one
    INSERT each adds the new conversations, the mentions, the history and the cards
    (built from memory). Follow-ups on existing conversations are rarer and take the
    ordinary path. `candidates`: the teams to route among, when the caller has read
    them already (a watched channel's team, which every one of its mentions names).
    """
    session = ctx.session
    fresh = await processed.first_times(session, [e.event_id for e in events], ctx.now)
    threads: dict[tuple[str, str], list[MentionReceived]] = {}
    for event, is_new in zip(events, fresh, strict=True):
        if is_new:
            threads.setdefault((event.source, event.conversation_key), []).append(event)
    if not threads:
        return fresh
    known = await conversations.by_keys(session, list(threads))
    opened, arrivals = await _open(
        ctx, {k: t for k, t in threads.items() if k not in known}, relationships, candidates
    )
    if lost := [k for k in threads if k not in known and k not in opened]:
        known |= await conversations.by_keys(session, lost)  # a concurrent delivery won
    numbers = {k: c.id for k, c in known.items()} | {k: c.id for k, (c, _) in opened.items()}
    await conversations.add_mentions(
        session,
        [
            _mention_row(ctx, event, numbers[key])
            for key, thread in threads.items()
            for event in thread
        ],
    )
    await conversations.audit_many(
        session,
        [
            {
                "conversation_id": numbers[key],
                "actor_id": None,
                "action": "created" if key in opened and i == 0 else "followup",
                "detail": "",
                "at": ctx.now,
            }
            for key, thread in threads.items()
            for i in range(len(thread))
        ],
    )
    await _announce(ctx, opened, threads, arrivals)
    for key, conversation in known.items():
        await _follow_up(ctx, conversation, threads[key])
    return fresh


def _mention_row(ctx: Context, event: MentionReceived, number: int | None) -> dict[str, Any]:
    return {
        "source": event.source,
        "external_id": event.external_id,
        "conversation_id": number,
        "author_name": event.author.name,
        "author_handle": event.author.handle,
        "text": event.text,
        "url": event.url,
        "lang": event.lang,
        "tags": " ".join(normalise_tags(event.tags)),
        "created_at": event.created_at,
        "received_at": ctx.now,
    }


async def _open(
    ctx: Context,
    threads: Mapping[tuple[str, str], Sequence[MentionReceived]],
    relationships: Relationships,
    candidates: Sequence[Team] | None = None,
) -> tuple[dict[tuple[str, str], tuple[Conversation, Team | None]], dict[tuple[str, str], Arrival]]:
    """New conversations for these threads, each in its team and for its customer
    (unsaved: Core inserts them)."""
    if not threads:
        return {}, {}
    if candidates is None:
        candidates = await teams.every(ctx.session)
    planned: dict[tuple[str, str], tuple[Conversation, Team | None]] = {}
    for (source, key), thread in threads.items():
        first = thread[0]
        team = choose_team(candidates, first.tags, first.text, first.team).team
        planned[(source, key)] = (
            conversations.unsaved(
                {
                    "source": source,
                    "conversation_key": key,
                    "customer_name": first.author.name,
                    "customer_handle": first.author.handle,
                    "url": first.url,
                    "team_id": team.id if team else None,
                    "mention_count": len(thread),
                    "created_at": ctx.now,
                    "updated_at": ctx.now,
                }
            ),
            team,
        )
    # Their customers, found or created for the whole batch at once.
    arrivals = await customers.recognise(
        ctx,
        [(c, threads[key][0].author.handle) for key, (c, _) in planned.items()],
        relationships,
    )
    # In arrival order: the numbers customers' conversations get follow it.
    numbers = await conversations.open_many(
        ctx.session, [conversations.columns(c) for c, _ in planned.values()]
    )
    opened: dict[tuple[str, str], tuple[Conversation, Team | None]] = {}
    for thread_key, (conversation, team) in planned.items():
        if thread_key in numbers:
            conversation.id = numbers[thread_key]
            opened[thread_key] = (conversation, team)
    return opened, arrivals


async def _announce(
    ctx: Context,
    opened: Mapping[tuple[str, str], tuple[Conversation, Team | None]],
    threads: Mapping[tuple[str, str], Sequence[MentionReceived]],
    arrivals: Mapping[tuple[str, str], Arrival],
) -> None:
    """Post the new conversations' cards; offer each privately, to the customer's
    relationship owner first, else to someone on duty; tell admins when mentions begin
    to wait for a team."""
    cards, waiting, posted = [], [], []
    for key, (conversation, team) in sorted(opened.items(), key=lambda o: o[1][0].id or 0):
        assert conversation.id is not None
        if team is None:
            waiting.append(conversation)
            continue
        latest = threads[key][-1]
        facts = customers.card_facts(
            CardFacts(team_name=team.name, latest_text=latest.text, latest_url=latest.url),
            arrivals.get(key),
        )
        view = card.build(
            ctx.channel_texts,
            ctx.prefix_on(team.channel),
            conversation,
            facts,
            ctx.channel_timezone,
        )
        cards.append((ChannelId(team.channel), view, conversation.id))
        posted.append((conversation, team, facts))
    await ctx.out.post_cards(cards)
    # The relationship owner first: what is held for them is offered to nobody else.
    await customers.offer_to_owners(ctx, [(c, f) for c, _, f in posted])
    await _offer(ctx, [p for p in posted if p[0].held_until is None])
    if not waiting or len(await conversations.without_team(ctx.session)) > len(waiting):
        return  # nothing waits, or admins were told when the first one began to wait
    first = waiting[0]
    await tell_admins(
        ctx,
        lambda texts: texts.no_team_for_mention.format(
            number=first.id, customer=first.customer_name
        ),
    )


async def _offer(ctx: Context, posted: Sequence[tuple[Conversation, Team, CardFacts]]) -> None:
    """Offer each new conversation, privately, to one member of its team on duty.

    Who is on duty is read once for the whole batch (three statements, whatever its
    size), and the offers made in it count towards each person's load. Each offer is
    in the conversation's history ("Ann was offered it"), which is also how later
    batches know what each person holds.
    """
    if not posted:
        return
    on_duty = await duty.on_duty(ctx.session, ctx.now, {t.id for _, t, _ in posted if t.id})
    if not on_duty:
        return
    offered: dict[int, int] = {}
    history: list[dict[str, Any]] = []
    for conversation, team, facts in posted:
        chosen = choose_offer(conversation, on_duty.get(team.id or 0, []), offered)
        if chosen is None:
            continue
        person = chosen.person
        assert person.id is not None and conversation.id is not None
        offered[person.id] = offered.get(person.id, 0) + 1
        ctx.tell(person, _offer_card(ctx, person, conversation, facts))
        history.append(
            {
                "conversation_id": conversation.id,
                "actor_id": person.id,
                "action": duty.OFFERED,
                "detail": "",
                "at": ctx.now,
            }
        )
    await conversations.audit_many(ctx.session, history)


def _offer_card(ctx: Context, person: Person, conversation: Conversation, facts: CardFacts) -> Card:
    """The conversation's own card (its Claim button included), in the person's words
    and the way they type commands, saying why it came to them."""
    texts = ctx.texts_of(person)
    view = card.build(texts, ctx.prefix_on(person.ref), conversation, facts)
    return replace(
        view,
        fields=(*view.fields, Field(texts.offer_label, texts.offer_reason)),
        fallback=texts.offer_fallback.format(
            number=conversation.id, customer=conversation.customer_name
        ),
    )


async def _follow_up(
    ctx: Context, conversation: Conversation, thread: Sequence[MentionReceived]
) -> None:
    """More from the customer: the card shows it, the owner hears of it, resolved reopens."""
    conversation.mention_count += len(thread)
    conversation.updated_at = ctx.now
    if conversation.status == Status.RESOLVED:
        reopen_conversation(conversation)
        conversations.audit(ctx.session, conversation.id, None, "reopened", ctx.now)
    ctx.session.add(conversation)
    await ctx.session.flush()
    await card.refresh(ctx, conversation)
    if conversation.owner_id is None:
        return
    owner = await ctx.session.get(Person, conversation.owner_id)
    assert owner is not None
    latest = thread[-1]
    ctx.tell(
        owner,
        Notice(
            ctx.texts_of(owner).followup_for_owner.format(
                number=conversation.id,
                customer=latest.author.name,
                excerpt=one_line(latest.text, 200),
            )
        ),
    )
