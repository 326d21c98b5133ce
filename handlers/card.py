"""The conversation card: one message in the team's owner channel, updated in place."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.events import ChannelId
from bot.messages import Texts
from bot.recurrence import zone
from bot.views import Button, ButtonStyle, Card, Field
from handlers.text import stamp, trim
from storage import cards, customers, outbox
from storage.cards import CardFacts
from storage.models import Conversation, Person, Status, Team

#: a card shows this much of the latest message; `show N` has the rest
CARD_TEXT_LIMIT = 600
#: a burst card names this many topics, the largest first; the rest are "…"
BURST_TOPICS = 5


async def render(
    ctx: Context,
    conversation: Conversation,
    where: str | None = None,
    read: CardFacts | None = None,
) -> Card:
    """The card as shown `where` (a channel; else to the sender): its buttons say how to
    type them on that platform, whoever's action changed the card. `read`: its facts, if
    the caller read them already (`conversations.save_change`)."""
    prefix = ctx.prefix_on(where) if where else ctx.prefix
    facts = await with_customer(
        ctx.session, conversation, read or await cards.facts(ctx.session, conversation)
    )
    return build(ctx.channel_texts, prefix, conversation, facts, ctx.channel_timezone)


async def with_customer(
    session: AsyncSession, conversation: Conversation, facts: CardFacts
) -> CardFacts:
    """The facts and what the card says of the customer: their history (read with the
    facts, `cards.facts`) and whose customer they are."""
    if conversation.customer_id is None or conversation.id is None:
        return facts
    history = facts.history
    if history is None:
        history = await customers.history(session, conversation.customer_id, conversation.id)
    holder = (
        await session.get(Person, conversation.relationship_owner_id)
        if conversation.relationship_owner_id is not None
        else None
    )
    return replace(facts, history=history, holder=holder.display_name if holder else "")


def build(
    texts: Texts, prefix: str, conversation: Conversation, facts: CardFacts, tz: str = "UTC"
) -> Card:
    """The card, from what is known: no I/O, so a batch of new conversations costs no reads.
    `tz`: where the card is read, for the times it shows."""
    number = conversation.id
    assert number is not None
    if conversation.erased_at is not None:
        return erased(texts, number, conversation.source)
    text, trimmed = trim(facts.latest_text, CARD_TEXT_LIMIT)
    customer = conversation.customer_name
    if conversation.customer_handle and conversation.customer_handle != customer:
        customer = f"{customer} ({conversation.customer_handle})"
    status = texts.status_names[conversation.status]
    advice_field: tuple[Field, ...] = ()
    if facts.open_advice or facts.answered_advice:
        value = texts.card_advice_value.format(
            open=facts.open_advice, answered=facts.answered_advice
        )
        advice_field = (Field(texts.card_advice, value),)
    return Card(
        title=texts.card_title.format(number=number, source=conversation.source, customer=customer),
        fields=(
            Field(texts.card_status, status),
            Field(texts.card_owner, facts.owner_name or nobody(texts, conversation)),
            Field(texts.card_team, facts.team_name or texts.card_no_team),
            Field(texts.card_mentions, str(conversation.mention_count)),
            *advice_field,
            *_customer_fields(texts, conversation, facts, tz),
        ),
        text=text,
        more=texts.card_more.format(command=f"{prefix} show {number}") if trimmed else "",
        link=facts.latest_url or conversation.url,
        buttons=_buttons(texts, conversation, prefix),
        show=str(number),
        fallback=texts.card_fallback.format(
            number=number, customer=customer, source=conversation.source, status=status
        ),
    )


def erased(texts: Texts, number: int, source: str) -> Card:
    """The card of a conversation whose customer's data was erased: nothing personal,
    nothing left to act on from the card."""
    customer = texts.erased_customer
    return Card(
        title=texts.card_title.format(number=number, source=source, customer=customer),
        text=texts.card_erased,
        fallback=texts.card_erased,
    )


def _customer_fields(
    texts: Texts, conversation: Conversation, facts: CardFacts, tz: str
) -> tuple[Field, ...]:
    """A returning customer's line (`Returning: 3 before · last 12 Nov with marta,
    resolved`), and whose customer they are (while held: offered to them until when)."""
    fields: list[Field] = []
    history = facts.history
    if history is not None and history.earlier and history.last_at is not None:
        day = history.last_at.astimezone(zone(tz))
        fields.append(
            Field(
                texts.card_customer,
                texts.card_returning.format(
                    count=history.earlier,
                    date=f"{day.day} {texts.month_names[day.month - 1]}",
                    owner=(
                        texts.card_returning_with.format(owner=history.last_owner)
                        if history.last_owner
                        else ""
                    ),
                    status=texts.status_words.get(history.last_status, history.last_status),
                ),
            )
        )
    if facts.holder:
        if conversation.held_until is not None:
            until = conversation.held_until.astimezone(zone(tz))
            value = texts.card_relationship_held.format(owner=facts.holder, time=f"{until:%H:%M}")
        else:
            value = texts.card_relationship_owner.format(owner=facts.holder)
        fields.append(Field(texts.card_relationship, value))
    return tuple(fields)


def nobody(texts: Texts, conversation: Conversation) -> str:
    """No owner: "yet" is true only while the conversation may still be claimed."""
    if conversation.status == Status.RESOLVED:
        return texts.card_nobody_resolved
    return texts.card_nobody


def _buttons(texts: Texts, conversation: Conversation, prefix: str) -> tuple[Button, ...]:
    n = str(conversation.id)

    def button(label: str, action: str, style: ButtonStyle = "default", also: str = "") -> Button:
        return Button(label, action, n, style, f"{prefix} {action} {n}", also)

    # the question is typed in the form; where there are no forms, after the command
    ask = Button(
        texts.button_ask,
        "ask",
        n,
        command=f"{prefix} ask {n} {texts.form_ask_placeholder}",
        form="ask",
    )
    by_status = {
        Status.OPEN: (button(texts.button_claim, "claim", "primary", texts.button_claim_also),),
        Status.CLAIMED: (
            button(texts.button_replied, "replied", "primary"),
            button(texts.button_release, "release"),
            button(texts.button_resolve, "resolve"),
            ask,
        ),
        Status.REPLIED: (
            button(texts.button_resolve, "resolve", "primary"),
            button(texts.button_release, "release"),
            ask,
        ),
        Status.RESOLVED: (button(texts.button_reopen, "reopen"),),
    }
    return by_status[Status(conversation.status)]


async def channel_of(ctx: Context, conversation: Conversation) -> ChannelId | None:
    """Where the card is (or will be posted): its own channel, else its team's."""
    if conversation.card_channel is not None:
        return ChannelId(conversation.card_channel)
    team = await ctx.session.get(Team, conversation.team_id) if conversation.team_id else None
    return ChannelId(team.channel) if team is not None else None


async def refresh(ctx: Context, conversation: Conversation, facts: CardFacts | None = None) -> None:
    """Update the card in place; post it if it was never posted (e.g. no team until now).
    `facts`: what it shows beyond the conversation, if the caller read it already."""
    channel = await channel_of(ctx, conversation)
    if channel is None:
        return  # no team yet: the card is posted when one is created
    assert conversation.id is not None
    card = await render(ctx, conversation, channel, facts)
    if conversation.card_channel is None and not await outbox.card_queued(
        ctx.session, conversation.id
    ):
        ctx.out.post(channel, card, card_of=conversation.id)
        return
    ctx.out.update_card(channel, card, conversation.id)


async def post(ctx: Context, conversation: Conversation, team: Team) -> None:
    assert conversation.id is not None
    card = await render(ctx, conversation, team.channel)
    ctx.out.post(ChannelId(team.channel), card, card_of=conversation.id)


async def burst(
    session: AsyncSession,
    texts: Texts,
    prefix: str,
    channel: ChannelId,
    since: datetime,
    now: datetime,
) -> Card:
    """The burst card of a channel whose new cards arrive faster than chat lets them be
    posted (the outbox decides when, and shows it): how many new conversations wait
    unclaimed, by topic, with Claim next (the oldest unclaimed, for whoever presses it)
    and Show list. Every one of them is claimable by number already; their own cards
    follow at the pace. With none waiting any more, it says the burst is over."""
    waiting = await outbox.waiting_cards(session, channel)
    if not waiting:
        done = texts.burst_done.format(since=stamp(since))
        return Card(title=done, fallback=done)
    oldest = waiting[0]
    minutes = max(1, math.ceil((now - oldest.created_at).total_seconds() / 60))
    title = texts.burst_title.format(count=len(waiting), minutes=minutes)
    topics = Counter(w.topic or texts.burst_no_topic for w in waiting).most_common()
    summary = ", ".join(
        texts.burst_topic.format(count=n, topic=topic) for topic, n in topics[:BURST_TOPICS]
    )
    if len(topics) > BURST_TOPICS:
        summary += ", …"
    return Card(
        title=f"{title}: {summary}",
        fields=(Field(texts.burst_oldest, f"#{oldest.number}"),),
        text=texts.burst_text.format(command=prefix),
        buttons=(
            Button(
                texts.button_claim_next,
                "claim",
                "next",
                "primary",
                f"{prefix} claim next",
                texts.button_claim_also,  # where there are no buttons, ✋ on the card
            ),
            Button(texts.button_show_list, "queue", "", "default", f"{prefix} queue"),
        ),
        # No fallback of its own (the title serves): on Matrix a card's fallback is also
        # said in its thread at each change, and a burst card changes often, each
        # message counting against a rate limit that is already reached.
    )
