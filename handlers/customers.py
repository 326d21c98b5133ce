"""Customers: recognised across conversations and sources, remembered, and held by one person.

- Routing hands each batch of new conversations to `recognise` before storing them
  (their customers are found or created in a few statements, whatever the batch's
  size) and to `offer_to_owners` once their cards are out: a returning customer's
  new conversation is offered to their relationship owner first, privately, for
  the hold window. Until it ends only that owner (or a manager) may claim it
  (`held_for_other`, called by `claim`); a per-minute sweep ends the holds that are
  over, and the card stops saying "offered to them".
- `customer REF` shows a customer's profile privately; `customer link REF REF`,
  `customer unlink REF` and `customer owner REF @person` are staff's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from bot.context import Context
from bot.events import Tick
from bot.messages import Texts
from bot.people import STAFF, is_manager, is_staff, written_ref
from bot.recurrence import zone
from bot.router import Router, UsageError
from bot.views import Notice
from handlers import card
from handlers.people import named_person
from handlers.text import one_line
from storage import conversations
from storage import customers as stored
from storage.cards import CardFacts
from storage.customers import Holder, identity_key
from storage.models import Conversation, Customer, CustomerIdentity, Person, Role, Status

#: the scheduler's name for the per-minute end of holds
HOLD_SWEEP = "relationship-holds"
#: holds ended per sweep transaction (the rest at the next minute)
SWEEP_BATCH = 200
#: who may look a customer up: staff, and consultants through what they were asked about
VIEWERS = STAFF | {Role.CONSULTANT}

_NUMBER = re.compile(r"#?(\d{1,18})")
_SLACK_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Relationships:
    """The settings of relationship owners: how long a new conversation is theirs alone
    (zero: not at all), and the calendar `away until` dates are read in by default."""

    hold: timedelta = timedelta(minutes=30)
    default_tz: str = "UTC"


def register(router: Router, relationships: Relationships) -> None:
    async def on_tick(ctx: Context, event: Tick) -> None:
        if event.name == HOLD_SWEEP:
            await end_holds(ctx)

    router.command("customer", show, VIEWERS)
    router.command("customer link", link, STAFF)
    router.command("customer unlink", unlink, STAFF)
    router.command("customer owner", owner, STAFF)
    router.on(Tick, on_tick)


def minute_after(moment: datetime) -> datetime:
    """The sweep runs on the whole minutes, so every instance names the same moments."""
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


# -- routing's steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """What routing learnt of a new conversation's customer, for its card and its offer."""

    history: stored.History | None = None
    holder: Person | None = None


async def recognise(
    ctx: Context,
    planned: Iterable[tuple[Conversation, str]],
    relationships: Relationships,
) -> dict[tuple[str, str], Arrival]:
    """Give each new conversation (not stored yet, with its author's handle) its customer
    and identity, and to a returning customer's, their relationship owner and hold.

    Set-based: one read finds the batch's identities; new ones take two inserts;
    only returning customers cost two more reads (their histories, their owners).
    """
    planned = list(planned)
    keys = {id(c): identity_key(c.source, handle, c.customer_name) for c, handle in planned}
    names = {keys[id(c)]: c.customer_name for c, _ in planned}
    found = await stored.recognise(ctx.session, names, ctx.now)
    returning = {r.customer_id for r in found.values() if r.known}
    histories = await stored.histories(ctx.session, returning)
    holders = await stored.relationship_owners(ctx.session, returning)
    arrivals: dict[tuple[str, str], Arrival] = {}
    in_batch: dict[int, int] = {}
    for conversation, _ in planned:
        who = found[keys[id(conversation)]]
        history = histories.get(who.customer_id)
        if (before := in_batch.get(who.customer_id, 0)) > 0:
            # the customer opened another conversation earlier in this very batch
            earlier = history.earlier if history is not None else 0
            history = stored.History(earlier + before, ctx.now, Status.OPEN, "")
        in_batch[who.customer_id] = before + 1
        conversation.customer_id = who.customer_id
        conversation.identity_id = who.identity_id
        # what the digest's continuity counts, kept so that it need not look back
        conversation.returning_customer = history is not None and history.earlier > 0
        holder = holders.get(who.customer_id)
        person = holder.person if holder is not None and is_staff(holder.person) else None
        if person is not None:
            conversation.relationship_owner_id = person.id
            if (
                relationships.hold
                and conversation.team_id is not None
                and not _away(holder, ctx.now, relationships.default_tz)
            ):
                conversation.held_until = ctx.now + relationships.hold
        arrivals[(conversation.source, conversation.conversation_key)] = Arrival(history, person)
    return arrivals


