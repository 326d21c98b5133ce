"""Finding the person a command names; telling the admins."""

from __future__ import annotations

from collections.abc import Callable

from bot.context import Context
from bot.events import platform_of
from bot.messages import Texts
from bot.people import written_ref
from bot.views import Notice
from handlers.text import one_line
from storage import people
from storage.models import Person, Role


async def named_person(ctx: Context, written: str) -> Person | None:
    """The person a command argument names, or None after telling the sender why not.

    Adapters leave commands as typed; this is the one place where what a person wrote
    (`luca`, `@luca`, `<@U1|ann>`, `@ann:example.org`, `console:luca` …) becomes a
    person, by the rule of `bot.people.written_ref`. Someone Inloop has never met is
    asked of their platform; nobody known is refused, and never created.
    """
    ref = written_ref(written, platform_of(ctx.sender.ref))
    found = None if ref is None else await ctx.directory.named(ctx.session, ref, ctx.now)
    if found is None:
        ctx.reply(ctx.texts.unknown_person.format(person=one_line(written, 80)))
    return found


async def tell_admins(ctx: Context, words: Callable[[Texts], str]) -> None:
    """Tell every admin privately, each in their own language (`words` picks the text)."""
    for admin in await people.with_role(ctx.session, Role.ADMIN):
        ctx.tell(admin, Notice(words(ctx.texts_of(admin))))
