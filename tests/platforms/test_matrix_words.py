"""Matrix on a real homeserver: a person named in a command is asked of the homeserver
before being refused, and customer text in a private answer shows literally (issues
13 §5, 14 §1)."""

from __future__ import annotations

from typing import Any

from test_matrix import (  # noqa: F401  (fixtures used by name)
    Bot,
    admin,
    bot,
    setup_team,
    told,
)

from matrix_people import MatrixPerson, People


def direct_contents(person: MatrixPerson, bot_id: str) -> list[dict[str, Any]]:
    """What the bot sent `person` in rooms of just the two of them (body and HTML)."""
    found = []
    for room_id, room in person.client.rooms.items():
        if set(room.users) <= {bot_id, person.user_id} and bot_id in room.users:
            found += [m["content"] for m in person.messages(room_id, bot_id)]
    return found


async def test_a_user_the_homeserver_does_not_know_is_refused(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    people: People,
) -> None:
    room = await setup_team(admin, bot)
    server = admin.user_id.partition(":")[2]
    expert = await people("expert")  # in no room with the bot: the profile says who

    await admin.say(room, f"!inloop role @nobody_ever:{server} consultant")
    assert f"`@nobody_ever:{server}`" in await told(admin, bot, "I can't find")
    await admin.say(room, f"!inloop role {expert.user_id} consultant")
    assert "is now consultant" in await told(admin, bot, "is now consultant")
    await admin.say(room, f"!inloop role matrix:@nobody_ever:{server} manager")
    await admin.until(
        lambda: sum("I can't find" in b for b in admin.direct_messages(bot.user_id)) == 2
    )


async def test_a_user_id_in_customer_text_is_no_pill_in_a_private_answer(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
) -> None:
    room = await setup_team(admin, bot)
    said = "Ask matrix:@boss:example.org or @boss:example.org *now* <b>x</b>"
    await bot.mention(said)
    await admin.say(room, "!inloop claim 1")
    await told(admin, bot, "is yours")
    await admin.say(room, "!inloop show 1")
    await told(admin, bot, said)

    shown = next(c for c in direct_contents(admin, bot.user_id) if said in c["body"])
    assert "matrix.to" not in shown["formatted_body"] and "<a " not in shown["formatted_body"]
    assert "*now* &lt;b&gt;x&lt;/b&gt;" in shown["formatted_body"]
    assert shown["m.mentions"] in ({}, {"user_ids": [admin.user_id]})
