"""Admin commands: teams and their routing tags, roles; and `lang` for everyone."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.context import Context
from bot.events import Undeliverable, local_part
from bot.messages import CATALOG, Texts
from bot.people import ADMINS, STAFF
from bot.router import ANYONE, Router, UsageError
from bot.views import Notice
from bot.working_hours import WorkingHours
from handlers import card
from handlers.commitments import duration, parse_days, parse_zone
from handlers.escalation import Defaults, clock_minutes, clock_text, hours_text, targets_of
from handlers.people import named_person, tell_admins
from handlers.routing import normalise_tags
from storage import conversations, day_totals, people, teams
from storage.models import Person, Role, Team

_TEAM_NAME = re.compile(r"^[\w][\w.-]{0,79}$")
#: working hours of a day, "09:00-18:00"; an end of 24:00 is midnight at the day's end
_WINDOW = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
#: a target from a minute to a week, as CLAIM_TARGET_MINUTES and REPLY_TARGET_MINUTES
TARGET_MINUTES = (1, 7 * 24 * 60)
#: a target: `1w`, `2d`, `1d12h`, `168h`, `90m`, `1h30m` or `1h30` (minutes after hours)
_TARGET = re.compile(
    r"(?:([0-9]{1,2})w)?(?:([0-9]{1,3})d)?(?:([0-9]{1,3})h)?(?:([0-9]{1,5})m|(?<=h)([0-9]{1,2}))?"
)
_DAY, _WEEK = 24 * 60, 7 * 24 * 60
#: people are split on commas and spaces, as routing tags are: `luca, marta`
_PEOPLE_SEPARATORS = re.compile(r"[,\s]+")
#: words the team commands read as keywords where a team name may stand (`team members
#: TEAM none`, `team target TEAM claim … default`, `team hours TEAM always`, `queue all`):
#: a team called so could never be named unambiguously
RESERVED_TEAM_NAMES = ("none", "all", "default", "always", "claim", "reply")


def register(router: Router) -> None:
    router.command("teams", list_teams, STAFF)
    router.command("team add", team_add, ADMINS)
    router.command("team tags", team_tags, ADMINS)
    router.command("team join", team_join, STAFF)
    router.command("team leave", team_leave, STAFF)
    router.command("team members", team_members, ADMINS)
    router.command("role", role, ADMINS)
    router.command("lang", lang, ANYONE)
    router.on(Undeliverable, undeliverable)


async def undeliverable(ctx: Context, event: Undeliverable) -> None:
    """A channel refuses the bot's messages for good: the admins are the ones who can
    invite it back (or move the team)."""
    team = await teams.by_channel(ctx.session, event.channel)

    def words(texts: Texts) -> str:
        place = (
            texts.undeliverable_team.format(team=team.name)
            if team is not None
            else local_part(event.channel)
        )
        return texts.undeliverable.format(place=place, reason=event.reason)

    await tell_admins(ctx, words)


async def list_teams(ctx: Context, args: Sequence[str]) -> None:
    if args:
        raise UsageError()
    texts = ctx.texts
    every = await teams.every(ctx.session)
    if not every:
        ctx.reply(texts.teams_none)
        return
    ctx.reply(
        "\n".join(
            texts.teams_line.format(
                team=t.name,
                default=texts.team_default_mark if t.is_default else "",
                channel=t.channel,
                tags=_listed(t.tags),
            )
            for t in every
        )
    )


async def team_add(ctx: Context, args: Sequence[str]) -> None:
    if not args or not _TEAM_NAME.match(args[0]) or ctx.channel is None:
        raise UsageError()
    texts, name = ctx.texts, args[0]
    if name.lower() in RESERVED_TEAM_NAMES:
        words = ", ".join(RESERVED_TEAM_NAMES)
        ctx.reply(texts.team_name_reserved.format(team=name, words=words))
        return
    if (existing := await teams.by_name(ctx.session, name)) is not None:
        ctx.reply(texts.team_exists.format(team=existing.name))
        return
    if (owner := await teams.by_channel(ctx.session, ctx.channel)) is not None:
        ctx.reply(texts.team_channel_taken.format(team=owner.name))
        return
    first = await teams.default(ctx.session) is None
    team = Team(
        name=name,
        channel=ctx.channel,
        tags=" ".join(normalise_tags(args[1:])),
        is_default=first,
        created_at=ctx.now,
    )
    ctx.session.add(team)
    await ctx.session.flush()
    lines = [texts.team_added.format(team=name, tags=_listed(team.tags))]
    if first:
        lines.append(texts.team_added_default)
        # Conversations that arrived before any team existed were kept: post them now.
        waiting = await conversations.without_team(ctx.session)
        if waiting:
            # their past is now the team's: the digest's closed days are closed again
            await day_totals.forget(ctx.session)
        for conversation in waiting:
            conversation.team_id = team.id
            conversations.audit(
                ctx.session, conversation.id, ctx.sender.id, "routed", ctx.now, team.name
            )
            await card.post(ctx, conversation, team)
        if waiting:
            adopted = texts.team_adopted_one if len(waiting) == 1 else texts.team_adopted
            lines.append(adopted.format(count=len(waiting), team=name))
    ctx.reply("\n".join(lines))


async def team_tags(ctx: Context, args: Sequence[str]) -> None:
    if len(args) < 2:
        raise UsageError()
    texts = ctx.texts
    team = await _team_named(ctx, args[0])
    if team is None:
        return
    clear = [a.lower() for a in args[1:]] == ["none"]
    tags = [] if clear else normalise_tags(args[1:])
    if not tags and not clear:
        raise UsageError()  # only commas and `#`: no tag at all
    team.tags = " ".join(tags)
    ctx.session.add(team)
    if clear:
        ctx.reply(texts.team_tags_cleared.format(team=team.name))
    else:
        ctx.reply(texts.team_tags_set.format(team=team.name, tags=_listed(team.tags)))


def _listed(tags: str) -> str:
    """Stored tags (space-separated) one by one, for people: `refund, rimborso`."""
    return ", ".join(tags.split()) or "—"


async def _team_named(ctx: Context, name: str) -> Team | None:
    """The team called `name`, or None after telling the sender which teams there are."""
    team = await teams.by_name(ctx.session, name)
    if team is None:
        names = ", ".join(t.name for t in await teams.every(ctx.session)) or "—"
        ctx.reply(ctx.texts.team_unknown.format(team=name, teams=names))
    return team


async def _team_meant(ctx: Context, args: Sequence[str]) -> Team | None:
    """The team named in `[TEAM]`, or else the one whose owner channel this is."""
    if len(args) > 1:
        raise UsageError()
    if args:
        return await _team_named(ctx, args[0])
    here = await teams.by_channel(ctx.session, ctx.channel) if ctx.channel else None
    if here is None:
        names = ", ".join(t.name for t in await teams.every(ctx.session)) or "—"
        ctx.reply(ctx.texts.team_which.format(teams=names))
    return here


async def team_join(ctx: Context, args: Sequence[str]) -> None:
    team = await _team_meant(ctx, args)
    if team is None:
        return
    assert team.id is not None and ctx.sender.id is not None
    if await teams.join(ctx.session, team.id, ctx.sender.id, ctx.now):
        ctx.reply(ctx.texts.team_joined.format(team=team.name))
    else:
        ctx.reply(ctx.texts.team_already_member.format(team=team.name))


async def team_leave(ctx: Context, args: Sequence[str]) -> None:
    team = await _team_meant(ctx, args)
    if team is None:
        return
    assert team.id is not None and ctx.sender.id is not None
    if await teams.leave(ctx.session, team.id, ctx.sender.id):
        ctx.reply(ctx.texts.team_left.format(team=team.name))
    else:
        ctx.reply(ctx.texts.team_not_member.format(team=team.name))


async def team_members(ctx: Context, args: Sequence[str]) -> None:
    """`team members TEAM`: who they are; with people (or `none`), who they are now."""
    if not args:
        raise UsageError()
    texts = ctx.texts
    team = await _team_named(ctx, args[0])
    if team is None:
        return
    assert team.id is not None
    if len(args) > 1:
        chosen: dict[int, Person] = {}
        written = [w for a in args[1:] for w in _PEOPLE_SEPARATORS.split(a) if w]
        if not written:
            raise UsageError()  # only commas
        if [w.lower() for w in written] != ["none"]:
            for ref in written:
                found = await named_person(ctx, ref)
                if found is None:
                    return  # the sender was told whom; nothing changed
                assert found.id is not None
                chosen.setdefault(found.id, found)
        await teams.set_members(ctx.session, team.id, chosen, ctx.now)
    now_members = await teams.members(ctx.session, team.id)
    if not now_members:
        ctx.reply(texts.team_members_none.format(team=team.name))
        return
    template = texts.team_members_set if len(args) > 1 else texts.team_members_list
    ctx.reply(
        template.format(team=team.name, people=", ".join(p.display_name for p in now_members))
    )


# -- targets and working hours ---------------------------------------------------------------


def register_targets(router: Router, defaults: Defaults) -> None:
    """`team target` and `team hours`: they show the settings' defaults, so they are
    registered with them."""

    async def target(ctx: Context, args: Sequence[str]) -> None:
        await team_target(ctx, args, defaults)

    async def hours(ctx: Context, args: Sequence[str]) -> None:
        await team_hours(ctx, args, defaults)

    router.command("team target", target, ADMINS)
    router.command("team hours", hours, ADMINS)


async def team_target(ctx: Context, args: Sequence[str], defaults: Defaults) -> None:
    """`team target TEAM [claim DURATION] [reply DURATION]`; `default` as a duration
    goes back to the setting's. Without any, the team's targets are shown."""
    if not args or len(args) % 2 == 0:
        raise UsageError()
    texts = ctx.texts
    chosen: dict[str, int | None] = {}
    for key, value in zip(args[1::2], args[2::2], strict=True):
        key = key.lower()
        if key not in ("claim", "reply") or key in chosen:
            raise UsageError()
        chosen[key] = None if value.lower() == "default" else parse_target(value, texts)
    team = await _team_named(ctx, args[0])
    if team is None:
        return
    if "claim" in chosen:
        team.claim_target_minutes = chosen["claim"]
    if "reply" in chosen:
        team.reply_target_minutes = chosen["reply"]
    ctx.session.add(team)
    ctx.reply(_targets_text(texts, team, defaults))


def parse_target(value: str, texts: Texts) -> int:
    """`30m`, `4h`, `1h30m` as `commit` takes them, hours up to a week's (`168h`), and
    days and weeks before them: `2d`, `1w`, `1d12h` → minutes, from a minute to a week."""
    low, high = TARGET_MINUTES
    problem = UsageError(
        texts.bad_target.format(value=value, low=target_text(low), high=target_text(high))
    )
    match = _TARGET.fullmatch(value.lower())
    if match is None or not any(match.groups()):
        raise problem
    weeks, days, hours, minutes_m, minutes_after_h = (int(g or 0) for g in match.groups())
    minutes = (weeks * 7 + days) * _DAY + hours * 60 + minutes_m + minutes_after_h
    if not low <= minutes <= high:
        raise problem
    return minutes


def target_text(minutes: int) -> str:
    """A target as admins write it: `1w`, `2d`, else `commit`'s `1h30m`."""
    if minutes and minutes % _WEEK == 0:
        return f"{minutes // _WEEK}w"
    if minutes and minutes % _DAY == 0:
        return f"{minutes // _DAY}d"
    return duration(minutes)


