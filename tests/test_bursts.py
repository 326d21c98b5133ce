"""Bursts within the platforms' limits, on the console: a busy channel delays nobody
else, a claim reaches its card ahead of the backlog, and a burst becomes a burst card
with Claim next. Nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from bot.clock import utc_now
from bot.events import ChannelId, Command, EventId
from bot.outbox import LEASE
from bot.views import Card
from harness import Chat, channel, eventually, person
from pg_server import PostgresServer
from recording import Delivered, field_value
from storage import bursts

SUPPORT = channel("support")
_ids = itertools.count(1)


async def _type(chat: Chat, who: str, text: str, where: str = "support") -> None:
    """`who` types a command; unlike `Chat.say`, nothing waits for the outbox."""
    event = Command(EventId(f"typed-{next(_ids)}"), person(who), channel(where), text)
    await chat.app.handle(event)


def _posted_cards(chat: Chat) -> list[int]:
    """The conversation numbers whose cards were posted in #support, in order."""
    return [
        int(d.view.title.split(" ")[0][1:])
        for d in chat.platform.in_channel(SUPPORT)
        if d.kind == "send" and isinstance(d.view, Card) and d.view.title.startswith("#")
    ]


def _bursts(chat: Chat) -> list[Delivered]:
    return [
        d
        for d in chat.platform.in_channel(SUPPORT)
        if isinstance(d.view, Card) and not d.view.title.startswith("#")
    ]


async def _paced(chat: Chat, seconds: float) -> None:
    """The console posts at `seconds` a message per channel, as Slack does at one."""
    chat.app.outbox._pacing["console"] = seconds


