"""Small text helpers shared by the handlers."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from bot.router import UsageError

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


def number(value: str, problem: str) -> int:
    """`3` or `#3` → 3; anything else is a usage error that says what was wrong."""
    digits = value.removeprefix("#")
    if not digits.isdigit() or not 0 < int(digits) < 2**31:
        raise UsageError(problem.format(value=value))
    return int(digits)


def words_after(text: str, count: int) -> str:
    """`text` without its first `count` words, the rest exactly as typed (line breaks too)."""
    rest = text.strip()
    for _ in range(count):
        parts = rest.split(maxsplit=1)
        rest = parts[1] if len(parts) == 2 else ""
    return rest.strip()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")
