"""`help`: the commands this person may use, in their language."""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import Context
from bot.router import ANYONE, Router


def register(router: Router) -> None:
    async def help_(ctx: Context, args: Sequence[str]) -> None:
        texts = ctx.texts
        lines = [texts.help_header.format(prefix=ctx.prefix)]
        lines += [f"  {texts.usage[spec.name]}" for spec in router.commands_for(ctx.sender.role)]
        lines.append(texts.help_footer)
        ctx.reply("\n".join(lines))

    router.command("help", help_, ANYONE)
