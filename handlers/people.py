"""Finding the person a command names; telling the admins."""

from __future__ import annotations

from collections.abc import Callable

from bot.context import Context
from bot.events import PersonId, platform_of
from bot.messages import Texts
from bot.views import Notice
from storage import people
from storage.models import Person, Role


async def named_person(ctx: Context, ref: str) -> Person | None:
    """The person `ref` names, or None after telling the sender why not.

    Adapters turn their platform's mentions (`<@U1>`, pills, `@ann`) into
    platform-qualified ids, so here a person is always written like `slack:U1`.
    """
    try:
        platform_of(ref)
    except ValueError:
        ctx.reply(ctx.texts.unknown_person.format(person=ref))
        return None
    found = await people.find(ctx.session, ref)
    if found is not None:
        return found
    try:
        return await ctx.directory.ensure(ctx.session, PersonId(ref), ctx.now)
    except LookupError:
        ctx.reply(ctx.texts.unknown_person.format(person=ref))
        return None


async def tell_admins(ctx: Context, words: Callable[[Texts], str]) -> None:
    """Tell every admin privately, each in their own language (`words` picks the text)."""
    for admin in await people.with_role(ctx.session, Role.ADMIN):
        ctx.tell(admin, Notice(words(ctx.texts_of(admin))))
