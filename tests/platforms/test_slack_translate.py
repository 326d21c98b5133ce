"""Slack's translation on plain payloads: what is skipped, how text is escaped, Block Kit limits."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.events import Command, Message
from bot.platforms.slack import translate as tr
from bot.views import (
    Button,
    Card,
    Field,
    Form,
    FormField,
    Home,
    HomeSection,
    Notice,
    view_from_dict,
    view_to_dict,
)
from fake_slack import button, command, event, message, read, user
from slack_chat import buttons, shown

LABELS = tr.Labels("Show full text", "Full text", "Close")

HARD_CASES = [
    "<!channel> everyone look",
    "<!here> and <!everyone>",
    "@room @channel @here",
    "hey <@U0ADMIN> and <@U0ADMIN|boss>",
    "<https://evil.example|your bank> click",
    "<b>bold</b><script>alert(1)</script> &amp; &lt;",
    "*bold* _it_ ~strike~ `code` ```block```",
    "مرحبا بالعالم \u202eevil\u202c",
    "Zalgo: e\u0301\u0302\u0303\u0304 a\u0308",
    "zero\u200bwidth\u200djoiner\ufeff",
]


def card(text: str, **kw: Any) -> Card:
    return Card(
        title="#7 · slack · Giulia <!channel>",
        fields=(Field("Status", "Open"), Field("Owner", "<@U1|x>")),
        text=text,
        buttons=(Button("Claim", "claim", "7", "primary"),),
        fallback="#7 from Giulia <!here> on slack: Open",
        show="7",
        **kw,
    )


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    return shown(blocks).split("\n")


@pytest.mark.parametrize("text", HARD_CASES)
def test_customer_text_is_escaped_and_shown_as_written(text: str) -> None:
    body = tr.message(card(text), LABELS)

    everything = json.dumps(body.blocks) + body.text
    # no live Slack markup survives: `<` and `>` only appear as entities
    assert "<!" not in everything and "<@" not in everything and "<http" not in everything
    assert "&lt;" not in text or "&amp;lt;" in shown(body.blocks)
    # unescaping what Slack shows gives back exactly what the customer wrote
    assert tr.unescape(tr.escape(text)) == text
    assert tr.escape(text) in shown(body.blocks)
    # the customer's text is plain_text: *bold*, _it_ and links are not formatted
    (section,) = [b for b in body.blocks if b["type"] == "section" and "text" in b]
    assert section["text"]["type"] == "plain_text"


def test_the_fallback_and_notices_are_escaped_too() -> None:
    body = tr.message(card("x"), LABELS)
    assert body.text == "#7 from Giulia &lt;!here&gt; on slack: Open"
    assert tr.message(Notice("Giulia <!channel> wrote"), LABELS).text == (
        "Giulia &lt;!channel&gt; wrote"
    )


@pytest.mark.parametrize("text", HARD_CASES)
def test_a_notice_is_plain_text_shown_as_written(text: str) -> None:
    body = tr.message(
        Notice(f"New message on #1 from Giulia: {text}\nRate it: `rate 1-A1`"), LABELS
    )

    # as `text` alone Slack would read it as mrkdwn; plain_text sections show it as typed
    assert body.blocks and {b["text"]["type"] for b in body.blocks} == {"plain_text"}
    assert (
        read(body.text, body.blocks)
        == f"New message on #1 from Giulia: {text}\nRate it: `rate 1-A1`"
    )
    everything = json.dumps(body.blocks) + body.text
    assert "<!" not in everything and "<@" not in everything and "<http" not in everything


def test_a_long_notice_fills_sections_within_the_limits_and_keeps_every_character() -> None:
    lines = ["&" * 700, *(f"{n} · {'x' * 90}" for n in range(400)), ""]
    body = tr.message(Notice("\n".join(lines)), LABELS)

    assert all(len(b["text"]["text"]) <= 3000 for b in body.blocks)
    assert 1 < len(body.blocks) <= 50
    assert read("", body.blocks).replace("\n", "") == "".join(lines)


def test_card_fields_are_plain_text_too() -> None:
    body = tr.message(card("x"), LABELS)
    fields = [f for b in body.blocks for f in b.get("fields", [])]
    assert fields and {f["type"] for f in fields} == {"plain_text"}
    assert "Owner\n&lt;@U1|x&gt;" in [f["text"] for f in fields]


def test_a_5000_character_text_is_trimmed_within_the_limits_with_a_show_full_button() -> None:
    text = "&" * 1000 + "x" * 4000
    body = tr.message(card(text), LABELS)

    for block in body.blocks:
        for obj in [block.get("text"), *block.get("fields", [])]:
            if obj:
                assert len(obj["text"]) <= 3000
    assert len(body.blocks) <= 50
    assert "inloop_show_full" in buttons(body.blocks)
    assert "…" in shown(body.blocks)
    before_cut = shown(body.blocks).split("…")[0]
    assert not re.search(r"&(a|am|amp)?$", before_cut)  # never cut inside an entity


def test_a_short_card_has_no_show_full_button() -> None:
    body = tr.message(card("short"), LABELS)
    assert buttons(body.blocks) == ["inloop:claim"]
    assert body.blocks[-1]["elements"][0]["style"] == "primary"
    assert body.blocks[-1]["elements"][0]["value"] == "7"


def test_a_card_the_core_trimmed_offers_the_full_text() -> None:
    body = tr.message(card("first 600 characters…", more="Full text: /inloop show 7"), LABELS)
    assert "inloop_show_full" in buttons(body.blocks)
    assert "Full text: /inloop show 7" in shown(body.blocks)


def test_a_full_home_stays_within_the_100_block_limit() -> None:
    many = tuple(card(f"text {n}") for n in range(30))
    home = Home("Inloop", (HomeSection("Mine", many), HomeSection("Waiting", many)))
    body = tr.message(home, LABELS)
    assert len(body.blocks) <= 100
    assert "text 9" in shown(body.blocks) and "text 10" not in shown(body.blocks)


def test_the_full_text_modal_splits_long_text_into_sections() -> None:
    text = "<&>" * 3000
    modal = tr.text_modal("Full text", text, LABELS)
    assert modal["type"] == "modal"
    assert len(modal["blocks"]) <= 100
    assert all(len(b["text"]["text"]) <= 3000 for b in modal["blocks"])
    assert tr.unescape("".join(b["text"]["text"] for b in modal["blocks"])) == text


# -- inbound ----------------------------------------------------------------------------


def test_a_command_keeps_its_text_as_typed_for_the_core_to_resolve() -> None:
    # Only Slack's own escaping is undone: a mention stays a mention (the core resolves
    # it where an argument names a person), free text stays what was written.
    cmd = tr.command_event(command("U1", "C1", "reassign 3 <@U123|ann> &lt;x&gt;", "t1"))
    assert cmd.text == "reassign 3 <@U123|ann> <x>"
    assert cmd.sender == "slack:U1" and cmd.channel == "slack:C1"
    assert cmd.event_id == "slack:command:t1"
    said = "answer 1-A1 ask <@W99> and @luca, not <!here> or @channel"
    assert tr.command_text(said) == said


def test_a_message_keeps_its_ts_and_thread_and_uses_the_envelope_event_id() -> None:
    top = tr.message_event(event(message("U1", "C1", "a &lt;b&gt;", "1.1"), "Ev1"), "UBOT")
    assert isinstance(top, Message)
    assert (top.event_id, top.message_ref, top.thread, top.text) == (
        "slack:Ev1",
        "1.1",
        None,
        "a <b>",
    )
    reply = tr.message_event(event(message("U1", "C1", "r", "1.2", thread_ts="1.1"), "Ev2"), "UBOT")
    assert isinstance(reply, Message) and reply.thread == "1.1"


@pytest.mark.parametrize(
    "extra",
    [
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
        {"subtype": "bot_message"},
        {"bot_id": "B1"},
    ],
)
def test_edits_joins_and_bots_are_not_messages(extra: dict[str, Any]) -> None:
    assert tr.message_event(event(message("U1", "C1", "x", "1.1", **extra), "Ev"), "UBOT") is None


def test_the_bots_own_message_is_skipped() -> None:
    assert tr.message_event(event(message("UBOT", "C1", "x", "1.1"), "Ev"), "UBOT") is None


def test_a_button_becomes_the_verb_and_home_buttons_have_no_channel() -> None:
    action = tr.action_event(
        button("U1", "C1", "inloop:claim", "4", "t9"),
        {"action_id": "inloop:claim", "value": "4"},
    )
    assert action is not None and (action.action, action.value) == ("claim", "4")
    home = tr.action_event(
        button("U1", None, "inloop:claim", "4", "t10", view={"type": "home"}),
        {"action_id": "inloop:claim", "value": "4"},
    )
    assert home is not None and home.channel == tr.NO_CHANNEL


@pytest.mark.parametrize(
    ("who", "staff"),
    [
        (user("U1", "Ann"), True),
        (user("U2", "Guest", guest=True), False),
        ({**user("U3", "Single"), "is_ultra_restricted": True}, False),
        (user("U4", "Remo", team="T2"), False),  # Slack Connect: another workspace
        ({**user("U5", "Bot"), "is_bot": True}, False),
        ({**user("U6", "Gone"), "deleted": True}, False),
    ],
)
def test_only_full_members_of_the_workspace_are_staff(who: dict[str, Any], staff: bool) -> None:
    info = tr.person_info(who, "T1")
    assert info.is_staff is staff
    assert info.locale == "en-US" and info.timezone == "Europe/Rome"
    assert info.display_name == who["profile"]["display_name"]


# -- forms ------------------------------------------------------------------------------

FORM = Form(
    form_id="answer",
    title="Answer",
    submit="Send",
    fields=(FormField("number", "Conversation"), FormField("text", "Answer", True)),
    command="answer {number} {text}",
)


def test_a_form_is_a_modal_with_one_input_per_field() -> None:
    modal = tr.form_modal(FORM, "Cancel", tr.form_metadata("C1", ""))
    assert modal["callback_id"] == "inloop_form:answer"
    assert [b["block_id"] for b in modal["blocks"]] == ["number", "text"]
    assert modal["blocks"][1]["element"]["multiline"] is True
    assert modal["private_metadata"] == tr.form_metadata("C1", "")


def test_a_form_submission_with_a_missing_field_gets_inline_errors() -> None:
    view: dict[str, Any] = {
        "state": {"values": {"number": {"number": {"value": "4"}}, "text": {"text": {}}}}
    }
    values = tr.form_values(FORM, view)
    assert tr.form_errors(FORM, values, "Please fill this in.") == {"text": "Please fill this in."}
    view["state"]["values"]["text"]["text"]["value"] = " all good "
    values = tr.form_values(FORM, view)
    assert tr.form_errors(FORM, values, "x") == {}
    body = {
        "user": {"id": "U1"},
        "view": {"id": "V1", "hash": "h", "private_metadata": tr.form_metadata("C1", "9"), **view},
    }
    cmd = tr.form_event(body, FORM, values, tr.form_carried(body["view"]))
    assert cmd.text == "answer 4 all good" and cmd.channel == "slack:C1"


def test_a_button_with_a_form_opens_it_and_its_value_completes_the_command() -> None:
    ask = Form(
        "ask",
        "Ask an expert",
        "Ask",
        (FormField("question", "Question", True),),
        "ask {value} {question}",
    )
    shown_card = replace(card("x"), buttons=(Button("Ask an expert", "ask", "7", form="ask"),))
    (element,) = [
        e
        for b in tr.message(shown_card, LABELS).blocks or []
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    ]
    assert (element["action_id"], element["value"]) == ("inloop_form_open:ask", "7")
    view = {"state": {"values": {"question": {"question": {"value": "Is it\nbroken?"}}}}}
    modal: dict[str, Any] = {
        "id": "V2",
        "hash": "h",
        "private_metadata": tr.form_metadata("C1", "7"),
        **view,
    }
    body = {"user": {"id": "U1"}, "view": modal}
    cmd = tr.form_event(body, ask, tr.form_values(ask, view), tr.form_carried(modal))
    assert cmd.text == "ask 7 Is it\nbroken?" and cmd.channel == "slack:C1"


@pytest.mark.parametrize(
    ("url", "markup"),
    [
        ("https://x.example/a?b=1&c=2", "<https://x.example/a?b=1&amp;c=2>"),
        ("https://evil.example|<!channel>", "<https://evil.example%7C&lt;!channel&gt;>"),
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("<!here>", "&lt;!here&gt;"),
    ],
)
def test_a_card_link_is_clickable_only_as_a_plain_url(url: str, markup: str) -> None:
    assert tr.link_markup(url) == markup
    assert markup in shown(tr.message(card("x", link=url), LABELS).blocks)


def test_a_watched_message_links_to_itself() -> None:
    body = event(message("U1", "C1", "x", "1700000000.000100", thread_ts="1700000000.000001"), "E")
    found = tr.message_event(body, "UBOT", "https://acme.slack.com/")
    assert isinstance(found, Message)
    assert found.url == (
        "https://acme.slack.com/archives/C1/p1700000000000100?thread_ts=1700000000.000001&cid=C1"
    )


def test_the_manifest_asks_for_what_the_adapter_uses() -> None:
    manifest = (Path(__file__).resolve().parents[2] / "slack-manifest.yaml").read_text()
    lines = {line.split("#")[0].strip() for line in manifest.splitlines()}

    assert "- command: /inloop" in lines
    for event_name in (
        "app_home_opened",
        "message.channels",
        "message.groups",
        "message.im",
        "reaction_added",
    ):
        assert f"- {event_name}" in lines, event_name
    # The scopes each Web API call needs are checked by the fake Slack, on every call;
    # these are the ones the events and the slash command need.
    for scope in (
        "commands",
        "reactions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
    ):
        assert f"- {scope}" in lines, scope
    assert "home_tab_enabled: true" in lines
    assert "socket_mode_enabled: true" in lines
    assert "is_enabled: true" in lines  # interactivity: buttons and modals


def test_a_message_with_files_carries_their_names() -> None:
    files = [
        {"id": "F1", "name": "box.jpg", "title": "Broken box"},
        {"id": "F2", "title": "x"},
        {"id": "F3", "file_access": "check_file_info"},  # Slack Connect: no name given
    ]
    body = event(message("U1", "C1", "", "1.1", subtype="file_share", files=files), "E")
    found = tr.message_event(body, "UBOT")
    assert isinstance(found, Message)
    assert (found.text, found.files) == ("", ("box.jpg", "x", ""))


def test_a_dm_to_the_app_is_a_command() -> None:
    body = event(message("U1", "D1", "/inloop claim <@U2|bob>", "1.1", channel_type="im"), "E")
    found = tr.message_event(body, "UBOT")
    assert isinstance(found, Command)
    assert (found.text, found.channel) == ("claim <@U2|bob>", "slack:D1")
    plain = tr.message_event(
        event(message("U1", "D1", "help", "1.2", channel_type="im"), "E2"), "UBOT"
    )
    assert isinstance(plain, Command) and plain.text == "help"


def test_titles_and_labels_fit_their_limits_even_when_escaping_makes_them_longer() -> None:
    amp = "&" * 400
    big = Card(
        title=amp,
        fields=(Field("Owner", amp * 10),),
        text=amp * 20,
        buttons=(Button(amp, "claim", "7"),),
        fallback=amp * 20,
    )
    body = tr.message(big, LABELS)

    header = body.blocks[0]["text"]["text"]
    assert header.startswith("&amp;") and len(header) <= 150
    for element in body.blocks[-1]["elements"]:
        assert len(element["text"]["text"]) <= 75
    assert all(len(f["text"]) <= 2000 for f in body.blocks[1]["fields"])
    assert len(body.text) <= 3000
    assert "&amp" in body.text and not body.text.rstrip("…").endswith(("&", "&a", "&am", "&amp"))


def test_one_word_fields_lose_the_spaces_people_type_in_them() -> None:
    commit = Form(
        "commit",
        "Commit time",
        "Commit",
        (FormField("days", "Days", one_word=True), FormField("note", "Note")),
        "commit {days} {note}",
    )
    assert tr.form_command(commit, {"days": "mon, wed ,fri", "note": "a b"}) == (
        "commit mon,wed,fri a b"
    )


def test_a_view_written_by_a_newer_version_still_loads() -> None:
    written = view_to_dict(Card("#1", (), "x", buttons=(Button("Claim", "claim", "1"),)))
    written["buttons"][0]["added_later"] = True
    loaded = view_from_dict(written)
    assert isinstance(loaded, Card) and loaded.buttons[0].action == "claim"
