"""People and free text on the console, through the real adapter (issue 14 §1, §2)."""

from __future__ import annotations

from pathlib import Path

from test_console import assert_clean_exit, console_env, run_console, script

SAID = "Talk to @marta and @luca, not @here or @room"


def test_luca_written_any_way_is_the_luca_who_speaks(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            "/mention Giulia: broken box",
            "/as luca",
            "!inloop lang en",
            "/as admin",
            "!inloop role @console:luca manager",
            "!inloop reassign 1 @console:luca",
            "!inloop reassign 1 @nobody_ever",
            "!inloop role nobody_ever manager",
            "/as luca",
            "!inloop queue",
        ),
    )
    assert_clean_exit(session)
    promoted = session.turn("!inloop role @console:luca manager").said
    assert [(s.where, s.text) for s in promoted] == [
        ("dm:admin", "luca is now manager."),
        ("dm:luca", "admin made you manager in Inloop."),
    ]
    reassigned = session.turn("!inloop reassign 1 @console:luca").said
    assert reassigned[0].where == "dm:admin"
    assert reassigned[0].text == "#1 now belongs to luca."
    for typed, who in [
        ("!inloop reassign 1 @nobody_ever", "@nobody_ever"),
        ("!inloop role nobody_ever manager", "nobody_ever"),
    ]:
        assert session.turn(typed).only("dm:admin").text.startswith(f"I can't find `{who}`.")
    # the luca who speaks has #1, and is the manager
    mine = session.turn("!inloop queue", by="luca")
    assert "#1" in mine.only("dm:luca").text


def test_free_text_is_printed_as_it_was_typed(tmp_path: Path) -> None:
    session = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            "/mention Giulia: broken box",
            "/as expert",
            "/as admin",
            "!inloop role @expert consultant",
            "!inloop claim 1",
            f"!inloop ask 1 {SAID} @expert",
            "/as expert",
            f"!inloop answer 1-A1 {SAID}",
            "/as admin",
            f"!inloop followup 1-A1 {SAID}",
        ),
    )
    assert_clean_exit(session)
    asked = session.turn(f"!inloop ask 1 {SAID} @expert").said
    assert any(s.where == "dm:expert" and SAID in s.text for s in asked), asked
    answered = session.turn(f"!inloop answer 1-A1 {SAID}").said
    assert any(
        s.where == "dm:admin" and f"Advice from expert on #1 (1-A1): {SAID}" in s.text
        for s in answered
    ), answered
    followed = session.turn(f"!inloop followup 1-A1 {SAID}").said
    assert any(s.where == "dm:expert" and SAID in s.text for s in followed), followed
    assert "console:" not in session.stdout


def test_an_admin_of_the_settings_is_somebody_before_anyone_has_been_them(
    tmp_path: Path,
) -> None:
    env = console_env(tmp_path, INLOOP_ADMINS="console:admin,console:boss")
    session = run_console(tmp_path, script("!inloop role @boss manager"), env=env)
    assert_clean_exit(session)
    assert session.turn("!inloop role @boss manager").said[0].text == "boss is now manager."
