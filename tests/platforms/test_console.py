"""The console chat end to end: `python -m bot run` as a real process, a script on stdin,
and what a person would read on stdout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.platforms.console.translate import render
from bot.views import Button, Card, Field

TIMEOUT = 60
# Settings a developer's shell may carry; the console must start from a clean slate.
_SETTINGS = ("DATABASE_URL", "INLOOP_", "OUTBOX_", "INTAKE_", "FEED_", "SLACK_", "MATRIX_")
_PROMPT = re.compile(r"^([\w.-]+)@#([\w.-]+)> (.*)$")
_SAID = re.compile(r"^(\[([^\]]+)\] (?:\(card updated\) )?)(.*)$")


@dataclass
class Said:
    """One thing the bot printed: a card or a message, in a channel or a dm."""

    where: str  # "#general" or "dm:marta"
    text: str  # continuation lines with the alignment padding removed
    updated: bool


@dataclass
class Turn:
    """One typed line and everything printed after it until the next prompt."""

    persona: str
    channel: str
    typed: str
    lines: list[str] = field(default_factory=list)

    def _parse(self) -> tuple[list[Said], list[str]]:
        said: list[Said] = []
        notes: list[str] = []
        pad = 0
        for line in self.lines:
            match = _SAID.match(line)
            if match:
                head, where, first = match.groups()
                pad = len(head)
                said.append(Said(where, first, "(card updated)" in head))
            elif pad and line.startswith(" " * pad):
                said[-1].text += "\n" + line[pad:]
            else:
                pad = 0
                notes.append(line)
        return said, notes

    @property
    def said(self) -> list[Said]:
        return self._parse()[0]

    @property
    def notes(self) -> str:
        """What the console itself printed (directive answers, usage), not the bot."""
        return "\n".join(self._parse()[1])

    def only(self, where: str) -> Said:
        said = self.said
        assert [s.where for s in said] == [where], f"after {self.typed!r}: {said}"
        return said[0]


@dataclass
class Session:
    returncode: int
    stdout: str
    stderr: str
    raw_stdout: bytes

    @property
    def turns(self) -> list[Turn]:
        turns: list[Turn] = []
        for line in self.stdout.splitlines():
            match = _PROMPT.match(line)
            if match:
                persona, channel, typed = match.groups()
                turns.append(Turn(persona, channel, typed.rstrip()))
            elif turns:
                turns[-1].lines.append(line)
        return turns

    def turn(self, typed: str, *, by: str | None = None) -> Turn:
        """The one turn whose typed line was `typed` (typed by persona `by`)."""
        found = [t for t in self.turns if t.typed == typed and by in (None, t.persona)]
        assert len(found) == 1, f"{typed!r} typed {len(found)} times in:\n{self.stdout}"
        return found[0]


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'inloop.db'}"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def run_console(
    tmp_path: Path, stdin: str | bytes, *, env: dict[str, str] | None = None
) -> Session:
    """Run `inloop run` in `tmp_path` (no .env there) with `stdin` typed, within TIMEOUT."""
    assert not (tmp_path / ".env").exists()
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        input=data,
        capture_output=True,
        cwd=tmp_path,
        env=env or console_env(tmp_path),
        timeout=TIMEOUT,
        check=False,
    )
    return Session(
        done.returncode,
        done.stdout.decode("utf-8", errors="replace"),
        done.stderr.decode("utf-8", errors="replace"),
        done.stdout,
    )


def script(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def assert_clean_exit(session: Session) -> None:
    assert session.returncode == 0, session.stderr
    assert "Traceback" not in session.stderr, session.stderr
    assert "ERROR" not in session.stderr, session.stderr


# -- the walk-through ------------------------------------------------------------------


def test_walk_through_claim_refusal_reply_and_resolve(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            "/mention Giulia: broken box",
            "!inloop claim 1",
            "/as marta",
            "!inloop claim 1",
            "/as admin",
            "!inloop replied 1",
            "!inloop resolve 1",
        ),
    )
    assert_clean_exit(session)
    assert "You are admin in #general" in session.stdout

    created = session.turn("!inloop team add support").only("dm:admin")
    assert "Team support created" in created.text

    card = session.turn("/mention Giulia: broken box").only("#general")
    assert not card.updated
    assert card.text.startswith("┌ #1 · console · Giulia")
    assert "Status: Open" in card.text
    assert "Owner: nobody yet" in card.text
    assert "│ broken box" in card.text
    assert "[Claim] !inloop claim 1" in card.text

    claimed = session.turn("!inloop claim 1", by="admin").said
    assert [(s.where, s.updated) for s in claimed] == [("dm:admin", False), ("#general", True)]
    assert "#1 is yours" in claimed[0].text
    assert "Status: Claimed · Owner: admin" in claimed[1].text
    assert "[Mark replied] !inloop replied 1" in claimed[1].text

    switched = session.turn("/as marta")
    assert switched.notes == "(you are now marta)"
    refused = session.turn("!inloop claim 1", by="marta")
    # marta alone is told, and the card does not move
    assert refused.only("dm:marta").text == "#1 is already claimed by admin."

    replied = session.turn("!inloop replied 1").said
    assert [(s.where, s.updated) for s in replied] == [("dm:admin", False), ("#general", True)]
    assert "Status: Replied · Owner: admin" in replied[1].text

    resolved = session.turn("!inloop resolve 1").said
    assert [(s.where, s.updated) for s in resolved] == [("dm:admin", False), ("#general", True)]
    assert "#1 is resolved" in resolved[0].text
    assert "Status: Resolved · Owner: admin" in resolved[1].text
    assert "[Reopen] !inloop reopen 1" in resolved[1].text
    # one card, posted once and then only edited
    assert session.stdout.count("[#general] ┌ #1") == 1
    assert session.stdout.count("[#general] (card updated) ┌ #1") == 3


def test_the_readme_walk_through_is_what_the_console_prints(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A walk through the console", 1)[1]
    shown = section.split("```\n", 2)[1]
    typed = [m.group(3) for m in map(_PROMPT.match, shown.splitlines()) if m]
    session = run_console(tmp_path, script(*typed))

    assert_clean_exit(session)
    printed = session.stdout[session.stdout.index(shown.splitlines()[0]) :]
    assert printed == shown


def test_an_unknown_command_answers_privately_with_the_usage(tmp_path: Path) -> None:
    session = run_console(tmp_path, script("!inloop frobnicate"))

    assert_clean_exit(session)
    answer = session.turn("!inloop frobnicate").only("dm:admin")
    assert answer.text.startswith("I don't know `frobnicate`.")
    for usage in ("!inloop claim N", "!inloop resolve N", "!inloop show N", "!inloop help"):
        assert usage in answer.text


def test_a_command_above_your_role_is_refused_in_your_dm_only(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script("!inloop team add support", "/as marta", "!inloop team add x", "!inloop teams"),
    )

    assert_clean_exit(session)
    refusal = session.turn("!inloop team add x").only("dm:marta")
    assert refusal.text.startswith("Not allowed")
    assert session.stdout.count("Not allowed") == 1
    teams = session.turn("!inloop teams").only("dm:marta")
    assert "support" in teams.text
    assert re.search(r"\bx\b", teams.text) is None


# -- the session itself ----------------------------------------------------------------


@pytest.mark.parametrize("admin", ["console:boss", "console:Boss"])
def test_you_are_the_console_admin_named_in_inloop_admins(tmp_path: Path, admin: str) -> None:
    env = console_env(tmp_path, INLOOP_ADMINS=f"slack:U0123,{admin}")

    session = run_console(tmp_path, script("!inloop team add support"), env=env)

    assert_clean_exit(session)
    assert "You are boss in #general" in session.stdout
    assert session.turns[0].persona == "boss"
    assert "Team support created" in session.turns[0].only("dm:boss").text


def test_end_of_input_delivers_everything_pending_and_exits_0(tmp_path: Path) -> None:
    session = run_console(tmp_path, script("!inloop team add support", "/mention Ann: last line"))

    assert_clean_exit(session)
    last = session.turns[-1]
    assert last.typed == "/mention Ann: last line"
    assert "│ last line" in last.only("#general").text


def test_quit_stops_before_the_lines_after_it(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script("!inloop team add support", "/quit", "/mention Ann: after quit", "!inloop teams"),
    )

    assert_clean_exit(session)
    assert session.turns[-1].typed == "/quit"
    assert session.turns[-1].lines == []
    assert "after quit" not in session.stdout
    assert [t.typed for t in session.turns] == ["!inloop team add support", "/quit"]
    # and nothing was stored from them either
    again = run_console(tmp_path, script("!inloop show 1"))
    assert "There is no conversation #1" in again.turn("!inloop show 1").only("dm:admin").text


def test_a_restart_on_the_same_database_keeps_the_conversations(tmp_path: Path) -> None:
    first = run_console(tmp_path, script("!inloop team add support", "/mention Giulia: broken box"))
    assert_clean_exit(first)

    second = run_console(tmp_path, script("!inloop show 1", "!inloop teams"))

    assert_clean_exit(second)
    shown = second.turn("!inloop show 1").only("dm:admin").text
    assert shown.startswith("#1 · console · Giulia")
    assert "Giulia: broken box" in shown
    assert "support" in second.turn("!inloop teams").only("dm:admin").text


def test_malformed_directives_print_their_usage_and_the_session_goes_on(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script(
            "/as",
            "/as two words",
            "/mention no colon",
            "/mention Ann:   ",
            "/in",
            "/frobnicate",
            "!inloop team add support",
            "/mention Ann: still here",
        ),
    )

    assert_clean_exit(session)
    assert session.turn("/as").notes == "Usage: /as NAME (letters, digits, . _ -)"
    assert session.turn("/as two words").notes.startswith("Usage: /as NAME")
    assert session.turn("/mention no colon").notes == "Usage: /mention NAME: TEXT"
    assert session.turn("/mention Ann:").notes == "Usage: /mention NAME: TEXT"
    assert session.turn("/in").notes == "Usage: /in #CHANNEL"
    unknown = session.turn("/frobnicate").notes
    assert unknown.startswith("Unknown directive /frobnicate")
    assert "/mention NAME: TEXT" in unknown
    # none of them changed who is speaking, and what follows works
    assert {t.persona for t in session.turns} == {"admin"}
    card = session.turn("/mention Ann: still here").only("#general")
    assert card.text.startswith("┌ #1 · console · Ann")


def test_italian_after_lang_it_for_that_person_only(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script("!inloop lang it", "!inloop claim 99", "/as marta", "!inloop claim 98"),
    )

    assert_clean_exit(session)
    assert "italiano" in session.turn("!inloop lang it").only("dm:admin").text
    told = session.turn("!inloop claim 99").only("dm:admin")
    assert told.text == "Non esiste la conversazione #99."
    # marta never asked for Italian
    assert session.turn("!inloop claim 98").only("dm:marta").text == (
        "There is no conversation #98."
    )


# -- what customers write is shown as written ------------------------------------------

HOSTILE = "<!channel> @room <b>html</b> \x1b[2J مرحبا e\u0301 a\u200bb"


def test_customer_text_is_shown_literally_on_the_card_and_in_show(tmp_path: Path) -> None:
    session = run_console(
        tmp_path, script("!inloop team add support", f"/mention Eve: {HOSTILE}", "!inloop show 1")
    )

    assert_clean_exit(session)
    visible = HOSTILE.replace("\x1b", "\\x1b")
    card = session.turns[1].only("#general")
    assert f"│ {visible}" in card.text.splitlines()
    shown = session.turn("!inloop show 1").only("dm:admin")
    assert f"Eve: {visible}" in shown.text
    for kept in ("<!channel>", "@room", "<b>html</b>", "مرحبا", "e\u0301", "a\u200bb"):
        # not escaped, not normalised (é stays e + U+0301), not stripped
        assert kept in card.text
        assert kept in shown.text


def test_an_ansi_escape_never_reaches_the_terminal(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            f"/mention Eve: {HOSTILE}",
            "/mention Mallory\x1b[31m: red name",
            "I type \x1b[2J too",
            "!inloop show 1",
        ),
    )

    assert_clean_exit(session)
    assert "\\x1b[2J" in session.stdout
    assert "Mallory\\x1b[31m" in session.stdout
    # not on a card, not in a dm, not in the echo of the typed line
    raw = [line for line in session.stdout.splitlines() if "\x1b" in line]
    assert raw == []
    assert b"\x1b" not in session.raw_stdout


def test_a_long_text_is_trimmed_on_the_card_and_complete_in_show(tmp_path: Path) -> None:
    long_text = "".join(f"word{i:04d} " for i in range(556))[:4993] + "THE-END"
    assert len(long_text) == 5000

    session = run_console(
        tmp_path,
        script("!inloop team add support", f"/mention Lena: {long_text}", "!inloop show 1"),
    )

    assert_clean_exit(session)
    card = session.turns[1].only("#general")
    assert "THE-END" not in card.text
    assert long_text[:100] in card.text
    assert len(card.text) < 2000
    assert "(Text trimmed. Full text: !inloop show 1)" in card.text
    shown = session.turn("!inloop show 1").only("dm:admin")
    assert f"Lena: {long_text}\n" in shown.text + "\n"


@pytest.mark.parametrize("stdin_errors", ["strict", "surrogateescape"])
def test_a_line_that_is_not_utf8_does_not_lose_the_session(
    tmp_path: Path, stdin_errors: str
) -> None:
    # A script saved as Latin-1 ("café" is one byte é). A user's locale decides how Python
    # decodes stdin: strict (most UTF-8 desktops) or surrogateescape (C / C.UTF-8).
    data = b"!inloop team add support\n/mention Chlo\xe9: caf\xe9 froid\n!inloop teams\n"
    env = console_env(tmp_path, PYTHONIOENCODING=f"utf-8:{stdin_errors}")

    session = run_console(tmp_path, data, env=env)

    assert session.returncode == 0
    session.raw_stdout.decode("utf-8")  # what reaches the terminal is valid UTF-8
    assert "Team support created" in session.stdout
    cards = [s for t in session.turns for s in t.said if s.where == "#general"]
    assert len(cards) == 1
    assert "froid" in cards[0].text
    assert "support" in session.turn("!inloop teams").only("dm:admin").text


# -- across runs -------------------------------------------------------------------------


def test_an_advice_note_after_a_restart_hangs_from_its_card(tmp_path: Path) -> None:
    first = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            "/mention Giulia: broken box",
            "/as carla",  # carla is somebody on the console once someone has been her
            "/as admin",
            "!inloop role @carla consultant",
            "/in #pool",
            "!inloop consultants here",
        ),
    )
    assert_clean_exit(first)

    # The next run posts a card of its own (the pool's) before the note on #1's thread.
    second = run_console(
        tmp_path,
        script(
            "!inloop ask 1 what can we offer?",
            "/as carla",
            "!inloop take 1-A1",
            "!inloop answer 1-A1 a refund",
        ),
    )

    assert_clean_exit(second)
    asked = second.turn("!inloop ask 1 what can we offer?").said
    assert any(s.where == "#pool" and "Advice wanted: 1-A1" in s.text for s in asked)
    notes = [s for s in second.turn("!inloop answer 1-A1 a refund").said if s.where == "#general"]
    assert notes[0].text.startswith("(thread of #1) Advice for the owner")


def test_a_card_without_buttons_closes_its_box_on_its_last_line() -> None:
    card = Card(title="#1 · advice", fields=(Field("Status", "for you"),), text="Is it broken?")
    assert render(card).splitlines() == [
        "┌ #1 · advice",
        "│ Status: for you",
        "└ Is it broken?",
    ]
    with_button = Card(title="#2", fields=(), text="x", buttons=(Button("Claim", "claim", "2"),))
    assert render(with_button).splitlines()[-1].startswith("└ [Claim]")


def test_a_tab_in_customer_text_keeps_the_card_box_and_shows_as_spaces(tmp_path: Path) -> None:
    session = run_console(
        tmp_path, script("!inloop team add support", "/mention Eve: order\t1234\tbroken")
    )

    assert_clean_exit(session)
    assert "\t" not in session.stdout
    card = session.turns[1].only("#general")
    assert "│ order    1234    broken" in card.text.splitlines()
