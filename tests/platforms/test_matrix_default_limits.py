"""A burst on Matrix under Synapse's default rate limit, on a Synapse of its own whose
`rc_message` is the default: each user may send one message every 5 s after ten, in
every room and private room together. The bot starts from that documented default,
shows a burst card with Claim next (typed, or ✋ on it) and Show list, keeps half of
the account's allowance for private answers (the room's new cards and card changes
wait for the rest), and answers claims at once while the room's new cards wait:
nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from test_matrix import Bot, admin, bot, cards, setup_team, told  # noqa: F401

from matrix_people import MatrixPerson, People
from storage import matrix as matrix_state
from synapse_server import DEFAULT_MESSAGE_LIMIT, SynapseServer

NUMBER = re.compile(r"#(\d+) ")
#: mentions in the burst (the last one is claimed by number)
LAST = 14


@pytest.fixture(scope="module")
def synapse() -> Iterator[SynapseServer]:
    """A homeserver with Synapse's default message rate for everyone (this module's)."""
    with SynapseServer(rc_message=DEFAULT_MESSAGE_LIMIT) as server:
        yield server


def _numbers(viewer: MatrixPerson, room: str, bot: Bot) -> list[int]:  # noqa: F811
    """The conversation numbers of the bot's cards in the room, in order of posting."""
    found = [NUMBER.match(c["content"]["body"]) for c in cards(viewer, room, bot)]
    return [int(m.group(1)) for m in found if m]


def _said(person: MatrixPerson, bot_user: str, words: str) -> bool:
    return any(words in said for said in person.direct_messages(bot_user))


def _burst_cards(viewer: MatrixPerson, room: str, bot: Bot) -> list[dict[str, Any]]:  # noqa: F811
    """The bot's burst cards in the room as the viewer sees them now (edits applied)."""
    return [
        m
        for m in viewer.messages(room, bot.user_id)
        if "m.relates_to" not in m["content"] and "new mentions" in m["content"]["body"]
    ]


async def test_a_burst_under_synapses_default_limit_gets_a_burst_card_and_claims_at_once(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    people: People,
) -> None:
    ann, bob = await people("ann"), await people("bob")
    room = await setup_team(admin, bot, ann, bob)
    # Staff who have used Inloop have a private room with the bot already (making one
    # costs a message of the bot's allowance too).
    for person in (ann, bob):
        await person.say(room, "!inloop queue")
    for person in (ann, bob):
        await person.until(partial(person.direct_messages, bot.user_id), within=30)
    loop = asyncio.get_running_loop()
    for n in range(1, LAST + 1):
        await bot.mention(f"help {n}", n)

    # The room gets a burst card, with Claim next and Show list to type (or ✋).
    burst = (await ann.until(lambda: _burst_cards(ann, room, bot), within=15))[0]
    body, rich = burst["content"]["body"], burst["content"]["formatted_body"]
    assert "[Claim next] !inloop claim next" in body, body
    assert "[Show list] !inloop queue" in body, body
    assert "<code>!inloop claim next</code> or react ✋" in rich, rich

    # While the room is rate-limited, a claim by number and a Claim next (✋ on the
    # burst card) are applied at once and answered privately.
    asked = loop.time()
    await ann.say(room, f"!inloop claim {LAST}")
    await bob.react(room, burst["event_id"])
    for person, words in ((ann, f"#{LAST} is yours"), (bob, "#1 is yours")):
        # One message every 5 s for the whole account, whose bucket the burst filled:
        # the answers (and the two cards' changes) take turns with each other only.
        await person.until(partial(_said, person, bot.user_id, words), within=60)
    answered = loop.time() - asked
    posted = _numbers(ann, room, bot)
    assert len(posted) < LAST, f"the answers ({answered:.1f} s) waited for the room's backlog"

    # The last one's card goes ahead of the cards still waiting, showing its owner.
    await ann.until(lambda: LAST in _numbers(ann, room, bot), within=30)
    shown = _numbers(ann, room, bot)
    assert shown.index(LAST) < LAST - 2, shown  # ahead of every card queued before it
    last = next(c for c in cards(ann, room, bot) if c["content"]["body"].startswith(f"#{LAST} "))
    assert ann.name in last["content"]["body"]

    # Nothing twice, in the room or in anyone's private room, so far and at the end.
    assert not [n for n, k in Counter(_numbers(ann, room, bot)).items() if k > 1]
    await ann.until(lambda: len(_numbers(ann, room, bot)) == LAST, within=240)
    assert sorted(_numbers(ann, room, bot)) == list(range(1, LAST + 1))
    assert len(_burst_cards(ann, room, bot)) == 1  # one burst card, updated in place
    for person, words in ((ann, f"#{LAST} is yours"), (bob, "#1 is yours")):
        assert sum(words in said for said in person.direct_messages(bot.user_id)) == 1


