"""The claim lifecycle: open → claimed → replied → resolved, with release, reopen and reassign.

Every change locks the conversation row first (see storage.conversations.lock),
so when fifty people press Claim at once exactly one wins and the others are
told who did. Each change is written to the audit log and updates the card.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import Context
from bot.events import NotYet, Reaction
from bot.log_format import about_conversation
from bot.people import MANAGERS, STAFF, is_manager, is_staff
from bot.router import Router, UsageError
from bot.views import Notice
from handlers import card
from handlers.customers import held_for_other, holds_for_other
from handlers.people import named_person
from handlers.text import number
from storage import bursts, conversations, outbox, teams
from storage.models import Conversation, Person, Status


def register(router: Router) -> None:
    router.command("claim", claim, STAFF)
    router.command("release", release, STAFF)
    router.command("replied", replied, STAFF)
    router.command("resolve", resolve, STAFF)
    router.command("reopen", reopen, STAFF)
    router.command("reassign", reassign, MANAGERS)
    router.on(Reaction, on_reaction)


#: reacting with a raised hand to a card claims it (Matrix has no buttons)
CLAIM_EMOJI = frozenset({"✋", "✋️", "raised_hand", "hand"})


async def on_reaction(ctx: Context, event: Reaction) -> None:
    if event.emoji not in CLAIM_EMOJI:
        return
    conversation = await conversations.by_card(ctx.session, event.message_ref)
    if conversation is None:
        # ✋ on a channel's burst card is its Claim next (typed in that channel)
        if await bursts.channel_of(ctx.session, event.message_ref) is not None:
            wanted = ["next"]
        elif await outbox.card_on_its_way(ctx.session, event.channel):
            # Maybe a card whose poster died before booking where it went: once its
            # row is taken over and looked up, the ✋ names it (bounded: Inbox.later).
            raise NotYet(f"{event.message_ref} in {event.channel} may be a card on its way")
        elif conversation := await conversations.by_card(ctx.session, event.message_ref):
            # booked between the two looks (each statement sees the latest commit)
            wanted = [str(conversation.id)]
        else:
            return
    else:
        wanted = [str(conversation.id)]
    person = await ctx.directory.ensure(ctx.session, event.sender, ctx.now)
    if is_staff(person):
        await claim(ctx.as_sender(person), wanted)


async def claim(ctx: Context, args: Sequence[str]) -> None:
    if [a.lower() for a in args] == ["next"]:
        conversation = await _next_unclaimed(ctx)
        if conversation is None:
            ctx.reply(ctx.texts.claim_next_none)
            return
    else:
        conversation = await conversation_arg(ctx, args)
    if conversation is None:
        return
    texts, me, n = ctx.texts, ctx.sender, conversation.id
    if conversation.status == Status.RESOLVED:
        ctx.report(texts.is_resolved.format(number=n))
    elif conversation.owner_id == me.id:
        ctx.report(texts.already_yours.format(number=n))
    elif conversation.owner_id is not None:
        ctx.report(texts.claimed_by_other.format(number=n, owner=await _name(ctx, conversation)))
    elif await held_for_other(ctx, conversation):
        return  # offered to the customer's relationship owner first, for a while
    else:
        _take(ctx, conversation, me)
        ctx.report(
            texts.claimed_you.format(
                number=n, customer=conversation.customer_name, source=conversation.source
            )
        )
        await _changed(ctx, conversation, "claimed")


async def release(ctx: Context, args: Sequence[str]) -> None:
    conversation = await conversation_arg(ctx, args)
    if conversation is None:
        return
    texts, n = ctx.texts, conversation.id
    if conversation.owner_id is None or conversation.status == Status.RESOLVED:
        ctx.report(texts.not_claimed.format(number=n))
        return
    previous = await may_change(ctx, conversation)
    if previous is None:
        return
    conversation.owner_id = None
    conversation.status = Status.OPEN
    ctx.report(texts.released.format(number=n))
    await _changed(ctx, conversation, "released")
    if previous.id != ctx.sender.id:
        ctx.tell(
            previous,
            Notice(
                ctx.texts_of(previous).released_by_manager.format(
                    actor=ctx.sender.display_name, number=n
                )
            ),
        )


async def replied(ctx: Context, args: Sequence[str]) -> None:
    conversation = await conversation_arg(ctx, args)
    if conversation is None:
        return
    texts, n = ctx.texts, conversation.id
    if conversation.status == Status.RESOLVED:
        ctx.report(texts.is_resolved.format(number=n))
        return
    if conversation.owner_id is None:
        # Replying to an unclaimed conversation claims it: the reply is what matters
        # (so it waits for a relationship owner's hold like a claim).
        if await held_for_other(ctx, conversation):
            return
        _take(ctx, conversation, ctx.sender)
    elif await may_change(ctx, conversation) is None:
        return
    conversation.status = Status.REPLIED
    conversation.first_reply_at = conversation.first_reply_at or ctx.now
    ctx.report(texts.marked_replied.format(number=n))
    await _changed(ctx, conversation, "replied")


async def resolve(ctx: Context, args: Sequence[str]) -> None:
    conversation = await conversation_arg(ctx, args)
    if conversation is None:
        return
    texts, n = ctx.texts, conversation.id
    if conversation.status == Status.RESOLVED:
        ctx.report(texts.resolved_already.format(number=n))
        return
    if not await may_act(ctx, conversation):
        return
    conversation.status = Status.RESOLVED
    conversation.resolved_at = ctx.now
    ctx.report(texts.resolved.format(number=n))
    await _changed(ctx, conversation, "resolved")


async def reopen(ctx: Context, args: Sequence[str]) -> None:
    conversation = await conversation_arg(ctx, args)
    if conversation is None:
        return
    texts, n = ctx.texts, conversation.id
    if conversation.status != Status.RESOLVED:
        ctx.report(texts.not_resolved.format(number=n))
        return
    reopen_conversation(conversation)
    ctx.report(texts.reopened.format(number=n))
    await _changed(ctx, conversation, "reopened")
    owner = await _owner(ctx, conversation)
    if owner is not None and owner.id != ctx.sender.id:
        ctx.tell(
            owner,
            Notice(
                ctx.texts_of(owner).reopened_for_owner.format(
                    actor=ctx.sender.display_name, number=n
                )
            ),
        )


def reopen_conversation(conversation: Conversation) -> None:
    """Back to work: the owner keeps it if there was one (the relationship stays with them)."""
    conversation.status = Status.CLAIMED if conversation.owner_id else Status.OPEN
    conversation.resolved_at = None


async def reassign(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 2:
        raise UsageError()
    conversation = await conversation_arg(ctx, args[:1])
    if conversation is None:
        return
    texts, n = ctx.texts, conversation.id
    target = await named_person(ctx, args[1])
    if target is None:
        return
    if not is_staff(target):
        ctx.reply(
            texts.reassign_not_staff.format(person=target.display_name, role=target.role or "none")
        )
        return
    if conversation.status == Status.RESOLVED:
        ctx.report(texts.is_resolved.format(number=n))
        return
    previous = await _owner(ctx, conversation)
    if previous is not None and previous.id == target.id:
        # Nothing to do: no card update, no history entry, nobody else told.
        ctx.report(texts.reassigned_already.format(number=n, owner=target.display_name))
        return
    _take(ctx, conversation, target)
    ctx.report(texts.reassigned.format(number=n, owner=target.display_name))
    await _changed(ctx, conversation, "reassigned", detail=target.ref)
    actor = ctx.sender.display_name
    if target.id != ctx.sender.id:
        ctx.tell(
            target,
            Notice(
                ctx.texts_of(target).reassigned_to_you.format(
                    actor=actor,
                    number=n,
                    customer=conversation.customer_name,
                    source=conversation.source,
                )
            ),
        )
    if previous is not None and previous.id != ctx.sender.id:
        ctx.tell(
            previous,
            Notice(
                ctx.texts_of(previous).reassigned_away.format(
                    actor=actor, number=n, owner=target.display_name
                )
            ),
        )


#: how many of the oldest unclaimed `claim next` tries, when others take them first
NEXT_CANDIDATES = 20


async def _next_unclaimed(ctx: Context) -> Conversation | None:
    """The oldest unclaimed conversation for the sender, locked: of the team whose
    channel they press it in (a burst card's Claim next), else of their teams, else of
    any. Fifty people pressing at once get fifty different ones: each candidate is
    locked, then checked again (someone else may have just taken it)."""
    assert ctx.sender.id is not None
    here = await teams.by_channel(ctx.session, ctx.channel) if ctx.channel else None
    if here is not None and here.id is not None:
        where: list[int] | None = [here.id]
    else:
        where = [t.id for t in await teams.teams_of(ctx.session, ctx.sender.id) if t.id] or None
    # Held for someone else's customer: passed over, and the next page reaches further
    # (they stay unclaimed, where the ones others took drop out).
    held: set[int] = set()
    while True:
        limit = NEXT_CANDIDATES + len(held)
        candidates, _ = await conversations.unclaimed(ctx.session, where, limit)
        for candidate in candidates:
            assert candidate.id is not None
            if candidate.id in held:
                continue
            conversation = await conversations.lock(ctx.session, candidate.id)
            if conversation is None or not _unclaimed(conversation):
                continue
            if holds_for_other(conversation, ctx.sender, ctx.now):
                held.add(candidate.id)
                continue
            return conversation
        if len(candidates) < limit:
            return None


def _unclaimed(conversation: Conversation) -> bool:
    return conversation.status == Status.OPEN and conversation.owner_id is None


# -- shared steps --------------------------------------------------------------------


async def conversation_arg(ctx: Context, args: Sequence[str]) -> Conversation | None:
    """The conversation `args` (one number) names, locked; None after telling the sender."""
    if len(args) != 1:
        raise UsageError()
    n = number(args[0], ctx.texts.bad_number)
    about_conversation(n)  # the log lines from here on name it (INLOOP_LOG_FORMAT=json)
    conversation = await conversations.lock(ctx.session, n)
    if conversation is None:
        ctx.reply(ctx.texts.no_such_conversation.format(number=n))
    return conversation


def _take(ctx: Context, conversation: Conversation, person: Person) -> None:
    conversation.owner_id = person.id
    conversation.held_until = None  # taken: no longer offered to anyone
    if conversation.status == Status.OPEN:
        conversation.status = Status.CLAIMED
    # the first claim counts for time-to-claim; a release and re-claim does not reset it
    conversation.claimed_at = conversation.claimed_at or ctx.now


async def may_act(ctx: Context, conversation: Conversation) -> bool:
    """Its owner may act on a conversation, and a manager; an unclaimed one, only a
    manager. Otherwise the sender is told why not."""
    if conversation.owner_id is None:
        if not is_manager(ctx.sender):
            ctx.report(ctx.texts.only_manager_unclaimed.format(number=conversation.id))
            return False
        return True
    return await may_change(ctx, conversation) is not None


async def may_change(ctx: Context, conversation: Conversation) -> Person | None:
    """The owner, if the sender may change the conversation (owner or manager); else refuse."""
    owner = await _owner(ctx, conversation)
    assert owner is not None
    if owner.id == ctx.sender.id or is_manager(ctx.sender):
        return owner
    ctx.report(ctx.texts.not_owner.format(owner=owner.display_name, number=conversation.id))
    return None


async def _owner(ctx: Context, conversation: Conversation) -> Person | None:
    if conversation.owner_id is None:
        return None
    return await ctx.session.get(Person, conversation.owner_id)


async def _name(ctx: Context, conversation: Conversation) -> str:
    owner = await _owner(ctx, conversation)
    return owner.display_name if owner else ""


async def _changed(ctx: Context, conversation: Conversation, action: str, detail: str = "") -> None:
    """Audit the change and update the card (after the sender's own answer, which reads first)."""
    conversation.updated_at = ctx.now
    # The change, its history line and what the card reads besides the conversation
    # itself (team, owner, messages, advice, history) go in one statement on PostgreSQL,
    # where each is a round trip; both outbox rows follow in one INSERT at the commit
    # (the card's look-ups run without an autoflush, which would write the first alone).
    facts = await conversations.save_change(
        ctx.session, conversation, ctx.sender.id, action, ctx.now, detail
    )
    with ctx.session.no_autoflush:
        await card.refresh(ctx, conversation, facts)
