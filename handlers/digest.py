"""The weekly digest: commitment kept, time to claim and to reply, advice, what waits.

`digest [this|last|YYYY-Www] [TEAM]` answers a manager privately, with its chart;
the same figures are posted every Monday to the managers' channel, and exported
by `inloop digest` as text, CSV or JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.charts import ChartWords, digest_chart
from bot.context import Context
from bot.events import ChannelId, PersonId, Tick, platform_of
from bot.messages import Texts
from bot.people import ADMINS, MANAGERS
from bot.recurrence import zone
from bot.router import Router, UsageError
from bot.views import Chart, Notice
from bot.working_hours import business_minutes
from handlers.escalation import hours_of
from handlers.weeks import IsoWeek, parse_week
from storage import day_totals, role_channels, teams
from storage import digest as raw_digest
from storage.models import Role, Team

UNCLAIMED_LISTED = 10
#: people drawn on the chart: the most minutes committed first
CHART_PEOPLE = 20
#: the scheduler's name for Monday 09:00
WEEKLY = "weekly-digest"
#: the scheduler's name for closing the days that are over (every minute)
CLOSE_DAYS = "digest-days"
#: a day is closed this long after its end: a transaction that began before midnight
#: and wrote its events with a time before it has committed by then
CLOSE_AFTER = timedelta(hours=1)
#: days closed by one run of the job (a first run backfills the history in steps)
CLOSE_AT_ONCE = 7


@dataclass(frozen=True)
class PersonFigures:
    name: str
    claimed: int
    replied: int
    resolved: int
    to_claim: float | None
    to_reply: float | None
    #: from commitments: minutes committed and given, sessions by outcome
    committed: int | None = None
    given: int | None = None
    sessions: dict[str, int] = field(default_factory=dict)
    #: conversations of the returning customers whose relationship they hold, and how
    #: many of those they have themselves
    returning: int = 0
    returning_by_owner: int = 0

    @property
    def continuity(self) -> float | None:
        return _share(self.returning_by_owner, self.returning)

    @property
    def kept(self) -> float | None:
        """Percent of the time committed that was given (over 100: more than committed)."""
        if not self.committed:
            return None
        return 100.0 * (self.given or 0) / self.committed


@dataclass(frozen=True)
class ConsultantFigures:
    name: str
    received: int
    answered: int
    to_answer: float | None
    useful: int


@dataclass(frozen=True)
class TeamFigures:
    name: str
    mentions: int
    by_source: dict[str, int]
    opened: int
    to_claim: float | None
    #: opened this week and waited longer than the team's claim target to be claimed,
    #: counting its working hours only (`team hours`, `team target`)
    over_target: int
    unclaimed: tuple[tuple[int, str], ...]
    unclaimed_total: int
    #: the team's claim target, minutes (its own, or CLAIM_TARGET_MINUTES)
    claim_target: int = 0
    #: conversations of returning customers, and how many their relationship owner has
    returning: int = 0
    returning_by_owner: int = 0
    #: who belongs to the team now (`team join`, `team members`), by name
    members: tuple[str, ...] = ()

    @property
    def continuity(self) -> float | None:
        return _share(self.returning_by_owner, self.returning)


def _share(part: int, whole: int) -> float | None:
    """Percent of `whole`; None when there is nothing to share."""
    return 100.0 * part / whole if whole else None


@dataclass(frozen=True)
class Digest:
    week: IsoWeek
    tz: str
    #: None: the whole company
    team: str | None
    start: datetime
    end: datetime
    people: tuple[PersonFigures, ...]
    consultants: tuple[ConsultantFigures, ...]
    teams: tuple[TeamFigures, ...]
    #: mentions on each day of the week (the reader's language names the days)
    per_day: tuple[tuple[date, int], ...]
    claim_target: int
    previous: Digest | None = None


def register(router: Router, tz: str, claim_target: int) -> None:
    async def digest_command(ctx: Context, args: Sequence[str]) -> None:
        await digest(ctx, args, tz, claim_target)

    async def managers_here(ctx: Context, args: Sequence[str]) -> None:
        if args or ctx.channel is None:
            raise UsageError()
        await role_channels.set_channel(
            ctx.session, role_channels.MANAGERS, platform_of(ctx.channel), ctx.channel
        )
        ctx.reply(ctx.texts.managers_set.format(tz=tz))

    async def on_tick(ctx: Context, event: Tick) -> None:
        if event.name == WEEKLY:
            await post_weekly(ctx, event.at, tz, claim_target)
        elif event.name == CLOSE_DAYS:
            await close_days(ctx.session, tz, ctx.now)

    router.command("digest", digest_command, MANAGERS)
    router.command("managers here", managers_here, ADMINS)
    router.on(Tick, on_tick)


async def digest(ctx: Context, args: Sequence[str], tz: str, claim_target: int) -> None:
    if len(args) > 2:
        raise UsageError()
    texts = ctx.texts
    week = parse_week(args[0] if args else "last", ctx.now, tz)
    if week is None:
        ctx.reply(texts.digest_bad_week.format(value=args[0]))
        return
    team_name = args[1] if len(args) == 2 else ""
    figures = await build(ctx.session, week, tz, team_name, claim_target, ctx.now)
    if figures is None:
        ctx.reply(texts.digest_unknown_team.format(team=team_name))
        return
    ctx.reply(as_text(figures, texts))
    ctx.out.tell(PersonId(ctx.sender.ref), chart(figures, texts), ctx.channel)


async def post_weekly(ctx: Context, monday: datetime, tz: str, claim_target: int) -> None:
    """Monday 09:00: the week that just ended, to every managers' channel."""
    week = IsoWeek.containing(monday.astimezone(zone(tz)).date()).previous()
    figures = await build(ctx.session, week, tz, "", claim_target, ctx.now)
    assert figures is not None
    texts = ctx.channel_texts
    for channel in await role_channels.channels(ctx.session, role_channels.MANAGERS):
        ctx.out.post(ChannelId(channel.channel), Notice(as_text(figures, texts)))
        ctx.out.post(ChannelId(channel.channel), chart(figures, texts))


