"""The console in a terminal: `python -m bot run` in an 80-column pseudo-terminal, read
through a terminal emulator (pyte), so that the tests see the screen a person sees, not
the escape sequences that draw it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest
from test_console import TIMEOUT, assert_clean_exit, console_env, run_console, script

from bot.intake.webhook import sign
from bot.platforms.console.translate import render
from bot.views import Button, Card, Field

COLUMNS = 80
PROMPT = "admin@#general> "
UP = "\x1b[A"
CTRL_C = "\x03"
CTRL_D = "\x04"


class _Screen(pyte.Screen):
    """A VT100 screen that answers the program's cursor-position requests, as a real
    terminal does (prompt_toolkit asks, and warns when nobody answers)."""

    def __init__(self, columns: int, lines: int, answer: Callable[[str], None]):
        super().__init__(columns, lines)
        self._answer = answer

    def write_process_input(self, data: str) -> None:
        self._answer(data)


class Terminal:
    """`inloop run` at a keyboard: stdin, stdout and stderr (the log) on one terminal
    COLUMNS wide; a thread keeps the screen up to date with what the program writes."""

    def __init__(self, tmp_path: Path, env: dict[str, str], lines: int = 100):
        self._keyboard, tty = pty.openpty()
        # The size a terminal window tells its programs (tall: nothing scrolls away).
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", lines, COLUMNS, 0, 0))
        self._lock = threading.Lock()
        self._screen = _Screen(COLUMNS, lines, self._write)
        self._stream = pyte.ByteStream(self._screen)
        # The size comes from the terminal, as in a window; the type is one pyte emulates
        # (CI may have none, or "dumb", which would get prompt_toolkit's plain fallback).
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            stdin=tty,
            stdout=tty,
            stderr=tty,
            cwd=tmp_path,
            env=env,
        )
        os.close(tty)
        self._pump = threading.Thread(target=self._follow, daemon=True)
        self._pump.start()

    def _write(self, data: str) -> None:
        os.write(self._keyboard, data.encode())

    def _follow(self) -> None:
        while True:
            ready, _, _ = select.select([self._keyboard], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    return
                continue
            try:
                data = os.read(self._keyboard, 65536)
            except OSError:  # the program has exited and closed the terminal
                return
            if not data:
                return
            with self._lock:
                self._stream.feed(data)

    def type(self, keys: str) -> None:
        self._write(keys)

    @property
    def rows(self) -> list[str]:
        """The screen's lines, trailing blanks removed, up to the last one written on."""
        with self._lock:
            rows = [line.rstrip() for line in self._screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    @property
    def cursor(self) -> tuple[int, int]:
        """(row, column) of the cursor."""
        with self._lock:
            return self._screen.cursor.y, self._screen.cursor.x

    @property
    def input_line(self) -> str:
        """The row the cursor is on, up to the cursor: the prompt and what is typed."""
        row, column = self.cursor
        with self._lock:
            return self._screen.display[row][:column]

    def until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert time.monotonic() < deadline, f"never: {what}. The screen:\n" + self.shown()
            time.sleep(0.05)

    def until_shown(self, text: str) -> None:
        self.until(f"{text!r} on the screen", lambda: any(text in row for row in self.rows))

    def until_typed(self, line: str) -> None:
        """Until the input line reads `line`, the cursor at its end."""
        self.until(f"the input line reads {line!r}", lambda: self.input_line == line)

    def shown(self) -> str:
        return "\n".join(self.rows)

    def close(self) -> int:
        code = self.process.wait(timeout=TIMEOUT)
        self._pump.join(timeout=TIMEOUT)
        os.close(self._keyboard)
        return code


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(**env: str) -> Terminal:
        started.append(Terminal(tmp_path, console_env(tmp_path, **env)))
        started[-1].until_typed(PROMPT)
        return started[-1]

    yield start
    for each in started:  # a failed test must not leave `inloop run` behind
        if each.process.poll() is None:
            each.process.kill()
            each.close()


def test_the_up_arrow_brings_back_the_line_before(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal()
    term.type("/as marta\r")
    term.until_typed("marta@#general> ")

    term.type(UP)
    term.until_typed("marta@#general> /as marta")
    term.type("\r")
    # The next prompt, empty: "(you are now marta)" is on the screen since the first
    # line, and a Ctrl-D typed before the next prompt reads it would be lost.
    term.until_typed("marta@#general> ")
    term.type(CTRL_D)

    assert term.close() == 0
    assert term.shown().count("(you are now marta)") == 2
    assert "^[" not in term.shown()


def test_a_card_arriving_while_you_type_goes_above_and_your_line_stays(
    terminal: Callable[..., Terminal],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    secret = "a-webhook-secret-of-some-length"
    term = terminal(INTAKE_SECRET=secret, INTAKE_PORT=str(port))
    term.type("!inloop team add support\r")
    term.until_shown("[dm:admin] Team support created")
    term.until_typed(PROMPT)
    term.type("!inloop cla")
    term.until_typed(PROMPT + "!inloop cla")

    # A customer writes while admin is half-way through a line.
    _post_mention(port, secret, "My order arrived broken, and the box was all wet: " * 2)
    term.until_shown("└ [Claim] !inloop claim 1")
    term.until_typed(PROMPT + "!inloop cla")

    # The card is above, and below it the input line as it was, the cursor at its end.
    rows = term.rows
    assert rows[-1] == PROMPT + "!inloop cla"
    assert term.cursor == (len(rows) - 1, len(PROMPT + "!inloop cla"))
    card = rows[next(i for i, row in enumerate(rows) if "┌ #1" in row) : -1]
    # In 80 columns: every line of the card inside its box, none wrapped by the terminal.
    assert card[0] == "[#general] ┌ #1 · x · Ann"
    assert all(row.startswith(" " * 11 + "│ ") for row in card[1:-1]), term.shown()
    assert card[-1].startswith(" " * 11 + "└ ")
    assert len(card) > 4  # the long text took more lines: it was fitted, not cut
    assert "Owner: nobody yet" in "\n".join(card)

    # What was typed is still there to finish.
    term.type("im 1\r")
    term.until_shown("[dm:admin] #1 is yours")
    term.type("/quit\r")
    assert term.close() == 0


def test_a_log_warning_gets_a_line_of_its_own_above_the_prompt(
    tmp_path: Path, terminal: Callable[..., Terminal]
) -> None:
    # `feed add` fetches the feed once before it keeps it: this time it is a feed.
    with socket.create_server(("127.0.0.1", 0)) as feed_server:
        feed_server.settimeout(TIMEOUT)
        port = feed_server.getsockname()[1]
        url = f"http://127.0.0.1:{port}/feed.xml"
        answering = threading.Thread(target=_answer, args=(feed_server, _FEED))
        answering.start()
        assert_clean_exit(run_console(tmp_path, script(f"!inloop feed add {url}")))
        answering.join()

    # The next run polls the feed at once; its server answers when admin is typing.
    with socket.create_server(("127.0.0.1", port)) as feed_server:
        feed_server.settimeout(TIMEOUT)
        term = terminal()
        term.type("half typed")
        term.until_typed(PROMPT + "half typed")
        _answer_500(feed_server)
        term.until_shown("WARNING bot.intake.feeds: feed")
        term.until_shown("answered HTTP 500")
        term.until_typed(PROMPT + "half typed")

        # At the start of a line of its own: not after the prompt, not over the typing.
        warnings = [row for row in term.rows if "WARNING" in row]
        assert len(warnings) == 1, term.shown()
        assert re.match(r"\d{4}-\d\d-\d\d [\d:,]+ WARNING bot\.intake\.feeds: feed ", warnings[0])
        assert term.rows[-1] == PROMPT + "half typed"
        term.type(CTRL_C + CTRL_D)
        assert term.close() == 0


def test_ctrl_c_clears_a_typed_line_and_on_an_empty_one_leaves_on_a_clean_line(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal()
    term.type("!inloop claim 1")
    term.until_typed(PROMPT + "!inloop claim 1")

    term.type(CTRL_C)
    term.until_typed(PROMPT)
    term.type(CTRL_C)

    assert term.close() == 0
    # The last prompt stays as it was; the shell's own prompt will start a new line.
    rows = term.rows
    assert rows[-1] == PROMPT.rstrip()
    assert term.cursor == (len(rows), 0)


def test_ctrl_d_leaves_on_a_clean_line(terminal: Callable[..., Terminal]) -> None:
    term = terminal()
    term.type(CTRL_D)

    assert term.close() == 0
    rows = term.rows
    assert rows[-1] == PROMPT.rstrip()
    assert term.cursor == (len(rows), 0)


def test_a_card_fits_the_width_it_is_given_without_losing_a_word() -> None:
    card = Card(
        title="#12 · console · Giulia",
        fields=(
            Field("Status", "Open — waiting for someone to claim it"),
            Field("Owner", "nobody yet"),
            Field("Team", "support"),
        ),
        text="My order arrived broken " * 4,
        buttons=(
            Button("Claim", "claim", "12", command="!inloop claim 12"),
            Button("Show all", "show", "12", command="!inloop show 12"),
        ),
    )
    wide = render(card)
    fitted = render(card, width=40).splitlines()

    assert max(len(row) for row in wide.splitlines()) > 40
    assert all(len(row) <= 40 for row in fitted), fitted
    assert fitted[0] == "┌ #12 · console · Giulia"
    assert all(row.startswith("│ ") for row in fitted[1:-1])
    # fields and buttons are cut between one another, not inside one
    assert "│ Owner: nobody yet · Team: support" in fitted
    assert fitted[-2:] == ["│ [Claim] !inloop claim 12", "└ [Show all] !inloop show 12"]

    # every word is still there, in order (a " · " between two fields becomes a new row)
    def words(rows: list[str]) -> list[str]:
        return [word for row in rows for word in row[2:].split() if word != "·"]

    assert words(fitted) == words(wide.splitlines())
    # with no width (a pipe), lines are as long as they come
    assert render(card, width=None) == wide


_FEED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nConnection: close\r\n\r\n"
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog comments</title>'
    b"</channel></rss>"
)
_SERVER_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)


def _answer_500(server: socket.socket) -> None:
    """Answer the feed poller's request with a server error."""
    _answer(server, _SERVER_ERROR)


def _answer(server: socket.socket, response: bytes) -> None:
    """Answer one request with `response`, whatever was asked."""
    connection, _ = server.accept()
    with connection:
        connection.settimeout(TIMEOUT)
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(4096)
        connection.sendall(response)


def _post_mention(port: int, secret: str, text: str) -> None:
    body = json.dumps(
        {"source": "x", "external_id": "1", "author": {"name": "Ann"}, "text": text}
    ).encode()
    stamp = str(int(time.time()))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/mentions",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Inloop-Timestamp": stamp,
            "X-Inloop-Signature": sign(secret, stamp, body),
        },
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.status == 202
