"""Slack, end to end on the fake Slack: what people write is read as they wrote it, and
a person written any way Slack writes one is that person (issues 13 §5, 14 §1 and §2)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from slack_chat import SlackChat
from storage.models import Person

MARKUP = "*bold* _it_ ~s~ `code` <!here> <@UADMIN>"


async def _read(slack: SlackChat, uid: str, command: str) -> str:
    before = len(slack.fake.read_by(uid))
    await slack.say(uid, command)
    return "\n".join(slack.fake.read_by(uid)[before:])


async def _refs(slack: SlackChat) -> list[str]:
    async with slack.app.db.read() as session:
        return sorted((await session.scalars(select(col(Person.ref)))).all())


async def test_customer_markup_reads_literally_in_private_answers(slack: SlackChat) -> None:
    await slack.setup_team()
    await slack.customer_card(f"Broken box {MARKUP}", ts="100.1")
    await slack.press("UANN", "claim", "1")

    assert f"Broken box {MARKUP}" in await _read(slack, "UANN", "show 1")
    assert f"Broken box {MARKUP}" in await _read(slack, "UANN", "queue")
    # a follow-up from the customer, told to the owner
    before = len(slack.fake.read_by("UANN"))
    await slack.write("UCUST", f"Again {MARKUP}", "CSHARED", ts="100.2", thread_ts="100.1")
    await slack.until(lambda: len(slack.fake.read_by("UANN")) > before)
    assert f"Again {MARKUP}" in "\n".join(slack.fake.read_by("UANN")[before:])
    # nothing private went out as mrkdwn, where Slack would format it
    private = [e for e in slack.fake.ephemeral if e.user == "UANN"]
    assert private and all(e.blocks for e in private)


async def test_a_mention_with_or_without_its_name_is_the_same_person(slack: SlackChat) -> None:
    await slack.setup_team()
    await slack.customer_card("Hello?", ts="200.1")

    # Bob never spoke: Slack is asked who he is (users.info)
    assert "Bob is now manager." in await slack.say("UADMIN", "role <@UBOB> manager")
    assert "#1 now belongs to Bob." in await slack.say("UADMIN", "reassign 1 <@UBOB|bob>")
    assert "#1 now belongs to Ann." in await slack.say("UADMIN", "reassign 1 slack:UANN")
    told = await _read(slack, "UADMIN", "reassign 1 <@UNOPE|nope>")
    assert told.startswith("I can't find `<@UNOPE|nope>`.")
    assert await _refs(slack) == ["slack:UADMIN", "slack:UANN", "slack:UBOB", "slack:UCUST"]


async def test_advice_reaches_its_reader_as_it_was_written(slack: SlackChat) -> None:
    await slack.setup_team()
    await slack.customer_card("Refund?", ts="300.1")
    await slack.say("UADMIN", "role <@UBOB|bob> consultant")
    await slack.press("UANN", "claim", "1")
    question = "Talk to <@UADMIN> and @luca, not <!here> or @room *now*"

    await slack.say("UANN", f"ask 1 {question} <@UBOB|bob>")
    assert question in "\n".join(slack.fake.read_by("UBOB"))
    await slack.say("UBOB", "take 1-A1")
    advice = "Tell <@UANN|ann> `yes`, <!channel>"
    await slack.say("UBOB", f"answer 1-A1 {advice}")
    assert advice in slack.fake.read_by("UANN")[-1]
    assert "slack:" not in "\n".join(slack.fake.read_by("UANN") + slack.fake.read_by("UBOB"))
