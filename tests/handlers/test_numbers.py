"""Numbers people type: ASCII digits within a sane bound, the usage line otherwise.

`²` passes `str.isdigit()` and then fails `int()`; a number of more than 4,300 digits
fails `int()` too. Either used to answer "Sorry, something went wrong" (issue 13 §2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness import Chat
from recording import field_value

#: not numbers for Inloop, each of which Python reads (or fails to read) as one
STRANGE = ["²", "٣", "1" * 4301, "99999999999"]
NINE = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


async def _usage(chat: Chat, who: str, command: str, usage: str) -> None:
    told = await chat.say(who, command)
    assert "something went wrong" not in told, command
    assert "Usage:" in told and f"!inloop {usage}" in told, (command, told)


@pytest.mark.parametrize("value", STRANGE)
async def test_conversation_numbers_in_every_command_answer_with_the_usage(
    chat: Chat, value: str
) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "La scatola è rotta.")
    for command, usage in [
        (f"claim {value}", "claim N"),
        (f"release {value}", "release N"),
        (f"replied {value}", "replied N"),
        (f"resolve {value}", "resolve N"),
        (f"reopen {value}", "reopen N"),
        (f"start {value}", "start ID"),
        (f"skip {value}", "skip ID"),
        (f"snooze {value}", "snooze ID"),
        (f"done {value}", "done ID"),
        (f"show {value}", "show N"),
        (f"reassign {value} @ann", "reassign N @person"),
        (f"log 20m {value}", "log DURATION [N]"),
        (f"uncommit {value}", "uncommit ID"),
        (f"partial {value} 20", "partial ID MINUTES"),
        (f"feed remove {value}", "feed remove ID"),
    ]:
        await _usage(chat, "boss", command, usage)
    # nothing happened to #1
    assert field_value(chat.platform.card(1), "Owner") == "nobody yet"
    assert "#1 is yours" in await chat.say("ann", "claim 1")


@pytest.mark.parametrize("value", STRANGE)
async def test_minutes_of_a_partial_block_answer_with_the_usage(chat: Chat, value: str) -> None:
    chat.clock.now = NINE - timedelta(hours=1)
    await chat.say("ann", "commit daily 09:00 30m UTC")
    await chat.at(NINE)
    await chat.at(NINE + timedelta(minutes=30))
    told = await chat.say("ann", f"partial 1 {value}")
    assert "something went wrong" not in told
    assert "is not a number of minutes from 1 to 30" in told and "Usage:" in told
    # the block still waits for its answer
    assert "recorded as partial: 20m of 30m" in await chat.say("ann", "partial 1 20")


async def test_an_echoed_number_is_cut_short(chat: Chat) -> None:
    told = await chat.say("boss", "claim " + "7" * 5000)
    assert len(told) < 400


@pytest.mark.parametrize("value", ["²-A1", "٣-A1", "1-A٣", "1" * 4301 + "-A1"])
async def test_advice_ids_of_strange_digits_are_not_advice_ids(chat: Chat, value: str) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "La scatola è rotta.")
    await chat.say("boss", "role @expert consultant")
    told = await chat.say("expert", f"take {value}")
    assert told.endswith("is not an advice request (write it like 3-A1).")
    assert len(told) < 200
