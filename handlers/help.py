"""`help [COMMAND]`: the commands this person may use, or how to use one, in their language."""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import Context
from bot.messages import Texts
from bot.router import ANYONE, Router, not_allowed
from storage.models import Role


def register(router: Router) -> None:
    async def help_(ctx: Context, args: Sequence[str]) -> None:
        texts = ctx.texts
        mine = [spec.name for spec in router.commands_for(ctx.sender.role)]
        note = ""
        if args:
            asked = _asked(args, ctx.prefix)
            names = named(asked, list(texts.usage))
            if names:
                ctx.reply(_usage(ctx, texts, names, mine, router))
                return
            note = texts.help_unknown.format(command=asked)
        lines = [note] if note else []
        lines.append(texts.help_header.format(prefix=ctx.prefix))
        lines += [f"  {texts.usage[name]}" for name in mine]
        footer = _footer(texts, mine)
        if footer:
            lines.append(footer)
        ctx.reply("\n".join(lines))

    router.command("help", help_, ANYONE)


def named(asked: str, names: Sequence[str]) -> list[str]:
    """The commands `asked` names, matched the way the router matches what people type:
    `team add` → that one; `claim 3` → claim; `team` → every `team …` command."""
    words = asked.lower().split()
    if not words:
        return []
    if len(words) > 1 and (pair := f"{words[0]} {words[1]}") in names:
        return [pair]
    if words[0] in names:
        return [words[0]]
    return [name for name in names if name.split()[0] == words[0]]


def _footer(texts: Texts, mine: Sequence[str]) -> str:
    """How to name what the reader works on, with an example they may run themselves."""
    if "claim" in mine:
        return texts.help_footer
    if "take" in mine:
        return texts.help_footer_consultant
    return ""  # no role yet: nothing to name


def _asked(args: Sequence[str], prefix: str) -> str:
    """What follows `help`, without a typed prefix (`help !inloop claim`)."""
    words = list(args)
    if words and words[0].lower() == prefix.lower():
        words = words[1:]
    return " ".join(words)


def _usage(ctx: Context, texts: Texts, names: list[str], mine: list[str], router: Router) -> str:
    lines = [texts.usage_intro, *(f"{ctx.prefix} {texts.usage[name]}" for name in names)]
    roles = _roles_of(router).get(names[0])
    if roles is not None and not any(name in mine for name in names):
        # Say so now rather than when they try: their role may not run it.
        lines.append(not_allowed(texts, names[0], roles, ctx.sender.role))
    return "\n".join(lines)


def _roles_of(router: Router) -> dict[str, frozenset[str]]:
    """Who may run each command (the router lists the commands role by role)."""
    found: dict[str, frozenset[str]] = {}
    for role in (None, *Role):
        for spec in router.commands_for(role):
            found[spec.name] = spec.roles
    return found
