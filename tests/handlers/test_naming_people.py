"""One person, one name: every way of writing a person names the same one, a person
nobody knows is refused alike by every command, and free text stays as written
(issue 14 §1 and §2). People here are on the console: `luca` is `console:luca`."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.events import PersonId
from bot.people import writes_a_person, written_ref
from harness import Chat, person
from recording import field_value
from storage.models import Person


async def _refs(chat: Chat) -> list[str]:
    async with chat.app.db.read() as session:
        return sorted((await session.scalars(select(col(Person.ref)))).all())


async def _team(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "La scatola è rotta.")


@pytest.mark.parametrize("written", ["luca", "@luca", "console:luca", "@console:luca", "@Luca"])
async def test_every_console_way_of_writing_luca_is_the_luca_who_speaks(
    chat: Chat, written: str
) -> None:
    await _team(chat)
    await chat.say("luca", "queue")  # luca speaks: console:luca, an employee

    assert await chat.say("boss", f"role {written} manager") == "Luca is now manager."
    assert await chat.say("boss", f"reassign 1 {written}") == "#1 now belongs to Luca."
    assert "#1" in await chat.say("luca", "queue")
    assert field_value(chat.platform.card(1), "Owner") == "Luca"
    assert await _refs(chat) == ["console:boss", "console:luca"]


@pytest.mark.parametrize(
    "command",
    [
        "reassign 1 {who}",
        "role {who} manager",
        "commitments {who}",
        "ask 1 Rimborso? {who}",
    ],
)
@pytest.mark.parametrize("who", ["@nobody_ever", "nobody_ever", "console:nobody_ever"])
async def test_a_person_nobody_knows_is_refused_and_never_created(
    chat: Chat, command: str, who: str
) -> None:
    chat.platform.unknown.add("nobody_ever")
    await _team(chat)
    await chat.say("boss", "claim 1")
    if command.startswith("ask") and not who.startswith(("@", "console:")):
        return  # a bare word at the end of a question is the question's
    told = await chat.say("boss", command.format(who=who))
    assert told.startswith(f"I can't find `{who}`."), told
    assert await _refs(chat) == ["console:boss"]
    assert field_value(chat.platform.card(1), "Owner") == "Boss"


async def test_what_is_not_a_way_of_writing_a_person_is_refused(chat: Chat) -> None:
    await _team(chat)
    for written in ("<b>", "@", "slack:", "matrix:ann", "luca!"):
        told = await chat.say("boss", f"reassign 1 {written}")
        assert told.startswith(f"I can't find `{written}`."), (written, told)
    assert await _refs(chat) == ["console:boss"]


async def test_free_text_reaches_its_reader_as_it_was_written(chat: Chat) -> None:
    await _team(chat)
    await chat.say("boss", "role @expert consultant")
    await chat.say("ann", "claim 1")
    said = "Talk to @marta and @luca, not @here or @room (console:luca <@U1> <!channel>)"

    await chat.say("ann", f"ask 1 {said} @expert")
    assert said in chat.platform.last_private(person("expert"))
    await chat.say("expert", f"answer 1-A1 {said}")
    assert said in chat.platform.last_private(person("ann"))
    await chat.say("ann", f"followup 1-A1 {said}")
    assert said in chat.platform.last_private(person("expert"))
    # nobody was made of the words
    assert await _refs(chat) == ["console:ann", "console:boss", "console:expert"]


def test_the_rule_on_every_platform() -> None:
    slack, matrix = PersonId("slack:U0123"), PersonId("matrix:@ann:example.org")
    for written, platform, meant in [
        ("luca", "console", "console:luca"),
        ("@Luca", "console", "console:luca"),
        ("@console:luca", "slack", "console:luca"),
        ("<@U0123>", "slack", slack),
        ("<@U0123|ann>", "slack", slack),
        ("slack:U0123", "matrix", slack),
        ("@slack:U0123", "console", slack),
        ("@ann:example.org", "matrix", matrix),
        ("matrix:@ann:example.org", "slack", matrix),
        ("@matrix:@ann:example.org", "console", matrix),
        # a bare name is the writer's platform's, and only the console has names
        ("ann", "slack", None),
        ("@ann", "matrix", None),
        ("slack:ann", "slack", None),
        ("console:a b", "console", None),
    ]:
        assert written_ref(written, platform) == meant, written
    assert writes_a_person("@sage") and writes_a_person("<@U1|x>")
    assert writes_a_person("console:sage")
    assert not writes_a_person("10:30") and not writes_a_person(":pray:")
    assert not writes_a_person("sage")


@pytest.mark.parametrize("who", ["matrix:@ghost:example.org", "slack:U0GHOST"])
async def test_a_person_of_a_platform_that_is_not_running_is_refused(chat: Chat, who: str) -> None:
    """Nobody can vouch for them: a typo in a platform id must not become a person."""
    await _team(chat)

    told = await chat.say("boss", f"role {who} manager")

    assert "can't find" in told
    assert who not in await _refs(chat)
