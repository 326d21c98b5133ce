"""What a handler gets: the transaction, the person, their language, and the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.events import ChannelId, PersonId, platform_of
from bot.messages import Texts, texts_for
from bot.outbox import OutboxWriter
from bot.people import Directory
from bot.views import Notice, View
from storage.models import Person


@dataclass(frozen=True)
class Context:
    session: AsyncSession
    out: OutboxWriter
    directory: Directory
    now: datetime
    #: the language of shared views (cards in team channels)
    channel_language: str
    #: who acted, and where; None for events with no chat sender (intake)
    person: Person | None = None
    channel: ChannelId | None = None
    #: how commands are written on the sender's platform, e.g. "!inloop"
    prefix: str = "!inloop"
    #: how commands are written on each platform, for views read by someone else
    prefixes: Mapping[str, str] = field(default_factory=dict)
    #: the command as typed, after the prefix (free text keeps its line breaks)
    command_text: str = ""
    #: what the command's prepare step returned, before the transaction (bot/router.py)
    prepared: object = None
    #: the time zone of times on shared views (a card's "offered to marta until 10:45")
    channel_timezone: str = "UTC"

    @property
    def sender(self) -> Person:
        assert self.person is not None, "this event has no sender"
        return self.person

    @property
    def texts(self) -> Texts:
        """The sender's language (or the channel language when nobody sent the event)."""
        if self.person is None:
            return texts_for(self.channel_language)
        return texts_for(self.directory.language(self.person))

    @property
    def channel_texts(self) -> Texts:
        return texts_for(self.channel_language)

    def as_sender(self, person: Person) -> Context:
        """The same unit of work, acting for `person` (listeners resolve senders lazily)."""
        return replace(self, person=person)

    def prefix_on(self, ref: str) -> str:
        """How the reader `ref` (a person or a channel) writes commands on their platform."""
        return prefix_on(self.prefixes, platform_of(ref))

    def texts_of(self, person: Person) -> Texts:
        return texts_for(self.directory.language(person))

    def reply(self, text: str) -> None:
        """Answer the sender privately, where they spoke (ephemeral in Slack, a DM in
        Matrix): help, lists, errors in what they typed."""
        self.out.tell(PersonId(self.sender.ref), Notice(text), self.channel)

    def report(self, text: str) -> None:
        """Tell the sender what became of what they did to a conversation (claimed,
        already claimed by someone else, resolved…): in their DM with the app on every
        platform, Slack included, where it stays as a record of their conversations.
        A DM carries its outbox key, so an instance taking the answer over after a
        crash finds it instead of showing it twice, which Slack's ephemeral messages
        cannot offer (Slack keeps no copy of them to look up)."""
        self.out.tell(PersonId(self.sender.ref), Notice(text))

    def tell(self, person: Person, view: View) -> None:
        """Tell someone else privately; the view reaches their own platform."""
        self.out.tell(PersonId(person.ref), view)


def prefix_on(prefixes: Mapping[str, str], platform: str) -> str:
    """How commands are written on `platform` ("/inloop" on Slack); the console's way
    where a platform says nothing."""
    return prefixes.get(platform, "!inloop")
