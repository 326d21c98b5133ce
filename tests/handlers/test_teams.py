"""Teams: routing tags as people type them, and members who see their teams first."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.views import Card, Home
from harness import Chat, person
from recording import field_value


async def two_teams(chat: Chat) -> None:
    """support (the default team) and billing, which routes on `rimborso`."""
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team add billing rimborso", where="billing")


def homes(chat: Chat, who: str) -> list[Home]:
    return [
        d.view
        for d in chat.platform.delivered
        if isinstance(d.view, Home) and d.target == person(who)
    ]


# -- routing tags --------------------------------------------------------------------------


async def test_tags_split_on_commas_and_spaces_and_are_listed_one_by_one(chat: Chat) -> None:
    await chat.say("boss", "team add support", where="support")
    assert (await chat.say("boss", "team add billing fattura,invoice", where="billing")).startswith(
        "Team billing created; this channel is its owner channel. Routing tags: fattura, invoice."
    )

    answer = await chat.say("boss", "team tags billing refund,rimborso #Fattura, invoice")

    assert answer == "Team billing now routes on: refund, rimborso, fattura, invoice."
    assert await chat.say("ann", "route test rimborso") == (
        "→ team billing: the word `rimborso` in the text matches its routing tags."
    )
    assert (await chat.say("ann", "teams")).splitlines()[1] == (
        "billing — channel console:#billing — tags: refund, rimborso, fattura, invoice"
    )
    await chat.mention("Anna", "Voglio il rimborso")
    assert field_value(chat.platform.card(1), "Team") == "billing"


async def test_team_tags_none_clears_the_tags(chat: Chat) -> None:
    await two_teams(chat)

    assert (
        await chat.say("boss", "team tags billing none") == "Team billing has no routing tags now."
    )

    assert await chat.say("ann", "route test rimborso") == (
        "→ team support: no routing tag matches, so the default team."
    )
    assert (await chat.say("ann", "teams")).splitlines()[1] == (
        "billing — channel console:#billing — tags: —"
    )
    assert "Usage:" in await chat.say("boss", "team tags billing , #")


# -- membership -----------------------------------------------------------------------------


async def test_joining_and_leaving_a_team(chat: Chat) -> None:
    await two_teams(chat)

    assert await chat.say("ann", "team join", where="billing") == (
        "You are now a member of billing: its conversations come first in your queue, "
        "home and reminders."
    )
    assert await chat.say("ann", "team join billing", where="general") == (
        "You are already a member of billing."
    )
    assert await chat.say("ann", "team join", where="general") == (
        "Which team? Name it, or say it in the team's owner channel. Teams: support, billing."
    )
    assert await chat.say("ann", "team join sales") == (
        "There is no team called sales. Teams: support, billing."
    )
    assert await chat.say("ann", "team leave support") == "You are not a member of support."
    assert await chat.say("boss", "team members billing") == "Members of billing: Ann."
    assert await chat.say("ann", "team leave", where="billing") == (
        "You are no longer a member of billing."
    )
    assert await chat.say("boss", "team members billing") == (
        "billing has no members. `team join billing` joins it."
    )


async def test_queue_shows_my_teams_first_and_says_how_many_wait_elsewhere(chat: Chat) -> None:
    await two_teams(chat)
    await chat.say("ann", "team join support")
    await chat.mention("Giulia", "Dov'è il mio rimborso?")
    await chat.mention("Marco", "Rimborso non arrivato")

    assert await chat.say("ann", "queue", where="general") == (
        "Nothing waiting for support; 2 waiting in billing: `queue all`"
    )

    every = (await chat.say("ann", "queue all", where="general")).splitlines()
    assert every[0] == "Unclaimed (2):"
    assert [line.split(" ·")[0] for line in every[1:]] == ["#1", "#2"]

    await chat.mention("Sam", "My parcel is late")
    lines = (await chat.say("ann", "queue", where="general")).splitlines()
    assert lines[0] == "Unclaimed in support (1):"
    assert lines[1].startswith("#3 · twitter · Sam · Open")
    assert lines[2:] == ["Also 2 waiting in billing: `queue all`"]

    # Membership decides what she sees first, not what she may do.
    assert (await chat.say("ann", "claim 1")).startswith("#1 is yours.")
    lines = (await chat.say("ann", "queue", where="general")).splitlines()
    assert lines[0] == "Yours (1):"
    assert lines[1].startswith("#1 · twitter · Giulia · Claimed")
    assert lines[-1] == "Also 1 waiting in billing: `queue all`"


async def test_queue_in_a_team_channel_says_what_waits_in_the_other_teams(chat: Chat) -> None:
    """The issue's case: `queue` in support's channel said `Nothing waiting. 🎉` while
    billing had unclaimed conversations."""
    await two_teams(chat)
    await chat.mention("Giulia", "Rimborso?")
    await chat.mention("Marco", "Rimborso!")

    assert await chat.say("luca", "queue", where="support") == (
        "Nothing waiting for support; 2 waiting in billing: `queue all`"
    )
    # someone in no team, outside any team's channel, sees every team's
    assert (await chat.say("luca", "queue", where="general")).splitlines()[0] == "Unclaimed (2):"


async def test_queue_when_nothing_waits_anywhere(chat: Chat) -> None:
    await two_teams(chat)
    await chat.say("ann", "team join support")

    assert await chat.say("ann", "queue") == "Nothing waiting. 🎉"
    assert "Usage:" in await chat.say("ann", "queue everything")


async def test_home_shows_my_teams_first_and_counts_the_others(chat: Chat) -> None:
    await two_teams(chat)
    await chat.say("ann", "team join billing")
    await chat.mention("Giulia", "Rimborso?")
    await chat.mention("Sam", "Parcel late")
    await chat.mention("Lena", "Parcel lost")

    await chat.say("ann", "home")

    [home] = homes(chat, "ann")
    mine, waiting, elsewhere = home.sections
    assert mine.heading == "Claimed by you (0)"
    assert waiting.heading == "Waiting in billing for someone to claim them (1)"
    assert [c.title for c in waiting.cards] == ["#1 · twitter · Giulia (@giulia)"]
    assert elsewhere.heading == "Other teams"
    assert elsewhere.empty == "2 waiting in support: `queue all` lists them."
    assert elsewhere.cards == ()


async def test_team_members_lists_and_sets_the_members(chat: Chat) -> None:
    await two_teams(chat)
    await chat.say("ann", "team join support")

    assert await chat.say("boss", "team members support console:luca console:marta") == (
        "Members of support now: Luca, Marta."
    )
    assert await chat.say("boss", "team members support") == "Members of support: Luca, Marta."
    assert await chat.say("ann", "team join", where="support") == (
        "You are now a member of support: its conversations come first in your queue, "
        "home and reminders."
    )
    assert await chat.say("boss", "team members support none") == (
        "support has no members. `team join support` joins it."
    )
    assert (await chat.say("ann", "team members support")).startswith("Not allowed")

    # an unknown person changes nothing
    chat.platform.unknown.add("nobody")
    await chat.say("boss", "team members billing console:luca")
    answer = await chat.say("boss", "team members billing console:marta console:nobody")
    assert answer.startswith("I can't find `console:nobody`.")
    assert await chat.say("boss", "team members billing") == "Members of billing: Luca."


async def test_members_see_their_teams_queue_in_their_reminder(chat: Chat) -> None:
    monday_nine = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    chat.clock.now = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
    await two_teams(chat)
    await chat.say("ann", "team join billing")
    await chat.say("ann", "commit daily 09:00 30m UTC", where="general")
    await chat.say("luca", "commit daily 09:00 30m UTC", where="general")
    await chat.mention("Giulia", "Rimborso?")
    await chat.mention("Sam", "Parcel late")
    await chat.mention("Lena", "Parcel lost")

    await chat.at(monday_nine)

    ann = reminder_text(chat, "ann").splitlines()
    assert ann[0] == "Unclaimed in billing (1):"
    assert ann[1].startswith("#1 · twitter · Giulia · Open")
    assert ann[2:] == ["Also 2 waiting in support: `queue all`"]
    # Luca belongs to no team and committed outside a team's channel: every team's
    luca = reminder_text(chat, "luca").splitlines()
    assert luca[0] == "Unclaimed (3):"
    assert len(luca) == 4


def reminder_text(chat: Chat, who: str) -> str:
    [text] = [
        d.view.text
        for d in chat.platform.delivered
        if d.kind == "private"
        and d.target == person(who)
        and isinstance(d.view, Card)
        and d.view.title.startswith("Dialogue time")
    ]
    return text


async def test_the_queue_says_what_waits_elsewhere_in_italian_too(chat: Chat) -> None:
    await two_teams(chat)
    await chat.say("ann", "lang it")
    await chat.mention("Giulia", "Rimborso?")

    assert await chat.say("ann", "queue", where="support") == (
        "Niente in attesa per support; 1 in attesa in billing: `queue all`"
    )
    assert await chat.say("ann", "team join") == (
        "Ora fai parte di support: le sue conversazioni vengono prima nella tua coda, "
        "nella tua home e nei promemoria."
    )
