"""`inloop digest` with a week or a team that is not there: one line naming the argument."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_cli import EXIT_CONFIG, inloop, sqlite_url

from harness import Chat


def test_digest_of_a_team_that_is_not_there_names_the_argument(tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqlite_url(tmp_path / "inloop.db")}

    done = inloop(tmp_path, "digest", "--team", "nope", env=env)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        "inloop: argument --team: there is no team called nope (teams: —)"
    ]
    assert done.stdout == ""


async def test_digest_of_a_misspelt_team_says_which_teams_there_are(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "inloop.db")
    chat = await Chat(url).start()
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add billing", where="billing")
    await chat.stop()

    done = await asyncio.to_thread(
        inloop, tmp_path, "digest", "--team", "suport", env={"DATABASE_URL": url}
    )

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        "inloop: argument --team: there is no team called suport (teams: billing, support)"
    ]


def test_digest_of_a_week_that_is_not_one_names_the_argument(tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqlite_url(tmp_path / "inloop.db")}

    done = inloop(tmp_path, "digest", "--week", "2026-W99", env=env)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        "inloop: argument --week: 2026-W99 is not a week"
        " (use this, last or YYYY-Www, e.g. 2026-W47)"
    ]
