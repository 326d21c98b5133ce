"""The console chat: a customer of `/mention NAME` is known by name, and staff read their
profile privately (issue 15)."""

from __future__ import annotations

import json
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


def test_an_export_is_a_file_in_the_files_folder_and_an_erasure_asks_first(
    tmp_path: Path,
) -> None:
    session = run_console(
        tmp_path,
        script(
            "!inloop team add support",
            "/mention Giulia: broken box",
            "!inloop customer export #1",
            "!inloop customer erase #1",
            "!inloop customer erase #1 confirm",
            "!inloop show 1",
        ),
    )
    assert_clean_exit(session)

    said = [s.text for s in session.turn("!inloop customer export #1").said]
    assert said[0].startswith("Everything Inloop holds about console:Giulia: 1 identities")
    path = (tmp_path / "inloop-files" / "inloop-customer-1.json").resolve()
    assert said[1] == f"(file) Inloop: the data of customer console:Giulia: {path}"
    assert json.loads(path.read_text(encoding="utf-8"))["mentions"][0]["text"] == "broken box"
    asked = session.turn("!inloop customer erase #1").only("dm:admin").text
    assert asked.endswith("To erase, type `!inloop customer erase #1 confirm`.")
    shown = session.turn("!inloop show 1").only("dm:admin").text
    assert "broken box" not in shown and "Giulia" not in shown
    assert "Erased at the customer's request." in shown