async def _private_room(bot: Bot, person: MatrixPerson) -> None:  # noqa: F811
    """A private room of `person` and the bot, known to Inloop as theirs (staff who used
    Inloop before have one; made by them, it costs the bot only its join)."""
    room = await person.create_room(bot.user_id, direct=True)
    client = bot.platform.client
    await person.until(
        lambda: room in client.rooms and person.user_id in client.rooms[room].users, within=30
    )
    await person.until(lambda: bot.user_id in person.client.rooms[room].users, within=30)
    assert bot.app is not None
    async with bot.app.db.transaction() as session:
        await matrix_state.save_direct_room(session, person.person, room, bot.app.clock())


def _refused(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The 429s the homeserver answered the bot (the outbox logs each)."""
    return [r.getMessage() for r in caplog.records if "M_LIMIT_EXCEEDED" in r.getMessage()]


async def test_private_answers_during_a_card_backlog_go_ahead_of_it_without_a_429(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    people: People,
    synapse: SynapseServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The set-up is not what is tested: the bot's limit is lifted for it (the rooms, the
    # people's private rooms with the bot), then back to Synapse's default.
    synapse.limit_messages(bot.user_id, 0, 0)
    staff = [await people(name) for name in ("ann", "bob", "cy", "dee")]
    room = await setup_team(admin, bot, *staff)
    for person in staff:
        await _private_room(bot, person)
    synapse.unlimit_messages(bot.user_id)
    await asyncio.sleep(5.0)  # the one answer of the set-up ("Team support created")
    caplog.set_level(logging.INFO, logger="bot.outbox")

    cards_in_burst = 12
    for n in range(1, cards_in_burst + 1):
        await bot.mention(f"help {n}", n)
    await staff[0].until(lambda: _burst_cards(staff[0], room, bot), within=15)
    await asyncio.sleep(1.0)  # what was on its way with the burst card shows
    posted = len(_numbers(staff[0], room, bot))
    assert posted < cards_in_burst

    # Four people ask at once while the room's cards wait for the account's allowance:
    # the answers use what the cards left for them, and meet no 429.
    for person in staff:
        await person.say(room, "!inloop queue")
    for person in staff:
        await person.until(partial(person.direct_messages, bot.user_id), within=30)
    assert not _refused(caplog), _refused(caplog)
    # They went ahead of the backlog: no card of it was posted meanwhile.
    assert len(_numbers(staff[0], room, bot)) == posted

    # Every card follows, once.
    await staff[0].until(lambda: len(_numbers(staff[0], room, bot)) == cards_in_burst, within=150)
    assert sorted(_numbers(staff[0], room, bot)) == list(range(1, cards_in_burst + 1))
    assert len(_burst_cards(staff[0], room, bot)) == 1


async def test_invited_to_more_rooms_than_the_rate_allows_the_bot_joins_every_one(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    synapse: SynapseServer,
) -> None:
    # Synapse counts a join against the bot's message rate: past ten at once, a join is
    # answered 429, and an invite shows in one sync only.
    synapse.limit_messages(admin.user_id, 0, 0)  # the admin may make rooms at will
    rooms = await asyncio.gather(*(admin.create_room(bot.user_id) for _ in range(12)))

    def joined() -> int:
        rooms_now = [admin.client.rooms[room] for room in rooms]
        return sum(1 for r in rooms_now if bot.user_id in set(r.users) - set(r.invited_users))

    await admin.until(lambda: joined() == len(rooms), within=60)