def _away(holder: Holder | None, now: datetime, default_tz: str) -> bool:
    """Away today in their own calendar (`away until` includes its last day)."""
    if holder is None or holder.away_until is None:
        return False
    today = now.astimezone(zone(holder.person.timezone or default_tz)).date()
    return date.fromisoformat(holder.away_until) >= today


def card_facts(facts: CardFacts, arrival: Arrival | None) -> CardFacts:
    """A new conversation's card facts with what `recognise` learnt (no read)."""
    if arrival is None:
        return facts
    return replace(
        facts,
        history=arrival.history,
        holder=arrival.holder.display_name if arrival.holder else "",
    )


async def offer_to_owners(ctx: Context, posted: Sequence[tuple[Conversation, CardFacts]]) -> None:
    """Tell each relationship owner at once, privately, of their customer's new
    conversation held for them, with its card (and its Claim)."""
    for conversation, facts in posted:
        if conversation.held_until is None or conversation.relationship_owner_id is None:
            continue
        holder = await ctx.session.get(Person, conversation.relationship_owner_id)
        assert holder is not None and conversation.id is not None
        texts = ctx.texts_of(holder)
        ctx.tell(
            holder,
            Notice(
                texts.relationship_offer.format(
                    customer=one_line(conversation.customer_name),
                    number=conversation.id,
                    time=_time(conversation.held_until, holder, ctx.channel_timezone),
                )
            ),
        )
        ctx.tell(
            holder,
            card.build(texts, ctx.prefix_on(holder.ref), conversation, facts, ctx.channel_timezone),
        )


def _time(moment: datetime, person: Person, default_tz: str) -> str:
    return f"{moment.astimezone(zone(person.timezone or default_tz)):%H:%M}"


# -- claiming ----------------------------------------------------------------------------------


def holds_for_other(conversation: Conversation, person: Person, now: datetime) -> bool:
    """Whether the conversation is still offered to its customer's relationship owner
    only, and `person` may not take it yet (a manager always may)."""
    until = conversation.held_until
    if until is None or until <= now:
        return False
    return conversation.relationship_owner_id not in (None, person.id) and not is_manager(person)


async def held_for_other(ctx: Context, conversation: Conversation) -> bool:
    """Whether the sender may not claim the conversation yet, having been told so: it
    is held for its customer's relationship owner. A hold that is over is ended here
    (the claim's card update shows it), whether or not the sweep came by first."""
    until = conversation.held_until
    if until is not None and until <= ctx.now:
        conversation.held_until = None
    me = ctx.sender
    if until is None or not holds_for_other(conversation, me, ctx.now):
        return False
    holder = await ctx.session.get(Person, conversation.relationship_owner_id)
    assert holder is not None
    ctx.report(
        ctx.texts.relationship_held.format(
            number=conversation.id,
            owner=holder.display_name,
            time=_time(until, me, ctx.channel_timezone),
        )
    )
    return True


async def end_holds(ctx: Context) -> None:
    """The per-minute sweep: holds that are over end, and their cards say so."""
    for conversation in await stored.holds_ended(ctx.session, ctx.now, SWEEP_BATCH):
        conversation.held_until = None
        ctx.session.add(conversation)
        await ctx.session.flush()
        await card.refresh(ctx, conversation)


# -- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """The customer a REF names, and the identity it names (for `#N`: the one N came from)."""

    customer_id: int
    identity: CustomerIdentity | None
    #: the conversation `#N` named, if it was written that way
    number: int | None = None


def _refs(ctx: Context, args: Sequence[str]) -> list[str]:
    """The arguments, with quotes respected where they were typed (`"console:Giulia Rossi"`):
    a name used as a handle may have spaces."""
    text = ctx.command_text
    try:
        words = shlex.split(text)
    except ValueError:
        return list(args)
    # the command's own words come first (`customer link`): keep what follows them
    named = len(text.split()) - len(args)
    return words[named:] if 0 <= named <= len(words) else list(args)


