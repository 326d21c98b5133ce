"""Commitments on the console, as a real process: a downtime's blocks are sent late or
recorded missed at start, and the check-in is answered by typing the button's command."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_console import assert_clean_exit, run_console, script


def test_after_a_downtime_one_block_is_sent_late_and_the_older_ones_recorded_missed(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    ten_ago = f"{now - timedelta(minutes=10):%H:%M}"
    hours_ago = f"{now - timedelta(hours=3):%H:%M}"
    first = run_console(
        tmp_path,
        script(
            "!inloop commit daily 25:00 30m",
            f"!inloop commit daily {ten_ago} 30m UTC",
            f"!inloop commit daily {hours_ago} 15m UTC",
        ),
    )
    assert_clean_exit(first)
    refused = first.turn("!inloop commit daily 25:00 30m").only("dm:admin").text
    assert (
        refused.splitlines()[0] == "`25:00` is not a time: write it as 24-hour HH:MM, e.g. 09:00."
    )
    assert "!inloop commit DAYS HH:MM DURATION [TZ]" in refused
    made = first.turn(f"!inloop commit daily {ten_ago} 30m UTC").only("dm:admin").text
    assert made.startswith(f"Commitment 1: every day at {ten_ago} for 30m (UTC).")

    # As if both had been made two days ago, and Inloop had been down since.
    with sqlite3.connect(tmp_path / "inloop.db") as db:
        db.execute("UPDATE commitment SET created_at = datetime('now', '-2 days')")

    second = run_console(tmp_path, script("!inloop commitments", "!inloop done 4"))

    assert_clean_exit(second)
    # sent once, at start, and saying it is late; nothing for the blocks hours old.
    # Blocks are recorded oldest first: the two of yesterday, the one 3 hours ago, then
    # the late one, block 4.
    assert second.stdout.count("┌ Dialogue time") == 1
    assert "[dm:admin] ┌ Dialogue time: 30m, until " in second.stdout
    assert f"│ Sent late: Inloop was not running at {ten_ago}." in second.stdout
    assert "└ [Start] !inloop start 4   [Skip] !inloop skip 4   [Snooze 15m] !inloop snooze 4" in (
        second.stdout
    )
    listed = second.turn("!inloop commitments").only("dm:admin").text.splitlines()
    assert listed[1].startswith(f"1. every day at {ten_ago} for 30m (UTC)")
    assert listed[1].endswith("last: reminded")
    assert listed[2].endswith("last: missed (Inloop was not running)")
    done = second.turn("!inloop done 4").only("dm:admin").text
    assert done == "Block 4 is recorded as done: 30m. Thank you!"
