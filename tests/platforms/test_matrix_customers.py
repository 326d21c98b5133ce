"""Matrix on a real homeserver: a customer in a watched room is recognised across two
conversations (issue 15 §1-3)."""

from __future__ import annotations

from test_matrix import (  # noqa: F401  (fixtures used by name)
    Bot,
    admin,
    bot,
    cards,
    joined,
    setup_team,
    told,
)

from matrix_people import MatrixPerson, People


async def test_a_customer_in_a_watched_room_is_recognised_in_their_second_conversation(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    people: People,
) -> None:
    ann, customer = await people("ann"), await people("customer")
    owner_room = await setup_team(admin, bot, ann)
    public = await admin.create_room(bot.user_id, ann.user_id, customer.user_id)
    await customer.until(lambda: public in customer.client.rooms)
    await joined(admin, public, bot.user_id)
    await admin.say(public, "!inloop team watch")
    await told(admin, bot, "Watching")
    # a user the company does not employ (on Matrix: of another server, or made so)
    await admin.say(public, f"!inloop role {customer.user_id} none")
    await told(admin, bot, customer.name)

    await customer.say(public, "My order arrived broken")
    await ann.until(lambda: cards(ann, owner_room, bot))
    await ann.say(owner_room, "!inloop claim 1")
    await told(ann, bot, "#1 is yours")
    await ann.say(owner_room, "!inloop resolve 1")
    await told(ann, bot, "#1 is resolved")

    await customer.say(public, "Hello again: where is my refund?")  # a new conversation

    second = await ann.until(
        lambda: next(
            (c for c in cards(ann, owner_room, bot) if c["content"]["body"].startswith("#2 ")),
            None,
        )
    )
    body = second["content"]["body"]
    assert "Returning: 1 before · last " in body and ", resolved" in body
    assert "customer, offered to them until" in body
    offer = await told(ann, bot, "wrote again: #2 is offered to you first")
    assert customer.name in offer or "Customer" in offer
    await ann.say(owner_room, f"!inloop customer matrix:{customer.user_id}")
    profile = await told(ann, bot, "Identities: matrix:")
    assert "#2 ·" in profile and "#1 ·" in profile


async def test_the_export_comes_as_a_file_and_the_erased_card_says_so(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    people: People,
) -> None:
    ann = await people("ann")
    room = await setup_team(admin, bot, ann)
    await bot.mention("My order arrived broken")
    await ann.until(lambda: cards(ann, room, bot))

    await admin.say(room, "!inloop customer export #1")
    await told(admin, bot, "Everything Inloop holds about")
    exported = await admin.until(
        lambda: next(
            (
                m
                for r, info in admin.client.rooms.items()
                if set(info.users) == {bot.user_id, admin.user_id}
                for m in admin.messages(r, bot.user_id)
                if m["content"].get("msgtype") == "m.file"
            ),
            None,
        )
    )
    assert exported["content"]["body"] == "inloop-customer-1.json"
    assert exported["content"]["info"]["mimetype"] == "application/json"
    assert exported["content"]["url"].startswith("mxc://")

    await admin.say(room, "!inloop customer erase #1 confirm")
    await told(admin, bot, "Erased at the customer's request")
    card = await ann.until(
        lambda: next(
            (
                c
                for c in cards(ann, room, bot)
                if "Erased at the customer's request." in c["content"]["body"]
            ),
            None,
        )
    )
    assert card["content"]["body"].startswith("#1 · ")
    assert "My order arrived broken" not in card["content"]["body"]
