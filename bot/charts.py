"""The digest's chart: minutes committed vs given per person, and mentions per day.

Drawn on a bare matplotlib `Figure` (rendered by Agg, no display, no pyplot):
pyplot keeps every figure in a global registry, and a bot that renders a chart
every week for months must not leak them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
#: a longer name is cut with "…": the bars, not the names, should have the width
NAME_CHARS = 22
COMMITTED_COLOUR, GIVEN_COLOUR, MENTIONS_COLOUR = "#9db4c0", "#2e86ab", "#f18f01"
#: the panels' places (left, bottom, width, height, as shares of the figure): the
#: names left of the people's bars, the legend under them, the titles above
LEFT_PANEL = (0.165, 0.15, 0.415, 0.74)
RIGHT_PANEL = (0.645, 0.15, 0.335, 0.74)
#: zlib level of the PNG: 1 is some 5x faster than the default 6, for a file ~1.3x
#: as big (a chart is flat colours: it compresses well either way)
PNG_COMPRESSION = 1


@dataclass(frozen=True)
class ChartWords:
    """Every word drawn, in the reader's language."""

    #: the figure's heading: the team (or the whole company) and the dates
    heading: str
    people_title: str
    committed: str
    given: str
    minutes: str
    days_title: str
    no_data: str
    #: what the people panel says when it has nothing to draw (no_data, or why not)
    no_people: str


def digest_chart(
    people: Sequence[tuple[str, int, int]],
    days: Sequence[tuple[str, int]],
    words: ChartWords,
) -> bytes:
    """A PNG of WIDTH_PX × HEIGHT_PX of `digest_figure`."""
    buffer = io.BytesIO()
    digest_figure(people, days, words).savefig(
        buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESSION}
    )
    return buffer.getvalue()


def digest_figure(
    people: Sequence[tuple[str, int, int]],
    days: Sequence[tuple[str, int]],
    words: ChartWords,
) -> Figure:
    """`people`: (name, committed, given) minutes, drawn top to bottom in this order;
    `days`: (label, mentions)."""
    # Imported here: matplotlib and numpy are 40 MB of a bot that draws once a week.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    # People side by side with the week: names read across, one line each, and up
    # to ~25 people fit the height without their labels touching. The panels have
    # fixed places (names are at most NAME_CHARS long): a constrained layout measured
    # every label twice per drawing, 40 % of the chart's time.
    left = figure.add_axes(LEFT_PANEL)
    right = figure.add_axes(RIGHT_PANEL)
    figure.suptitle(words.heading, fontsize=15, fontweight="bold", y=0.975)
    _people(left, people, words)
    _days(right, days, words)
    return figure


def _people(axes: Any, people: Sequence[tuple[str, int, int]], words: ChartWords) -> None:
    axes.set_title(words.people_title, loc="left", fontsize=11, wrap=True)
    if not any(committed or given for _, committed, given in people):
        _no_data(axes, words.no_people)
        return
    from matplotlib.ticker import MaxNLocator

    rows = range(len(people))
    height = 0.4
    axes.barh(
        [r - height / 2 for r in rows],
        [committed for _, committed, _ in people],
        height,
        label=words.committed,
        color=COMMITTED_COLOUR,
    )
    axes.barh(
        [r + height / 2 for r in rows],
        [given for _, _, given in people],
        height,
        label=words.given,
        color=GIVEN_COLOUR,
    )
    axes.set_yticks(list(rows), [_short(name) for name, _, _ in people])
    axes.tick_params(axis="y", labelsize=9 if len(people) <= 12 else 8, length=0)
    axes.set_ylim(len(people) - 0.5, -0.5)  # upside down: the first person on top
    axes.set_xlabel(words.minutes)
    axes.set_xlim(left=0)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="x", color="#e0e0e0")
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    # under the axis, not over the bars: with 20 people every corner has some
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncols=2, frameon=False)


def _days(axes: Any, days: Sequence[tuple[str, int]], words: ChartWords) -> None:
    axes.set_title(words.days_title, loc="left", fontsize=11)
    if not any(count for _, count in days):
        _no_data(axes, words.no_data)
        return
    positions = list(range(len(days)))
    bars = axes.bar(positions, [count for _, count in days], color=MENTIONS_COLOUR)
    # Seven numbers on the bars: the reader needs no scale nor grid to read them (and
    # each tick of a scale is four artists to lay out and draw).
    axes.bar_label(bars, fontsize=9, padding=2)
    axes.set_xticks(positions, [label for label, _ in days])
    axes.tick_params(axis="x", length=0, labelsize=9)
    axes.set_ylim(bottom=0)
    axes.margins(y=0.12)
    axes.set_yticks([])
    axes.spines[["top", "right", "left"]].set_visible(False)


def _no_data(axes: Any, saying: str) -> None:
    """An empty panel says so, instead of an axis of nothing (0.000 to 0.054)."""
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_color("#d0d0d0")
    axes.text(
        0.5,
        0.5,
        saying,
        transform=axes.transAxes,
        multialignment="center",
        linespacing=1.6,
        ha="center",
        va="center",
        fontsize=13,
        color="#808080",
    )


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1].rstrip() + "…"
