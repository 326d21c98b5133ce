"""`queue` and `show`: what is waiting, and one conversation in full."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.context import Context
from bot.messages import Texts
from bot.people import STAFF
from bot.router import Router, UsageError
from handlers import advice, card
from handlers.text import age, number, one_line, stamp
from storage import conversations, people, teams
from storage.models import Conversation, Role, Team

QUEUE_LIMIT = 10


def register(router: Router) -> None:
    router.command("queue", queue, STAFF)
    router.command("show", show, STAFF | {Role.CONSULTANT})


@dataclass(frozen=True)
class Focus:
    """The teams a person sees first (their teams), and how many wait in the others.

    Membership decides what people see first, not what they may do: anyone on
    staff can still claim anywhere (`queue all` lists every team).
    """

    #: the teams shown first; empty: every team (someone in no team sees them all)
    teams: tuple[Team, ...] = ()
    #: the other teams where unclaimed conversations wait, with how many
    elsewhere: tuple[tuple[Team, int], ...] = ()

    @property
    def team_ids(self) -> list[int] | None:
        """For `conversations.unclaimed`: these teams, or None for every team."""
        return [t.id for t in self.teams if t.id is not None] or None

    def names(self) -> str:
        return ", ".join(t.name for t in self.teams)

    def elsewhere_text(self, texts: Texts) -> str:
        """Like "2 waiting in billing, 1 waiting in sales"; empty if nothing waits elsewhere."""
        return ", ".join(
            texts.queue_waiting_in.format(count=n, team=t.name) for t, n in self.elsewhere
        )


def focus_among(
    every: Sequence[Team], theirs: Collection[int], waiting: Mapping[int, int]
) -> Focus:
    """The focus of someone whose teams are `theirs`, given how many wait in each team."""
    if not theirs:
        return Focus()
    return Focus(
        tuple(t for t in every if t.id in theirs),
        tuple(
            (t, waiting[t.id])
            for t in every
            if t.id is not None and t.id not in theirs and waiting.get(t.id)
        ),
    )


async def focus_of(ctx: Context, person_id: int, also: int | None = None) -> Focus:
    """A person's focus: the teams they belong to, and `also` (the owner channel's team
    where they ask)."""
    theirs = {t.id for t in await teams.teams_of(ctx.session, person_id) if t.id is not None}
    if also is not None:
        theirs.add(also)
    if not theirs:
        return Focus()
    return focus_among(
        await teams.every(ctx.session), theirs, await teams.waiting_by_team(ctx.session)
    )


async def queue(ctx: Context, args: Sequence[str]) -> None:
    everything = [a.lower() for a in args] == ["all"]
    if args and not everything:
        raise UsageError()
    texts = ctx.texts
    assert ctx.sender.id is not None
    mine = await conversations.owned_by(ctx.session, ctx.sender.id)
    # The person's teams first, and the team of the owner channel they ask in;
    # `queue all`, or someone in no team asking elsewhere: every team's.
    here = await teams.by_channel(ctx.session, ctx.channel) if ctx.channel else None
    focus = Focus() if everything else await focus_of(ctx, ctx.sender.id, here.id if here else None)
    waiting, total = await conversations.unclaimed(ctx.session, focus.team_ids, QUEUE_LIMIT)
    elsewhere = focus.elsewhere_text(texts)
    if not mine and not waiting:
        if elsewhere:
            ctx.reply(texts.queue_empty_for.format(teams=focus.names(), elsewhere=elsewhere))
        else:
            ctx.reply(texts.queue_empty)
        return
    listed = [*mine[:QUEUE_LIMIT], *waiting]
    excerpts = await conversations.latest_texts(ctx.session, [c.id for c in listed if c.id])
    lines: list[str] = []
    if mine:
        lines.append(texts.queue_mine.format(count=len(mine)))
        lines += [queue_line(ctx, texts, c, excerpts) for c in mine[:QUEUE_LIMIT]]
        if len(mine) > QUEUE_LIMIT:
            lines.append(texts.queue_more.format(count=len(mine) - QUEUE_LIMIT))
    if waiting:
        heading = (
            texts.queue_unclaimed_team.format(team=focus.names(), count=total)
            if focus.teams
            else texts.queue_unclaimed.format(count=total)
        )
        lines.append(heading)
        lines += [queue_line(ctx, texts, c, excerpts) for c in waiting]
        if total > len(waiting):
            lines.append(texts.queue_more.format(count=total - len(waiting)))
    if elsewhere:
        lines.append(texts.queue_elsewhere.format(elsewhere=elsewhere))
    ctx.reply("\n".join(lines))


def queue_line(
    ctx: Context, texts: Texts, conversation: Conversation, excerpts: dict[int, str]
) -> str:
    """One conversation in a list: also the reminder of a commitment uses it."""
    assert conversation.id is not None
    return texts.queue_line.format(
        number=conversation.id,
        source=conversation.source,
        customer=conversation.customer_name,
        status=texts.status_names[conversation.status].split(" —")[0],
        age=age(conversation.created_at, ctx.now),
        excerpt=one_line(excerpts.get(conversation.id, "")),
    )


async def show(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 1:
        raise UsageError()
    texts = ctx.texts
    n = number(args[0], texts.bad_number)
    if not await advice.may_read(ctx, n):
        ctx.reply(texts.consultant_scope)
        return
    conversation = await conversations.get(ctx.session, n)
    if conversation is None:
        ctx.reply(texts.no_such_conversation.format(number=n))
        return
    entries = await conversations.history(ctx.session, n)
    names = await people.names(
        ctx.session,
        {e.actor_id for e in entries if e.actor_id} | {conversation.owner_id or 0} - {0},
    )
    team = await ctx.session.get(Team, conversation.team_id) if conversation.team_id else None
    lines = [
        texts.show_header.format(
            number=n,
            source=conversation.source,
            customer=conversation.customer_name
            if conversation.erased_at is None
            else texts.erased_customer,
            handle=f" ({conversation.customer_handle})" if conversation.customer_handle else "",
            status=texts.status_names[conversation.status],
            owner=names.get(conversation.owner_id or 0, card.nobody(texts, conversation)),
            team=team.name if team else texts.card_no_team,
            url=conversation.url or "—",
        ),
        "",
    ]
    erased = conversation.erased_at is not None
    if erased:
        lines.append(texts.card_erased)  # its mentions' rows stay, with nothing in them
    for mention in [] if erased else await conversations.mentions(ctx.session, n):
        lines.append(
            texts.show_mention.format(
                at=stamp(mention.created_at), author=mention.author_name, text=mention.text
            )
        )
    lines += ["", texts.show_history]
    # A reassignment names its new owner by platform id: shown by name.
    given_to = {
        e.detail: await people.find(ctx.session, e.detail)
        for e in entries
        if e.action == "reassigned" and e.detail
    }
    for entry in entries:
        detail = entry.detail
        if entry.action == "reassigned" and (person := given_to.get(detail)) is not None:
            detail = person.display_name
        lines.append(
            texts.show_history_line.format(
                at=stamp(entry.at),
                actor=names.get(entry.actor_id or 0, "Inloop"),
                action=history_action(texts, entry.action, detail),
            )
        )
    ctx.reply("\n".join(lines))


def history_action(texts: Texts, action: str, detail: str) -> str:
    """What an audit entry says happened, in words; with its detail where that helps."""
    with_detail = texts.audit_details.get(action) if detail else None
    if with_detail is not None:
        return with_detail.format(detail=detail)
    return texts.audit_actions.get(action, action)
