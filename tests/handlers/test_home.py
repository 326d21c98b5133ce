"""`home`: a person's own overview (Slack shows it as the Home tab)."""

from __future__ import annotations

from bot.views import Home
from harness import Chat, person
from recording import field_value


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
    # where there are no forms, the page says what to type to commit time
    assert [b.command for b in home.buttons] == ["!inloop commit DAYS HH:MM DURATION [TZ]"]
    # it went to Ann alone, as her own page
    assert [d.target for d in chat.platform.delivered if d.view is home] == [person("ann")]


async def test_home_for_someone_without_a_role_explains_instead(chat: Chat) -> None:
    chat.platform.guests.add("giulia")

    await chat.say("giulia", "home")

    (home,) = [d.view for d in chat.platform.delivered if isinstance(d.view, Home)]
    assert "Ask an admin for a role" in home.sections[0].heading
    assert all(not s.cards for s in home.sections)


async def test_a_consultant_s_home_shows_the_advice_asked_of_them(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.say("boss", "role console:expert consultant")
    await chat.mention("Giulia", "Il rimborso non arriva")
    await chat.mention("Marco", "Altro problema")  # nobody asks about this one
    await chat.say("ann", "claim 1")
    await chat.say("ann", "ask 1 Rimborso senza ricevuta? console:expert")

    await chat.say("expert", "home")

    (home,) = [d.view for d in chat.platform.delivered if isinstance(d.view, Home)]
    assert home.title == "Inloop — the advice asked of you"
    (asked,) = home.sections
    assert asked.heading == "Advice requests for you (1)"
    (request,) = asked.cards
    assert request.title == "Advice wanted: 1-A1 · twitter · Giulia"
    assert field_value(request, "Status") == "for you"
    assert field_value(request, "Asked by") == "Ann"
    assert field_value(request, "Question") == "Rimborso senza ricevuta?"
    assert "Altro problema" not in request.text  # only what they were asked about
    assert "Ask an admin for a role" not in chat.platform.delivered[-1].text


async def test_a_consultant_with_nothing_asked_is_told_what_will_show(chat: Chat) -> None:
    await chat.say("boss", "role console:expert consultant")
    await chat.say("expert", "lang it")

    await chat.say("expert", "home")

    (home,) = [d.view for d in chat.platform.delivered if isinstance(d.view, Home)]
    assert home.title == "Inloop — i consigli chiesti a te"
    assert home.sections[0].heading == "Richieste di consiglio per te (0)"
    assert home.sections[0].empty.startswith("Nessuna richiesta di consiglio aperta per te.")
