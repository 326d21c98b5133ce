"""Escalation: nobody is left waiting past their team's targets.

    unclaimed at the claim target    ─► one note in the team channel, under the card,
                                        naming who is on duty
    unclaimed at twice the target    ─► the team's managers, privately
    no reply at the reply target     ─► the owner, privately
    no reply at twice the target     ─► the team's managers, privately

A sweep runs every minute (a scheduler Tick: one instance handles each minute).
Only working time counts (`team hours`, bot/working_hours.py). Each step is a row
unique per (conversation, step), inserted before anything is said: a step is done
once, across restarts and instances. A conversation claimed, replied or resolved
before its step is due is not in the sweep's query, so it is never nudged.
What crossed a target in the same sweep is one message per channel or person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from bot.context import Context
from bot.events import ChannelId, Tick
from bot.messages import Texts
from bot.people import MANAGERS
from bot.recurrence import valid_zone
from bot.router import Router, UsageError
from bot.views import Notice
from bot.working_hours import WorkingHours, business_minutes
from handlers.commitments import days_text, duration
from storage import duty, teams
from storage import escalation as store
from storage.escalation import Step
from storage.models import Conversation, Person, Role, Team

#: the scheduler's name for the sweep
SWEEP = "escalation"
#: conversations listed in one message; a last line counts the rest
LISTED = 20
#: the two steps of a target, by whether the conversation is unclaimed (else unreplied)
_STEPS = {True: (Step.CLAIM, Step.CLAIM_MANAGERS), False: (Step.REPLY, Step.REPLY_MANAGERS)}


@dataclass(frozen=True)
class Defaults:
    """The targets of a team that has set none (CLAIM_TARGET_MINUTES, REPLY_TARGET_MINUTES)."""

    claim_minutes: int
    reply_minutes: int


@dataclass(frozen=True)
class Targets:
    claim_minutes: int
    reply_minutes: int
    #: None: every hour counts
    hours: WorkingHours | None


def targets_of(team: Team, defaults: Defaults) -> Targets:
    return Targets(
        team.claim_target_minutes or defaults.claim_minutes,
        team.reply_target_minutes or defaults.reply_minutes,
        hours_of(team),
    )


def hours_of(team: Team) -> WorkingHours | None:
    """The team's working hours, None for always (or for hours no longer valid: a zone
    this machine has lost counts every minute rather than none)."""
    if not (team.work_days and team.work_start and team.work_end and team.work_tz):
        return None
    if not valid_zone(team.work_tz):
        return None
    try:
        return WorkingHours(
            frozenset(int(d) for d in team.work_days.split(",") if d),
            clock_minutes(team.work_start),
            clock_minutes(team.work_end),
            team.work_tz,
        )
    except ValueError:
        return None


def clock_minutes(value: str) -> int:
    """A local time, "HH:MM" (up to "24:00"), as minutes after midnight."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def hours_text(hours: WorkingHours | None, texts: Texts) -> str:
    if hours is None:
        return texts.hours_always
    return texts.hours_window.format(
        days=days_text(sorted(hours.days), texts),
        start=clock_text(hours.start),
        end=clock_text(hours.end),
        tz=hours.tz,
    )


def register(router: Router, defaults: Defaults) -> None:
    async def on_tick(ctx: Context, event: Tick) -> None:
        if event.name == SWEEP:
            await sweep(ctx, defaults)

    async def list_(ctx: Context, args: Sequence[str]) -> None:
        await escalations(ctx, args, defaults)

    router.on(Tick, on_tick)
    router.command("escalations", list_, MANAGERS)


def minute_after(moment: datetime) -> datetime:
    """The sweep runs on whole minutes, so every instance names the same moments."""
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


# -- what is late ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Late:
    """A conversation past one of its team's targets."""

    conversation: Conversation
    team: Team
    #: True: unclaimed (the claim target); False: claimed, no reply (the reply target)
    unclaimed: bool
    #: working minutes it has waited (since it arrived, or since it was claimed)
    waited: float
    target: int

    @property
    def number(self) -> int:
        assert self.conversation.id is not None
        return self.conversation.id