# -- the figures ---------------------------------------------------------------------------


async def build(
    session: AsyncSession,
    week: IsoWeek,
    tz: str,
    team_name: str,
    claim_target: int,
    now: datetime,
    *,
    live: bool = False,
) -> Digest | None:
    """The week's figures and the week before's (for the trends); None: no such team.

    The days closed already are read from their totals (storage/day_totals.py), the
    others from the rows; `live`: every day from the rows, and returning customers
    from their earlier conversations (what the totals and the conversations'
    `returning_customer` are checked against)."""
    team_id: int | None = None
    if team_name:
        team = await teams.by_name(session, team_name)
        if team is None:
            return None
        team_id, team_name = team.id, team.name
    team_label = team_name or None
    teams_now = await raw_digest.teams(session, team_id)
    shared = _Shared(
        teams=teams_now,
        waiting={
            team: (tuple((number, _age(arrived, now)) for number, arrived in oldest), total)
            for team, (oldest, total) in (
                await raw_digest.unclaimed(
                    session, [t.id for t in teams_now if t.id is not None], UNCLAIMED_LISTED
                )
            ).items()
        },
        members=await teams.member_names(session),
        last_closed=None if live else await day_totals.last_closed(session, tz),
    )
    previous = await _week(
        session, week.previous(), tz, team_id, team_label, shared, claim_target, now, live
    )
    this = await _week(session, week, tz, team_id, team_label, shared, claim_target, now, live)
    return replace(this, previous=previous)


@dataclass(frozen=True)
class _Shared:
    """What is the same for both weeks of a digest (the week and the one before, for the
    trends): read once. Each read is a round trip, which on a busy PostgreSQL server
    can wait for a core."""

    teams: Sequence[Team]
    #: team → (its oldest unclaimed, as (number, age)), how many wait
    waiting: Mapping[int, tuple[tuple[tuple[int, str], ...], int]]
    #: team → its members' names
    members: Mapping[int, Sequence[str]]
    #: the last day the job closed (None: none yet, or the build from the rows)
    last_closed: date | None