async def _named(ctx: Context, ref: str) -> Named | None:
    """The customer `ref` names, or None after telling the sender why not."""
    texts = ctx.texts
    if (matched := _NUMBER.fullmatch(ref)) is not None:
        n = int(matched[1])
        conversation = await conversations.get(ctx.session, n)
        if conversation is None:
            ctx.reply(texts.no_such_conversation.format(number=n))
            return None
        if conversation.customer_id is None:
            ctx.reply(texts.customer_unknown.format(ref=f"#{n}"))
            return None
        if conversation.erased_at is not None:  # nothing is known of them any more
            ctx.reply(texts.customer_erased_ref.format(number=n))
            return None
        identity = (
            await ctx.session.get(CustomerIdentity, conversation.identity_id)
            if conversation.identity_id is not None
            else None
        )
        return Named(conversation.customer_id, identity, n)
    source, handle = _source_handle(ctx, ref)
    if not source or not handle:
        ctx.reply(texts.customer_bad_ref.format(ref=one_line(ref)))
        return None
    found = await stored.identity(ctx.session, source, handle)
    if found is None:
        ctx.reply(texts.customer_unknown.format(ref=one_line(ref)))
        return None
    return Named(found.customer_id, found)


async def named_customer(ctx: Context, ref: str) -> Named | None:
    """The customer a REF names, for other modules' commands (`customer export`, `erase`)."""
    return await _named(ctx, ref)


def _exactly(ctx: Context, args: Sequence[str], count: int) -> list[str]:
    """The command's REFs, which must be `count`: else the usage line."""
    refs = _refs(ctx, args)
    if len(refs) != count:
        raise UsageError()
    return refs


def written_refs(ctx: Context, args: Sequence[str]) -> list[str]:
    """A customer command's arguments, quotes respected."""
    return _refs(ctx, args)


def _source_handle(ctx: Context, ref: str) -> tuple[str, str]:
    """`twitter:@giulia` → (twitter, @giulia). A chat user written as people are written
    (a Slack mention, a Matrix id) is their identity on that platform."""
    if _SLACK_MENTION.fullmatch(ref) or (ref.startswith("@") and ":" in ref):
        person = written_ref(ref, "")
        if person is not None:
            source, _, handle = person.partition(":")
            return source, handle
    source, _, handle = ref.partition(":")
    return source.strip(), handle.strip()


def _identity_name(identity: CustomerIdentity) -> str:
    written = f"{identity.source}:{identity.handle}"
    if identity.display_name and identity.display_name != identity.handle:
        written += f" ({identity.display_name})"
    return one_line(written, 120)


async def show(ctx: Context, args: Sequence[str]) -> None:
    refs = _exactly(ctx, args, 1)
    named = await _named(ctx, refs[0])
    if named is None:
        return
    texts, me = ctx.texts, ctx.sender
    only: list[int] | None = None
    if me.role == Role.CONSULTANT:
        assert me.id is not None
        only = await stored.consulted_on(ctx.session, me.id, named.customer_id)
        if named.number is None or named.number not in only:
            ctx.reply(texts.customer_consultant_only)
            return
    rows = await stored.conversations_of(ctx.session, named.customer_id, only)
    numbers = [c.id for c, _ in rows if c.id is not None]
    identities = [
        i
        for i in await stored.identities_of(ctx.session, named.customer_id)
        if only is None or i.id in {c.identity_id for c, _ in rows}
    ]
    name = identities[0].display_name if identities else (rows[0][0].customer_name if rows else "")
    lines = [
        texts.customer_title.format(name=one_line(name)),
        texts.customer_identities.format(list=", ".join(_identity_name(i) for i in identities)),
        await _owner_line(ctx, named.customer_id),
    ]
    lang = await stored.language(ctx.session, numbers)
    lines.append(texts.customer_language.format(language=lang or texts.customer_language_unknown))
    lines.append(texts.customer_conversations)
    tz = me.timezone or ctx.channel_timezone
    for conversation, owner_name in rows:
        lines.append(
            texts.customer_conversation_line.format(
                number=conversation.id,
                date=_day(texts, conversation.created_at, tz),
                source=conversation.source,
                status=texts.status_words.get(conversation.status, conversation.status),
                owner=owner_name or card.nobody(texts, conversation),
            )
        )
    advice = await stored.advice_of(ctx.session, numbers)
    if advice:
        questions = await stored.questions(ctx.session, [a.id for a, _ in advice if a.id])
        lines.append(texts.customer_advice)
        for request, consultant in advice:
            lines.append(
                texts.customer_advice_line.format(
                    id=f"{request.conversation_id}-A{request.seq}",
                    status=texts.advice_states.get(request.status, request.status),
                    consultant=consultant or "—",
                    question=one_line(questions.get(request.id or 0, ""), 120),
                )
            )
    else:
        lines.append(texts.customer_no_advice)
    ctx.reply("\n".join(lines))


