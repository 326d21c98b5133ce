"""Small text helpers shared by the handlers."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from bot.router import UsageError

#: the largest number a command takes (ids are 32-bit integers in the database)
MAX_NUMBER = 2**31 - 1
#: at most ten ASCII digits: enough for MAX_NUMBER, never a 4,300-digit `int()`
_NUMBER = re.compile(r"#?([0-9]{1,10})")
#: characters that glue to the one before them; a cut must not separate them
_JOINERS = {"\u200d", "\ufe0f", "\ufe0e"}


def trim(text: str, limit: int) -> tuple[str, bool]:
    """At most `limit` characters, cut between whole characters; True if it was cut."""
    if len(text) <= limit:
        return text, False
    cut = limit - 1
    while cut > 0 and (unicodedata.combining(text[cut]) or text[cut] in _JOINERS):
        cut -= 1
    if cut > 0 and 0xDC00 <= ord(text[cut]) <= 0xDFFF:  # never split a surrogate pair
        cut -= 1
    return text[:cut].rstrip() + "…", True


def one_line(text: str, limit: int = 80) -> str:
    return trim(" ".join(text.split()), limit)[0]


def age(since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // (24 * 60)}d"


def number(value: str, problem: str = "", *, low: int = 1, high: int = MAX_NUMBER) -> int:
    """`3` or `#3` → 3, within [low, high]; anything else is a usage error that says what
    was wrong (`problem`, a template over `value`; "" for the usage line alone).

    The one parser of numbers people type. ASCII digits only: `str.isdigit()` also takes
    `²` and `٣`, which `int()` then refuses or reads, and `int()` refuses more than 4,300
    digits; both must be the usage line, not "something went wrong".
    """
    found = whole(value, low, high)
    if found is None:
        raise UsageError(problem.format(value=one_line(value, 40)))
    return found


def whole(value: str, low: int = 1, high: int = MAX_NUMBER) -> int | None:
    """`number` for a caller whose error names more than the value: None when it is none."""
    match = _NUMBER.fullmatch(value)
    if match is None or not low <= int(match[1]) <= high:
        return None
    return int(match[1])


def words_after(text: str, count: int) -> str:
    """`text` without its first `count` words, the rest exactly as typed (line breaks too)."""
    rest = text.strip()
    for _ in range(count):
        parts = rest.split(maxsplit=1)
        rest = parts[1] if len(parts) == 2 else ""
    return rest.strip()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")