async def _week(
    session: AsyncSession,
    week: IsoWeek,
    tz: str,
    team_id: int | None,
    team_name: str | None,
    shared: _Shared,
    claim_target: int,
    now: datetime,
    live: bool,
) -> Digest:
    teams_now, waiting = shared.teams, shared.waiting
    start, end = week.bounds(tz)
    days = [(week.monday + timedelta(days=i)) for i in range(7)]
    targets = {t.id: t.claim_target_minutes or claim_target for t in teams_now if t.id}
    if live:
        raw = await raw_digest.week(
            session,
            start,
            end,
            team_id=team_id,
            over_minutes=min(targets.values(), default=claim_target),
            now=now,
            days=[_midnight(day, tz) for day in days],
        )
    else:
        raw = await _from_totals(
            session, start, end, days, tz, team_id, targets, claim_target, now, shared.last_closed
        )
    ids = (
        set(raw.actions)
        | set(raw.to_claim)
        | set(raw.to_reply)
        | set(raw.advice_received)
        | set(raw.advice_answered)
        # Committed time and gave none: still listed, at 0%. Nobody drops out quietly.
        | set(raw.committed)
        | set(raw.given)
        | set(raw.returning)
    )
    people: list[PersonFigures] = []
    consultants: list[ConsultantFigures] = []
    for person in sorted(await raw_digest.people(session, ids), key=lambda p: p.display_name):
        pid = person.id
        assert pid is not None
        if person.role == Role.CONSULTANT:
            consultants.append(
                ConsultantFigures(
                    name=person.display_name,
                    received=raw.advice_received.get(pid, 0),
                    answered=raw.advice_answered.get(pid, 0),
                    to_answer=_median(raw.advice_minutes.get(pid, [])),
                    useful=raw.advice_useful.get(pid, 0),
                )
            )
            continue
        acted = raw.actions.get(pid, {})
        people.append(
            PersonFigures(
                name=person.display_name,
                claimed=acted.get("claimed", 0),
                replied=acted.get("replied", 0),
                resolved=acted.get("resolved", 0),
                to_claim=raw_digest.median(raw.to_claim.get(pid, [])),
                to_reply=raw_digest.median(raw.to_reply.get(pid, [])),
                committed=raw.committed.get(pid) if not team_id else None,
                given=raw.given.get(pid, 0) if not team_id else None,
                sessions=dict(sorted(raw.sessions.get(pid, {}).items())),
                returning=raw.returning.get(pid, 0),
                returning_by_owner=raw.returning_by_owner.get(pid, 0),
            )
        )
    team_figures = []
    members = shared.members
    for team in teams_now:
        assert team.id is not None
        by_source = dict(sorted(raw.team_mentions.get(team.id, {}).items()))
        # Only working time counts towards the target: a wait over it on the clock may
        # be under it in the team's hours (a Friday evening to a Monday morning).
        hours, target = hours_of(team), targets[team.id]
        over = raw.team_over.get(team.id, 0) + sum(
            1
            for arrived, until in raw.team_waits.get(team.id, ())
            if business_minutes(arrived, until, hours) > target
        )
        team_figures.append(
            TeamFigures(
                name=team.name,
                mentions=sum(by_source.values()),
                by_source=by_source,
                opened=raw.team_opened.get(team.id, 0),
                to_claim=raw_digest.median(raw.team_to_claim.get(team.id, [])),
                over_target=over,
                unclaimed=waiting[team.id][0],
                unclaimed_total=waiting[team.id][1],
                claim_target=target,
                returning=raw.team_returning.get(team.id, 0),
                returning_by_owner=raw.team_returning_by_owner.get(team.id, 0),
                members=tuple(members.get(team.id, ())),
            )
        )
    return Digest(
        week=week,
        tz=tz,
        team=team_name,
        start=start,
        end=end,
        people=tuple(people),
        consultants=tuple(consultants),
        teams=tuple(team_figures),
        per_day=tuple(zip(days, raw.per_day, strict=True)),
        claim_target=claim_target,
        previous=None,
    )