async def past_targets(
    ctx: Context, defaults: Defaults, *, pending_only: bool, lock: bool = False
) -> list[Late]:
    """Conversations past a target now, oldest first; `pending_only`: leave out those
    whose last step is done already (the sweep's work shrinks as it is done)."""
    by_id = {t.id: t for t in await teams.every(ctx.session)}
    if not by_id:
        return []
    targets = {i: targets_of(t, defaults) for i, t in by_id.items()}
    # Working time is at most the time that passed: a wait shorter than the smallest
    # target in wall-clock time is under every target, and is not even read.
    soonest_claim = min(t.claim_minutes for t in targets.values())
    soonest_reply = min(t.reply_minutes for t in targets.values())
    now = ctx.now
    found: list[Late] = []
    waiting = await store.unclaimed(
        ctx.session,
        now - timedelta(minutes=soonest_claim),
        pending_only=pending_only,
        lock=lock,
    )
    for conversation in waiting:
        assert conversation.team_id is not None
        team, target = by_id[conversation.team_id], targets[conversation.team_id]
        waited = business_minutes(conversation.created_at, now, target.hours)
        if waited >= target.claim_minutes:
            found.append(Late(conversation, team, True, waited, target.claim_minutes))
    unanswered = await store.unreplied(
        ctx.session,
        now - timedelta(minutes=soonest_reply),
        pending_only=pending_only,
        lock=lock,
    )
    # Counted from when the present owner took it: someone who claims a conversation
    # released by another, or is given it, is not told they are late at once.
    taken = await store.taken_at(ctx.session, [c.id for c in unanswered if c.id is not None])
    for conversation in unanswered:
        assert conversation.team_id is not None and conversation.claimed_at is not None
        team, target = by_id[conversation.team_id], targets[conversation.team_id]
        since = max(
            conversation.claimed_at, taken.get(conversation.id or 0, conversation.claimed_at)
        )
        waited = business_minutes(since, now, target.hours)
        if waited >= target.reply_minutes:
            found.append(Late(conversation, team, False, waited, target.reply_minutes))
    found.sort(key=lambda late: (late.conversation.created_at, late.number))
    return found


# -- the sweep ----------------------------------------------------------------------------


async def sweep(ctx: Context, defaults: Defaults) -> None:
    late = await past_targets(ctx, defaults, pending_only=True, lock=True)
    if not late:
        return
    done = await store.done(ctx.session, [item.number for item in late])
    due: list[tuple[Late, Step]] = []
    for item in late:
        first, second = _STEPS[item.unclaimed]
        for step, factor in ((first, 1), (second, 2)):
            if step not in done.get(item.number, set()) and item.waited >= factor * item.target:
                due.append((item, step))
    won = await store.record(ctx.session, {(item.number, step) for item, step in due}, ctx.now)
    due = [(item, step) for item, step in due if (item.number, str(step)) in won]
    if not due:
        return
    owners = await _people(ctx, {i.conversation.owner_id for i, _ in due if not i.unclaimed})
    await _nudge_channels(ctx, [item for item, step in due if step == Step.CLAIM])
    _nudge_owners(ctx, [item for item, step in due if step == Step.REPLY], owners)
    managed = [item for item, step in due if step in (Step.CLAIM_MANAGERS, Step.REPLY_MANAGERS)]
    await _tell_managers(ctx, managed, owners)


async def _nudge_channels(ctx: Context, items: Sequence[Late]) -> None:
    """One message per team channel: under the card when one conversation crossed its
    claim target, else one list in the channel."""
    if not items:
        return
    by_team: dict[int, list[Late]] = {}
    for item in items:
        assert item.team.id is not None
        by_team.setdefault(item.team.id, []).append(item)
    on_duty = await duty.on_duty(ctx.session, ctx.now, list(by_team))
    texts = ctx.channel_texts
    for team_id, crossed in by_team.items():
        team = crossed[0].team
        names = [d.person.display_name for d in on_duty.get(team_id, [])]
        # Names, never mentions: only those on duty are named, and nobody is pinged.
        who = (
            texts.nudge_on_duty.format(people=", ".join(names))
            if names
            else texts.nudge_nobody_on_duty.format(team=team.name)
        )
        if len(crossed) == 1:
            item = crossed[0]
            conversation = item.conversation
            text = texts.nudge_claim_one.format(
                number=item.number,
                customer=conversation.customer_name,
                source=conversation.source,
                waited=_minutes(item.waited),
                target=duration(item.target),
                duty=who,
            )
            if conversation.card_ref is not None and conversation.card_channel is not None:
                where = ChannelId(conversation.card_channel)
                ctx.out.reply_to_card(where, Notice(text), item.number)
                continue
            # The card never made it to the channel: the note goes in the channel itself.
            ctx.out.post(ChannelId(team.channel), Notice(text))
            continue
        lines = [texts.nudge_claim_many.format(count=len(crossed))]
        lines += _listed(
            texts,
            [
                texts.nudge_claim_line.format(
                    number=item.number,
                    customer=item.conversation.customer_name,
                    source=item.conversation.source,
                    waited=_minutes(item.waited),
                    target=duration(item.target),
                )
                for item in crossed
            ],
        )
        lines.append(who)
        ctx.out.post(ChannelId(team.channel), Notice("\n".join(lines)))


