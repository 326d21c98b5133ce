"""The digest's chart: minutes committed vs given per person, and mentions per day.

Drawn on a bare matplotlib `Figure` (rendered by Agg, no display, no pyplot):
pyplot keeps every figure in a global registry, and a bot that renders a chart
every week for months must not leak them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100


def digest_chart(
    title: str,
    people: Sequence[tuple[str, int, int]],
    days: Sequence[tuple[str, int]],
    labels: tuple[str, str, str, str],
) -> bytes:
    """A PNG of WIDTH_PX × HEIGHT_PX. `people`: (name, committed, given) minutes;
    `days`: (label, mentions); `labels`: committed, given, minutes, mentions per day."""
    # Imported here: matplotlib and numpy are 40 MB of a bot that draws once a week.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    committed_label, given_label, minutes_label, per_day_label = labels
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    top, bottom = figure.subplots(2, 1)
    figure.suptitle(title)

    names = [name for name, _, _ in people] or ["—"]
    positions = range(len(names))
    width = 0.4
    top.bar(
        [p - width / 2 for p in positions],
        [c for _, c, _ in people] or [0],
        width,
        label=committed_label,
        color="#9db4c0",
    )
    top.bar(
        [p + width / 2 for p in positions],
        [g for _, _, g in people] or [0],
        width,
        label=given_label,
        color="#2e86ab",
    )
    top.set_xticks(list(positions), names, rotation=30 if len(names) > 8 else 0, ha="right")
    top.set_ylabel(minutes_label)
    top.set_ylim(bottom=0)
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.legend()

    day_positions = list(range(len(days)))
    bottom.bar(day_positions, [count for _, count in days], color="#f18f01")
    bottom.set_xticks(day_positions, [label for label, _ in days])
    bottom.set_ylim(bottom=0)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_title(per_day_label)

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