async def _from_totals(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    days: Sequence[date],
    tz: str,
    team_id: int | None,
    targets: Mapping[int, int],
    claim_target: int,
    now: datetime,
    last: date | None,
) -> raw_digest.Raw:
    """The week from its closed days' totals, and the rest (today, or days the job has
    not closed yet) from the rows: the same figures as `raw_digest.week`. `last`: the
    last day closed."""
    raw = raw_digest.Raw(per_day=[0] * len(days))
    starts = [_midnight(day, tz) for day in days]
    stored = await day_totals.closed_week(session, tz, days[0])
    if isinstance(stored, tuple):  # the whole week is closed: one row
        raw_digest.fold_week(raw, *stored, team_id)
        stored = dict.fromkeys(days, raw_digest.Parts())
    i = 0
    while i < len(days):
        if days[i] in stored:
            raw_digest.fold(raw, stored[days[i]], team_id, i)
            i += 1
            continue
        j = i
        while j < len(days) and days[j] not in stored:
            j += 1
        until = starts[j] if j < len(days) else end
        found = await raw_digest.parts(session, starts[i], until, starts[i:j])
        raw_digest.fold(raw, found, team_id, i)
        i = j
    # Over the target: what was claimed on a closed day is counted in its totals, by
    # the day it arrived; what was claimed since, or waits still, from the rows.
    claimed_since = None
    if last is not None:
        claimed_since = _midnight(last + timedelta(days=1), tz)
        if last >= days[0]:
            raw.team_over = await day_totals.over_target(
                session, tz, days[0], days[-1], targets, claim_target, last
            )
    for team, arrived, waited in await raw_digest.waits(
        session,
        start,
        end,
        over_minutes=min(targets.values(), default=claim_target),
        until=min(now, end),
        claimed_since=claimed_since,
    ):
        if team_id is None or team == team_id:
            raw.team_waits[team].append((arrived, waited))
    await raw_digest.live(session, raw, start, end, team_id=team_id)
    return raw


async def close_days(
    session: AsyncSession, tz: str, now: datetime, at_once: int = CLOSE_AT_ONCE
) -> int:
    """Close the days that are over and not closed yet, in order from the first
    conversation's, at most `at_once` of them, then as many weeks whose days are closed
    and that lack their row; how many days and weeks were closed.

    Each team's waits are counted in its working hours of now (`team hours`)."""
    local = zone(tz)
    last = await day_totals.last_closed(session, tz)
    if last is None:
        first = await day_totals.first_arrival(session)
        if first is None:
            return 0
        day = first.astimezone(local).date()
    else:
        day = last + timedelta(days=1)
    hours = {t.id: hours_of(t) for t in await teams.every(session)}
    done = 0
    while done < at_once:
        start, end = _midnight(day, tz), _midnight(day + timedelta(days=1), tz)
        if end + CLOSE_AFTER > now:
            break
        found = await raw_digest.parts(session, start, end, [start])
        waits: Counter[tuple[date, int, int]] = Counter()
        for team, arrived, claimed in await day_totals.claimed_between(session, start, end):
            minutes = math.ceil(business_minutes(arrived, claimed, hours.get(team)))
            waits[arrived.astimezone(local).date(), team, minutes] += 1
        await day_totals.save(session, tz, day, found, waits, now)
        if day.isoweekday() == 7:
            # The week is over: its days together, what a week's digest reads.
            await day_totals.save_week(session, tz, day - timedelta(days=6), now)
        done += 1
        day += timedelta(days=1)
    # Weeks whose days are closed but not the week (their rows were deleted by 0016d
    # to be made again with their medians): until then they are read as their days.
    for monday in (await day_totals.weeks_to_close(session, tz))[:at_once]:
        await day_totals.save_week(session, tz, monday, now)
        done += 1
    return done


def _midnight(day: date, tz: str) -> datetime:
    """Where local `day` starts, in UTC."""
    return datetime.combine(day, time(0), zone(tz)).astimezone(UTC)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _age(since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - since).total_seconds() // 60))
    return f"{minutes // 1440}d" if minutes >= 1440 else f"{minutes // 60}h{minutes % 60:02d}"


# -- as text ----------------------------------------------------------------------------


def _trend(now: float | None, before: float | None) -> str:
    """▲ / ▼ with the change from the week before; nothing when there is nothing to compare."""
    if now is None or before is None or round(now, 1) == round(before, 1):
        return ""
    change = now - before
    amount = f"{abs(change):.0f}" if float(change).is_integer() else f"{abs(change):.1f}"
    return f" {'▲' if change > 0 else '▼'}{amount}"


def _num(value: int, before: int | None) -> str:
    return f"{value}{_trend(value, before)}"