async def team_hours(ctx: Context, args: Sequence[str], defaults: Defaults) -> None:
    """`team hours TEAM DAYS HH:MM-HH:MM TZ`, or `team hours TEAM always`; without
    hours, the team's are shown."""
    if len(args) not in (1, 2, 4) or (len(args) == 2 and args[1].lower() != "always"):
        raise UsageError()
    texts = ctx.texts
    hours: WorkingHours | None = None
    if len(args) == 4:
        hours = parse_hours(args[1], args[2], parse_zone(args[3], texts), texts)
    team = await _team_named(ctx, args[0])
    if team is None:
        return
    if len(args) > 1:
        team.work_days = ",".join(str(d) for d in sorted(hours.days)) if hours else None
        team.work_start = clock_text(hours.start) if hours else None
        team.work_end = clock_text(hours.end) if hours else None
        team.work_tz = hours.tz if hours else None
        ctx.session.add(team)
    ctx.reply(_targets_text(texts, team, defaults))


def parse_hours(days: str, window: str, tz: str, texts: Texts) -> WorkingHours:
    """`mon-fri` (or `mon,wed`, `weekdays`, `fri-mon`…) and `09:00-18:00` in `tz`."""
    match = _WINDOW.fullmatch(window)
    problem = UsageError(texts.bad_hours.format(value=window))
    if match is None:
        raise problem
    start, end = clock_minutes(f"{match[1]}:{match[2]}"), clock_minutes(f"{match[3]}:{match[4]}")
    if int(match[2]) > 59 or int(match[4]) > 59:
        raise problem
    try:
        return WorkingHours(frozenset(_work_days(days, texts)), start, end, tz)
    except ValueError:
        raise problem from None


