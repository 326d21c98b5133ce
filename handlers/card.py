"""The conversation card: one message in the team's owner channel, updated in place."""

from __future__ import annotations

from bot.context import Context
from bot.events import ChannelId
from bot.messages import Texts
from bot.views import Button, ButtonStyle, Card, Field
from handlers.text import trim
from storage import advice, conversations, outbox
from storage.models import Conversation, Person, Status, Team

#: a card shows this much of the latest message; `show N` has the rest
CARD_TEXT_LIMIT = 600


async def render(ctx: Context, conversation: Conversation) -> Card:
    texts = ctx.channel_texts
    number = conversation.id
    assert number is not None
    latest = await conversations.latest_mention(ctx.session, number)
    text, trimmed = trim(latest.text if latest else "", CARD_TEXT_LIMIT)
    owner = await _owner_name(ctx, conversation)
    team = await ctx.session.get(Team, conversation.team_id) if conversation.team_id else None
    customer = conversation.customer_name
    if conversation.customer_handle and conversation.customer_handle != customer:
        customer = f"{customer} ({conversation.customer_handle})"
    status = texts.status_names[conversation.status]
    return Card(
        title=texts.card_title.format(number=number, source=conversation.source, customer=customer),
        fields=(
            Field(texts.card_status, status),
            Field(texts.card_owner, owner or texts.card_nobody),
            Field(texts.card_team, team.name if team else texts.card_no_team),
            Field(texts.card_mentions, str(conversation.mention_count)),
            *await _advice_field(ctx, texts, number),
        ),
        text=text,
        more=texts.card_more.format(command=f"{ctx.prefix} show {number}") if trimmed else "",
        link=(latest.url if latest and latest.url else conversation.url),
        buttons=_buttons(texts, conversation, ctx.prefix),
        fallback=texts.card_fallback.format(
            number=number, customer=customer, source=conversation.source, status=status
        ),
    )


async def _advice_field(ctx: Context, texts: Texts, number: int) -> tuple[Field, ...]:
    open_, answered = await advice.counts(ctx.session, number)
    if not open_ and not answered:
        return ()
    return (
        Field(texts.card_advice, texts.card_advice_value.format(open=open_, answered=answered)),
    )


def _buttons(texts: Texts, conversation: Conversation, prefix: str) -> tuple[Button, ...]:
    n = str(conversation.id)

    def button(label: str, action: str, style: ButtonStyle = "default") -> Button:
        return Button(label, action, n, style, f"{prefix} {action} {n}")

    by_status = {
        Status.OPEN: (button(texts.button_claim, "claim", "primary"),),
        Status.CLAIMED: (
            button(texts.button_replied, "replied", "primary"),
            button(texts.button_release, "release"),
            button(texts.button_resolve, "resolve"),
        ),
        Status.REPLIED: (
            button(texts.button_resolve, "resolve", "primary"),
            button(texts.button_release, "release"),
        ),
        Status.RESOLVED: (button(texts.button_reopen, "reopen"),),
    }
    return by_status[Status(conversation.status)]


async def _owner_name(ctx: Context, conversation: Conversation) -> str:
    if conversation.owner_id is None:
        return ""
    owner = await ctx.session.get(Person, conversation.owner_id)  # usually the sender: no query
    return owner.display_name if owner else ""


async def refresh(ctx: Context, conversation: Conversation) -> None:
    """Update the card in place; post it if it was never posted (e.g. no team until now)."""
    if conversation.team_id is None:
        return
    team = await ctx.session.get(Team, conversation.team_id)
    assert team is not None and conversation.id is not None
    card = await render(ctx, conversation)
    if conversation.card_channel is None and not await outbox.card_queued(
        ctx.session, conversation.id
    ):
        ctx.out.post(ChannelId(team.channel), card, card_of=conversation.id)
        return
    ctx.out.update_card(ChannelId(conversation.card_channel or team.channel), card, conversation.id)


async def post(ctx: Context, conversation: Conversation, team: Team) -> None:
    assert conversation.id is not None
    card = await render(ctx, conversation)
    ctx.out.post(ChannelId(team.channel), card, card_of=conversation.id)