def _minutes(value: float | None, before: float | None, texts: Texts) -> str:
    if value is None:
        return texts.digest_none
    return f"{value:.0f} min{_trend(value, before)}"


def _day(day: date, texts: Texts, *, with_year: bool) -> str:
    """`29 Dec` or `29 Dec 2025`, with the month in the reader's language."""
    text = f"{day.day:02d} {texts.month_names[day.month - 1]}"
    return f"{text} {day.year}" if with_year else text


@dataclass(frozen=True)
class _Before:
    """The week before's figures, by name, as the trends and the exports compare them.

    Without a week before, every lookup is None (nothing to compare). With one,
    someone absent from it did nothing then: their counts rise from zero, and their
    times have nothing to compare.
    """

    known: bool
    people: dict[str, PersonFigures]
    consultants: dict[str, ConsultantFigures]
    teams: dict[str, TeamFigures]

    @staticmethod
    def of(d: Digest) -> _Before:
        before = d.previous
        if before is None:
            return _Before(False, {}, {}, {})
        return _Before(
            True,
            {p.name: p for p in before.people},
            {c.name: c for c in before.consultants},
            {t.name: t for t in before.teams},
        )

    def person(self, name: str) -> PersonFigures | None:
        if not self.known:
            return None
        # Absent the week before: did nothing (0), and committed nothing either (None,
        # as this week's figure is for someone without a commitment).
        return self.people.get(name) or PersonFigures(name, 0, 0, 0, None, None, None, 0)

    def consultant(self, name: str) -> ConsultantFigures | None:
        if not self.known:
            return None
        return self.consultants.get(name) or ConsultantFigures(name, 0, 0, None, 0)

    def team(self, name: str) -> TeamFigures | None:
        return self.teams.get(name)


def as_text(d: Digest, texts: Texts) -> str:
    before = _Before.of(d)
    first, last = _span(d)
    lines = [
        texts.digest_title.format(
            week=d.week,
            # the week of New Year spans two years: then both dates carry theirs
            start=_day(first, texts, with_year=first.year != last.year),
            end=_day(last, texts, with_year=True),
            tz=d.tz,
            team=f" · {d.team}" if d.team else "",
        ),
        texts.digest_legend,
        "",
        texts.digest_people,
    ]
    for p in d.people:
        b = before.person(p.name)
        commitment = ""
        if p.committed is not None:
            sessions = ", ".join(
                f"{texts.digest_session_names.get(k) or texts.outcome_names.get(k, k)} {v}"
                for k, v in p.sessions.items()
                if v
            )
            kept = p.kept
            given = f"{p.given or 0} min{_trend(p.given or 0, b.given if b else None)}"
            listed = texts.digest_sessions.format(list=sessions) if sessions else ""
            if kept is None:
                # time logged without a commitment: there is no share of it to keep
                commitment = texts.digest_uncommitted.format(given=given, sessions=listed)
            elif round(kept) > 100:
                # "kept 350%" reads oddly: more than committed is a multiple of it
                commitment = texts.digest_commitment_over.format(
                    committed=p.committed, given=given, times=_times(kept), sessions=listed
                )
            else:
                commitment = texts.digest_commitment.format(
                    committed=p.committed,
                    given=given,
                    kept=f"{kept:.0f}%" + _trend(kept, b.kept if b else None),
                    sessions=listed,
                )
        lines.append(
            texts.digest_person.format(
                name=p.name,
                commitment=commitment,
                claimed=_num(p.claimed, b.claimed if b else None),
                replied=_num(p.replied, b.replied if b else None),
                resolved=_num(p.resolved, b.resolved if b else None),
                to_claim=_minutes(p.to_claim, b.to_claim if b else None, texts),
                to_reply=_minutes(p.to_reply, b.to_reply if b else None, texts),
            )
        )
        lines += _continuity(p.returning, p.continuity, texts)
    if not d.people:
        lines.append(texts.digest_nobody)
    lines += ["", texts.digest_consultants]
    for c in d.consultants:
        cb = before.consultant(c.name)
        lines.append(
            texts.digest_consultant.format(
                name=c.name,
                received=_num(c.received, cb.received if cb else None),
                answered=_num(c.answered, cb.answered if cb else None),
                to_answer=_minutes(c.to_answer, cb.to_answer if cb else None, texts),
                useful=_num(c.useful, cb.useful if cb else None),
            )
        )
    if not d.consultants:
        lines.append(texts.digest_nobody)
    lines += ["", texts.digest_teams]
    for t in d.teams:
        tb = before.team(t.name)
        sources = ", ".join(f"{s} {n}" for s, n in t.by_source.items())
        lines.append(
            texts.digest_team.format(
                name=t.name,
                mentions=_num(t.mentions, tb.mentions if tb else None),
                sources=f" ({sources})" if sources else "",
                opened=_num(t.opened, tb.opened if tb else None),
                to_claim=_minutes(t.to_claim, tb.to_claim if tb else None, texts),
                target=t.claim_target,
                over=_num(t.over_target, tb.over_target if tb else None),
            )
        )
        lines += _continuity(t.returning, t.continuity, texts)
        lines.append(
            texts.digest_members.format(names=", ".join(t.members))
            if t.members
            else texts.digest_no_members.format(team=t.name)
        )
        if t.unclaimed:
            listed = ", ".join(f"#{n} ({age})" for n, age in t.unclaimed)
            more = (
                f", … +{t.unclaimed_total - len(t.unclaimed)}"
                if t.unclaimed_total > len(t.unclaimed)
                else ""
            )
            lines.append(texts.digest_unclaimed.format(count=t.unclaimed_total, list=listed + more))
        else:
            lines.append(texts.digest_nothing_unclaimed)
    if not d.teams:
        lines.append(texts.digest_nobody)
    return "\n".join(lines)