def _work_days(value: str, texts: Texts) -> set[int]:
    """Days as `commit` takes them, and ranges: `mon-fri`, `fri-mon` (across the weekend)."""
    found: set[int] = set()
    for part in value.lower().split(","):
        if "-" not in part:
            found.update(parse_days(part, texts))
            continue
        first, _, last = part.partition("-")
        ends = parse_days(first, texts), parse_days(last, texts)
        if len(ends[0]) != 1 or len(ends[1]) != 1:
            raise UsageError(texts.bad_days.format(value=value))
        day, stop = ends[0][0], ends[1][0]
        found.add(day)
        while day != stop:
            day = day % 7 + 1
            found.add(day)
    return found


def _targets_text(texts: Texts, team: Team, defaults: Defaults) -> str:
    targets = targets_of(team, defaults)
    return texts.team_targets.format(
        team=team.name,
        claim=target_text(targets.claim_minutes),
        reply=target_text(targets.reply_minutes),
        hours=hours_text(targets.hours, texts),
    )


async def role(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 2:
        raise UsageError()
    texts = ctx.texts
    wanted = args[1].lower()
    if wanted != "none" and wanted not in {r.value for r in Role}:
        ctx.reply(texts.role_unknown.format(role=args[1]))
        return
    target = await named_person(ctx, args[0])
    if target is None:
        return
    new_role = None if wanted == "none" else Role(wanted)
    if target.role == new_role:  # nothing changes: nobody is told anything
        ctx.reply(texts.role_unchanged.format(person=target.display_name, role=wanted))
        return
    demotes_last_admin = (
        target.role == Role.ADMIN
        and new_role != Role.ADMIN
        and await people.count_admins(ctx.session) <= 1
    )
    if demotes_last_admin:
        ctx.reply(texts.role_last_admin)
        return
    target.role = new_role
    ctx.session.add(target)
    ctx.reply(texts.role_set.format(person=target.display_name, role=wanted))
    if target.id != ctx.sender.id:
        ctx.tell(
            target,
            Notice(
                ctx.texts_of(target).role_told.format(actor=ctx.sender.display_name, role=wanted)
            ),
        )


async def lang(ctx: Context, args: Sequence[str]) -> None:
    if len(args) != 1:
        raise UsageError()
    choice = args[0].lower()
    if choice not in CATALOG:
        ctx.reply(ctx.texts.lang_unknown.format(lang=args[0]))
        return
    ctx.sender.language = choice
    ctx.session.add(ctx.sender)
    ctx.reply(ctx.texts.lang_set)
