"""Who may do what: roles decide, refusals are private and say why."""

from __future__ import annotations

from harness import Chat, channel, person


async def test_default_roles_staff_are_employees_guests_have_none(chat: Chat) -> None:
    chat.platform.guests.add("visitor")
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "help")

    assert "#1 is yours" in await chat.say("ann", "claim 1")
    refused = await chat.say("visitor", "queue")
    assert (
        refused
        == "Not allowed: `queue` needs the role employee / manager / admin. Your role: none."
    )
    # the refusal went to the visitor only, not to the channel
    assert all("Not allowed" not in d.text for d in chat.platform.in_channel(channel("support")))


async def test_admin_commands_are_refused_to_employees(chat: Chat) -> None:
    for command in ("team add sales", "team tags support x", "role console:ann admin"):
        told = await chat.say("ann", command)
        assert told.startswith("Not allowed"), command
        assert "needs the role admin" in told


async def test_a_consultant_cannot_claim_or_read_queues(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "help")
    await chat.say("boss", "role console:expert consultant")

    assert "Boss made you consultant" in chat.platform.last_private(person("expert"))
    for command in ("claim 1", "queue", "show 1", "resolve 1"):
        assert (await chat.say("expert", command)).startswith("Not allowed"), command
    assert (await chat.say("expert", "help")).startswith("Inloop keeps")


async def test_admins_can_promote_but_the_last_admin_cannot_step_down(chat: Chat) -> None:
    assert await chat.say("boss", "role console:boss employee") == (
        "You are the last admin; make someone else admin first."
    )
    assert await chat.say("boss", "role console:ann admin") == "Ann is now admin."
    assert await chat.say("ann", "role console:boss none") == "Boss is now none."
    assert (await chat.say("boss", "queue")).startswith("Not allowed")


async def test_role_with_a_wrong_name_or_arguments_answers_with_usage(chat: Chat) -> None:
    assert "`boss` is not a role" in await chat.say("boss", "role console:ann boss")
    told = await chat.say("boss", "role")
    assert "Usage:" in told and "role @person" in told
    chat.platform.unknown.add("nobody_ever")
    assert "I can't find `nobody_ever`" in await chat.say("boss", "role nobody_ever admin")


async def test_unknown_commands_get_the_list_of_what_you_may_do(chat: Chat) -> None:
    told = await chat.say("ann", "clam 1")
    assert told.startswith("I don't know `clam 1`.")
    assert "!inloop claim N" in told
    assert "team add" not in told  # an employee is not shown admin commands

    told = await chat.say("ann", "team frobnicate")
    assert "team add" in told and "team tags" in told


async def test_language_is_per_person(chat: Chat) -> None:
    assert await chat.say("ann", "lang it") == "Parlerò con te in italiano."
    assert await chat.say("ann", "claim 9") == "Non esiste la conversazione #9."
    assert await chat.say("bob", "claim 9") == "There is no conversation #9."
    assert "`fr` is not a language" in await chat.say("bob", "lang fr")