def _continuity(returning: int, share: float | None, texts: Texts) -> list[str]:
    """The continuity line, where there were returning customers to count."""
    if not returning or share is None:
        return []
    return [texts.digest_continuity.format(returning=returning, share=f"{share:.0f}%")]


def _times(percent: float) -> str:
    """350.0 → `3.5`, 200.0 → `2`, 101.0 → `1.01`: the multiple of the time committed."""
    return f"{percent / 100:.2f}".rstrip("0").rstrip(".")


#: what may not stand in a file name (a team's name goes into its chart's)
_FILE_UNSAFE = re.compile(r"[^\w.-]+")


def chart(d: Digest, texts: Texts) -> Chart:
    title = texts.digest_chart_title.format(week=d.week)
    # A team's chart has a file of its own: on the console the file is kept, and a
    # team's must not overwrite the whole company's of the same week.
    team = "-" + _FILE_UNSAFE.sub("-", d.team) if d.team else ""
    return Chart(title, f"inloop-digest-{d.week}{team}.png", digest_chart(*chart_parts(d, texts)))


def chart_parts(
    d: Digest, texts: Texts
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]], ChartWords]:
    """What the chart draws: (name, committed, given) per person, (day, mentions) per
    day, and its words in the reader's language."""
    # Only people with time committed or given have bars. 1200 × 800 px hold ~20 names
    # (each drawn label also costs ~5 ms: 483 people took 2-3 s and were unreadable):
    # the panel's title says how many of how many it shows.
    timed = [p for p in d.people if p.committed or p.given]
    ranked = sorted(timed, key=lambda p: (-(p.committed or 0), -(p.given or 0), p.name))
    people = [(p.name, p.committed or 0, p.given or 0) for p in ranked[:CHART_PEOPLE]]
    committed, given, minutes, per_day = texts.digest_chart_labels
    words = ChartWords(
        heading=f"{d.team or texts.digest_chart_whole} · {_dates(d, texts)}",
        people_title=(
            texts.digest_chart_people_top.format(shown=len(people), total=len(ranked))
            if len(ranked) > len(people)
            else texts.digest_chart_people
        ),
        committed=committed,
        given=given,
        minutes=minutes,
        days_title=per_day,
        no_data=texts.digest_chart_no_data,
        # a team's digest has no commitments (they are a person's, across teams)
        no_people=texts.digest_chart_no_data if d.team is None else texts.digest_chart_team_time,
    )
    days = [(f"{texts.day_names[day.isoweekday() - 1]} {day.day:02d}", n) for day, n in d.per_day]
    return people, days, words


