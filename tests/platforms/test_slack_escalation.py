"""Escalation on Slack: the nudge is a reply in the thread under the conversation's card."""

from __future__ import annotations

from datetime import timedelta

from fake_slack import FakeSlack
from harness import FakeClock
from slack_chat import OWNER, SlackChat


async def test_an_unclaimed_conversation_is_nudged_in_the_thread_of_its_card(
    database_url: str, fake: FakeSlack
) -> None:
    clock = FakeClock()
    slack = await SlackChat(database_url, fake, clock=clock).start()
    try:
        await slack.setup_team()
        assert "claim within 30m" in await slack.say("UADMIN", "team target support claim 30m")
        await slack.customer_card("My order <!channel> arrived broken", ts="100.1")
        [card] = fake.in_channel(OWNER)

        clock.advance(minutes=30)
        await slack.app.scheduler.run_due(clock())
        await slack.until(lambda: len(fake.in_channel(OWNER)) > 1)

        [card_again, nudge] = fake.in_channel(OWNER)
        assert card_again is card and nudge.thread_ts == card.ts
        assert nudge.text == (
            "#1 (Giulia, slack) has waited 30m and nobody has claimed it (target 30m). "
            "Nobody in support is on duty now."
        )
        # once: a later sweep says nothing more under it
        clock.advance(minutes=10)
        await slack.app.scheduler.run_due(clock() + timedelta(seconds=1))
        await slack.app.settle()
        assert len(fake.in_channel(OWNER)) == 2
    finally:
        await slack.stop()
