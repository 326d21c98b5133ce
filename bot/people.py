"""People as Inloop knows them: platform identities with a role and a language."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import PLATFORMS
from bot.events import PersonId, local_part
from bot.messages import language_of
from bot.platform import PersonInfo
from storage.database import Database, wait_in
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


#: a Slack user mention as Slack writes it in a command: `<@U123>` or `<@U123|ann>`
_SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]+")
#: a Matrix user id: @localpart:server (the server may carry a port)
_MATRIX_USER = re.compile(r"@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::[0-9]{1,5})?", re.IGNORECASE)
#: a console name, as `/as NAME` takes it
_CONSOLE_NAME = re.compile(r"[\w.-]{1,40}")
#: words that ping everyone in a place (Slack, Matrix, common usage): never a person,
#: even on the console, where `@here` would otherwise be a bare name
MASS_MENTIONS = frozenset({"here", "channel", "everyone", "room"})
#: a Slack special mention as Slack writes it in a command: `<!here>`, `<!channel|@channel>`
_SLACK_SPECIAL = re.compile(r"<!([a-z]+)(?:\|[^>]*)?>", re.IGNORECASE)


def is_mass_mention(word: str) -> bool:
    """`@here`, `@channel`, `@everyone`, `@room` (any case) or Slack's `<!here>` forms."""
    text = word.strip()
    if (special := _SLACK_SPECIAL.fullmatch(text)) is not None:
        return special[1].lower() in MASS_MENTIONS
    return text.startswith("@") and text[1:].lower() in MASS_MENTIONS


def written_ref(written: str, platform: str) -> PersonId | None:
    """The person a command argument names, as a platform-qualified id; None when it is
    no way of writing a person. `platform` is the writer's: a bare name is one of theirs.

    The one rule for every command that takes a person (README, "Naming people"):

        console   luca  @luca  console:luca  @console:luca      → console:luca
        Slack     <@U123>  <@U123|ann>  slack:U123  @slack:U123  → slack:U123
        Matrix    @ann:example.org (a pill is the same)  matrix:@ann:example.org

    A platform's name before the colon wins over a Matrix id that looks alike
    (`@console:luca` is the console's luca, not a user of a server called luca).
    A mass mention (`@here`, `<!channel>` …) is nobody, even where a bare name is someone.
    """
    text = written.strip()
    if is_mass_mention(text):
        return None
    if (mention := _SLACK_MENTION.fullmatch(text)) is not None:
        return PersonId(f"slack:{mention[1]}")
    bare = text.removeprefix("@")
    head, colon, rest = bare.partition(":")
    if colon and head.lower() in PLATFORMS:
        return _qualified(head.lower(), rest)
    if _MATRIX_USER.fullmatch(text):
        return PersonId(f"matrix:{text}")
    if platform == "console" and not colon:
        return _qualified("console", bare)
    return None


def _qualified(platform: str, local: str) -> PersonId | None:
    if platform == "console" and _CONSOLE_NAME.fullmatch(local):
        return PersonId(f"console:{local.lower()}")  # the console's names are lower case
    if platform == "slack" and _SLACK_USER.fullmatch(local):
        return PersonId(f"slack:{local}")
    if platform == "matrix" and _MATRIX_USER.fullmatch(local):
        return PersonId(f"matrix:{local}")
    return None


def writes_a_person(word: str) -> bool:
    """Whether `word` is written as a person, not as a word of free text: with `@`, as a
    Slack mention or platform-qualified (a bare `luca` at the end of a question is a word).
    A mass mention (`@here`, `<!channel>` …) is a word of the text, never a person."""
    if is_mass_mention(word):
        return False
    head = word.removeprefix("@").partition(":")
    return word.startswith(("@", "<@")) or (bool(head[1]) and head[0].lower() in PLATFORMS)


@dataclass(frozen=True)
class Directory:
    """Finds or creates the Person row for a platform identity."""

    lookup: Lookup
    admins: frozenset[PersonId]
    default_language: str
    #: people this process knows have a row (only an erased customer's is ever deleted,
    #: and `named` finds them gone and asks their platform again)
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
        """The row of someone who acts (a sender) or whom the settings name (an admin):
        they exist, even when their platform knows nothing of them (a console admin of
        INLOOP_ADMINS nobody has been yet)."""
        found = await self.named(session, ref, now)
        if found is None:
            unknown = PersonInfo(display_name=local_part(ref), is_staff=False)
            found = await self._add(session, ref, unknown, now)
        return found

    async def named(self, session: AsyncSession, ref: PersonId, now: datetime) -> Person | None:
        """The row of someone a command names; None when nobody knows them. A person
        Inloop has not met is asked of their platform first (Slack `users.info`, the
        Matrix profile, the console's personas): a typo never becomes a person."""
        person = await find(session, ref)
        if person is not None:
            self._known.add(ref)
            return person
        info = self._fetched.pop(ref, None)
        try:
            if info is None:
                # the one wait inside a transaction: longer than its usual idle bound
                await wait_in(session)
                info = await self.lookup(ref)
        except LookupError:
            return None
        return await self._add(session, ref, info, now)

    async def _add(
        self, session: AsyncSession, ref: PersonId, info: PersonInfo, now: datetime
    ) -> Person:
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