def _span(d: Digest) -> tuple[date, date]:
    """The week's first and last day, in its time zone."""
    local = zone(d.tz)
    return d.start.astimezone(local).date(), (d.end.astimezone(local) - timedelta(days=1)).date()


def _dates(d: Digest, texts: Texts) -> str:
    """`30 Nov – 6 Dec 2026`, `16 – 22 Nov 2026`, `29 Dec 2025 – 4 Jan 2026`."""
    first, last = _span(d)
    end = f"{last.day} {texts.month_names[last.month - 1]} {last.year}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day} – {end}"
    start = f"{first.day} {texts.month_names[first.month - 1]}"
    return f"{start} {first.year} – {end}" if first.year != last.year else f"{start} – {end}"


# -- exports ------------------------------------------------------------------------------


def _figure_name(text: str) -> str:
    """One style for every figure name in the exports: snake_case (`mentions_from_console`)."""
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def as_rows(d: Digest) -> list[dict[str, Any]]:
    """One row per figure: section, name, figure, value, previous week's value.

    `previous` follows the text's trends: empty when there is no week before or
    nothing to compare (a median of nothing), 0 for a count of someone absent then.
    """
    rows: list[dict[str, Any]] = []

    def row(section: str, name: str, figure: str, value: Any, old: Any) -> None:
        if isinstance(value, float):  # medians and shares: a tenth is plenty
            value = round(value, 1)
        if isinstance(old, float):
            old = round(old, 1)
        rows.append(
            {
                "week": str(d.week),
                "section": section,
                "name": name,
                "figure": _figure_name(figure),
                "value": value,
                "previous": old,
            }
        )

    def add(section: str, name: str, figures: Any, before: Any, skip: tuple[str, ...]) -> None:
        for key, value in asdict(figures).items():
            if key in ("name", "unclaimed", "members", *skip) or isinstance(value, dict):
                continue
            row(section, name, key, value, getattr(before, key, None))

    before = _Before.of(d)
    # a team's digest has no commitments: they are a person's, not a team's
    mine = ("committed", "given") if d.team is not None else ()
    for p in d.people:
        b = before.person(p.name)
        add("person", p.name, p, b, mine)
        if d.team is None:
            row("person", p.name, "kept", p.kept, b.kept if b else None)
            old_sessions = b.sessions if b else None
            for outcome, count in p.sessions.items():
                old = old_sessions.get(outcome, 0) if old_sessions is not None else None
                row("person", p.name, f"sessions_{outcome}", count, old)
        row("person", p.name, "continuity", p.continuity, b.continuity if b else None)
    for c in d.consultants:
        add("consultant", c.name, c, before.consultant(c.name), ())
    for t in d.teams:
        tb = before.team(t.name)
        add("team", t.name, t, tb, ())
        row("team", t.name, "continuity", t.continuity, tb.continuity if tb else None)
        for source, count in t.by_source.items():
            old = tb.by_source.get(source, 0) if tb is not None else None
            row("team", t.name, f"mentions_from_{source}", count, old)
    for day, count in d.per_day:  # a date has no week before
        row("day", day.isoformat(), "mentions", count, None)
    return rows


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def as_csv(d: Digest) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["week", "section", "name", "figure", "value", "previous"]
    )
    writer.writeheader()
    writer.writerows(as_rows(d))
    return buffer.getvalue()


def as_json(d: Digest) -> str:
    def plain(digest: Digest) -> dict[str, Any]:
        data = asdict(digest)
        data["week"] = str(digest.week)
        data["start"] = digest.start.isoformat()
        data["end"] = digest.end.isoformat()
        data["per_day"] = [[day.isoformat(), n] for day, n in digest.per_day]
        # the share kept is a figure of the text and the CSV: the JSON has it too
        for person, figures in zip(data["people"], digest.people, strict=True):
            person["kept"] = round(figures.kept, 1) if figures.kept is not None else None
            person["continuity"] = _rounded(figures.continuity)
        for team, team_figures in zip(data["teams"], digest.teams, strict=True):
            team["continuity"] = _rounded(team_figures.continuity)
        data.pop("previous", None)
        return data

    body = plain(d)
    body["previous"] = plain(d.previous) if d.previous else None
    return json.dumps(body, ensure_ascii=False, indent=2)
