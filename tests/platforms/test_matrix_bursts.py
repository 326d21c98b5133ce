"""A burst on Matrix under the homeserver's rate limit (a real Synapse): every card
arrives, once, a claim reaches its card ahead of the backlog, and the 429s the
homeserver answers (retry_after_ms) are waited out without losing anything."""

from __future__ import annotations

import re

from test_matrix import Bot, admin, bot, cards, setup_team, told  # noqa: F401

from matrix_people import MatrixPerson, People
from synapse_server import SynapseServer

NUMBER = re.compile(r"#(\d+) ")


def _numbers(viewer: MatrixPerson, room: str, bot: Bot) -> list[int]:  # noqa: F811
    """The conversation numbers of the bot's cards in the room, in order of posting."""
    found = [NUMBER.match(c["content"]["body"]) for c in cards(viewer, room, bot)]
    return [int(m.group(1)) for m in found if m]


async def test_a_burst_under_synapses_rate_limit_loses_nothing_and_a_claim_goes_first(
    bot: Bot,  # noqa: F811
    admin: MatrixPerson,  # noqa: F811
    people: People,
    synapse: SynapseServer,
) -> None:
    ann = await people("ann")
    room = await setup_team(admin, bot, ann)
    # The bot may send two messages a second after three at once: a burst of twelve
    # cards meets 429s with retry_after_ms, as under Synapse's defaults, only sooner.
    synapse.limit_messages(bot.user_id, 2, 3)
    for n in range(1, 13):
        await bot.mention(f"help {n}", n)
    await ann.say(room, "!inloop claim 12")
    assert "is yours" in await told(ann, bot, "#12")

    await ann.until(lambda: len(_numbers(ann, room, bot)) == 12, within=60)
    shown = _numbers(ann, room, bot)
    assert sorted(shown) == list(range(1, 13))  # nothing lost, nothing twice
    assert shown.index(12) < shown.index(11)  # the claimed card went ahead
    twelve = next(c for c in cards(ann, room, bot) if c["content"]["body"].startswith("#12 "))
    assert ann.name in twelve["content"]["body"]
