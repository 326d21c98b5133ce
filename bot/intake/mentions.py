"""The intake body: validate one mention object and turn it into a `MentionReceived`.

Pure: no I/O. The webhook, the feed poller and the console's `/mention` all end
up here, so a mention is held to the same rules whichever door it came through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bot.events import Author, MentionReceived

MAX_TEXT = 40_000
MAX_BATCH = 1_000
MAX_TAGS = 50

# What no database column can hold: PostgreSQL refuses NUL in text, and a lone
# surrogate (JSON's "\ud800" decodes to one) is not a character, so it has no UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Invalid(Exception):
    """The first thing wrong with a mention: what, and in which field."""

    error: str
    field: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        return self.error


def parse_mention(data: Any, received_at: datetime) -> MentionReceived:
    if not isinstance(data, Mapping):
        raise Invalid("a mention must be a JSON object")
    source = _string(data, "source", required=True, limit=64)
    external_id = _string(data, "external_id", required=True, limit=512)
    key = _string(data, "conversation_key", limit=512) or external_id
    author = data.get("author")
    if not isinstance(author, Mapping):
        raise Invalid("author must be an object with a name", "author")
    name = _string(author, "name", required=True, limit=255, path="author.name")
    handle = _string(author, "handle", limit=255, path="author.handle")
    text = data.get("text")
    if not isinstance(text, str):
        raise Invalid("text is required and must be a string", "text")
    if not text.strip():
        raise Invalid("text must not be empty", "text")
    if len(text) > MAX_TEXT:
        raise Invalid(f"text is longer than {MAX_TEXT:,} characters ({len(text):,})", "text")
    _storable(text, "text")
    url = _string(data, "url", limit=2048)
    if url and not _is_web_address(url):
        raise Invalid("url must be an http(s) address", "url")
    return MentionReceived(
        source=source,
        external_id=external_id,
        conversation_key=key,
        author=Author(name, handle),
        text=text,
        url=url,
        created_at=_created_at(data, received_at),
        lang=_string(data, "lang", limit=16),
        tags=_tags(data),
        raw=dict(data),
    )


def _string(
    data: Mapping[str, Any], name: str, *, required: bool = False, limit: int, path: str = ""
) -> str:
    path = path or name
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid(f"{path} is required", path)
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{path} must be a string, not {_json_type(value)}", path)
    if required and not value.strip():
        raise Invalid(f"{path} must not be empty", path)
    if len(value) > limit:
        raise Invalid(f"{path} is longer than {limit} characters", path)
    return _storable(value, path)


def _storable(value: str, path: str) -> str:
    """Every string that is stored passes here: what a database cannot hold is the
    client's mistake (a 400 naming the field), not a failed transaction."""
    if (found := _UNSTORABLE.search(value)) is not None:
        char = found.group()
        what = "a NUL character" if char == "\x00" else f"a lone surrogate (\\u{ord(char):04x})"
        raise Invalid(
            f"{path} contains {what} at position {found.start()}, which cannot be stored", path
        )
    return value


def _is_web_address(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[" (a bracket never closed), "http://ex℀.com/" (NFKC)
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _created_at(data: Mapping[str, Any], received_at: datetime) -> datetime:
    value = data.get("created_at")
    if value is None:
        return received_at
    if not isinstance(value, str):
        raise Invalid("created_at must be an ISO 8601 string", "created_at")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(
            f"created_at {value[:40]!r} is not ISO 8601 (e.g. 2026-11-16T08:02:11Z)", "created_at"
        ) from None
    # A time without a zone is taken as UTC, the way listening tools mostly mean it.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is in year 0 in UTC
        raise Invalid(
            f"created_at {value[:40]!r} is out of range once in UTC", "created_at"
        ) from None


def _tags(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("tags")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid("tags must be a list of strings", "tags")
    if len(value) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags", "tags")
    if any(len(t) > 64 for t in value):
        raise Invalid("a tag is longer than 64 characters", "tags")
    return tuple(_storable(t, "tags") for t in value)


def _json_type(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)
