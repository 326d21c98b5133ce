"""Matrix translation without a homeserver: what people type, and what the bot's messages carry."""

from __future__ import annotations

import html
from typing import Any

from nio import RoomSendError

from bot.events import Command, Message, Reaction
from bot.platforms.matrix.adapter import _delivery_error
from bot.platforms.matrix.translate import accept_invite, edit, in_thread, inbound, render
from bot.views import Button, Card, Field, Notice

BOT = "@inloop:example.org"
ROOM = "!room:example.org"


def event(
    content: dict[str, Any], kind: str = "m.room.message", sender: str = "@ann:example.org"
) -> dict[str, Any]:
    return {"type": kind, "sender": sender, "event_id": "$e1", "content": content}


def test_a_command_keeps_user_ids_as_typed_and_a_pill_is_its_user_id() -> None:
    typed = inbound(
        event({"msgtype": "m.text", "body": "!inloop role @bob:other.net manager"}), ROOM, BOT
    )
    pill = inbound(
        event(
            {
                "msgtype": "m.text",
                "body": "!inloop reassign 3 Bob",
                "format": "org.matrix.custom.html",
                "formatted_body": '!inloop reassign 3 <a href="https://matrix.to/#/@bob:other.net">Bob</a>',
            }
        ),
        ROOM,
        BOT,
    )

    assert isinstance(typed, Command) and typed.text == "role @bob:other.net manager"
    assert isinstance(pill, Command) and pill.text == "reassign 3 @bob:other.net"
    assert typed.sender == "matrix:@ann:example.org" and typed.channel == f"matrix:{ROOM}"


def test_a_thread_reply_is_a_message_in_that_thread_without_its_quote() -> None:
    said = inbound(
        event(
            {
                "msgtype": "m.text",
                "body": "> <@c:x.org> broken\n\nA new one is on its way",
                "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
            }
        ),
        ROOM,
        BOT,
    )

    assert isinstance(said, Message)
    assert said.text == "A new one is on its way"
    assert said.thread == "$root" and said.message_ref == "$e1"


def test_the_bots_own_messages_notices_and_edits_are_not_acted_on() -> None:
    assert (
        inbound(event({"msgtype": "m.text", "body": "!inloop help"}, sender=BOT), ROOM, BOT) is None
    )
    assert inbound(event({"msgtype": "m.notice", "body": "!inloop help"}), ROOM, BOT) is None
    edited = {
        "msgtype": "m.text",
        "body": "* x",
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"},
    }
    assert inbound(event(edited), ROOM, BOT) is None


def test_a_photo_or_a_file_is_a_message_carrying_its_name() -> None:
    photo = inbound(event({"msgtype": "m.image", "body": "box.jpg", "url": "mxc://x/1"}), ROOM, BOT)
    assert isinstance(photo, Message)
    assert (photo.text, photo.files, photo.message_ref) == ("", ("box.jpg",), "$e1")
    # Matrix 1.10: a `filename` beside a different body makes the body a caption
    captioned = inbound(
        event({"msgtype": "m.file", "body": "Invoice attached", "filename": "inv.pdf"}), ROOM, BOT
    )
    assert isinstance(captioned, Message)
    assert (captioned.text, captioned.files) == ("Invoice attached", ("inv.pdf",))
    replying = inbound(
        event({"msgtype": "m.image", "body": "> <@bot:x> #1?\n\nHere", "filename": "a.png"}),
        ROOM,
        BOT,
    )
    assert isinstance(replying, Message) and replying.text == "Here"  # no quoted fallback
    assert inbound(event({"msgtype": "m.location", "body": "here"}), ROOM, BOT) is None


def test_a_reaction_names_the_message_it_reacts_to() -> None:
    relates = {"rel_type": "m.annotation", "event_id": "$card", "key": "✋"}
    reaction = inbound(event({"m.relates_to": relates}, kind="m.reaction"), ROOM, BOT)

    assert (
        isinstance(reaction, Reaction)
        and reaction.message_ref == "$card"
        and reaction.emoji == "✋"
    )


