"""The digest's "over the target" counts a team's working hours only (issue 16 §2):
a conversation that arrives on Friday evening and is claimed early on Monday did
not wait a weekend, it waited the minutes its team was at work."""

from __future__ import annotations

from datetime import UTC, datetime

from harness import Chat

ROME = "Europe/Rome"


async def _team(chat: Chat, hours: str = "mon-fri 09:00-18:00 Europe/Rome") -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", "team target support claim 30m")
    await chat.say("boss", f"team hours support {hours}")


async def _arrive_then_are_claimed(
    chat: Chat, arrives: datetime, claims: list[tuple[int, datetime]]
) -> None:
    """Conversations arrive together; each is claimed by Ann at its time (in order)."""
    await chat.at(arrives)
    for number, _ in claims:
        await chat.mention(f"Customer {number}", "ciao?")
    for number, claimed in claims:
        await chat.at(claimed)
        await chat.say("ann", f"claim {number}")


def _team_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("• support"))


async def _team_lines(chat: Chat, week: str) -> dict[str, str]:
    text = await chat.say("boss", f"digest {week}")
    return {line.split(":")[0][2:]: line for line in text.splitlines() if line.startswith("• ")}


async def test_a_weekend_outside_working_hours_does_not_count_towards_the_target(
    database_url: str,
) -> None:
    chat = await Chat(database_url, DIGEST_TZ=ROME).start()
    await _team(chat)
    # Friday 20 Nov 2026, 17:50 in Rome (UTC+1): 10 working minutes are left that day.
    # #1 is claimed Monday at 09:15: 10 + 15 = 25 working minutes, under the 30 min
    # target (63 hours on the clock); #2 at 09:25: 35 working minutes, over it.
    await _arrive_then_are_claimed(
        chat,
        datetime(2026, 11, 20, 16, 50, tzinfo=UTC),
        [
            (1, datetime(2026, 11, 23, 8, 15, tzinfo=UTC)),
            (2, datetime(2026, 11, 23, 8, 25, tzinfo=UTC)),
        ],
    )

    line = (await _team_lines(chat, "2026-W47"))["support"]
    assert "opened 2" in line
    assert line.endswith("over the 30 min target 1 ▲1")
    # A week later, when Monday is a closed day whose waits the digest reads from its
    # totals: the same.
    await chat.at(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    assert (await _team_lines(chat, "2026-W47"))["support"] == line
    await chat.stop()


async def test_a_team_without_hours_counts_every_minute(database_url: str) -> None:
    chat = await Chat(database_url, DIGEST_TZ=ROME).start()
    await chat.say("boss", "team add support")
    await chat.say("boss", "team target support claim 30m")
    friday = datetime(2026, 11, 20, 16, 50, tzinfo=UTC)
    await _arrive_then_are_claimed(
        chat,
        friday,
        [(2, friday.replace(minute=55)), (1, datetime(2026, 11, 23, 8, 15, tzinfo=UTC))],
    )

    line = (await _team_lines(chat, "2026-W47"))["support"]
    assert line.endswith("over the 30 min target 1 ▲1")  # the weekend counts; 5 minutes do not
    await chat.stop()


async def test_working_hours_across_the_dst_change(database_url: str) -> None:
    """Rome goes from UTC+2 to UTC+1 on Sunday 25 October 2026 at 03:00: that night
    01:00-03:00 is three hours long, and Monday's 09:00 is an hour later in UTC."""
    chat = await Chat(database_url, DIGEST_TZ=ROME).start()
    await _team(chat, "mon-fri 09:00-18:00 Europe/Rome")
    await chat.say("boss", "team add night notte", where="night")
    await chat.say("boss", "team target night claim 150m")
    await chat.say("boss", "team hours night mon-sun 01:00-03:00 Europe/Rome")
    # Friday 23 Oct 17:50 (UTC+2): #1 and #2 for support.
    await chat.at(datetime(2026, 10, 23, 15, 50, tzinfo=UTC))
    await chat.mention("Giulia", "ciao?")
    await chat.mention("Marco", "ciao?")
    # Sunday 25 Oct 01:00 (23:00 UTC on Saturday) to 03:00 after the change (02:00 UTC):
    # 180 working minutes for the night team, over 150 (two hours on the wall clock).
    await chat.at(datetime(2026, 10, 24, 23, 0, tzinfo=UTC))
    await chat.mention("Anna", "notte", tags=("notte",))
    await chat.at(datetime(2026, 10, 25, 2, 0, tzinfo=UTC))
    await chat.say("ann", "claim 3")
    # Monday 26 Oct 09:15 and 09:25 in Rome are 08:15 and 08:25 UTC (UTC+1): 25 and
    # 35 working minutes. Read with the summer offset they would be 85 and 95.
    for number, minute in ((1, 15), (2, 25)):
        await chat.at(datetime(2026, 10, 26, 8, minute, tzinfo=UTC))
        await chat.say("ann", f"claim {number}")

    lines = await _team_lines(chat, "2026-W43")
    assert lines["support"].endswith("over the 30 min target 1 ▲1")
    assert lines["night"].endswith("over the 150 min target 1 ▲1")
    await chat.at(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # every day of it closed
    assert await _team_lines(chat, "2026-W43") == lines
    await chat.stop()
