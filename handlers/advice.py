"""Advice: an owner asks an outside expert about one conversation, privately.

The company keeps the relationship; the consultant brings know-how. A consultant
sees only what they were asked about, answers only to the owner (privately, and
in the thread under the card in the staff-only owner channel), and can never
claim, reply to a customer, list queues or post where a customer reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.context import Context
from bot.events import ChannelId, Tick, platform_of
from bot.messages import Texts
from bot.people import ADMINS, STAFF, is_manager, writes_a_person
from bot.router import Router, UsageError
from bot.views import Button, Card, Field, Notice
from handlers import card, claims
from handlers.people import named_person
from handlers.text import age, one_line, trim, words_after
from storage import advice, conversations, role_channels, watched
from storage.models import (
    AdviceMessage,
    AdviceRequest,
    AdviceStatus,
    Conversation,
    Person,
    Role,
    RoleChannel,
    Status,
)

CONSULTANTS = frozenset({Role.CONSULTANT})
PEOPLE = STAFF | CONSULTANTS
_ID = re.compile(r"#?([0-9]{1,9})-A([0-9]{1,6})", re.IGNORECASE)
CONTEXT_LIMIT = 2500
#: the scheduler's name for the sweep that chases late advice
SLA_SWEEP = "advice-sla"


@dataclass(frozen=True)
class AdviceId:
    conversation: int
    seq: int

    def __str__(self) -> str:
        return f"{self.conversation}-A{self.seq}"


def register(router: Router) -> None:
    router.command("ask", ask, STAFF)
    router.command("take", take, CONSULTANTS)
    router.command("answer", answer, CONSULTANTS)
    router.command("followup", followup, STAFF)
    router.command("advice", list_advice, PEOPLE)
    router.command("rate", rate, STAFF)
    router.command("close", close, STAFF)
    router.command("consultants here", consultants_here, ADMINS)


def register_sla(router: Router, sla: timedelta) -> None:
    async def on_tick(ctx: Context, event: Tick) -> None:
        if event.name == SLA_SWEEP:
            await chase(ctx, sla)

    router.on(Tick, on_tick)


def quarter_hour_after(moment: datetime) -> datetime:
    """The sweep runs on the quarter hours, so every instance names the same moments."""
    base = moment.replace(minute=0, second=0, microsecond=0)
    return base + timedelta(minutes=(moment.minute // 15 + 1) * 15)


async def chase(ctx: Context, sla: timedelta) -> None:
    """Requests unanswered past the SLA: remind the consultant (or the pool), tell the
    owner it is still open. Once per request."""
    overdue = await advice.overdue(ctx.session, ctx.now - sla)
    pools = await role_channels.channels(ctx.session, role_channels.CONSULTANTS) if overdue else []
    for request in overdue:
        ident = AdviceId(request.conversation_id, request.seq)
        waited = age(request.created_at, ctx.now)
        owner = await _person(ctx, request.asked_by)
        consultant = await _person(ctx, request.consultant_id)
        _to_consultant_or_pools(
            ctx,
            consultant,
            pools,
            lambda texts: texts.advice_reminder,
            ctx.channel_texts.advice_reminder_pool,
            id=ident,
            age=waited,
            owner=_name(owner),
        )
        if owner is not None:
            texts = ctx.texts_of(owner)
            ctx.tell(
                owner,
                Notice(
                    texts.advice_still_open.format(
                        id=ident,
                        age=waited,
                        consultant=consultant.display_name
                        if consultant
                        else texts.advice_pool_name,
                    )
                ),
            )
        request.reminded_at = ctx.now
        ctx.session.add(request)


# -- the owner's side ---------------------------------------------------------------------


async def ask(ctx: Context, args: Sequence[str]) -> None:
    if len(args) < 2:
        raise UsageError()
    texts = ctx.texts
    if len(args) == 2 and writes_a_person(args[1]):
        raise UsageError(texts.advice_no_question)  # `ask 1 @carla`: a consultant, no question
    conversation = await claims.conversation_arg(ctx, args[:1])
    if conversation is None or not await _may_ask(ctx, conversation):
        return
    consultant: Person | None = None
    question = words_after(ctx.command_text, 2) or " ".join(args[1:])
    last = args[-1]
    # `@sage` or `<@U1>` at the end names a consultant; "by 10:30" or ":pray:" is the question's
    if len(args) > 2 and writes_a_person(last):
        consultant = await named_person(ctx, last)
        if consultant is None:
            return
        if consultant.role != Role.CONSULTANT:
            ctx.reply(
                texts.advice_not_consultant.format(
                    person=consultant.display_name, role=consultant.role or "none"
                )
            )
            return
        question = question[: question.rstrip().rfind(last)].rstrip()
    pools = await role_channels.channels(ctx.session, role_channels.CONSULTANTS)
    if consultant is None and not pools:
        ctx.reply(texts.advice_no_pool)
        return
    assert conversation.id is not None and ctx.sender.id is not None
    request = AdviceRequest(
        conversation_id=conversation.id,
        seq=await advice.next_seq(ctx.session, conversation.id),
        asked_by=ctx.sender.id,
        consultant_id=consultant.id if consultant else None,
        status=AdviceStatus.TAKEN if consultant else AdviceStatus.OPEN,
        taken_at=ctx.now if consultant else None,
        created_at=ctx.now,
    )
    ctx.session.add(request)
    await ctx.session.flush()
    assert request.id is not None
    ctx.session.add(
        AdviceMessage(
            request_id=request.id,
            author_id=ctx.sender.id,
            kind="question",
            text=question,
            at=ctx.now,
        )
    )
    ident = AdviceId(conversation.id, request.seq)
    ctx.reply(
        texts.advice_asked.format(
            id=ident, consultant=consultant.display_name if consultant else texts.advice_pool_name
        )
    )
    owner = ctx.sender.display_name
    if consultant is not None:
        texts_for_them = ctx.texts_of(consultant)
        view = await _request_card(
            ctx,
            texts_for_them,
            conversation,
            ident,
            question,
            owner=owner,
            pool=False,
            prefix=ctx.prefix_on(consultant.ref),
        )
        ctx.tell(consultant, view)
    else:
        # one card per platform: each pool's buttons say how to type them there
        views: dict[str, Card] = {}
        for pool in pools:
            prefix = ctx.prefix_on(pool.channel)
            if prefix not in views:
                views[prefix] = await _request_card(
                    ctx,
                    ctx.channel_texts,
                    conversation,
                    ident,
                    question,
                    owner=owner,
                    pool=True,
                    prefix=prefix,
                )
            ctx.out.post(ChannelId(pool.channel), views[prefix])
    conversations.audit(ctx.session, conversation.id, ctx.sender.id, "advice", ctx.now, str(ident))
    await card.refresh(ctx, conversation)


async def followup(ctx: Context, args: Sequence[str]) -> None:
    found = await _live_request(ctx, args, words=2)
    if found is None:
        return
    request, ident, _ = found
    texts = ctx.texts
    if request.asked_by != ctx.sender.id:
        ctx.reply(texts.advice_not_yours.format(id=ident))
        return
    text = words_after(ctx.command_text, 2) or " ".join(args[1:])
    _remember(ctx, request, "followup", text)
    consultant = await _person(ctx, request.consultant_id)
    pools = (
        [] if consultant else await role_channels.channels(ctx.session, role_channels.CONSULTANTS)
    )
    _to_consultant_or_pools(
        ctx,
        consultant,
        pools,
        lambda texts: texts.advice_followup,
        ctx.channel_texts.advice_followup,
        owner=ctx.sender.display_name,
        id=ident,
        text=text,
    )
    name = consultant.display_name if consultant else texts.advice_pool_name
    ctx.reply(texts.advice_followup_sent.format(consultant=name))


async def rate(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 2 or args[1].lower() not in ("useful", "not-useful"):
        raise UsageError()
    found = await _request(ctx, args[0])
    if found is None:
        return
    request, ident, _ = found
    if request.asked_by != ctx.sender.id:
        ctx.reply(ctx.texts.advice_not_yours.format(id=ident))
        return
    if request.answered_at is None:  # open, taken, or closed before any answer
        ctx.reply(ctx.texts.advice_rate_unanswered.format(id=ident))
        return
    request.rating = args[1].lower().replace("-", " ")
    ctx.session.add(request)
    ctx.reply(ctx.texts.advice_rated.format(id=ident, rating=request.rating))


async def close(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 1:
        raise UsageError()
    found = await _request(ctx, args[0])
    if found is None:
        return
    request, ident, conversation = found
    if request.asked_by != ctx.sender.id and not is_manager(ctx.sender):
        ctx.reply(ctx.texts.advice_not_yours.format(id=ident))
        return
    if request.status == AdviceStatus.CLOSED:
        ctx.reply(ctx.texts.advice_is_closed.format(id=ident))
        return
    request.status = AdviceStatus.CLOSED
    request.closed_at = ctx.now
    ctx.session.add(request)
    ctx.reply(ctx.texts.advice_closed.format(id=ident))
    consultant = await _person(ctx, request.consultant_id)
    if consultant is not None:
        ctx.tell(
            consultant,
            Notice(
                ctx.texts_of(consultant).advice_closed_for_consultant.format(
                    owner=ctx.sender.display_name, id=ident
                )
            ),
        )
    await card.refresh(ctx, conversation)


# -- the consultant's side ------------------------------------------------------------------


async def take(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 1:
        raise UsageError()
    found = await _live_request(ctx, args, words=1)
    if found is None:
        return
    request, ident, _ = found
    texts = ctx.texts
    if request.consultant_id == ctx.sender.id:
        ctx.reply(texts.advice_taken_you.format(id=ident))
    elif request.consultant_id is not None:
        holder = await _person(ctx, request.consultant_id)
        ctx.reply(texts.advice_already_taken.format(id=ident, consultant=_name(holder)))
    else:
        _take(ctx, request, ident)
        ctx.reply(texts.advice_taken_you.format(id=ident))


async def answer(ctx: Context, args: Sequence[str]) -> None:
    found = await _live_request(ctx, args, words=2)
    if found is None:
        return
    request, ident, conversation = found
    texts = ctx.texts
    if request.consultant_id is None:
        _take(ctx, request, ident)  # answering from the pool takes it
    elif request.consultant_id != ctx.sender.id:
        ctx.reply(texts.advice_not_yours.format(id=ident))
        return
    text = words_after(ctx.command_text, 2) or " ".join(args[1:])
    _remember(ctx, request, "answer", text)
    request.status = AdviceStatus.ANSWERED
    request.answered_at = request.answered_at or ctx.now
    ctx.session.add(request)
    owner = await _person(ctx, request.asked_by)
    assert owner is not None
    me = ctx.sender.display_name
    ctx.tell(
        owner,
        Notice(
            ctx.texts_of(owner).advice_for_owner.format(
                consultant=me, number=conversation.id, id=ident, text=text
            )
        ),
    )
    await _note_under_card(
        ctx,
        conversation,
        ctx.channel_texts.advice_thread_note.format(id=ident, consultant=me, text=text),
    )
    ctx.reply(texts.advice_sent.format(id=ident, owner=owner.display_name))
    await card.refresh(ctx, conversation)


async def list_advice(ctx: Context, args: Sequence[str]) -> None:
    if args:
        raise UsageError()
    texts = ctx.texts
    me = ctx.sender
    assert me.id is not None
    going = await advice.open_for(ctx.session, me.id)
    # a consultant may take what waits in the pool: it is theirs to see too
    pooled = await advice.untaken(ctx.session) if me.role == Role.CONSULTANT else []
    if not going and not pooled:
        ctx.reply(texts.advice_none)
        return
    to_answer = [r for r in going if r.consultant_id == me.id]
    waiting = [r for r in going if r.asked_by == me.id]
    shown = [*going, *pooled]
    questions = await advice.first_questions(ctx.session, [r.id for r in shown if r.id])
    lines: list[str] = []
    sides = (
        (texts.advice_to_answer, to_answer, texts.advice_line, texts.advice_states_for_you),
        (texts.advice_waiting, waiting, texts.advice_line, texts.advice_states),
        (texts.advice_in_pool, pooled, texts.advice_pool_line, texts.advice_states),
    )
    for heading, requests, line, states in sides:
        if requests:
            lines.append(heading.format(count=len(requests)))
            for request in requests:
                question = questions.get(request.id or 0, "")
                lines.append(
                    line.format(
                        id=AdviceId(request.conversation_id, request.seq),
                        number=request.conversation_id,
                        state=states[request.status],
                        age=age(request.created_at, ctx.now),
                        question=one_line(question),
                    )
                )
    ctx.reply("\n".join(lines))


async def consultants_here(ctx: Context, args: Sequence[str]) -> None:
    if args or ctx.channel is None:
        raise UsageError()
    await role_channels.set_channel(
        ctx.session, role_channels.CONSULTANTS, platform_of(ctx.channel), ctx.channel
    )
    ctx.reply(ctx.texts.pool_set)


async def asked_of_me(ctx: Context, limit: int) -> tuple[list[Card], int]:
    """The sender's (a consultant's) open requests, oldest first, as the cards they were
    sent, each with its state; at most `limit` of them, and how many there are."""
    me, texts = ctx.sender, ctx.texts
    assert me.id is not None
    mine = [r for r in await advice.open_for(ctx.session, me.id) if r.consultant_id == me.id]
    shown = mine[:limit]
    questions = await advice.first_questions(ctx.session, [r.id for r in shown if r.id])
    cards = []
    for request in shown:
        conversation = await conversations.get(ctx.session, request.conversation_id)
        assert conversation is not None
        cards.append(
            await _request_card(
                ctx,
                texts,
                conversation,
                AdviceId(request.conversation_id, request.seq),
                questions.get(request.id or 0, ""),
                owner=_name(await _person(ctx, request.asked_by)),
                pool=False,
                prefix=ctx.prefix,  # the consultant's own page
                state=texts.advice_states_for_you[request.status],
            )
        )
    return cards, len(mine)


async def may_read(ctx: Context, conversation_id: int) -> bool:
    """A consultant reads only the conversations they were asked about."""
    me = ctx.sender
    if me.role != Role.CONSULTANT:
        return True
    assert me.id is not None
    return await advice.asked_of(ctx.session, me.id, conversation_id)


# -- shared steps ---------------------------------------------------------------------------


async def _request(ctx: Context, value: str) -> tuple[AdviceRequest, AdviceId, Conversation] | None:
    match = _ID.fullmatch(value)
    if match is None:
        ctx.reply(ctx.texts.advice_bad_id.format(value=one_line(value, 40)))
        return None
    ident = AdviceId(int(match.group(1)), int(match.group(2)))
    request = await advice.lock(ctx.session, ident.conversation, ident.seq)
    conversation = await conversations.get(ctx.session, ident.conversation)
    if request is None or conversation is None:
        ctx.reply(ctx.texts.advice_unknown.format(id=ident))
        return None
    return request, ident, conversation


async def _live_request(
    ctx: Context, args: Sequence[str], *, words: int
) -> tuple[AdviceRequest, AdviceId, Conversation] | None:
    """The request args[0] names, not closed; None after telling the sender why not."""
    if len(args) < words:
        raise UsageError()
    found = await _request(ctx, args[0])
    if found is not None and found[0].status == AdviceStatus.CLOSED:
        ctx.reply(ctx.texts.advice_is_closed.format(id=found[1]))
        return None
    return found


async def _may_ask(ctx: Context, conversation: Conversation) -> bool:
    texts, n = ctx.texts, conversation.id
    if conversation.status == Status.RESOLVED:
        ctx.reply(texts.is_resolved.format(number=n))
        return False
    return await claims.may_act(ctx, conversation)


def _to_consultant_or_pools(
    ctx: Context,
    consultant: Person | None,
    pools: Sequence[RoleChannel],
    personal: Callable[[Texts], str],
    pooled: str,
    **values: object,
) -> None:
    """A note about a request: to its consultant privately (`personal`, their language's
    template), or, while nobody has taken it, to every consultants' pool channel."""
    if consultant is not None:
        ctx.tell(consultant, Notice(personal(ctx.texts_of(consultant)).format(**values)))
        return
    for pool in pools:
        ctx.out.post(ChannelId(pool.channel), Notice(pooled.format(**values)))


