"""`home`: a person's overview — what they claimed, what waits for someone; for a
consultant, the advice asked of them.

Slack shows it as the App Home tab (the adapter asks for it when the tab is
opened); elsewhere it arrives as a private message.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import Context
from bot.events import PersonId
from bot.people import is_staff
from bot.router import ANYONE, Router, UsageError
from bot.views import Button, Home, HomeSection
from handlers import advice, card
from storage import conversations
from storage.models import Role

#: cards per section: the Home tab stays readable (and within Slack's 100 blocks)
HOME_LIMIT = 10


def register(router: Router) -> None:
    router.command("home", home, ANYONE)


async def home(ctx: Context, args: Sequence[str]) -> None:
    if args:
        raise UsageError()
    texts, me = ctx.texts, ctx.sender
    if me.role == Role.CONSULTANT:
        asked, total = await advice.asked_of_me(ctx, HOME_LIMIT)
        section = HomeSection(
            texts.home_advice.format(count=total), tuple(asked), texts.home_advice_empty
        )
        view = Home(texts.home_title_consultant, (section,))
    elif not is_staff(me) or me.id is None:
        view = Home(texts.home_title, (HomeSection(texts.home_not_staff),))
    else:
        mine = await conversations.owned_by(ctx.session, me.id)
        # Teams have no member lists: everybody on staff sees every team's waiting queue.
        waiting, total = await conversations.unclaimed(ctx.session, None, HOME_LIMIT)
        commit = Button(
            texts.button_commit,
            "commit",
            "",
            command=f"{ctx.prefix} commit {texts.form_commit_placeholder}",
            form="commit",
        )
        view = Home(
            texts.home_title,
            buttons=(commit,),
            sections=(
                HomeSection(
                    texts.home_mine.format(count=len(mine)),
                    tuple([await card.render(ctx, c) for c in mine[:HOME_LIMIT]]),
                    texts.home_mine_empty,
                ),
                HomeSection(
                    texts.home_unclaimed.format(count=total),
                    tuple([await card.render(ctx, c) for c in waiting]),
                    texts.home_unclaimed_empty,
                ),
            ),
        )
    # No context channel: the overview is the person's own page, not an ephemeral reply.
    ctx.out.tell(PersonId(me.ref), view)
