"""`help` lists what you may do; `help COMMAND` says how to use that one command."""

from __future__ import annotations

from bot.views import Home
from harness import Chat

CLAIM = (
    "claim N|next — take conversation #N (next: the oldest unclaimed of your teams):"
    " you reply to the customer"
)


async def test_help_lists_the_commands_i_may_use(chat: Chat) -> None:
    told = await chat.say("ann", "help")

    assert told.startswith("Inloop keeps the dialogue with customers in-house.")
    assert f"  {CLAIM}" in told
    assert "team add" not in told  # admins' commands are not an employee's


async def test_help_with_a_command_gives_just_its_usage(chat: Chat) -> None:
    assert await chat.say("ann", "help claim") == (f"Usage:\n!inloop {CLAIM}")
    # typed the way it is run, number and prefix included
    assert await chat.say("ann", "help !inloop claim 3") == await chat.say("ann", "help claim")


async def test_help_with_a_group_name_gives_every_command_of_the_group(chat: Chat) -> None:
    told = await chat.say("boss", "help feed")

    assert told.splitlines() == [
        "Usage:",
        "!inloop feed add URL [team] — watch an RSS or Atom feed for mentions (admins)",
        "!inloop feed list — the feeds watched, and how they are doing (admins)",
        "!inloop feed remove ID — stop watching a feed (admins)",
    ]
    team_add = await chat.say("boss", "help team add")
    assert team_add.splitlines()[1].startswith("!inloop team add NAME [tags…]")


async def test_help_on_a_command_above_my_role_says_so(chat: Chat) -> None:
    told = await chat.say("ann", "help reassign")

    assert told.splitlines() == [
        "Usage:",
        "!inloop reassign N @person — give #N to someone else (managers)",
        "Not allowed: `reassign` needs the role manager / admin. Your role: employee.",
    ]


async def test_help_with_an_unknown_command_says_so_and_lists_all(chat: Chat) -> None:
    told = await chat.say("ann", "help frobnicate")

    lines = told.splitlines()
    assert lines[0] == "There is no command `frobnicate`. These are the commands:"
    assert lines[1].startswith("Inloop keeps the dialogue")
    assert f"  {CLAIM}" in lines


async def test_help_in_italian(chat: Chat) -> None:
    await chat.say("ann", "lang it")

    assert await chat.say("ann", "help release") == (
        "Uso:\n!inloop release N — restituisci #N al team"
    )
    assert (await chat.say("ann", "help boh")).startswith("Non esiste il comando `boh`.")


async def test_help_ends_with_an_example_the_reader_may_run(chat: Chat) -> None:
    await chat.say("boss", "role console:expert consultant")

    assert (await chat.say("ann", "help")).splitlines()[-1] == (
        "Conversations are numbered #N; write the number without #, e.g. `claim 3`."
    )
    told = await chat.say("expert", "help")
    assert "`claim" not in told
    assert told.splitlines()[-1] == (
        "Advice requests are written N-A1, N being the conversation's number, e.g. `take 3-A1`."
    )
    await chat.say("expert", "lang it")
    assert (await chat.say("expert", "help")).splitlines()[-1] == (
        "Le richieste di consiglio si scrivono N-A1, dove N è il numero della conversazione,"
        " es. `take 3-A1`."
    )


async def test_italian_help_for_commit_names_italian_days_and_the_home_placeholder(
    chat: Chat,
) -> None:
    await chat.say("ann", "lang it")

    usage = (await chat.say("ann", "help commit")).splitlines()[1]
    assert usage.startswith("!inloop commit GIORNI HH:MM DURATA [FUSO] — ")
    assert "GIORNI: lun…dom" in usage
    # the home page's commit button says the same words
    await chat.say("ann", "home")
    (home,) = [d.view for d in chat.platform.delivered if isinstance(d.view, Home)]
    assert [b.command for b in home.buttons] == ["!inloop commit GIORNI HH:MM DURATA [FUSO]"]
    # and the example the help gives works as written
    example = usage.split("ad esempio ", 1)[1].split(" (")[0]
    assert example == "commit lun,mer,ven 09:00 30m Europe/Rome"
    assert (await chat.say("ann", example)).startswith("Impegno 1: lun, mer, ven alle 09:00")
