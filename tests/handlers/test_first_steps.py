"""What a new user met first, trying Inloop from the README: mass mentions taken for
consultants, advice rated before it existed, people lists with commas, a hint that
forgot bare names, a role given twice, teams named like keywords, targets in days."""

from __future__ import annotations

import pytest

from bot.people import writes_a_person, written_ref
from harness import Chat, channel, person
from recording import field_value


async def _claimed(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", "role console:carla consultant")
    await chat.mention("Giulia", "La scatola è rotta.")
    await chat.say("ann", "claim 1")


# -- 1. ask: a mass mention is the question's, a consultant alone is no question ------------


@pytest.mark.parametrize(
    "mass",
    ["@here", "@channel", "@everyone", "@room", "@HERE", "<!here>", "<!channel>", "<!everyone>"],
)
async def test_a_question_ending_in_a_mass_mention_goes_to_the_pool_whole(
    chat: Chat, mass: str
) -> None:
    await _claimed(chat)
    await chat.say("boss", "consultants here", where="experts")

    told = await chat.say("ann", f"ask 1 should we tell {mass}")

    assert told.startswith("Asked 1-A1 of the consultants' pool."), told
    request = chat.platform.in_channel(channel("experts"))[-1].view
    assert field_value(request, "Question") == f"should we tell {mass}"  # type: ignore[arg-type]


async def test_a_mass_mention_is_never_a_person() -> None:
    for word in ("@here", "@Channel", "@everyone", "@room", "<!here>", "<!channel|@channel>"):
        assert not writes_a_person(word), word
        for platform in ("console", "slack", "matrix"):
            assert written_ref(word, platform) is None, (word, platform)
    assert written_ref("@carla", "console") == "console:carla"  # a name is still a name


async def test_asking_a_consultant_without_a_question_is_refused(chat: Chat) -> None:
    await _claimed(chat)
    await chat.say("boss", "consultants here", where="experts")

    told = await chat.say("ann", "ask 1 @carla")

    assert told.startswith(
        "Write the question before the consultant: `ask N QUESTION @consultant`."
    ), told
    assert "Usage:" in told
    assert chat.platform.private(person("carla")) == ["Boss made you consultant in Inloop."]
    assert chat.platform.in_channel(channel("experts")) == []
    assert (await chat.say("ann", "ask 1 Rimborso? @carla")).startswith("Asked 1-A1 of Carla.")


# -- 2. rate: only advice that was given ----------------------------------------------------


async def test_a_request_never_answered_cannot_be_rated(chat: Chat) -> None:
    await _claimed(chat)
    await chat.say("ann", "ask 1 Rimborso? @carla")

    assert await chat.say("ann", "rate 1-A1 not-useful") == (
        "1-A1 has no advice to rate yet: rate it once it is answered."
    )
    await chat.say("ann", "lang it")
    assert await chat.say("ann", "rate 1-A1 useful") == (
        "1-A1 non ha ancora un consiglio da valutare: valutalo dopo la risposta."
    )
    await chat.say("ann", "close 1-A1")
    assert (await chat.say("ann", "rate 1-A1 useful")).startswith("1-A1 non ha ancora")

    await chat.say("ann", "ask 1 E la ricevuta? @carla")
    await chat.say("carla", "answer 1-A2 Serve.")
    assert await chat.say("ann", "rate 1-A2 useful") == "Registrato: 1-A2 è stato useful."


# -- 3. people lists and the hint of "I can't find" -----------------------------------------


async def test_team_members_split_on_commas_and_spaces(chat: Chat) -> None:
    await chat.say("boss", "team add support")

    assert await chat.say("boss", "team members support luca, marta,@ann") == (
        "Members of support now: Ann, Luca, Marta."
    )
    assert "Usage:" in await chat.say("boss", "team members support , ,")
    assert await chat.say("boss", "team members support") == "Members of support: Ann, Luca, Marta."


async def test_the_cant_find_hint_names_every_way_the_readme_allows(chat: Chat) -> None:
    chat.platform.unknown.add("nobody")

    told = await chat.say("boss", "role nobody manager")

    assert told == (
        "I can't find `nobody`. Name a person as your platform writes them: on the console "
        "`luca` or `@luca`, on Slack a mention, on Matrix `@ann:example.org`; `console:luca`, "
        "`slack:U0123` or `matrix:@ann:example.org` from anywhere."
    )
    await chat.say("boss", "lang it")
    assert (await chat.say("boss", "role nobody manager")).startswith(
        "Non trovo `nobody`. Indica una persona come la scrive la tua piattaforma: "
        "sulla console `luca` o `@luca`"
    )


# -- 4. a role given twice ------------------------------------------------------------------


async def test_giving_the_same_role_again_changes_and_tells_nothing(chat: Chat) -> None:
    assert await chat.say("boss", "role luca manager") == "Luca is now manager."
    assert chat.platform.private(person("luca")) == ["Boss made you manager in Inloop."]

    assert await chat.say("boss", "role luca manager") == "Luca is already manager."
    assert await chat.say("boss", "role @Luca manager") == "Luca is already manager."
    assert chat.platform.private(person("luca")) == ["Boss made you manager in Inloop."]
    assert await chat.say("boss", "role boss admin") == "Boss is already admin."
    await chat.say("boss", "lang it")
    assert await chat.say("boss", "role luca manager") == "Luca è già manager."


# -- 5. team names that are keywords --------------------------------------------------------


@pytest.mark.parametrize("name", ["none", "all", "default", "ALL", "always", "claim", "reply"])
async def test_a_keyword_cannot_be_a_team_name(chat: Chat, name: str) -> None:
    told = await chat.say("boss", f"team add {name} refund", where="support")

    assert told == (
        f"`{name}` cannot be a team name: the team commands read it as a keyword "
        "(none, all, default, always, claim, reply). Choose another name."
    )
    assert (await chat.say("boss", "teams")).startswith("No teams yet.")
    assert (await chat.say("boss", "team add support")).startswith("Team support created")


async def test_a_keyword_team_name_is_refused_in_italian(chat: Chat) -> None:
    await chat.say("boss", "lang it")
    assert (await chat.say("boss", "team add none")).startswith(
        "`none` non può essere il nome di un team"
    )


# -- 6. targets in days and weeks -----------------------------------------------------------


async def test_team_targets_take_days_and_weeks(chat: Chat) -> None:
    await chat.say("boss", "team add support", where="support")

    assert (await chat.say("boss", "team target support claim 1w")).startswith(
        "support: claim within 1w, reply within 4h,"
    )
    assert (await chat.say("boss", "team target support claim 7d reply 2d")).startswith(
        "support: claim within 1w, reply within 2d,"
    )
    assert (await chat.say("boss", "team target support reply 1d12h")).startswith(
        "support: claim within 1w, reply within 36h,"
    )
    assert (await chat.say("boss", "team target support claim 168h")).startswith(
        "support: claim within 1w,"
    )
    assert (await chat.say("boss", "team target support claim 1h30")).startswith(
        "support: claim within 1h30m,"
    )
    for wrong in ("8d", "2w", "1w1m", "169h", "0d", "d", "30", "1x", "1h1d"):
        refused = await chat.say("boss", f"team target support claim {wrong}")
        assert refused.startswith(
            f"`{wrong}` is not a target: write a duration from 1m to 1w, e.g. 30m, 4h, 2d or 1w."
        ), refused
    # `commit` keeps its own durations: a day is not a block of time
    assert (await chat.say("ann", "commit mon 09:00 1d")).startswith("`1d` is not a block length")
    assert (await chat.say("boss", "team target support")).startswith(
        "support: claim within 1h30m, reply within 36h,"
    )