def _day(texts: Texts, moment: datetime, tz: str) -> str:
    local = moment.astimezone(zone(tz))
    return f"{local.day} {texts.month_names[local.month - 1]} {local.year}"


async def _owner_line(ctx: Context, customer_id: int) -> str:
    texts = ctx.texts
    row = await ctx.session.get(Customer, customer_id)
    if row is not None and row.owner_id is not None:
        chosen = await ctx.session.get(Person, row.owner_id)
        if chosen is not None:
            return texts.customer_owner_set.format(owner=chosen.display_name)
    default = await stored.relationship_owner(ctx.session, customer_id)
    if default is None:
        return texts.customer_owner_none
    return texts.customer_owner_default.format(owner=default.display_name)


async def link(ctx: Context, args: Sequence[str]) -> None:
    refs = _exactly(ctx, args, 2)
    first = await _named(ctx, refs[0])
    if first is None:
        return
    second = await _named(ctx, refs[1])
    if second is None:
        return
    texts = ctx.texts
    a, b = one_line(refs[0]), one_line(refs[1])
    if first.customer_id == second.customer_id:
        ctx.reply(texts.customer_already_one.format(first=a, second=b))
        return
    # The older customer stays: their number is the one the others already knew.
    keep, merged = sorted((first.customer_id, second.customer_id))
    await stored.link(ctx.session, keep, merged)
    identities = await stored.identities_of(ctx.session, keep)
    rows = await stored.conversations_of(ctx.session, keep)
    ctx.reply(
        texts.customer_linked.format(
            first=a, second=b, identities=len(identities), conversations=len(rows)
        )
    )
    await _refresh_open_cards(ctx, [c for c, _ in rows])


async def unlink(ctx: Context, args: Sequence[str]) -> None:
    refs = _exactly(ctx, args, 1)
    named = await _named(ctx, refs[0])
    if named is None:
        return
    texts = ctx.texts
    identity = named.identity
    if identity is None or len(await stored.identities_of(ctx.session, named.customer_id)) < 2:
        ctx.reply(texts.customer_not_linked.format(identity=one_line(refs[0])))
        return
    alone = await stored.unlink(ctx.session, identity, ctx.now)
    rows = await stored.conversations_of(ctx.session, alone)
    ctx.reply(
        texts.customer_unlinked.format(identity=_identity_name(identity), conversations=len(rows))
    )
    await _refresh_open_cards(ctx, [c for c, _ in rows])


async def _refresh_open_cards(ctx: Context, changed: Sequence[Conversation]) -> None:
    """Cards of conversations still being worked on follow who their customer is now."""
    for conversation in changed:
        if conversation.status != Status.RESOLVED and conversation.card_channel is not None:
            await card.refresh(ctx, conversation)


async def owner(ctx: Context, args: Sequence[str]) -> None:
    refs = _exactly(ctx, args, 2)
    named = await _named(ctx, refs[0])
    if named is None:
        return
    texts, me = ctx.texts, ctx.sender
    customer = await ctx.session.get(Customer, named.customer_id)
    assert customer is not None
    current = await stored.relationship_owner(ctx.session, named.customer_id)
    label = one_line(named.identity.display_name if named.identity else refs[0])
    if not is_manager(me) and (current is None or current.id != me.id):
        ctx.reply(
            texts.customer_owner_not_allowed.format(
                customer=label, owner=current.display_name if current else "—"
            )
        )
        return
    if refs[1].lower() in ("none", "nessuno"):
        customer.owner_id = None
        ctx.session.add(customer)
        ctx.reply(texts.customer_owner_cleared.format(customer=label))
        return
    target = await named_person(ctx, refs[1])
    if target is None:
        return
    if not is_staff(target):
        ctx.reply(
            texts.customer_owner_not_staff.format(
                person=target.display_name, role=target.role or "none"
            )
        )
        return
    customer.owner_id = target.id
    ctx.session.add(customer)
    ctx.reply(texts.customer_owner_changed.format(owner=target.display_name, customer=label))
    if target.id != me.id:
        ctx.tell(
            target,
            Notice(
                ctx.texts_of(target).relationship_told.format(actor=me.display_name, customer=label)
            ),
        )


__all__ = [
    "HOLD_SWEEP",
    "Arrival",
    "Relationships",
    "card_facts",
    "end_holds",
    "held_for_other",
    "minute_after",
    "offer_to_owners",
    "recognise",
    "register",
]
