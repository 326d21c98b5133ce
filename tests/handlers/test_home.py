"""`home`: a person's own overview (Slack shows it as the Home tab)."""

from __future__ import annotations

from bot.views import Home
from harness import Chat, person


async def test_home_shows_what_i_claimed_and_what_waits(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "first")
    await chat.mention("Marco", "second")
    await chat.say("ann", "claim 1")

    await chat.say("ann", "home")

    (home,) = [d.view for d in chat.platform.delivered if isinstance(d.view, Home)]
    mine, waiting = home.sections
    assert mine.heading == "Claimed by you (1)"
    assert [c.title for c in mine.cards] == ["#1 · twitter · Giulia (@giulia)"]
    assert waiting.heading == "Waiting for someone to claim them (1)"
    assert [b.action for b in waiting.cards[0].buttons] == ["claim"]
    # it went to Ann alone, as her own page
    assert [d.target for d in chat.platform.delivered if d.view is home] == [person("ann")]


async def test_home_for_someone_without_a_role_explains_instead(chat: Chat) -> None:
    chat.platform.guests.add("giulia")

    await chat.say("giulia", "home")

    (home,) = [d.view for d in chat.platform.delivered if isinstance(d.view, Home)]
    assert "Ask an admin for a role" in home.sections[0].heading
    assert all(not s.cards for s in home.sections)
