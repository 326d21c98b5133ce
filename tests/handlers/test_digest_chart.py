"""The digest's chart as a reader sees it: headings, panel titles, empty panels, crowds.

The figure is laid out for real (matplotlib's Agg renderer), and what is checked is
what is drawn: the texts, and where they land.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import combinations
from typing import Any

from bot.charts import digest_figure
from bot.messages import texts_for
from handlers.digest import Digest, PersonFigures, chart_parts
from handlers.weeks import IsoWeek

W49 = IsoWeek(2026, 49)  # Monday 30 November to Sunday 6 December 2026


def _digest(
    week: IsoWeek = W49,
    team: str | None = None,
    people: tuple[PersonFigures, ...] = (),
    per_day: tuple[int, ...] = (0,) * 7,
) -> Digest:
    start, end = week.bounds("Europe/Rome")
    days = tuple((week.monday + timedelta(days=i), n) for i, n in enumerate(per_day))
    return Digest(week, "Europe/Rome", team, start, end, people, (), (), days, 60)


def _person(name: str, committed: int | None, given: int | None) -> PersonFigures:
    return PersonFigures(name, 1, 1, 0, 5.0, 10.0, committed, given)


def _figure(d: Digest, lang: str = "en") -> Any:
    figure = digest_figure(*chart_parts(d, texts_for(lang)))
    figure.draw_without_rendering()  # lays it out: every text gets its place
    return figure


def _texts(axes: Any) -> list[str]:
    return [t.get_text() for t in axes.texts]


NORMAL = (
    _person("Ann", 60, 75),
    _person("Bob", 60, 0),
    _person("Marta Rossi", 30, 105),
    _person("Luca", None, 40),
    _person("Quiet", None, None),  # claimed and replied, but gave no dialogue time
)


def test_the_heading_names_the_team_and_the_dates() -> None:
    assert _figure(_digest(team="support")).get_suptitle() == "support · 30 Nov – 6 Dec 2026"
    assert _figure(_digest()).get_suptitle() == "Whole company · 30 Nov – 6 Dec 2026"
    same_month = _figure(_digest(IsoWeek(2026, 47), team="support"))
    assert same_month.get_suptitle() == "support · 16 – 22 Nov 2026"
    new_year = _figure(_digest(IsoWeek(2026, 1)), "it")
    assert new_year.get_suptitle() == "Tutta l'azienda · 29 dic 2025 – 4 gen 2026"


def test_every_panel_has_a_title_with_or_without_data() -> None:
    for d in (_digest(), _digest(people=NORMAL, per_day=(12, 30, 25, 18, 22, 3, 1))):
        people, days = _figure(d).axes
        assert people.get_title(loc="left") == "Time committed and given, per person"
        assert days.get_title(loc="left") == "Mentions per day"


def test_an_empty_week_says_no_data_instead_of_an_empty_axis() -> None:
    for axes in _figure(_digest()).axes:
        assert _texts(axes) == ["no data this week"]
        assert list(axes.get_xticks()) == [] and list(axes.get_yticks()) == []
        assert all(label.get_text() != "—" for label in axes.get_xticklabels())

    # one panel empty, the other drawn
    people, days = _figure(_digest(people=NORMAL)).axes
    assert "no data this week" not in _texts(people)
    assert _texts(days) == ["no data this week"]


def test_a_teams_chart_says_where_its_peoples_time_is() -> None:
    # commitments are a person's, across teams: a team's digest does not count them
    team = tuple(_person(p.name, None, None) for p in NORMAL)
    people, _ = _figure(_digest(team="support", people=team, per_day=(1,) * 7)).axes

    assert _texts(people) == [
        "Time committed is counted for the whole company:\nsee the digest without a team"
    ]


def test_a_normal_week_draws_who_gave_time_and_each_days_count() -> None:
    people, days = _figure(_digest(people=NORMAL, per_day=(12, 30, 25, 18, 22, 3, 1))).axes

    # only people with time committed or given have bars, most committed first
    assert [t.get_text() for t in people.get_yticklabels()] == ["Ann", "Bob", "Marta Rossi", "Luca"]
    assert [t.get_text() for t in people.get_legend().get_texts()] == [
        "time committed",
        "time given",
    ]
    assert [t.get_text() for t in days.get_xticklabels()] == [
        "Mon 30", "Tue 01", "Wed 02", "Thu 03", "Fri 04", "Sat 05", "Sun 06"
    ]  # fmt: skip
    assert _texts(days) == ["12", "30", "25", "18", "22", "3", "1"]


def test_the_italian_legend_says_what_given_means() -> None:
    people, _ = _figure(_digest(people=NORMAL), "it").axes

    legend = [t.get_text() for t in people.get_legend().get_texts()]
    assert legend == ["tempo promesso", "tempo dedicato"]
    assert people.get_title(loc="left") == "Tempo promesso e dedicato, per persona"


def _title(axes: Any) -> Any:
    """The panel's title as drawn (a Text, with its place)."""
    from matplotlib.text import Text

    wanted = axes.get_title(loc="left")
    return next(t for t in axes.get_children() if isinstance(t, Text) and t.get_text() == wanted)


def _overlap(a: Any, b: Any) -> bool:
    return bool(a.overlaps(b)) and a.width > 0 and b.width > 0


def test_fifty_people_are_readable_the_twenty_who_committed_most() -> None:
    crowd = tuple(
        _person(f"Person {i:02d} Bartholomew-Fitzgerald", 30 + 10 * (i % 12), 20 * (i % 15))
        for i in range(50)
    )
    week = (1200, 3000, 2500, 1800, 2200, 300, 100)
    figure = _figure(_digest(team="support", people=crowd, per_day=week))
    people, days = figure.axes

    names = people.get_yticklabels()
    assert len(names) == 20
    assert people.get_title(loc="left") == (
        "Time committed and given: the 20 people who committed most, of 50"
    )
    # long names are cut, and no two labels touch
    assert all(len(t.get_text()) <= 22 for t in names)
    boxes = [t.get_window_extent() for t in names]
    assert not any(_overlap(a, b) for a, b in combinations(boxes, 2))
    day_boxes = [t.get_window_extent() for t in days.get_xticklabels()]
    assert not any(_overlap(a, b) for a, b in combinations(day_boxes, 2))
    # the legend sits outside the bars, the heading above the panels' titles
    legend = people.get_legend().get_window_extent()
    assert not _overlap(legend, people.get_window_extent())
    (heading,) = figure.texts
    assert heading.get_text() == "support · 30 Nov – 6 Dec 2026"
    for axes in figure.axes:
        assert not _overlap(heading.get_window_extent(), _title(axes).get_window_extent())
    # everything drawn is inside the 1200 × 800 picture
    width, height = figure.bbox.width, figure.bbox.height
    for text in [*names, people.get_legend(), heading, _title(people), _title(days)]:
        box = text.get_window_extent()
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
