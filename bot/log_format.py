"""The log's two formats: text for people (the default), JSON lines for log shippers.

`INLOOP_LOG_FORMAT=json` prints one JSON object per line, always with the same keys:

    time          ISO 8601, UTC, milliseconds        level     INFO, WARNING, ...
    logger        the logger's name                  message   the masked message
    event_id      the event being handled, or null   conversation  its number, or null
    exc_info      the masked traceback, or null

The event id and the conversation come from context variables: the router sets the
event id while it handles an event, a handler that finds a conversation sets its
number (`about_conversation`). A record made with `extra={"conversation": n}` says
so itself. Secrets are masked before this runs (bot/masking.py masks each record
as it is made), so a JSON line carries no secret either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

# Context variables are module-level by design: each asyncio task sees its own value,
# so they hold no state shared between handlers (the one exception to the house rule).
_EVENT_ID: ContextVar[str | None] = ContextVar("inloop_event_id", default=None)
_CONVERSATION: ContextVar[int | None] = ContextVar("inloop_conversation", default=None)

FIELDS = ("time", "level", "logger", "message", "event_id", "conversation", "exc_info")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def handling(event_id: str) -> Iterator[None]:
    """The log lines made inside carry `event_id` (and no conversation of another event)."""
    event = _EVENT_ID.set(event_id)
    conversation = _CONVERSATION.set(None)
    try:
        yield
    finally:
        _CONVERSATION.reset(conversation)
        _EVENT_ID.reset(event)


def about_conversation(number: int) -> None:
    """The lines logged from here on, in this event's handling, are about conversation `number`."""
    _CONVERSATION.set(number)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        conversation = getattr(record, "conversation", None)
        if conversation is None:
            conversation = _CONVERSATION.get()
        exc_text = record.exc_text  # set, masked, by bot/masking.py when secrets are known
        if exc_text is None and record.exc_info and record.exc_info[0] is not None:
            exc_text = self.formatException(record.exc_info)
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "event_id": getattr(record, "event_id", None) or _EVENT_ID.get(),
            "conversation": conversation,
            "exc_info": exc_text or None,
        }
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(form: str) -> logging.Formatter:
    """The formatter of INLOOP_LOG_FORMAT: "json" or "text"."""
    return JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT)