def test_invites_are_taken_from_staff_and_allowed_servers_only() -> None:
    unknown = None  # not met yet
    assert accept_invite("@ann:example.org", "example.org", (), unknown)  # own server: staff
    assert not accept_invite("@eve:evil.net", "example.org", (), unknown)
    assert accept_invite("@pat:partner.com", "example.org", ("partner.com",), unknown)
    assert not accept_invite("@ann:example.org", "example.org", (), staff=False)  # made customer
    assert accept_invite("@con:other.net", "example.org", (), staff=True)  # given a role


def test_customer_text_is_escaped_and_pings_nobody() -> None:
    card = Card(
        title="#1 · matrix · Eve",
        fields=(Field("Status", "Open"),),
        text="@room <img src=x onerror=alert(1)> & @ann:example.org",
        link="javascript:alert(1)",
        buttons=(Button("Claim", "claim", "1", "primary", "!inloop claim 1"),),
    )

    content = render(card)

    assert content["m.mentions"] == {}
    assert "<img" not in content["formatted_body"] and "&lt;img" in content["formatted_body"]
    assert "@room <img src=x onerror=alert(1)> & @ann:example.org" in content["body"]
    assert 'href="javascript' not in content["formatted_body"]
    assert "!inloop claim 1" in content["body"]


def test_an_update_is_an_edit_and_its_news_go_in_the_cards_thread() -> None:
    new = render(Notice("#1 claimed"))
    edited = edit(new, "$card")
    threaded = in_thread(new, "$card")

    assert edited["m.new_content"]["body"] == "#1 claimed"
    assert edited["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$card"}
    assert threaded["m.relates_to"]["rel_type"] == "m.thread"
    assert threaded["m.relates_to"]["event_id"] == "$card"


def test_a_private_answer_pings_only_its_reader() -> None:
    assert render(Notice("hi"), mention="@ann:example.org")["m.mentions"] == {
        "user_ids": ["@ann:example.org"]
    }


def test_rate_limits_are_waited_out_and_a_lost_room_is_given_up() -> None:
    limited = _delivery_error(RoomSendError("Too many", "M_LIMIT_EXCEEDED", retry_after_ms=2500))
    forbidden = _delivery_error(RoomSendError("not in room", "M_FORBIDDEN"))
    down = _delivery_error(RoomSendError("bad gateway", "502"))

    assert limited.retry_after == 2.5 and not limited.permanent
    assert forbidden.permanent
    assert not down.permanent and down.retry_after is None


def test_a_notice_shows_user_ids_and_markup_literally() -> None:
    said = "Giulia wrote: ask matrix:@boss:example.org or @boss:example.org, @room <b>x</b> *y*"
    content = render(Notice(said))

    assert content["body"] == said
    assert "<a" not in content["formatted_body"] and "matrix.to" not in content["formatted_body"]
    assert html.unescape(content["formatted_body"]) == said
    assert content["m.mentions"] == {}


def test_free_text_in_a_command_stays_as_typed() -> None:
    said = "!inloop answer 1-A1 Ask @boss:example.org or matrix:@ann:example.org, not @room"
    typed = inbound(event({"msgtype": "m.text", "body": said}), ROOM, BOT)
    assert isinstance(typed, Command)
    assert typed.text == said.removeprefix("!inloop ")


def test_a_claim_button_offers_the_reaction_in_the_cards_language() -> None:
    card = Card(
        title="#1",
        buttons=(
            Button("Prendi", "claim", "1", "primary", "!inloop claim 1", "oppure reagisci con ✋"),
        ),
    )

    formatted = render(card)["formatted_body"]

    assert "Prendi: <code>!inloop claim 1</code> oppure reagisci con ✋" in formatted
