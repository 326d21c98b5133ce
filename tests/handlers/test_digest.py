"""The weekly digest, on a seeded week whose figures are worked out by hand below."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import struct
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.charts import ChartWords, digest_chart
from handlers.weeks import IsoWeek
from harness import Chat, channel, person

ROME = "Europe/Rome"


async def _seed(chat: Chat) -> None:
    """Week 46 (for the trends), then week 47 (16–22 Nov 2026, Rome = UTC+1)."""
    clock = chat.clock
    await chat.say("boss", "team add support")
    await chat.say("boss", "role console:expert consultant")
    await chat.say("boss", "consultants here", where="experts")
    # W46: #1 claimed after 30 min, replied after 60, resolved.
    clock.now = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
    await chat.mention("Giulia", "ordine rotto", source="twitter")
    clock.advance(minutes=30)
    await chat.say("ann", "claim 1")
    clock.advance(minutes=30)
    await chat.say("ann", "replied 1")
    await chat.say("ann", "resolve 1")
    # W47, Monday 16 Nov: #2 claimed after 20 min and replied after 60.
    clock.now = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    await chat.mention("Marco", "dov'è il pacco?", source="twitter")
    clock.advance(minutes=20)
    await chat.say("ann", "claim 2")
    clock.advance(minutes=40)
    await chat.say("ann", "replied 2")
    # advice on #2: asked at 10:30, answered at 12:30 (120 min), rated useful
    clock.advance(minutes=30)
    await chat.say("ann", "ask 2 Cosa gli dico? console:expert")
    await chat.mention("Anna", "taglia M?", source="instagram")  # #3 at 10:30
    clock.advance(minutes=120)
    await chat.say("expert", "answer 2-A1 Scusati e dai il tracking.")
    await chat.say("ann", "rate 2-A1 useful")
    # #3 claimed by Bob at 14:30 (240 min after it came: over the 60 min target), resolved
    clock.advance(minutes=120)
    await chat.say("bob", "claim 3")
    await chat.say("bob", "resolve 3")
    # Tuesday: #4 nobody claims
    clock.now = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    await chat.mention("Sam", "checkout 502", source="twitter")
    clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the Monday after


async def _digest_chat(database_url: str) -> Chat:
    return await Chat(database_url, DIGEST_TZ=ROME).start()


async def test_every_figure_of_a_seeded_week(database_url: str) -> None:
    chat = await _digest_chat(database_url)
    await _seed(chat)

    text = await chat.say("boss", "digest 2026-W47")

    *lines, chart = text.splitlines()
    assert chart == "(chart) Inloop 2026-W47"
    assert lines == [
        "Inloop digest 2026-W47 (16 Nov – 22 Nov 2026, Europe/Rome)",
        "▲ ▼ up or down from the week before · — nothing to measure",
        "",
        "People",
        "• Ann: claimed 1, replied 1, resolved 0 ▼1 · median time to claim 20 min ▼10,"
        " to first reply 60 min",
        "• Bob: claimed 1 ▲1, replied 0, resolved 1 ▲1 · median time to claim 240 min,"
        " to first reply —",
        "",
        "Consultants",
        "• Expert: received 1 ▲1, answered 1 ▲1, median time to answer 120 min, useful 1 ▲1",
        "",
        "Teams",
        "• support: mentions in 3 ▲2 (instagram 1, twitter 2) · opened 3 ▲2 · median time"
        " to claim 130 min ▲100 · over the 60 min target 2 ▲2",
        "  members: nobody yet (`team join support`, or an admin's `team members support"
        " @person…`)",
        "  unclaimed now (1, oldest first): #4 (6d)",
    ]
    await chat.stop()


async def test_the_chart_is_a_png_of_the_expected_size(database_url: str) -> None:
    chat = await _digest_chat(database_url)
    await _seed(chat)

    await chat.say("boss", "digest 2026-W47")

    chart = chat.platform.delivered[-1]
    assert chart.kind == "private" and chart.target == person("boss")
    png: bytes = chart.view.png  # type: ignore[union-attr]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1200, 800)
    await chat.stop()


async def test_an_empty_week_still_lists_the_teams(chat: Chat) -> None:
    await chat.say("boss", "team add support")

    text = await chat.say("boss", "digest 2026-W40")

    assert "People\n  nobody" in text
    assert "Consultants\n  nobody" in text
    assert "• support: mentions in 0 · opened 0 · median time to claim — · over the 60" in text


async def test_the_digest_is_for_managers_only(chat: Chat) -> None:
    assert (await chat.say("ann", "digest")).startswith("Not allowed")
    await chat.say("boss", "role console:ann manager")
    assert (await chat.say("ann", "digest last")).startswith("Inloop digest")
    assert "is not a week" in await chat.say("ann", "digest 2026-W60")
    assert await chat.say("ann", "digest this nope") == "There is no team called nope."


def test_a_week_with_a_dst_change_is_cut_at_local_midnight() -> None:
    # Rome goes back from UTC+2 to UTC+1 on Sunday 25 October 2026.
    start, end = IsoWeek(2026, 43).bounds(ROME)
    assert start == datetime(2026, 10, 18, 22, 0, tzinfo=UTC)  # Mon 19 Oct 00:00 +02:00
    assert end == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # Mon 26 Oct 00:00 +01:00
    assert (end - start).total_seconds() == 169 * 3600


async def test_mentions_are_counted_in_the_local_week_across_dst(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    chat.clock.now = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)  # Sun 23:30 in Rome: W43
    await chat.mention("Giulia", "tardi")
    chat.clock.now = datetime(2026, 10, 25, 23, 30, tzinfo=UTC)  # Mon 00:30 in Rome: W44
    await chat.mention("Marco", "presto")

    w43 = await _digest_for(chat, "2026-W43")
    w44 = await _digest_for(chat, "2026-W44")
    assert "mentions in 1 ▲1 (twitter 1)" in w43  # the week before had none
    assert "mentions in 1 (twitter 1)" in w44  # as many as the week before: no arrow


async def _digest_for(chat: Chat, week: str) -> str:
    from handlers import digest

    async with chat.app.db.read() as session:
        figures = await digest.build(
            session, IsoWeek(int(week[:4]), int(week[-2:])), ROME, "", 60, chat.clock()
        )
    assert figures is not None
    from bot.messages import texts_for

    return digest.as_text(figures, texts_for("en"))


async def test_the_cli_exports_the_same_figures_as_csv(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}"
    chat = await _digest_chat(url)
    await _seed(chat)
    await chat.stop()

    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bot",
            "digest",
            "--week",
            "2026-W47",
            "--format",
            "csv",
            "--chart",
            str(tmp_path / "w47.png"),
        ],
        cwd=tmp_path,
        env={"DATABASE_URL": url, "DIGEST_TZ": ROME, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    figures = {(r["section"], r["name"], r["figure"]): (r["value"], r["previous"]) for r in rows}
    assert figures[("person", "Ann", "to_claim")] == ("20.0", "30.0")
    # Bob did nothing the week before: as the text's ▲1, his previous is 0, not empty
    assert figures[("person", "Bob", "resolved")] == ("1", "0")
    assert figures[("person", "Bob", "to_reply")] == ("", "")
    assert figures[("consultant", "Expert", "to_answer")] == ("120.0", "")
    assert figures[("team", "support", "over_target")] == ("2", "0")
    assert figures[("team", "support", "mentions_from_twitter")] == ("2", "1")
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", figure) for _, _, figure in figures)
    assert figures[("day", "2026-11-16", "mentions")] == ("2", "")
    assert (tmp_path / "w47.png").read_bytes()[:4] == b"\x89PNG"


async def test_managers_here_sets_the_channel_for_the_weekly_post(chat: Chat) -> None:
    told = await chat.say("boss", "managers here", where="managers")
    assert told == "This channel gets the weekly digest, every Monday at 09:00 (UTC)."
    assert chat.platform.in_channel(channel("managers")) == []


async def test_the_weekly_post_goes_to_the_managers_channel_once_on_monday_9(
    database_url: str,
) -> None:
    chat = await _digest_chat(database_url)
    await _seed(chat)  # leaves the clock on Monday 23 Nov, 09:00 UTC (10:00 in Rome)
    await chat.say("boss", "managers here", where="managers")

    # Monday 30 Nov: 09:00 in Rome is 08:00 UTC
    await chat.at(datetime(2026, 11, 30, 7, 59, tzinfo=UTC))
    assert chat.platform.everything_in(channel("managers")) == []

    await chat.at(datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    posted = chat.platform.everything_in(channel("managers"))
    assert [d.text.splitlines()[0] for d in posted] == [
        "Inloop digest 2026-W48 (23 Nov – 29 Nov 2026, Europe/Rome)",
        "(chart) Inloop 2026-W48",
    ]

    await chat.at(datetime(2026, 11, 30, 8, 30, tzinfo=UTC))
    await chat.stop()
    # a restart the same morning catches up on a missed post, but this one was sent
    again = await Chat(database_url, DIGEST_TZ=ROME).start()
    again.platform = chat.platform
    await again.at(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    assert len(chat.platform.everything_in(channel("managers"))) == 2
    await again.stop()


async def test_a_post_missed_while_down_is_sent_late_the_same_morning(
    database_url: str,
) -> None:
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    await chat.say("boss", "managers here", where="managers")
    await chat.stop()

    # Inloop was down at 09:00 and comes back at 11:30 (Rome)
    later = Chat(database_url, DIGEST_TZ=ROME)
    later.clock.now = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    await later.start()
    await later.app.settle()

    posted = later.platform.everything_in(channel("managers"))
    assert posted[0].text.startswith("Inloop digest 2026-W48")
    await later.stop()


async def test_commitments_kept_and_not_kept_are_in_the_digest(database_url: str) -> None:
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    chat.clock.now = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)  # Monday 08:00 in Rome
    assert (await chat.say("ann", "commit mon 09:00 30m Europe/Rome")).startswith("Commitment 1")
    assert (await chat.say("bob", "commit mon 09:00 1h Europe/Rome")).startswith("Commitment 2")
    await chat.at(datetime(2026, 11, 16, 8, 0, tzinfo=UTC))  # both blocks start
    await chat.at(datetime(2026, 11, 16, 9, 0, tzinfo=UTC))  # both check-ins are due
    checkin = chat.platform.last_private(person("ann"))
    assert checkin.startswith("How did your dialogue time go?")
    block = re.search(r"Block (\d+):", checkin)
    assert block is not None
    assert "recorded as done" in await chat.say("ann", f"done {block.group(1)}")
    await chat.at(datetime(2026, 11, 17, 9, 30, tzinfo=UTC))  # Bob never answers

    text = await chat.say("boss", "digest 2026-W47")

    assert "• Ann: committed 30 min, gave 30 min ▲30, kept 100% · sessions done 1 · " in text
    assert "• Bob: committed 60 min, gave 0 min, kept 0% · sessions no answer 1 · " in text
    await chat.stop()


async def test_time_logged_without_a_commitment_says_so(database_url: str) -> None:
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    chat.clock.now = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    assert (await chat.say("ann", "log 5h40m")).startswith("Logged 5h40m")
    chat.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    text = await chat.say("boss", "digest 2026-W47")

    assert "• Ann: no time committed, gave 340 min ▲340 · claimed 0" in text
    assert "(—)" not in text
    await chat.stop()


async def test_the_week_of_new_year_shows_both_years(database_url: str) -> None:
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    chat.clock.now = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)

    text = await chat.say("boss", "digest 2026-W01")

    assert text.splitlines()[0] == (
        "Inloop digest 2026-W01 (29 Dec 2025 – 04 Jan 2026, Europe/Rome)"
    )
    await chat.say("boss", "lang it")
    italian = await chat.say("boss", "digest 2026-W01")
    assert italian.splitlines()[:2] == [
        "Resoconto Inloop 2026-W01 (29 dic 2025 – 04 gen 2026, Europe/Rome)",
        "▲ ▼ in più o in meno rispetto alla settimana prima · — niente da misurare",
    ]
    await chat.stop()


async def test_the_chart_names_the_days_in_the_readers_language(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[list[tuple[str, int]]] = []

    def spy(people: Any, days: list[tuple[str, int]], words: ChartWords) -> bytes:
        drawn.append(days)
        return digest_chart(people, days, words)

    monkeypatch.setattr("handlers.digest.digest_chart", spy)
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    chat.clock.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    await chat.say("boss", "lang it")
    await chat.say("boss", "digest 2026-W47")
    assert [label for label, _ in drawn[-1]] == [
        "lun 16",
        "mar 17",
        "mer 18",
        "gio 19",
        "ven 20",
        "sab 21",
        "dom 22",
    ]
    await chat.stop()


async def _figures(chat: Chat, week: str, team: str = "") -> Any:
    from handlers import digest

    async with chat.app.db.read() as session:
        figures = await digest.build(
            session, IsoWeek(int(week[:4]), int(week[-2:])), ROME, team, 60, chat.clock()
        )
    assert figures is not None
    return figures


async def test_times_are_credited_to_who_acted_not_to_who_owns_it_now(
    database_url: str,
) -> None:
    from handlers import digest

    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    await chat.say("luca", "queue")  # luca is known, so #1 can be reassigned to him
    chat.clock.now = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    await chat.mention("Giulia", "ordine rotto")  # #1
    chat.clock.advance(minutes=10)
    await chat.say("marta", "claim 1")
    chat.clock.advance(minutes=20)
    await chat.say("marta", "replied 1")
    chat.clock.advance(minutes=30)
    assert (await chat.say("boss", "reassign 1 console:luca")).startswith("#1 now belongs to")
    chat.clock.advance(minutes=30)
    await chat.say("luca", "replied 1")  # his reply, but not the first one
    await chat.mention("Marco", "taglia?")  # #2, claimed by a reply after 5 min
    chat.clock.advance(minutes=5)
    await chat.say("ann", "replied 2")
    chat.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    text = await chat.say("boss", "digest 2026-W47")

    lines = text.splitlines()
    people = lines[lines.index("People") + 1 : lines.index("Consultants") - 1]
    assert people == [
        "• Ann: claimed 0, replied 1 ▲1, resolved 0 · median time to claim 5 min,"
        " to first reply 5 min",
        "• Luca: claimed 0, replied 1 ▲1, resolved 0 · median time to claim —, to first reply —",
        "• Marta: claimed 1 ▲1, replied 1 ▲1, resolved 0 · median time to claim 10 min,"
        " to first reply 30 min",
    ]
    # the team's time to claim is every first claim's, whoever made it: 5 and 10 min
    assert "opened 2 ▲2 · median time to claim 8 min" in text

    figures = await _figures(chat, "2026-W47")
    rows = {(r["name"], r["figure"]): (r["value"], r["previous"]) for r in digest.as_rows(figures)}
    assert rows[("Marta", "to_claim")] == (10.0, None)
    assert rows[("Marta", "claimed")] == (1, 0)
    assert rows[("Luca", "to_claim")] == (None, None)
    assert rows[("Luca", "to_reply")] == (None, None)
    # no commitment this week nor the week before: nothing to compare, not "was 0"
    assert rows[("Luca", "committed")] == (None, None)
    assert rows[("Luca", "given")] == (0, 0)
    exported = {p["name"]: p for p in json.loads(digest.as_json(figures))["people"]}
    assert (exported["Marta"]["to_claim"], exported["Marta"]["to_reply"]) == (10.0, 30.0)
    assert (exported["Luca"]["to_claim"], exported["Luca"]["to_reply"]) == (None, None)
    await chat.stop()


async def test_the_json_names_the_team_or_null_for_the_whole_company(database_url: str) -> None:
    from handlers import digest

    chat = await _digest_chat(database_url)
    await _seed(chat)

    whole = json.loads(digest.as_json(await _figures(chat, "2026-W47")))
    support = json.loads(digest.as_json(await _figures(chat, "2026-W47", "support")))

    assert whole["team"] is None and whole["previous"]["team"] is None
    assert support["team"] == "support"
    # the advice was asked about a conversation of the team: counted in both
    expert = {"name": "Expert", "received": 1, "answered": 1, "to_answer": 120.0, "useful": 1}
    assert whole["consultants"] == support["consultants"] == [expert]
    await chat.stop()


async def test_an_empty_week_without_teams_says_nobody_under_teams(chat: Chat) -> None:
    text = await chat.say("boss", "digest 2026-W40")

    assert "\n\nTeams\n  nobody\n" in text


async def test_more_time_given_than_committed_is_a_multiple_not_a_percent(
    database_url: str,
) -> None:
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    chat.clock.now = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)  # Monday 08:00 in Rome
    assert (await chat.say("ann", "commit mon 09:00 30m Europe/Rome")).startswith("Commitment 1")
    await chat.at(datetime(2026, 11, 16, 8, 0, tzinfo=UTC))
    await chat.at(datetime(2026, 11, 16, 9, 0, tzinfo=UTC))
    block = re.search(r"Block (\d+):", chat.platform.last_private(person("ann")))
    assert block is not None
    await chat.say("ann", f"done {block.group(1)}")
    assert (await chat.say("ann", "log 1h15m")).startswith("Logged 1h15m")
    chat.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    text = await chat.say("boss", "digest 2026-W47")
    await chat.say("boss", "lang it")
    italian = await chat.say("boss", "digest 2026-W47")

    assert (
        "• Ann: committed 30 min, gave 105 min ▲105 (3.5× the time committed) · sessions done 1 · "
        in text
    )
    assert "%" not in text
    assert "impegno 30 min, dedicati 105 min ▲105 (3.5× il tempo promesso) · " in italian
    await chat.stop()


async def test_a_team_chart_has_a_file_of_its_own(database_url: str) -> None:
    """On the console the file is kept: the team's must not replace the company's."""
    chat = await _digest_chat(database_url)
    await _seed(chat)

    await chat.say("boss", "digest 2026-W47")
    company = chat.platform.delivered[-1].view
    await chat.say("boss", "digest 2026-W47 support")
    team = chat.platform.delivered[-1].view

    assert company.filename == "inloop-digest-2026-W47.png"  # type: ignore[union-attr]
    assert team.filename == "inloop-digest-2026-W47-support.png"  # type: ignore[union-attr]
    await chat.stop()


async def test_a_teams_members_are_listed_under_it(database_url: str) -> None:
    from handlers import digest

    chat = await _digest_chat(database_url)
    await _seed(chat)
    await chat.say("boss", "team members support @ann @bob")

    text = await chat.say("boss", "digest 2026-W47")

    lines = text.splitlines()
    team = lines.index(next(line for line in lines if line.startswith("• support:")))
    assert lines[team + 1] == "  members: Ann, Bob"
    rows = digest.as_rows(await _figures(chat, "2026-W47"))
    assert not [r for r in rows if r["figure"] == "members"]  # a list, not a figure
    await chat.stop()


async def test_each_team_lists_its_ten_oldest_unclaimed_and_counts_them_all(
    database_url: str,
) -> None:
    """What waits now, by team: the ten oldest (by arrival, then by number when two
    arrived at the same instant), the rest counted; claimed ones are not waiting."""
    chat = await _digest_chat(database_url)
    await chat.say("boss", "team add support")
    await chat.say("boss", "team add billing refund", where="billing")
    chat.clock.now = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    for n in range(1, 14):  # #1 … #13 for support, an hour apart; #7 and #8 together
        await chat.mention(f"Customer {n}", "aiuto")
        if n != 7:
            chat.clock.advance(minutes=60)
    await chat.mention("Rita", "rimborso?", tags=("refund",))  # #14, billing
    await chat.say("ann", "claim 2")
    await chat.say("ann", "claim 9")
    chat.clock.now = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)

    text = await chat.say("boss", "digest 2026-W47")

    lines = text.splitlines()
    support = lines.index(next(line for line in lines if line.startswith("• support:")))
    billing = lines.index(next(line for line in lines if line.startswith("• billing:")))
    ages = ["2d"] + ["1d"] * 9  # #1 came 48 h before, #3 46 h
    expected = [
        f"#{n} ({age})" for n, age in zip((1, 3, 4, 5, 6, 7, 8, 10, 11, 12), ages, strict=True)
    ]
    assert (
        f"  unclaimed now (11, oldest first): {', '.join(expected)}, … +1"
        in lines[support : support + 4]
    )
    assert "  unclaimed now (1, oldest first): #14 (1d)" in lines[billing : billing + 4]
    await chat.stop()
