"""Time as an injectable dependency, so tests never wait for the wall clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock: timezone-aware UTC."""
    return datetime.now(UTC)