def _take(ctx: Context, request: AdviceRequest, ident: AdviceId) -> None:
    request.consultant_id = ctx.sender.id
    request.status = AdviceStatus.TAKEN
    request.taken_at = ctx.now
    ctx.session.add(request)


def _remember(ctx: Context, request: AdviceRequest, kind: str, text: str) -> None:
    assert request.id is not None and ctx.sender.id is not None
    ctx.session.add(
        AdviceMessage(
            request_id=request.id, author_id=ctx.sender.id, kind=kind, text=text, at=ctx.now
        )
    )


async def _note_under_card(ctx: Context, conversation: Conversation, text: str) -> None:
    """Into the thread under the card, in the team's staff-only owner channel."""
    channel = await card.channel_of(ctx, conversation)
    if channel is None or conversation.id is None:
        return
    # Defence in depth: a consultant's words never land where a customer reads.
    if await watched.by_channel(ctx.session, channel) is not None:
        return
    ctx.out.reply_to_card(channel, Notice(text), conversation.id)


async def _request_card(
    ctx: Context,
    texts: Texts,
    conversation: Conversation,
    ident: AdviceId,
    question: str,
    *,
    owner: str,
    pool: bool,
    prefix: str,
    state: str = "",
) -> Card:
    """What a consultant needs to answer, and nothing more: this conversation only."""
    assert conversation.id is not None
    mentions = await conversations.mentions(ctx.session, conversation.id)
    said = "\n".join(f"{m.author_name}: {m.text}" for m in mentions)
    text, _ = trim(said, CONTEXT_LIMIT)
    # `prefix`: the reader's (a consultant on Matrix answers an owner on Slack)
    take = Button(texts.button_take, "take", str(ident), "primary", f"{prefix} take {ident}")
    answer = Button(
        texts.button_answer,
        "answer",
        str(ident),
        "primary",
        f"{prefix} answer {ident} {texts.form_answer_placeholder}",
        form="answer",
    )
    buttons = (take,) if pool else (answer,)
    customer = conversation.customer_name
    shown_state = (Field(texts.card_status, state),) if state else ()
    return Card(
        title=texts.advice_card_title.format(
            id=ident, source=conversation.source, customer=customer
        ),
        fields=(
            *shown_state,
            Field(texts.advice_card_asked_by, owner),
            Field(texts.advice_card_question, question),
        ),
        text=text,
        more=texts.advice_card_how.format(id=ident, owner=owner),
        link=conversation.url,
        buttons=buttons,
        fallback=texts.advice_for_you.format(owner=owner, id=ident),
    )


async def _person(ctx: Context, person_id: int | None) -> Person | None:
    return await ctx.session.get(Person, person_id) if person_id is not None else None


def _name(person: Person | None) -> str:
    return person.display_name if person else "?"
