"""Cards, notices and the Home tab reach Slack exactly as slack_sdk's block objects made them.

`bot/platforms/slack/translate.py` builds these messages as plain dicts (slack_sdk's
objects and their `to_dict()` cost a card more than its share of the routing
transaction). What Slack receives must not change: the oracle here is the translation
as it was, built with `slack_sdk.models` and `to_dict()`, and the JSON of both is
compared byte for byte (key order included) on generated views: customer text with
Slack's control characters, texts at and over every limit, empty values, forms.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.platforms.slack import translate as tr
from bot.views import Button, Card, Field, Home, HomeSection, Notice, view_from_dict, view_to_dict

LABELS = tr.Labels(show_full="Show full text", full_text_title="Full text", close="Close")

# -- the oracle: the translation as it was (slack_sdk objects, `to_dict()`) ------------------


def _plain(text: str, limit: int = tr.SECTION_TEXT_LIMIT) -> PlainTextObject:
    return PlainTextObject(text=tr.escape(tr._fit(text, limit)[0]) or " ", emoji=False)


def _button(button: Button) -> ButtonElement:
    return ButtonElement(
        text=_plain(button.label, tr.BUTTON_LABEL_LIMIT),
        action_id=f"{tr.FORM_OPEN_PREFIX}{button.form}"
        if button.form
        else f"{tr.ACTION_PREFIX}{button.action}",
        value=button.value[:2000],
        style=None if button.style == "default" else button.style,
    )


def sdk_card(card: Card, labels: Any) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text=_plain(card.title, tr.HEADER_LIMIT))]
    if card.fields:
        blocks.append(
            SectionBlock(
                fields=[_plain(f"{f.label}\n{f.value}", tr.FIELD_LIMIT) for f in card.fields[:10]]
            )
        )
    trimmed = False
    if card.text.strip():
        text, trimmed = tr._fit(card.text, tr.SECTION_TEXT_LIMIT)
        blocks.append(SectionBlock(text=_plain(text)))
    notes: list[PlainTextObject | MarkdownTextObject] = []
    if card.link:
        notes.append(MarkdownTextObject(text=tr.link_markup(card.link), verbatim=True))
    if card.more:
        notes.append(_plain(card.more, 1000))
    if notes:
        blocks.append(ContextBlock(elements=notes))
    buttons = [_button(b) for b in card.buttons[:24]]
    if (trimmed or card.more) and card.show:
        buttons.append(
            ButtonElement(
                text=_plain(labels.show_full, tr.BUTTON_LABEL_LIMIT),
                action_id=tr.SHOW_FULL,
                value=card.show[:2000],
            )
        )
    if buttons:
        first = card.buttons[0].value if card.buttons else ""
        block_id = f"inloop_card_{card.show or first}"
        blocks.append(ActionsBlock(block_id=block_id[:255], elements=buttons))
    return blocks[: tr.MESSAGE_BLOCKS_LIMIT]


def sdk_notice(notice: Notice) -> list[Block]:
    step = tr.SECTION_TEXT_LIMIT // 5
    chunks, size = [""], 0
    for n, line in enumerate(notice.text.splitlines() or [""]):
        for i in range(0, max(len(line), 1), step):
            piece = ("\n" if n and not i else "") + line[i : i + step]
            grown = len(tr.escape(piece))
            if size + grown > tr.SECTION_TEXT_LIMIT:
                piece, grown = piece.removeprefix("\n"), len(tr.escape(piece.removeprefix("\n")))
                chunks.append("")
                size = 0
            chunks[-1] += piece
            size += grown
    sections: list[Block] = [SectionBlock(text=_plain(chunk)) for chunk in chunks]
    return sections[: tr.MESSAGE_BLOCKS_LIMIT]


def sdk_home(home: Home, labels: Any) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text=_plain(home.title, tr.HEADER_LIMIT))]
    if home.buttons:
        blocks.append(ActionsBlock(elements=[_button(b) for b in home.buttons]))
    for section in home.sections:
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*{tr.escape(section.heading)}*")))
        if not section.cards:
            blocks.append(ContextBlock(elements=[_plain(section.empty or "—")]))
        for card in section.cards[: tr.HOME_CARDS_LIMIT]:
            blocks.extend(sdk_card(card, labels))
    return blocks[: tr.VIEW_BLOCKS_LIMIT]


def sent(blocks: list[Block]) -> str:
    return json.dumps([block.to_dict() for block in blocks])


# -- generated views ----------------------------------------------------------------------------

# Slack's control characters, mentions, markup, line breaks and other scripts, in runs
# long enough to reach every limit (a header's 150, a label's 75, a section's 3,000).
pieces = st.sampled_from(
    ["&", "<", ">", "<!channel>", "<@U1|ann>", "*b*", "_i_", "`c`", "\n", " ", "|", "ü", "😀"]
)
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
short = st.lists(st.one_of(pieces, words), max_size=8).map("".join)
long_text = st.builds(
    lambda part, times, tail: part * times + tail,
    st.one_of(pieces, words),
    st.sampled_from([0, 1, 30, 149, 151, 600, 601, 3001]),
    short,
)
texts = st.one_of(short, long_text, st.just(""), st.just("   "))
styles = st.sampled_from(["default", "primary", "danger"])
buttons = st.builds(
    Button,
    label=texts,
    action=st.sampled_from(["claim", "release", "resolve", "queue", ""]),
    value=st.one_of(st.just(""), st.integers(1, 10**6).map(str), texts),
    style=styles,
    form=st.sampled_from(["", "commit", "note"]),
)
links = st.one_of(
    st.just(""),
    st.just("  "),
    st.just("https://example.com/a?b=1&c=<2>|label"),
    st.just("ftp://example.com"),
    st.builds(lambda t: "https://x.example/" + t, texts),
    texts,
)
cards = st.builds(
    Card,
    title=texts,
    fields=st.lists(st.builds(Field, texts, texts), max_size=12).map(tuple),
    text=texts,
    more=texts,
    link=links,
    buttons=st.lists(buttons, max_size=26).map(tuple),
    fallback=texts,
    show=st.one_of(st.just(""), st.integers(1, 10**6).map(str)),
)
homes = st.builds(
    Home,
    title=texts,
    sections=st.lists(
        # a heading is Inloop's own words (slack_sdk refused one over 3,000 characters)
        st.builds(HomeSection, short, st.lists(cards, max_size=3).map(tuple), texts),
        max_size=3,
    ).map(tuple),
    buttons=st.lists(buttons, max_size=3).map(tuple),
)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@EXAMPLES
@given(cards)
def test_a_card_reaches_slack_as_the_block_objects_made_it(card: Card) -> None:
    assert json.dumps(tr.message(card, LABELS).blocks) == sent(sdk_card(card, LABELS))


@EXAMPLES
@given(texts)
def test_a_notice_reaches_slack_as_the_block_objects_made_it(text: str) -> None:
    notice = Notice(text)
    assert json.dumps(tr.message(notice, LABELS).blocks) == sent(sdk_notice(notice))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(homes)
def test_the_home_tab_reaches_slack_as_the_block_objects_made_it(home: Home) -> None:
    assert json.dumps(tr.message(home, LABELS).blocks) == sent(sdk_home(home, LABELS))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(cards, homes, texts.map(Notice)))
def test_a_view_is_written_to_its_outbox_row_as_asdict_wrote_it(view: Card | Home | Notice) -> None:
    """`view_to_dict` walks the fields itself (asdict deep-copied every value): the row
    written, and what is read back from it, are the same as before."""
    kind = "card" if isinstance(view, Card) else "home" if isinstance(view, Home) else "notice"
    written = view_to_dict(view)
    assert written == {"kind": kind, **asdict(view)}
    assert json.dumps(written) == json.dumps({"kind": kind, **asdict(view)})
    assert view_from_dict(json.loads(json.dumps(written))) == view


def test_a_button_without_a_value_is_sent_without_one() -> None:
    """slack_sdk leaves empty values out; so do the dicts (the Show list button)."""
    card = Card(title="#3", buttons=(Button("Show list", "queue", ""),))
    actions = tr.message(card, LABELS).blocks[-1]
    assert actions["elements"] == [
        {
            "action_id": "inloop:queue",
            "text": {"emoji": False, "text": "Show list", "type": "plain_text"},
            "type": "button",
        }
    ]
