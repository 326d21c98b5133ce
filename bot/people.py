"""People as Inloop knows them: platform identities with a role and a language."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.events import PersonId, local_part
from bot.messages import language_of
from bot.platform import PersonInfo
from storage.database import Database
from storage.models import Person, Role
from storage.people import find

#: asks the person's platform who they are (Slack users.info, Matrix profile, console)
Lookup = Callable[[PersonId], Awaitable[PersonInfo]]

#: platform answers `prepare` keeps for people it has not met in a transaction yet
FETCHED_MEMORY = 10_000

#: who may own conversations
STAFF = frozenset({Role.EMPLOYEE, Role.MANAGER, Role.ADMIN})
MANAGERS = frozenset({Role.MANAGER, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class Directory:
    """Finds or creates the Person row for a platform identity."""

    lookup: Lookup
    admins: frozenset[PersonId]
    default_language: str
    #: people this process knows have a row (rows are never deleted)
    _known: set[PersonId] = field(default_factory=set, init=False, repr=False, compare=False)
    #: what the platform said of people met for the first time, asked by `prepare`
    _fetched: dict[PersonId, PersonInfo] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    async def prepare(self, db: Database, ref: PersonId) -> None:
        """Ask the platform about someone new now, before the caller's write transaction:
        a lookup there (a Slack `users.info` waiting out a 429) would stall every writer.
        Known people cost a set lookup; the first sight of one, a read."""
        if ref in self._known or ref in self._fetched:
            return
        async with db.read() as session:
            if await find(session, ref) is not None:
                self._known.add(ref)
                return
        if len(self._fetched) >= FETCHED_MEMORY:
            self._fetched.clear()  # people seen once in a channel nobody watches
        with contextlib.suppress(Exception):  # `ensure` asks again, and reports it
            self._fetched[ref] = await self.lookup(ref)

    async def ensure(self, session: AsyncSession, ref: PersonId, now: datetime) -> Person:
        person = await find(session, ref)
        if person is not None:
            self._known.add(ref)
            return person
        info = self._fetched.pop(ref, None) or await self.lookup(ref)
        person = Person(
            ref=ref,
            display_name=info.display_name or local_part(ref),
            role=self._default_role(ref, info),
            locale=info.locale,
            timezone=info.timezone,
            created_at=now,
        )
        try:
            # Two first events of one person at once (a Slack burst) both get here:
            # the loser of the insert takes the winner's row instead of failing.
            async with session.begin_nested():
                session.add(person)
                await session.flush()
        except IntegrityError:
            found = await find(session, ref)
            if found is None:
                raise
            return found
        return person

    async def promote_admins(self, session: AsyncSession, now: datetime) -> None:
        """`INLOOP_ADMINS` are admins at every start, whatever the database says."""
        for ref in sorted(self.admins):
            person = await self.ensure(session, ref, now)
            person.role = Role.ADMIN

    def language(self, person: Person) -> str:
        return language_of(person.language, person.locale, self.default_language)

    def _default_role(self, ref: PersonId, info: PersonInfo) -> str | None:
        # Full members of the company's own workspace or server are employees;
        # guests and people of other servers are customers until an admin decides.
        if ref in self.admins:
            return Role.ADMIN
        return Role.EMPLOYEE if info.is_staff else None


def is_staff(person: Person) -> bool:
    return person.role in STAFF


def is_manager(person: Person) -> bool:
    return person.role in MANAGERS