def _nudge_owners(ctx: Context, items: Sequence[Late], owners: dict[int, Person]) -> None:
    """Each owner, privately, once for all their conversations that crossed the target."""
    by_owner: dict[int, list[Late]] = {}
    for item in items:
        assert item.conversation.owner_id is not None
        by_owner.setdefault(item.conversation.owner_id, []).append(item)
    for owner_id, crossed in by_owner.items():
        owner = owners.get(owner_id)
        if owner is None:
            continue
        texts, prefix = ctx.texts_of(owner), ctx.prefix_on(owner.ref)
        lines = [texts.nudge_owner_header]
        lines += _listed(
            texts,
            [
                texts.nudge_owner_line.format(
                    number=item.number,
                    customer=item.conversation.customer_name,
                    source=item.conversation.source,
                    waited=_minutes(item.waited),
                    target=duration(item.target),
                    replied=f"{prefix} replied {item.number}",
                    release=f"{prefix} release {item.number}",
                )
                for item in crossed
            ],
        )
        ctx.tell(owner, Notice("\n".join(lines)))


async def _tell_managers(ctx: Context, items: Sequence[Late], owners: dict[int, Person]) -> None:
    """Each manager, privately, once for all the conversations of their teams at twice a
    target: a team's managers are its members with the role manager; a team with none
    has every manager; with no manager at all, the admins hear of it."""
    if not items:
        return
    everyone = await store.managers(ctx.session)
    managers = [(p, t) for p, t in everyone if p.role == Role.MANAGER]
    admins = [(p, t) for p, t in everyone if p.role == Role.ADMIN]
    lines: dict[int, tuple[Person, list[Late]]] = {}
    for item in items:
        theirs = [p for p, t in managers if item.team.id in t] or [p for p, _ in managers]
        for person in theirs or [p for p, _ in admins]:
            assert person.id is not None
            lines.setdefault(person.id, (person, []))[1].append(item)
    for person, crossed in lines.values():
        texts = ctx.texts_of(person)
        body = [texts.nudge_managers_header]
        body += _listed(texts, [_late_line(texts, item, owners) for item in crossed])
        ctx.tell(person, Notice("\n".join(body)))


def _late_line(texts: Texts, item: Late, owners: dict[int, Person]) -> str:
    conversation = item.conversation
    fields = {
        "number": item.number,
        "team": item.team.name,
        "customer": conversation.customer_name,
        "source": conversation.source,
        "waited": _minutes(item.waited),
        "target": duration(item.target),
    }
    if item.unclaimed:
        return texts.late_unclaimed.format(**fields)
    owner = owners.get(conversation.owner_id or 0)
    return texts.late_unreplied.format(
        owner=owner.display_name if owner else texts.card_nobody, **fields
    )


def _listed(texts: Texts, lines: list[str]) -> list[str]:
    if len(lines) <= LISTED:
        return lines
    return [*lines[:LISTED], texts.queue_more.format(count=len(lines) - LISTED)]


def _minutes(waited: float) -> str:
    return duration(int(waited))


async def _people(ctx: Context, ids: set[int | None]) -> dict[int, Person]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    found = await ctx.session.scalars(select(Person).where(col(Person.id).in_(wanted)))
    return {p.id: p for p in found if p.id is not None}


# -- `escalations` ------------------------------------------------------------------------------


async def escalations(ctx: Context, args: Sequence[str], defaults: Defaults) -> None:
    """What is past its targets now, oldest first (of one team, or of every team)."""
    if len(args) > 1:
        raise UsageError()
    texts = ctx.texts
    only: Team | None = None
    if args:
        only = await teams.by_name(ctx.session, args[0])
        if only is None:
            names = ", ".join(t.name for t in await teams.every(ctx.session)) or "—"
            ctx.reply(texts.team_unknown.format(team=args[0], teams=names))
            return
    late = [
        item
        for item in await past_targets(ctx, defaults, pending_only=False)
        if only is None or item.team.id == only.id
    ]
    if not late:
        ctx.reply(texts.escalations_none)
        return
    owners = await _people(ctx, {i.conversation.owner_id for i in late if not i.unclaimed})
    lines = [texts.escalations_header.format(count=len(late))]
    lines += _listed(texts, [_late_line(texts, item, owners) for item in late])
    ctx.reply("\n".join(lines))
