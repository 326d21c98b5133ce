"""The console's terminal: prompt_toolkit's input line, and printing above it.

Only a person at a terminal needs this (imported then): a pipe, Slack or Matrix never does.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_session
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout


class Terminal:
    """The process's own terminal, through prompt_toolkit's default session: patch_stdout
    prints from a thread of its own, which finds the running prompt only there.

    Editing keys and history (Up, Down; this run only) as prompt_toolkit has them. Ctrl-D,
    or Ctrl-C on an empty line, leaves; Ctrl-C on a half-typed line clears it, as in a
    shell.
    """

    def __init__(self, stdout: TextIO) -> None:
        self._output = get_app_session().output
        self._session: PromptSession[str] = PromptSession(key_bindings=_keys())
        self._stdout = stdout
        #: while the input line is up: the stream that prints above it
        self._above: TextIO | None = None

    @property
    def columns(self) -> int:
        """Asked each time: the window may have been resized."""
        return self._output.get_size().columns

    def print(self, text: str) -> None:
        """`text` on lines of its own: above the input line while there is one."""
        stream = self._above or self._stdout
        stream.write(text + "\n")
        stream.flush()

    async def read(self, prompt: str) -> str | None:
        """The next line typed after `prompt`; None when the person leaves.

        Only while it waits does printing go through prompt_toolkit's proxy: between two
        lines it is written at once, so all of an answer is out before the next prompt
        is drawn (the proxy writes from a thread of its own, a moment later).
        """
        try:
            with self._above_the_prompt():
                return await self._session.prompt_async(
                    prompt,
                    # SIGINT stays the app's (it stops Inloop); here Ctrl-C is a key (_keys).
                    # A failing task is logged, not a modal "Press ENTER" screen.
                    handle_sigint=False,
                    set_exception_handler=False,
                )
        except EOFError:  # Ctrl-D, or Ctrl-C on an empty line
            return None

    @contextmanager
    def _above_the_prompt(self) -> Iterator[None]:
        """Printing goes above the input line instead of through it: this console's, stray
        prints, and the log where it goes to the terminal."""
        # Escape sequences in what is printed are shown, not obeyed (raw=False).
        with patch_stdout():
            above = sys.stdout
            # The log's handlers took the real stream when logging was set up.
            handlers = [
                h
                for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and _is_terminal(h.stream)
            ]
            before = [h.stream for h in handlers]
            for handler in handlers:
                handler.setStream(above)
            self._above = above
            try:
                yield
            finally:
                self._above = None
                for handler, stream in zip(handlers, before, strict=True):
                    handler.setStream(stream)


def _keys() -> KeyBindings:
    """Ctrl-C as in a shell: a half-typed line is dropped; on an empty line it leaves,
    as Ctrl-D does (prompt_toolkit's own Ctrl-C would raise KeyboardInterrupt)."""
    keys = KeyBindings()

    @keys.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=EOFError, style="class:exiting")

    return keys


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
