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
from handlers.queue import focus_of
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
        # Their teams' waiting conversations (every team's if they belong to none),
        # and how many wait in the other teams.
        focus = await focus_of(ctx, me.id)
        waiting, total = await conversations.unclaimed(ctx.session, focus.team_ids, HOME_LIMIT)
        elsewhere = focus.elsewhere_text(texts)
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
                    texts.home_unclaimed_teams.format(teams=focus.names(), count=total)
                    if focus.teams
                    else texts.home_unclaimed.format(count=total),
                    tuple([await card.render(ctx, c) for c in waiting]),
                    texts.home_unclaimed_empty,
                ),
                *(
                    [
                        HomeSection(
                            texts.home_elsewhere,
                            empty=texts.home_elsewhere_text.format(elsewhere=elsewhere),
                        )
                    ]
                    if elsewhere
                    else []
                ),
            ),
        )
    # No context channel: the overview is the person's own page, not an ephemeral reply.
    ctx.out.tell(PersonId(me.ref), view)
