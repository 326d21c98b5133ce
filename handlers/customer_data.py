"""The customer's rights over their data (issue 15 §4), for admins.

- `customer export REF`: everything Inloop holds about the customer, as a JSON file
  sent privately (on the console, a file in the files folder, like charts).
- `customer erase REF`: says what would be erased and how to confirm;
  `customer erase REF confirm` erases it (storage.customer_data), and every card
  already posted is edited to say so.
- RETENTION_DAYS: a daily job erases, the same way, the conversations resolved
  longer ago than that.

`erase` here is the one path all of them take (the CLI's `inloop customer erase` too,
through bot/app.py): the same statements, the same card edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement

from bot.context import Context
from bot.events import ChannelId, Tick
from bot.people import ADMINS
from bot.router import Router, UsageError
from bot.views import Attachment
from handlers import card
from handlers.customers import Named, named_customer, written_refs
from handlers.text import one_line
from storage import conversations
from storage import customer_data as stored
from storage.customer_data import Erasure

#: the scheduler's name for the daily retention job
RETENTION_SWEEP = "customer-retention"
#: the hour (UTC) the retention job runs every day: a quiet one
RETENTION_HOUR = 3
#: the audit action of an export (one entry, on no conversation)
EXPORTED = "exported"
#: what confirms an erasure, in either language
_CONFIRM = frozenset({"confirm", "conferma"})


@dataclass(frozen=True)
class Retention:
    """RETENTION_DAYS: customer texts of conversations resolved longer ago than this
    are erased, daily; None keeps them for ever."""

    days: int | None = None


def register(router: Router, retention: Retention) -> None:
    async def on_tick(ctx: Context, event: Tick) -> None:
        if event.name == RETENTION_SWEEP and retention.days is not None:
            await erase_expired(ctx, retention.days)

    router.command("customer export", export, ADMINS)
    router.command("customer erase", erase_command, ADMINS)
    router.on(Tick, on_tick)


def daily_after(moment: datetime) -> datetime:
    """The next RETENTION_HOUR:00 (UTC) after `moment`: every instance names the same."""
    today = moment.replace(hour=RETENTION_HOUR, minute=0, second=0, microsecond=0)
    return today if today > moment else today + timedelta(days=1)


# -- the one erasure ----------------------------------------------------------------------


async def erase(
    ctx: Context,
    where: ColumnElement[bool],
    *,
    action: str,
    customer_id: int | None = None,
) -> Erasure:
    """Erase what `where` chooses (storage.customer_data) and edit every card already
    posted to say so, in one statement, whatever their number."""
    actor = ctx.person.id if ctx.person is not None else None
    done = await stored.erase(
        ctx.session, where, ctx.now, actor_id=actor, action=action, customer_id=customer_id
    )
    texts = ctx.channel_texts
    await ctx.out.update_cards(
        [
            (ChannelId(channel), card.erased(texts, number, source), number)
            for number, channel, source in done.cards
        ]
    )
    return done


async def erase_expired(ctx: Context, days: int) -> Erasure:
    """RETENTION_DAYS' daily run: conversations resolved more than `days` ago."""
    return await erase(
        ctx, stored.resolved_before(ctx.now - timedelta(days=days)), action=stored.RETENTION_ERASED
    )


async def erase_customer(ctx: Context, customer_id: int) -> Erasure:
    """At the customer's request (`customer erase REF confirm`, `inloop customer erase`)."""
    return await erase(
        ctx, stored.of_customer(customer_id), action=stored.ERASED, customer_id=customer_id
    )


# -- commands ---------------------------------------------------------------------------------


def _label(ctx: Context, named: Named, ref: str) -> str:
    """How the answer names the customer: the identity named, else as written."""
    identity = named.identity
    if identity is None:
        return one_line(ref)
    return one_line(f"{identity.source}:{identity.handle}", 120)


async def export(ctx: Context, args: Sequence[str]) -> None:
    refs = written_refs(ctx, args)
    if len(refs) != 1:
        raise UsageError()
    named = await named_customer(ctx, refs[0])
    if named is None:
        return
    me, texts = ctx.sender, ctx.texts
    data = await stored.export(ctx.session, named.customer_id, ctx.now)
    label = _label(ctx, named, refs[0])
    # Who read a customer's data out, and when (the entry itself holds none of it).
    conversations.audit(
        ctx.session, None, me.id, EXPORTED, ctx.now, detail=f"customer {named.customer_id}"
    )
    ctx.reply(
        texts.customer_export_ready.format(
            customer=label,
            identities=len(data["identities"]),
            conversations=len(data["conversations"]),
            mentions=len(data["mentions"]),
            advice=len(data["advice"]),
        )
    )
    ctx.tell(
        me,
        Attachment(
            texts.customer_export_title.format(customer=label),
            f"inloop-customer-{named.customer_id}.json",
            stored.as_json(data),
        ),
    )


async def erase_command(ctx: Context, args: Sequence[str]) -> None:
    refs = written_refs(ctx, args)
    confirmed = len(refs) == 2 and refs[1].casefold() in _CONFIRM
    if len(refs) != (2 if confirmed else 1):
        raise UsageError()
    named = await named_customer(ctx, refs[0])
    if named is None:
        return
    texts = ctx.texts
    label = _label(ctx, named, refs[0])
    if not confirmed:
        held = await stored.held(ctx.session, named.customer_id)
        ref = f'"{refs[0]}"' if any(c.isspace() for c in refs[0]) else refs[0]
        ctx.reply(
            "\n".join(
                [
                    texts.customer_erase_preview.format(
                        customer=label,
                        identities=one_line(", ".join(held.identities) or "—", 300),
                        conversations=held.conversations,
                        mentions=held.mentions,
                        advice=held.advice,
                    ),
                    texts.customer_erase_how.format(
                        command=f"{ctx.prefix} customer erase {one_line(ref)} confirm"
                    ),
                ]
            )
        )
        return
    done = await erase_customer(ctx, named.customer_id)
    ctx.reply(
        texts.customer_erased.format(
            identities=done.identities,
            conversations=done.conversations,
            mentions=done.mentions,
        )
    )


__all__ = [
    "RETENTION_SWEEP",
    "Retention",
    "daily_after",
    "erase",
    "erase_customer",
    "erase_expired",
    "register",
]
