"""The console chat: a customer of `/mention NAME` is known by name, and staff read their
profile privately (issue 15)."""

from __future__ import annotations

from pathlib import Path

from test_console import assert_clean_exit, run_console, script


def test_a_console_customer_is_known_by_name_and_their_profile_is_private(
    tmp_path: Path,
) -> None:
    session = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            "/mention Giulia: broken box",
            "/mention Giulia: still waiting",  # her conversation's follow-up: one customer
            "!inloop claim 1",
            "!inloop customer console:giulia",
            "/as marta",
            "!inloop queue",
            "/as admin",
            "!inloop customer owner #1 @marta",
        ),
    )
    assert_clean_exit(session)

    profile = session.turn("!inloop customer console:giulia").only("dm:admin").text
    assert profile.splitlines()[:2] == ["Customer Giulia", "Identities: console:Giulia"]
    assert "#1 · " in profile and " · console · claimed · admin" in profile
    owner = session.turn("!inloop customer owner #1 @marta").said
    assert [(s.where, s.text) for s in owner] == [
        ("dm:admin", "marta is now the relationship owner of Giulia."),
        (
            "dm:marta",
            "admin made you the relationship owner of Giulia: "
            "their new conversations are offered to you first.",
        ),
    ]