async def test_a_slow_channel_does_not_delay_private_answers_or_other_channels(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", "team add billing refund", where="billing")
    chat.platform.slow[SUPPORT] = 3.0  # every post in #support takes 3 s to answer

    await chat.mention("Giulia", "La scatola era rotta", settle=False)
    await asyncio.sleep(0.3)  # its post is on its way, and hangs
    # While #support's post hangs, Ann asks for her queue and a billing mention arrives.
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await _type(chat, "ann", "queue", "billing")
    await chat.mention("Marco", "rimborso?", tags=("refund",), settle=False)
    await eventually(lambda: bool(chat.platform.private(person("ann"))), within=2.5)
    await eventually(lambda: bool(chat.platform.in_channel(channel("billing"))), within=2.5)
    waited = loop.time() - asked

    assert waited < 2.5, "the private answer and the billing card waited for #support"
    assert chat.platform.in_channel(SUPPORT) == []  # still hanging there
    await eventually(lambda: len(chat.platform.in_channel(SUPPORT)) == 1)


async def test_a_claim_during_a_backlog_reaches_its_card_before_the_backlog(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await _paced(chat, 0.3)
    chat.app.outbox._burst_after = 100.0  # no burst card here: just the backlog
    for n in range(12):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)
    await eventually(lambda: len(_posted_cards(chat)) >= 1)

    # Ann claims the first card (posted) and the last (its post is still queued).
    assert (await chat.say("ann", "claim 1")).startswith("#1 is yours.")
    shown = len(chat.platform.in_channel(SUPPORT))
    assert (await chat.say("ann", "claim 12")).startswith("#12 is yours.")
    await eventually(lambda: len(_posted_cards(chat)) == 12, within=20)

    delivered = chat.platform.in_channel(SUPPORT)
    claimed_one = next(
        i
        for i, d in enumerate(delivered)
        if d.kind == "update" and d.view.title.startswith("#1 ")  # type: ignore[union-attr]
    )
    posted = _posted_cards(chat)
    twelve = [i for i, d in enumerate(delivered) if d.view.title.startswith("#12 ")]  # type: ignore[union-attr]
    # Both changes went out next (one message may have been on its way), ahead of the
    # new cards still waiting then.
    assert claimed_one <= shown + 1
    assert twelve[0] <= shown + 2
    assert posted.index(12) < posted.index(11)
    # #12's card was posted once, already showing its owner: no separate edit first
    assert len(twelve) == 1 and delivered[twelve[0]].kind == "send"
    assert field_value(chat.platform.card(12), "Owner") == "Ann"
    assert field_value(chat.platform.card(1), "Owner") == "Ann"
    # nothing lost, nothing twice
    assert sorted(posted) == list(range(1, 13))


async def test_changes_to_a_waiting_card_go_as_one_update_with_the_latest_view(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "posted already")
    await chat.app.outbox.stop()  # the worker is busy elsewhere: rows wait
    await chat.mention("Marco", "not posted yet", settle=False)
    for who, command in [("ann", "claim"), ("ann", "release"), ("bob", "claim")]:
        for n in (1, 2):
            await _type(chat, who, f"{command} {n}")

    for _ in range(20):  # passes until nothing is due (a handful)
        if await chat.app.outbox.deliver_due() != 0:
            break

    delivered = chat.platform.in_channel(SUPPORT)
    one = [d for d in delivered if d.view.title.startswith("#1 ")]  # type: ignore[union-attr]
    two = [d for d in delivered if d.view.title.startswith("#2 ")]  # type: ignore[union-attr]
    assert [d.kind for d in one] == ["send", "update"]  # three changes, one edit
    assert [d.kind for d in two] == ["send"]  # the post carries the latest view
    assert field_value(chat.platform.card(1), "Owner") == "Bob"
    assert field_value(chat.platform.card(2), "Owner") == "Bob"


async def test_a_burst_becomes_a_burst_card_whose_claim_next_hands_out_the_oldest(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support refund delivery")
    await _paced(chat, 0.25)
    chat.app.outbox._burst_after = 1.0
    topics = ["refund", "delivery", "", "refund"] * 5  # any five of them: every topic
    for n, topic in enumerate(topics):
        tags = (topic,) if topic else ()
        await chat.mention(f"Customer{n}", f"message {n}", tags=tags, settle=False)
    await eventually(lambda: bool(_bursts(chat)), within=5)

    burst = _bursts(chat)[0].view
    assert isinstance(burst, Card)
    assert "new mentions in the last 1 min: " in burst.title, burst.title
    assert "refund" in burst.title and "delivery" in burst.title and "other" in burst.title
    assert [b.label for b in burst.buttons] == ["Claim next", "Show list"]
    assert burst.buttons[0].command == "!inloop claim next"

    # Every conversation is claimable at once, its card posted or not.
    assert (await chat.press("ann", "claim", "next")).startswith("#1 is yours.")
    assert (await chat.press("bob", "claim", "next")).startswith("#2 is yours.")
    assert (await chat.say("ann", "claim 19")).startswith("#19 is yours.")
    queue = await chat.press("bob", "queue", "")
    assert "#3 " in queue and "#1 " not in queue  # Show list: the queue, #1 taken

    await eventually(lambda: len(_posted_cards(chat)) == 20, within=30)
    # the burst card is one message, updated in place, and says when it is over
    await eventually(lambda: "has its card below" in _bursts(chat)[-1].view.title)  # type: ignore[union-attr]
    refs = {d.ref for d in _bursts(chat)}
    assert len(refs) == 1
    assert sorted(_posted_cards(chat)) == list(range(1, 21))  # nothing lost or twice
    assert field_value(chat.platform.card(19), "Owner") == "Ann"
    assert field_value(chat.platform.card(2), "Owner") == "Bob"


async def test_after_a_restart_mid_burst_the_same_burst_card_goes_on_and_its_reaction_claims_next(
    database_url: str,
) -> None:
    chat = await Chat(database_url).start()
    await chat.say("boss", "team add support")
    await _paced(chat, 0.5)
    chat.app.outbox._burst_after = 1.0
    for n in range(16):
        await chat.mention(f"Customer{n}", f"message {n}", settle=False)
    await eventually(lambda: bool(_bursts(chat)), within=5)
    shown = _bursts(chat)[0]
    # once the lane has moved on (a card after it), the burst card's place is stored
    delivered = chat.platform.in_channel(SUPPORT)
    await eventually(lambda: len(chat.platform.in_channel(SUPPORT)) > delivered.index(shown) + 1)
    await chat.stop()  # mid-burst: most cards still wait

    restarted = Chat(database_url)
    restarted.platform = chat.platform
    restarted.app.platforms["console"] = chat.platform
    # what the stopped worker was sending lapses after its lease (LEASE), then goes again
    restarted.app.outbox._clock = lambda: utc_now() + LEASE + timedelta(seconds=1)
    await _paced(restarted, 0.2)
    restarted.app.outbox._burst_after = 1.0
    await restarted.start()
    try:
        # ✋ on the burst card posted before the restart is its Claim next
        await restarted.react("ann", shown.ref, "✋")
        await eventually(
            lambda: any(t.startswith("#1 is yours.") for t in chat.platform.private(person("ann")))
        )
        await eventually(lambda: len(_posted_cards(restarted)) == 16, within=30)
        await eventually(lambda: "has its card below" in _bursts(restarted)[-1].view.title)  # type: ignore[union-attr]
        # one burst card, updated in place across the restart; every card once
        assert {d.ref for d in _bursts(restarted)} == {shown.ref}
        assert [d.kind for d in _bursts(restarted)][:1] == ["send"]
        assert sorted(_posted_cards(restarted)) == list(range(1, 17))
        assert field_value(chat.platform.card(1), "Owner") == "Ann"
    finally:
        await restarted.stop()


async def test_instances_on_one_database_show_one_burst_card_per_burst(
    postgres: PostgresServer,
) -> None:
    """Every instance sees the same backlog at the same moment: one of them shows it."""
    url = postgres.create_database()
    first = await Chat(url).start()
    second = Chat(url)  # another instance, posting to the same channels
    second.platform = first.platform
    second.app.platforms["console"] = first.platform
    await second.start()
    try:
        await first.say("boss", "team add support")
        for chat in (first, second):
            await _paced(chat, 0.5)
            chat.app.outbox._burst_after = 1.0
        # Slack answers a post in a second (a busy day): an instance deciding to show
        # the burst card hears where it went a second later.
        first.platform.slow[SUPPORT] = 1.0
        # Mentions reach both (a load balancer): each sees the backlog as it grows.
        for n in range(30):
            chat = (first, second)[n % 2]
            await chat.mention(f"Customer{n}", f"message {n}", settle=False)

        await eventually(lambda: len(_posted_cards(first)) == 30, within=90)
        await eventually(lambda: "has its card below" in _bursts(first)[-1].view.title, within=20)  # type: ignore[union-attr]
        await asyncio.sleep(1.0)  # time for another instance's card

        assert len({d.ref for d in _bursts(first)}) == 1, [d.view for d in _bursts(first)]
        assert [d.kind for d in _bursts(first)][:1] == ["send"]
        assert sorted(_posted_cards(first)) == list(range(1, 31))
    finally:
        await second.stop()
        await first.stop()


async def test_a_burst_card_whose_poster_died_before_noting_where_it_went_is_not_posted_twice(
    database_url: str,
) -> None:
    chat = await Chat(database_url).start()
    try:
        await chat.say("boss", "team add support")
        # What an instance killed mid-burst left: the channel's burst card taken in its
        # name and posted (the platform has it), where it went not noted.
        now = utc_now()
        async with chat.app.db.transaction() as session:
            taken = await bursts.take(
                session,
                "console",
                SUPPORT,
                by="elsewhere:4242:dead00",
                since=now - timedelta(seconds=1),
                now=now,
                until=now + LEASE,
                instances=False,
            )
        assert taken is not None
        shown = Card(title="3 new mentions in the last 1 min: 3 other")
        await chat.platform.send(ChannelId(SUPPORT), shown, taken.post_key)

        await _paced(chat, 0.5)
        chat.app.outbox._burst_after = 1.0
        for n in range(12):
            await chat.mention(f"Customer{n}", f"message {n}", settle=False)
        await eventually(lambda: len(_posted_cards(chat)) == 12, within=30)
        await eventually(lambda: "has its card below" in _bursts(chat)[-1].view.title)  # type: ignore[union-attr]

        # the card posted before the crash goes on, updated in place: no second one
        assert {d.ref for d in _bursts(chat)} == {_bursts(chat)[0].ref}
        assert [d.kind for d in _bursts(chat)].count("send") == 1
    finally:
        await chat.stop()
