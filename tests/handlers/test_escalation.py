"""Escalation: a conversation past its team's targets is nudged once, then managers hear.

The clock starts on Monday 2026-11-16 at 09:00 UTC; `chat.at(t)` runs the minute
sweep the scheduler has due at t, as APScheduler does in production.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.views import Notice
from harness import Chat, channel, person
from recording import RecordingPlatform

NINE = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def minutes(n: int) -> datetime:
    return NINE + timedelta(minutes=n)


def notes(platform: RecordingPlatform, where: str = "support") -> list[str]:
    """What Inloop said in the team channel besides cards: notes and their threads."""
    return [d.text for d in platform.everything_in(channel(where)) if isinstance(d.view, Notice)]


async def support(chat: Chat, *, claim: str = "30m", reply: str = "2h") -> None:
    """Team support with targets, Maria its manager, Otto a manager of no team."""
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", f"team target support claim {claim} reply {reply}")
    await chat.say("boss", "role console:maria manager")
    await chat.say("boss", "role console:otto manager")
    await chat.say("maria", "team join support")


async def test_an_unclaimed_conversation_is_nudged_under_its_card_then_its_managers_are_told(
    chat: Chat,
) -> None:
    await support(chat)
    await chat.mention("Giulia", "Il pacco è arrivato rotto")

    await chat.at(minutes(29))
    assert chat.platform.thread_of(1) == []

    await chat.at(minutes(30))
    assert chat.platform.thread_of(1) == [
        "#1 (Giulia, twitter) has waited 30m and nobody has claimed it (target 30m). "
        "Nobody in support is on duty now."
    ]
    await chat.at(minutes(45))
    assert len(chat.platform.thread_of(1)) == 1
    assert "Waiting past" not in "\n".join(chat.platform.private(person("maria")))

    await chat.at(minutes(60))
    assert chat.platform.last_private(person("maria")) == (
        "Waiting past twice their target:\n"
        "#1 in support, Giulia (twitter): unclaimed for 1h (target 30m)"
    )
    # Otto is a manager, but not of support: support has its own
    assert not any("Waiting past" in m for m in chat.platform.private(person("otto")))

    await chat.at(minutes(600))
    assert len(chat.platform.thread_of(1)) == 1
    assert sum("Waiting past" in m for m in chat.platform.private(person("maria"))) == 1


async def test_a_conversation_claimed_replied_or_resolved_in_time_is_never_nudged(
    chat: Chat,
) -> None:
    await support(chat)
    for text in ("uno", "due", "tre"):
        await chat.mention("Giulia", text)
    await chat.at(minutes(20))
    await chat.say("ann", "claim 1")
    await chat.say("ann", "replied 2")
    await chat.say("maria", "resolve 3")
    await chat.at(minutes(100))
    await chat.say("ann", "replied 1")  # within the 2h to reply

    await chat.at(minutes(20 + 60 * 8))

    assert notes(chat.platform) == []
    assert not any("Waiting past" in m for m in chat.platform.private(person("maria")))
    assert not any("Still no reply" in m for m in chat.platform.private(person("ann")))


async def test_an_owner_is_told_privately_when_a_claim_has_no_reply_then_the_managers(
    chat: Chat,
) -> None:
    await support(chat)
    await chat.mention("Giulia", "Il pacco è arrivato rotto")
    await chat.mention("Marco", "Rimborso?")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "claim 2")

    await chat.at(minutes(119))
    assert not any("Still no reply" in m for m in chat.platform.private(person("ann")))
    await chat.at(minutes(120))
    # both crossed in the same minute: one message
    assert chat.platform.last_private(person("ann")) == (
        "Still no reply, past the reply target:\n"
        "#1 Giulia (twitter): waiting for your reply for 2h (target 2h). "
        "Answered? `!inloop replied 1`. Can't? `!inloop release 1`.\n"
        "#2 Marco (twitter): waiting for your reply for 2h (target 2h). "
        "Answered? `!inloop replied 2`. Can't? `!inloop release 2`."
    )
    await chat.say("ann", "replied 2")

    await chat.at(minutes(240))
    assert chat.platform.last_private(person("maria")) == (
        "Waiting past twice their target:\n"
        "#1 in support, Giulia (twitter): claimed by Ann, no reply for 4h (target 2h)"
    )
    await chat.at(minutes(600))
    assert sum("Still no reply" in m for m in chat.platform.private(person("ann"))) == 1
    assert sum("Waiting past" in m for m in chat.platform.private(person("maria"))) == 1


async def test_the_time_to_reply_counts_from_when_the_present_owner_took_it(
    chat: Chat,
) -> None:
    await support(chat)
    await chat.mention("Giulia", "Il pacco è arrivato rotto")
    await chat.mention("Marco", "Rimborso?")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "claim 2")
    await chat.at(minutes(90))
    await chat.say("ann", "release 1")
    await chat.say("bob", "claim 1")
    await chat.say("maria", "reassign 2 console:carol")

    await chat.at(minutes(150))  # 2h30m after Ann's claims, 1h after Bob and Carol took them
    for who in ("ann", "bob", "carol"):
        assert not any("Still no reply" in m for m in chat.platform.private(person(who))), who

    await chat.at(minutes(210))
    assert chat.platform.last_private(person("bob")).startswith(
        "Still no reply, past the reply target:\n"
        "#1 Giulia (twitter): waiting for your reply for 2h (target 2h)."
    )
    assert chat.platform.last_private(person("carol")).startswith(
        "Still no reply, past the reply target:\n"
        "#2 Marco (twitter): waiting for your reply for 2h (target 2h)."
    )


async def test_conversations_crossing_together_are_one_message_in_the_channel(
    chat: Chat,
) -> None:
    await support(chat)
    await chat.say("ann", "team join support")
    await chat.say("ann", "commit daily 09:10 1h UTC")
    for customer in ("Giulia", "Marco", "Sara"):
        await chat.mention(customer, "Aiuto")
    await chat.at(minutes(10))  # Ann's block starts

    await chat.at(minutes(30))

    assert notes(chat.platform) == [
        "3 conversations have waited past their claim target and nobody has claimed them:\n"
        "#1 Giulia (twitter): waited 30m (target 30m)\n"
        "#2 Marco (twitter): waited 30m (target 30m)\n"
        "#3 Sara (twitter): waited 30m (target 30m)\n"
        "On duty now: Ann."
    ]
    # a list in the channel, not a note under each card
    assert [chat.platform.thread_of(n) for n in (1, 2, 3)] == [[], [], []]
    await chat.at(minutes(60))
    [told] = [m for m in chat.platform.private(person("maria")) if "Waiting past" in m]
    assert told.count("unclaimed for 1h") == 3


async def test_only_working_hours_count_towards_a_target(chat: Chat) -> None:
    await support(chat)
    assert await chat.say("boss", "team hours support mon-fri 09:00-18:00 Europe/Rome") == (
        "support: claim within 30m, reply within 2h, counted in working hours only: "
        "weekdays, 09:00–18:00 (Europe/Rome)."
    )
    friday_evening = datetime(2026, 11, 20, 16, 50, tzinfo=UTC)  # 17:50 in Rome
    await chat.at(friday_evening)
    await chat.mention("Giulia", "Il pacco è arrivato rotto")

    for moment in (
        datetime(2026, 11, 20, 17, 30, tzinfo=UTC),  # Friday 18:30 in Rome
        datetime(2026, 11, 22, 12, 0, tzinfo=UTC),  # Sunday
        datetime(2026, 11, 23, 8, 19, tzinfo=UTC),  # Monday 09:19 in Rome
    ):
        await chat.at(moment)
        assert chat.platform.thread_of(1) == [], moment

    await chat.at(datetime(2026, 11, 23, 8, 20, tzinfo=UTC))  # Monday 09:20 in Rome
    assert chat.platform.thread_of(1) == [
        "#1 (Giulia, twitter) has waited 30m and nobody has claimed it (target 30m). "
        "Nobody in support is on duty now."
    ]
    assert await chat.say("maria", "escalations") == (
        "Past their targets now, oldest first (1):\n"
        "#1 in support, Giulia (twitter): unclaimed for 30m (target 30m)"
    )


async def test_who_is_on_duty_is_named_in_the_nudge(chat: Chat) -> None:
    await support(chat)
    for name in ("ann", "bob", "carol"):
        await chat.say(name, "team join support")
    await chat.say("ann", "commit daily 09:20 1h UTC")
    await chat.say("carol", "commit daily 09:20 1h UTC")
    await chat.say("dave", "commit daily 09:20 1h UTC")  # not in support
    await chat.mention("Giulia", "Il pacco è arrivato rotto")
    await chat.at(minutes(20))  # Ann's and Carol's blocks start; #1 is offered to Ann
    await chat.press("ann", "skip", "1")  # Ann skips hers: away from the dialogue

    await chat.at(minutes(30))

    [note] = chat.platform.thread_of(1)
    assert note.endswith("On duty now: Carol.")


async def test_managers_of_a_team_without_any_are_every_manager_else_the_admins(
    chat: Chat,
) -> None:
    await chat.say("boss", "team add support", where="support")
    await chat.say("boss", "team target support claim 10m")
    await chat.mention("Giulia", "Il pacco è arrivato rotto")

    await chat.at(minutes(20))  # no manager at all: the admins hear of it
    assert chat.platform.last_private(person("boss")) == (
        "Waiting past twice their target:\n"
        "#1 in support, Giulia (twitter): unclaimed for 20m (target 10m)"
    )

    await chat.say("boss", "role console:otto manager")  # a manager of no team
    await chat.mention("Marco", "Rimborso?")
    await chat.at(minutes(45))
    assert chat.platform.last_private(person("otto")) == (
        "Waiting past twice their target:\n"
        "#2 in support, Marco (twitter): unclaimed for 25m (target 10m)"
    )


async def test_each_nudge_happens_once_across_a_restart_and_a_second_instance(
    database_url: str,
) -> None:
    first = await Chat(database_url).start()
    await support(first)
    await first.mention("Giulia", "Il pacco è arrivato rotto")
    await first.at(minutes(30))
    await first.stop()

    # Restarted, and a second instance beside it: their sweeps name other minutes.
    again, other = Chat(database_url), Chat(database_url)
    for instance in (again, other):
        instance.clock.now = minutes(30)
        await instance.start()
    try:
        await again.at(minutes(31))
        await other.at(minutes(32))
        await other.at(minutes(60))
        await again.at(minutes(61))

        said = [*first.platform.delivered, *again.platform.delivered, *other.platform.delivered]
        in_thread = [d for d in said if d.kind == "reply"]
        managers = [d for d in said if d.target == person("maria") and "Waiting past" in d.text]
        assert len(in_thread) == 1 and len(managers) == 1
    finally:
        await again.stop()
        await other.stop()


async def test_escalations_lists_what_is_past_its_targets_oldest_first(chat: Chat) -> None:
    await support(chat)
    assert await chat.say("maria", "escalations") == "Nothing is past its targets."
    await chat.mention("Giulia", "uno")
    await chat.at(minutes(10))
    await chat.mention("Marco", "due")
    await chat.say("ann", "claim 1")
    await chat.at(minutes(140))
    await chat.mention("Sara", "tre")  # not past any target yet

    await chat.at(minutes(150))

    assert await chat.say("maria", "escalations") == (
        "Past their targets now, oldest first (2):\n"
        "#1 in support, Giulia (twitter): claimed by Ann, no reply for 2h20m (target 2h)\n"
        "#2 in support, Marco (twitter): unclaimed for 2h20m (target 30m)"
    )
    assert await chat.say("maria", "escalations billing") == (
        "There is no team called billing. Teams: support."
    )
    assert (await chat.say("ann", "escalations")).startswith(
        "Not allowed: `escalations` needs the role manager / admin."
    )


async def test_team_targets_and_hours_as_admins_type_them(chat: Chat) -> None:
    await chat.say("boss", "team add support", where="support")

    assert await chat.say("boss", "team target support") == (
        "support: claim within 1h, reply within 4h, counted around the clock (no working hours)."
    )
    assert await chat.say("boss", "team target support reply 1h30m") == (
        "support: claim within 1h, reply within 1h30m, counted around the clock (no working hours)."
    )
    assert await chat.say("boss", "team hours support fri-mon 22:00-06:00 UTC") == (
        "support: claim within 1h, reply within 1h30m, counted in working hours only: "
        "Mon, Fri, Sat, Sun, 22:00–06:00 (UTC)."
    )
    assert await chat.say("boss", "team hours support always") == (
        "support: claim within 1h, reply within 1h30m, counted around the clock (no working hours)."
    )
    assert (await chat.say("boss", "team target support reply default")).startswith(
        "support: claim within 1h, reply within 4h,"
    )

    refused = await chat.say("boss", "team target support claim 0m")
    assert refused.startswith("`0m` is not a target: write a duration from 1m to 168h")
    assert "Usage:" in refused
    assert (await chat.say("boss", "team hours support mon-fri 9-18 Europe/Rome")).startswith(
        "`9-18` are not working hours: write them like 09:00-18:00"
    )
    assert (await chat.say("boss", "team hours support mon-fri 09:00-09:00 UTC")).startswith(
        "`09:00-09:00` are not working hours"
    )
    assert (await chat.say("boss", "team hours support mon-fri 09:00-18:00 Mars/Base")).startswith(
        "`Mars/Base`"
    )
    assert (await chat.say("boss", "team target sales claim 1h")).startswith(
        "There is no team called sales."
    )
    assert (await chat.say("ann", "team target support claim 1h")).startswith("Not allowed")
    # nothing wrong was kept
    assert (await chat.say("boss", "team target support")).startswith(
        "support: claim within 1h, reply within 4h, counted around the clock"
    )


async def test_targets_and_nudges_in_italian(chat: Chat) -> None:
    await support(chat)
    await chat.say("maria", "lang it")
    await chat.say("boss", "lang it")
    assert await chat.say("boss", "team hours support lun-ven 09:00-18:00 Europe/Rome") == (
        "support: presa in carico entro 30m, risposta entro 2h, contando solo l'orario di "
        "lavoro: dal lunedì al venerdì, 09:00–18:00 (Europe/Rome)."
    )
    await chat.mention("Giulia", "Il pacco è arrivato rotto")

    await chat.at(minutes(60))

    assert chat.platform.last_private(person("maria")) == (
        "In attesa oltre il doppio dell'obiettivo:\n"
        "#1 in support, Giulia (twitter): non presa in carico da 1h (obiettivo 30m)"
    )


async def test_a_long_list_names_twenty_and_counts_the_rest(chat: Chat) -> None:
    await support(chat)
    for n in range(25):
        await chat.mention(f"Cliente{n}", "Aiuto")

    await chat.at(minutes(30))

    [note] = notes(chat.platform)
    lines = note.splitlines()
    assert lines[0].startswith("25 conversations have waited past their claim target")
    assert lines[1] == "#1 Cliente0 (twitter): waited 30m (target 30m)"
    assert lines[20] == "#20 Cliente19 (twitter): waited 30m (target 30m)"
    assert lines[21:] == ["…and 5 more.", "Nobody in support is on duty now."]
