"""The scheduler's own duties: APScheduler drives the passes on real time, and a pass
the database refuses goes to the error hook and is tried again, not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.clock import utc_now
from bot.events import Event, SessionDue
from bot.scheduler import Scheduler
from harness import eventually
from storage.database import Database
from storage.migrate import upgrade
from storage.models import Commitment, DialogueSession, Person


class FlakySink:
    """Refuses the first batch, as a database that is briefly away would."""

    def __init__(self) -> None:
        self.calls = 0
        self.taken: list[Event] = []

    async def handle_many(self, events: Sequence[Event]) -> list[bool]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database is away")
        self.taken += events
        return [True] * len(events)


async def test_a_refused_pass_is_reported_and_retried_by_the_timer(database_url: str) -> None:
    db = Database(database_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            person = Person(ref="console:ann", display_name="Ann", created_at=now)
            session.add(person)
            await session.flush()
            assert person.id is not None
            commitment = Commitment(
                person_id=person.id,
                days="1,2,3,4,5,6,7",
                start="09:00",
                minutes=30,
                timezone="UTC",
                created_at=now,
            )
            session.add(commitment)
            await session.flush()
            session.add(
                DialogueSession(
                    commitment_id=commitment.id,
                    person_id=person.id,
                    occurrence_start=now - timedelta(minutes=30),
                    ends_at=now,
                    outcome="reminded",
                    minutes_planned=30,
                    next_at=now,  # its check-in is due
                    created_at=now,
                    updated_at=now,
                )
            )
        errors: list[tuple[BaseException, str]] = []
        sink = FlakySink()
        scheduler = Scheduler(
            db, utc_now, lambda exc, where: errors.append((exc, where)), poll_seconds=0.05
        )
        await scheduler.start(sink)
        try:
            assert len(errors) == 1  # the pass at start was refused, and reported
            assert isinstance(errors[0][0], ConnectionError)
            assert errors[0][1] == "scheduler: 1 due events"
            await eventually(lambda: bool(sink.taken), within=5)  # APScheduler's poll
            # (this sink leaves the row due, so later passes fire it again: the
            # router's dedup by event id is what makes that harmless)
            due = sink.taken[0]
            assert isinstance(due, SessionDue)
            assert due.at == now
            assert {e.event_id for e in sink.taken} == {due.event_id}
            assert scheduler.timers == 1  # the commitment's next block is timed
        finally:
            await scheduler.stop()
            await asyncio.sleep(0)
    finally:
        await db.dispose()
