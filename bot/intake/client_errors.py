"""A client's mistakes in the log: one WARNING line each, never a traceback, never a flood.

Anyone who can reach the webhook can send it garbage as fast as they like. Each kind
of mistake (a bad signature, a malformed request, a bad field…) is logged when it is
first seen; more of the same kind within the next minute are only counted, and one
line at the end of that minute says how many came and shows the last. So a flood
costs at most one line per kind per minute, and a traceback in the log always means
a bug in Inloop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

#: seconds during which more mistakes of one kind are counted instead of logged
WINDOW_SECONDS = 60.0


@dataclass
class _Window:
    ends: asyncio.TimerHandle
    more: int = 0
    last: str = ""


class ClientErrors:
    def __init__(self, log: logging.Logger, *, window: float = WINDOW_SECONDS):
        self._log = log
        self._window = window
        #: kind → the window open for it (the kinds are a fixed few: the callers' words)
        self._open: dict[str, _Window] = {}

    def warn(self, kind: str, message: str) -> None:
        """A client's mistake of this kind: logged now, or counted if one was this minute."""
        message = " ".join(message.split())  # one line, whatever the client put in it
        if (window := self._open.get(kind)) is not None:
            window.more += 1
            window.last = message
            return
        self._log.warning("%s", message)
        self._open[kind] = self._start(kind)

    def close(self) -> None:
        """Say what is still counted (at shutdown): nothing is lost from the log."""
        for kind in list(self._open):
            self._open[kind].ends.cancel()
            self._summarise(kind)

    def _start(self, kind: str) -> _Window:
        loop = asyncio.get_running_loop()
        return _Window(loop.call_later(self._window, self._window_ends, kind))

    def _window_ends(self, kind: str) -> None:
        if self._summarise(kind):
            # A flood goes on: the next line is at the end of the next window, not now.
            self._open[kind] = self._start(kind)

    def _summarise(self, kind: str) -> bool:
        window = self._open.pop(kind)
        if not window.more:
            return False
        self._log.warning(
            "%d more like this in the last %g s (%s); the last: %s",
            window.more,
            self._window,
            kind,
            window.last,
        )
        return True
