"""Commitments: each person's weekly dialogue time, reminded and recorded.

    commit DAYS HH:MM DURATION [TZ]   ─► Commitment row ─► the scheduler times it
    block start (OccurrenceDue)       ─► DialogueSession row (unique per occurrence)
                                          + private reminder with the person's queue
    snooze / start / block end        ─► row's next_at ─► SessionDue ─► check-in
    check-in answer or 12 h silence   ─► done / partial / skipped / no answer

Every occurrence ends up as one row: done, partial, skipped, no answer, away, or
missed (Inloop was down when it started, by more than 15 minutes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from bot.context import Context
from bot.events import OccurrenceDue, SessionDue, platform_of
from bot.messages import Texts
from bot.people import MANAGERS, STAFF, is_manager
from bot.recurrence import Weekly, valid_zone, weekly, zone
from bot.router import Router, UsageError, not_allowed
from bot.scheduler import Scheduler
from bot.views import Button, ButtonStyle, Card, Field
from handlers.people import named_person
from handlers.queue import Focus, focus_among, queue_line
from handlers.text import number, one_line, whole
from storage import commitments as store
from storage import conversations, teams
from storage.models import (
    Away,
    Commitment,
    Conversation,
    DialogueSession,
    Person,
    SessionOutcome,
)

#: a block found this late (Inloop was down) is recorded missed, never sent
LATE_LIMIT = timedelta(minutes=15)
#: a reminder later than this says it is late
LATE_NOTE_AFTER = timedelta(minutes=1)
SNOOZE = timedelta(minutes=15)
#: an unanswered check-in becomes "no answer" after this
NO_ANSWER_AFTER = timedelta(hours=12)
#: conversations listed in a reminder
REMINDER_QUEUE = 10
#: a weekly block's length; time logged outside a block may be longer (a fair, a long
#: session with one customer): both ranges are in the usage lines and the error texts
BLOCK_MINUTES = (15, 4 * 60)
LOG_MINUTES = (1, 8 * 60)

_DAYS = {
    **{name: i + 1 for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{
        name: i + 1
        for i, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
    # Italian, for people who speak it with Inloop
    **{name: i + 1 for i, name in enumerate(("lun", "mar", "mer", "gio", "ven", "sab", "dom"))},
}
_GROUPS = {"weekdays": (1, 2, 3, 4, 5), "daily": (1, 2, 3, 4, 5, 6, 7)}
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
#: 30m, 1h, 1h30m, 1h30 (a bare number is ambiguous: refused)
_DURATION = re.compile(r"(?:([0-9]{1,2})h)?(?:([0-9]{1,3})m)?|([0-9]{1,2})h([0-9]{1,2})")
#: answers that settle a block; the person may still correct one with another
_ANSWERED = (
    SessionOutcome.DONE,
    SessionOutcome.PARTIAL,
    SessionOutcome.SKIPPED,
    SessionOutcome.NO_ANSWER,
)


def register(
    router: Router,
    scheduler: Scheduler,
    default_tz: str,
    reminded: Callable[[float], None] = lambda lag_seconds: None,
) -> None:
    """`reminded`: told, for each reminder queued, how late after its block's start
    (seconds): operators watch it (bot/metrics.py)."""
    rules = Commitments(router, scheduler, default_tz, reminded)
    router.command("commit", rules.commit, STAFF)
    router.command("commitments", rules.list_, STAFF)
    router.command("uncommit", rules.uncommit, STAFF)
    router.command("away", rules.away, STAFF)
    router.command("back", rules.back, STAFF)
    router.command("log", rules.log, STAFF)
    router.command("start", rules.start, STAFF)
    router.command("skip", rules.skip, STAFF)
    router.command("snooze", rules.snooze, STAFF)
    router.command("done", rules.done, STAFF)
    router.command("partial", rules.partial, STAFF)
    router.on(OccurrenceDue, rules.on_occurrence)
    router.on(SessionDue, rules.on_session)


# -- parsing ------------------------------------------------------------------------------


def parse_days(value: str, texts: Texts) -> tuple[int, ...]:
    days: set[int] = set()
    for part in value.lower().split(","):
        if part in _GROUPS:
            days.update(_GROUPS[part])
        elif part in _DAYS:
            days.add(_DAYS[part])
        else:
            raise UsageError(texts.bad_days.format(value=value))
    return tuple(sorted(days))


def parse_time(value: str, texts: Texts) -> str:
    match = _TIME.fullmatch(value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise UsageError(texts.bad_time.format(value=value))
    return f"{int(match[1]):02d}:{match[2]}"


def parse_minutes(value: str, problem: str, low: int, high: int) -> int:
    """`30m`, `1h`, `1h30m` (or `1h30`) → minutes, within [low, high]; else `problem`
    (a template over value, low and high) is the usage error."""
    match = _DURATION.fullmatch(value.lower())
    minutes = -1
    if match and any(match.groups()):
        hours, rest = (match[1], match[2]) if match[3] is None else (match[3], match[4])
        minutes = int(hours or 0) * 60 + int(rest or 0)
    if not low <= minutes <= high:
        raise UsageError(problem.format(value=value, low=duration(low), high=duration(high)))
    return minutes


def parse_zone(value: str, texts: Texts) -> str:
    if not valid_zone(value):
        raise UsageError(texts.bad_timezone.format(value=value))
    return value


def parse_date(value: str, texts: Texts) -> date:
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:  # 2026-02-30
            pass
    raise UsageError(texts.bad_date.format(value=value))


# -- formatting -------------------------------------------------------------------------------


def duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h{rest}m" if rest else f"{hours}h"


def days_text(days: Sequence[int], texts: Texts) -> str:
    if tuple(days) == _GROUPS["daily"]:
        return texts.days_daily
    if tuple(days) == _GROUPS["weekdays"]:
        return texts.days_weekdays
    return ", ".join(texts.day_names[d - 1] for d in days)


def clock_time(at: datetime, tz: str) -> str:
    return at.astimezone(zone(tz)).strftime("%H:%M")


def day_and_time(at: datetime, tz: str, texts: Texts) -> str:
    local = at.astimezone(zone(tz))
    return f"{texts.day_names[local.isoweekday() - 1]} {local:%Y-%m-%d %H:%M} ({tz})"


def rule_of(commitment: Commitment) -> Weekly:
    return weekly(commitment.days, commitment.start, commitment.timezone)


def next_block(rule: Weekly, now: datetime, away_until: str | None) -> datetime | None:
    """The next block that will remind: one on a day away (its local day up to and
    including `away_until`, as the occurrence is recorded) is passed over."""
    after = now
    if away_until is not None:
        back = datetime.combine(
            date.fromisoformat(away_until) + timedelta(days=1), time(0), tzinfo=zone(rule.tz)
        )
        # `next_after` is strict: a block at midnight of the first day back still counts
        after = max(now, back - timedelta(microseconds=1))
    return rule.next_after(after)


class Commitments:
    def __init__(
        self,
        router: Router,
        scheduler: Scheduler,
        default_tz: str,
        reminded: Callable[[float], None] = lambda lag_seconds: None,
    ):
        self._router = router
        self._scheduler = scheduler
        self._default_tz = default_tz
        self._reminded = reminded

    def _zone_of(self, person: Person) -> str:
        """The person's time zone: the one their platform gives, else Inloop's default."""
        return person.timezone if valid_zone(person.timezone) else self._default_tz

    def _prefix(self, person: Person) -> str:
        return self._router.prefix(platform_of(person.ref))

    # -- commands ------------------------------------------------------------------------

    async def commit(self, ctx: Context, args: Sequence[str]) -> None:
        if len(args) not in (3, 4):
            raise UsageError()
        texts, me = ctx.texts, ctx.sender
        days = parse_days(args[0], texts)
        start = parse_time(args[1], texts)
        minutes = parse_minutes(args[2], texts.bad_duration, *BLOCK_MINUTES)
        tz = parse_zone(args[3], texts) if len(args) == 4 else self._zone_of(me)
        # Made in a team's channel, the reminder shows that team's unclaimed conversations.
        team = await teams.by_channel(ctx.session, ctx.channel) if ctx.channel else None
        assert me.id is not None
        commitment = Commitment(
            person_id=me.id,
            days=",".join(str(d) for d in days),
            start=start,
            minutes=minutes,
            timezone=tz,
            team_id=team.id if team else None,
            created_at=ctx.now,
        )
        ctx.session.add(commitment)
        await ctx.session.flush()
        assert commitment.id is not None
        rule = rule_of(commitment)
        self._scheduler.plan(commitment.id, rule, ctx.now)
        away = await ctx.session.get(Away, me.id)
        following = next_block(rule, ctx.now, away.until if away else None)
        ctx.reply(
            texts.commit_made.format(
                id=commitment.id,
                days=days_text(days, texts),
                time=start,
                duration=duration(minutes),
                tz=tz,
                next=day_and_time(following, tz, texts) if following else "—",
            )
        )

    async def list_(self, ctx: Context, args: Sequence[str]) -> None:
        if len(args) > 1:
            raise UsageError()
        texts, me = ctx.texts, ctx.sender
        whom: Person | None = me
        if args:
            if not is_manager(me):
                ctx.reply(not_allowed(texts, "commitments @person", MANAGERS, me.role))
                return
            whom = await named_person(ctx, args[0])
            if whom is None:
                return
        assert whom is not None and whom.id is not None
        mine = await store.of_person(ctx.session, whom.id)
        if not mine:
            ctx.reply(
                texts.commitments_none
                if whom.id == me.id
                else texts.commitments_none_other.format(person=whom.display_name)
            )
            return
        lines = [texts.commitments_header.format(person=whom.display_name)]
        last = await store.last_outcomes(ctx.session, [c.id for c in mine if c.id])
        away = await ctx.session.get(Away, whom.id)
        for commitment in mine:
            rule = rule_of(commitment)
            # "my local time": the platform's zone, else the zone the block was made in
            shown_tz = whom.timezone if valid_zone(whom.timezone) else commitment.timezone
            following = next_block(rule, ctx.now, away.until if away else None)
            line = texts.commitment_line.format(
                id=commitment.id,
                days=days_text(sorted(rule.weekdays), texts),
                time=commitment.start,
                duration=duration(commitment.minutes),
                tz=commitment.timezone,
                next=day_and_time(following, shown_tz, texts) if following else "—",
            )
            if (outcome := last.get(commitment.id or 0)) is not None:
                line += texts.commitment_last.format(outcome=texts.outcome_names[outcome])
            lines.append(line)
        if (
            away is not None
            and away.until >= ctx.now.astimezone(zone(self._zone_of(whom))).date().isoformat()
        ):
            lines.append(texts.commitment_away.format(date=away.until))
        ctx.reply("\n".join(lines))

    async def uncommit(self, ctx: Context, args: Sequence[str]) -> None:
        if len(args) != 1:
            raise UsageError()
        texts, me = ctx.texts, ctx.sender
        n = number(args[0], texts.bad_commitment)
        commitment = await ctx.session.get(Commitment, n)
        if (
            commitment is None
            or commitment.ended_at is not None
            or (commitment.person_id != me.id and not is_manager(me))
        ):
            ctx.reply(texts.no_such_commitment.format(id=n))
            return
        commitment.ended_at = ctx.now
        ctx.session.add(commitment)
        self._scheduler.forget(n)
        ctx.reply(texts.uncommitted.format(id=n))

    async def away(self, ctx: Context, args: Sequence[str]) -> None:
        if len(args) != 2 or args[0].lower() != "until":
            raise UsageError()
        texts, me = ctx.texts, ctx.sender
        until = parse_date(args[1], texts)
        today = ctx.now.astimezone(zone(self._zone_of(me))).date()
        if until < today:
            raise UsageError(texts.date_past.format(date=until.isoformat()))
        assert me.id is not None
        row = await ctx.session.get(Away, me.id)
        if row is None:
            ctx.session.add(Away(person_id=me.id, until=until.isoformat(), created_at=ctx.now))
        else:
            row.until = until.isoformat()
            ctx.session.add(row)
        ctx.reply(texts.away_set.format(date=until.isoformat()))

    async def back(self, ctx: Context, args: Sequence[str]) -> None:
        if args:
            raise UsageError()
        row = await ctx.session.get(Away, ctx.sender.id)
        if row is None:
            ctx.reply(ctx.texts.back_not_away)
            return
        await ctx.session.delete(row)
        ctx.reply(ctx.texts.back_set)

    async def log(self, ctx: Context, args: Sequence[str]) -> None:
        if len(args) not in (1, 2):
            raise UsageError()
        texts, me = ctx.texts, ctx.sender
        minutes = parse_minutes(args[0], texts.bad_log_duration, *LOG_MINUTES)
        conversation_id: int | None = None
        if len(args) == 2:
            conversation_id = number(args[1], texts.bad_number)
            if await conversations.get(ctx.session, conversation_id) is None:
                ctx.reply(texts.no_such_conversation.format(number=conversation_id))
                return
        assert me.id is not None
        ctx.session.add(
            DialogueSession(
                commitment_id=None,
                person_id=me.id,
                occurrence_start=ctx.now,
                ends_at=ctx.now,
                outcome=SessionOutcome.LOGGED,
                minutes_planned=0,
                minutes_given=minutes,
                conversation_id=conversation_id,
                created_at=ctx.now,
                updated_at=ctx.now,
            )
        )
        on = texts.logged_on.format(number=conversation_id) if conversation_id else ""
        ctx.reply(texts.logged.format(duration=duration(minutes), on=on))

    # -- a block's buttons (or the commands they stand for) ------------------------------

    async def start(self, ctx: Context, args: Sequence[str]) -> None:
        block = await self._block(ctx, args, SessionOutcome.REMINDED, SessionOutcome.SNOOZED)
        if block is None:
            return
        # Started late: the check-in comes a full block later. Started during a snooze:
        # the block starts now, not when the snooze would have ended.
        full = ctx.now + timedelta(minutes=block.minutes_planned)
        block.ends_at = (
            full if block.outcome == SessionOutcome.SNOOZED else max(block.ends_at, full)
        )
        self._move(ctx, block, SessionOutcome.STARTED, block.ends_at)
        ctx.reply(
            ctx.texts.block_started.format(
                end=clock_time(block.ends_at, await self._tz(ctx, block))
            )
        )

    async def snooze(self, ctx: Context, args: Sequence[str]) -> None:
        block = await self._block(ctx, args, SessionOutcome.REMINDED, SessionOutcome.SNOOZED)
        if block is None:
            return
        again = ctx.now + SNOOZE
        block.ends_at = again + timedelta(minutes=block.minutes_planned)
        self._move(ctx, block, SessionOutcome.SNOOZED, again)
        ctx.reply(
            ctx.texts.block_snoozed.format(time=clock_time(again, await self._tz(ctx, block)))
        )

    async def skip(self, ctx: Context, args: Sequence[str]) -> None:
        block = await self._block(ctx, args, *store.PENDING, *_ANSWERED)
        if block is None:
            return
        block.minutes_given = 0
        self._move(ctx, block, SessionOutcome.SKIPPED, None)
        ctx.reply(ctx.texts.block_skipped.format(id=block.id))

    async def done(self, ctx: Context, args: Sequence[str]) -> None:
        block = await self._block(ctx, args, *store.PENDING, *_ANSWERED)
        if block is None:
            return
        block.minutes_given = block.minutes_planned
        self._move(ctx, block, SessionOutcome.DONE, None)
        ctx.reply(
            ctx.texts.block_done.format(id=block.id, duration=duration(block.minutes_planned))
        )

    async def partial(self, ctx: Context, args: Sequence[str]) -> None:
        if len(args) not in (1, 2):
            raise UsageError()
        block = await self._block(ctx, args[:1], *store.PENDING, *_ANSWERED)
        if block is None:
            return
        texts = ctx.texts
        if len(args) == 1:  # the Partial button: it cannot carry a number
            ctx.reply(
                texts.partial_how_much.format(command=f"{ctx.prefix} partial {block.id} MINUTES")
            )
            return
        high = block.minutes_planned
        given = whole(args[1].lower().removesuffix("m"), 1, high)
        if given is None:
            raise UsageError(texts.bad_partial.format(value=one_line(args[1], 40), high=high))
        block.minutes_given = given
        self._move(ctx, block, SessionOutcome.PARTIAL, None)
        ctx.reply(
            texts.block_partial.format(id=block.id, given=duration(given), duration=duration(high))
        )

    async def _block(
        self, ctx: Context, args: Sequence[str], *allowed: SessionOutcome
    ) -> DialogueSession | None:
        if len(args) != 1:
            raise UsageError()
        texts = ctx.texts
        n = number(args[0], texts.bad_block)
        block = await store.lock_session(ctx.session, n)
        if block is None or block.person_id != ctx.sender.id or block.commitment_id is None:
            ctx.reply(texts.no_such_block.format(id=n))
            return None
        if block.outcome not in allowed:
            ctx.reply(texts.block_closed.format(id=n, outcome=texts.outcome_names[block.outcome]))
            return None
        return block

    def _move(
        self, ctx: Context, block: DialogueSession, outcome: str, next_at: datetime | None
    ) -> None:
        block.outcome = outcome
        block.next_at = next_at
        block.updated_at = ctx.now
        ctx.session.add(block)
        if next_at is not None:
            self._scheduler.wake_at(next_at)

    async def _tz(self, ctx: Context, block: DialogueSession) -> str:
        commitment = await ctx.session.get(Commitment, block.commitment_id)
        return commitment.timezone if commitment else self._default_tz

    # -- the scheduler's events -----------------------------------------------------------------

    async def on_occurrence(self, ctx: Context, event: OccurrenceDue) -> None:
        late = ctx.now - event.start
        rows: list[dict[str, Any]] = []
        reminded: dict[int, tuple[Commitment, Person, dict[str, Any]]] = {}
        for commitment, person, until in await store.occurrence_contexts(
            ctx.session, event.commitment_ids
        ):
            if commitment.ended_at is not None and commitment.ended_at <= event.start:
                continue
            ends_at = event.start + timedelta(minutes=commitment.minutes)
            local_day = event.start.astimezone(zone(commitment.timezone)).date().isoformat()
            next_at: datetime | None = None
            if until is not None and local_day <= until:
                outcome = SessionOutcome.AWAY
            elif late > LATE_LIMIT:
                outcome = SessionOutcome.MISSED
            else:
                outcome, next_at = SessionOutcome.REMINDED, ends_at
            row: dict[str, Any] = {
                "commitment_id": commitment.id,
                "person_id": person.id,
                "occurrence_start": event.start,
                "ends_at": ends_at,
                "outcome": outcome,
                "minutes_planned": commitment.minutes,
                "minutes_given": 0,
                "next_at": next_at,
                "conversation_id": None,
                "created_at": ctx.now,
                "updated_at": ctx.now,
            }
            rows.append(row)
            if outcome == SessionOutcome.REMINDED:
                assert commitment.id is not None
                reminded[commitment.id] = (commitment, person, row)
        inserted = await store.record_occurrences(ctx.session, rows)
        # Only the rows this call inserted are reminded: another instance, or an
        # earlier pass, got the others.
        for cid, block_id in inserted.items():
            if cid not in reminded:
                continue
            commitment, person, row = reminded[cid]
            texts = ctx.texts_of(person)
            note = (
                texts.reminder_late.format(time=clock_time(event.start, commitment.timezone))
                if late > LATE_NOTE_AFTER
                else ""
            )
            block = DialogueSession(id=block_id, **row)
            ctx.tell(person, await self._reminder(ctx, person, commitment, block, note))
            self._reminded(late.total_seconds())

    async def on_session(self, ctx: Context, event: SessionDue) -> None:
        block = await store.lock_session(ctx.session, event.session_id)
        if block is None or block.next_at is None or block.next_at > ctx.now:
            return  # handled already, or moved since (a snooze, a late start)
        if block.outcome == SessionOutcome.SNOOZED:
            block.outcome, block.next_at = SessionOutcome.REMINDED, block.ends_at
            commitment, person = await _whose(ctx, block)
            snoozed = ctx.texts_of(person).reminder_snoozed
            ctx.tell(person, await self._reminder(ctx, person, commitment, block, snoozed))
        elif block.outcome in (SessionOutcome.REMINDED, SessionOutcome.STARTED):
            block.outcome, block.next_at = SessionOutcome.CHECKIN, ctx.now + NO_ANSWER_AFTER
            commitment, person = await _whose(ctx, block)
            ctx.tell(person, self._checkin(ctx.texts_of(person), person, commitment, block))
        elif block.outcome == SessionOutcome.CHECKIN:
            block.outcome, block.next_at = SessionOutcome.NO_ANSWER, None
        else:
            block.next_at = None
        block.updated_at = ctx.now
        ctx.session.add(block)

    # -- views -------------------------------------------------------------------------------

    async def _reminder(
        self,
        ctx: Context,
        person: Person,
        commitment: Commitment,
        block: DialogueSession,
        note: str,
    ) -> Card:
        texts, prefix, n = ctx.texts_of(person), self._prefix(person), str(block.id)
        length = duration(block.minutes_planned)
        lines = [note] if note else []
        lines += await self._queue(ctx, texts, person, commitment)

        def button(label: str, action: str, style: ButtonStyle = "default") -> Button:
            return Button(label, action, n, style, f"{prefix} {action} {n}")

        return Card(
            title=texts.reminder_title.format(
                duration=length, end=clock_time(block.ends_at, commitment.timezone)
            ),
            fields=(
                Field(texts.field_block, n),
                Field(texts.field_length, length),
            ),
            text="\n".join(lines),
            buttons=(
                button(texts.button_start, "start", "primary"),
                button(texts.button_skip, "skip"),
                button(texts.button_snooze, "snooze"),
            ),
            fallback=texts.reminder_fallback.format(duration=length),
        )

    async def _queue(
        self, ctx: Context, texts: Texts, person: Person, commitment: Commitment
    ) -> list[str]:
        """Their claimed-but-unreplied conversations, then the unclaimed ones of their teams
        and of the team the commitment was made in (every team's if neither), oldest
        first, at most REMINDER_QUEUE in all, then how many more there are, and how many
        wait in the other teams."""
        assert person.id is not None
        claimed, claimed_excerpts = await _claimed(ctx)
        mine = claimed.get(person.id, [])
        shown_mine = mine[:REMINDER_QUEUE]
        room = REMINDER_QUEUE - len(shown_mine)
        focus = await _focus(ctx, person.id, commitment.team_id)
        unclaimed, total, excerpts = await _unclaimed(ctx, focus.team_ids)
        waiting = unclaimed[:room]
        elsewhere = focus.elsewhere_text(texts)
        if not mine and not total:
            if elsewhere:
                return [texts.queue_empty_for.format(teams=focus.names(), elsewhere=elsewhere)]
            return [texts.reminder_empty]
        excerpts = {**excerpts, **claimed_excerpts}
        lines: list[str] = []
        if mine:
            lines.append(texts.reminder_mine.format(count=len(mine)))
            lines += [queue_line(ctx, texts, c, excerpts) for c in shown_mine]
        if total:
            heading = (
                texts.reminder_unclaimed_team.format(team=focus.names(), count=total)
                if focus.teams
                else texts.reminder_unclaimed.format(count=total)
            )
            lines.append(heading)
            lines += [queue_line(ctx, texts, c, excerpts) for c in waiting]
        rest = len(mine) - len(shown_mine) + total - len(waiting)
        if rest > 0:
            lines.append(texts.queue_more.format(count=rest))
        if elsewhere:
            lines.append(texts.queue_elsewhere.format(elsewhere=elsewhere))
        return lines

    def _checkin(
        self, texts: Texts, person: Person, commitment: Commitment, block: DialogueSession
    ) -> Card:
        prefix, n = self._prefix(person), str(block.id)
        return Card(
            title=texts.checkin_title,
            fields=(
                Field(texts.field_block, n),
                Field(texts.field_length, duration(block.minutes_planned)),
            ),
            text=texts.checkin_text.format(
                id=n,
                duration=duration(block.minutes_planned),
                time=clock_time(block.occurrence_start, commitment.timezone),
            ),
            buttons=(
                Button(texts.button_done, "done", n, "primary", f"{prefix} done {n}"),
                Button(
                    texts.button_partial, "partial", n, "default", f"{prefix} partial {n} MINUTES"
                ),
                Button(texts.button_skipped, "skip", n, "default", f"{prefix} skip {n}"),
            ),
            fallback=texts.checkin_fallback,
        )


async def _whose(ctx: Context, block: DialogueSession) -> tuple[Commitment, Person]:
    commitment = await ctx.session.get(Commitment, block.commitment_id)
    person = await ctx.session.get(Person, block.person_id)
    assert commitment is not None and person is not None
    return commitment, person


async def _claimed(ctx: Context) -> tuple[dict[int, list[Conversation]], dict[int, str]]:
    """Everyone's claimed-but-unreplied conversations by owner, and the latest messages of
    those a reminder shows; read once per transaction, like `_unclaimed`."""
    cached = ctx.session.info.get("commitments.claimed")
    if cached is None:
        claimed = await store.claimed_unreplied(ctx.session)
        shown = [c.id for mine in claimed.values() for c in mine[:REMINDER_QUEUE] if c.id]
        cached = (claimed, await conversations.latest_texts(ctx.session, shown))
        ctx.session.info["commitments.claimed"] = cached
    return cached


async def _focus(ctx: Context, person_id: int, team_id: int | None) -> Focus:
    """The teams a reminder shows first: the person's, and the commitment's own.

    The teams, everyone's memberships and how many wait in each team are read once
    per transaction, like `_unclaimed`.
    """
    cached = ctx.session.info.get("commitments.teams")
    if cached is None:
        cached = (
            await teams.every(ctx.session),
            await teams.memberships(ctx.session),
            await teams.waiting_by_team(ctx.session),
        )
        ctx.session.info["commitments.teams"] = cached
    every, members, waiting = cached
    theirs = members.get(person_id, set()) | ({team_id} if team_id is not None else set())
    return focus_among(every, theirs, waiting)


async def _unclaimed(
    ctx: Context, team_ids: Sequence[int] | None
) -> tuple[list[Conversation], int, dict[int, str]]:
    """The unclaimed conversations of these teams (or of every team): at most
    REMINDER_QUEUE, their total, and their latest messages.

    Kept in the transaction's `session.info` for the rest of it: a thousand blocks
    starting in the same minute are one batch, and those of the same teams all show
    the same queue, read once instead of a thousand times.
    """
    cache: dict[tuple[int, ...] | None, tuple[list[Conversation], int, dict[int, str]]]
    cache = ctx.session.info.setdefault("commitments.unclaimed", {})
    key = tuple(sorted(team_ids)) if team_ids is not None else None
    if key not in cache:
        waiting, total = await conversations.unclaimed(ctx.session, key, REMINDER_QUEUE)
        excerpts = await conversations.latest_texts(ctx.session, [c.id for c in waiting if c.id])
        cache[key] = (list(waiting), total, excerpts)
    return cache[key]
