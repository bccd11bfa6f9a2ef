"""The pack's hand-drawn SVG charts (``reports/charts.py``): what a reader can trust in them.

An axis always shows zero and covers every value on round steps; every non-zero value is
one mark carrying its value; text from data (site names, SKUs) is escaped, so a chart can
be marked safe in the auto-escaping templates. The SVG is parsed as XML to read it.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.reports.charts import (
    Series,
    bar_chart,
    hbar_chart,
    line_chart,
    nice_ticks,
)

# What the packs chart: money in whole pence and unit counts (a tiny non-zero float such
# as 1e-15 would give an all-zero axis; the packs never chart one).
finite = st.integers(min_value=-100_000_000_000, max_value=100_000_000_000).map(lambda p: p / 100)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def marks(svg: str) -> list[ET.Element]:
    return [e for e in parse(svg).iter() if e.get("class") == "mark"]


def texts(svg: str) -> list[str]:
    return ["".join(e.itertext()) for e in parse(svg).iter("text")]


# --- axis ticks -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(finite, finite)
def test_the_ticks_cover_every_value_and_always_include_zero(a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    ticks = nice_ticks(low, high)
    assert 0 in ticks
    assert ticks[0] <= low + 1e-9 * max(1.0, abs(low))
    assert ticks[-1] >= high - 1e-9 * max(1.0, abs(high))


@settings(max_examples=300, deadline=None)
@given(finite, finite)
def test_the_ticks_are_evenly_spaced_on_a_round_step(a: float, b: float) -> None:
    ticks = nice_ticks(min(a, b), max(a, b))
    steps = {round(y - x, 6) for x, y in itertools.pairwise(ticks)}
    step = ticks[1] - ticks[0]
    assert all(math.isclose(s, step, rel_tol=1e-6, abs_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 2.5, 5))


@settings(max_examples=300, deadline=None)
@given(finite, finite, st.integers(min_value=2, max_value=8))
def test_the_axis_has_no_more_than_about_the_asked_number_of_steps(
    a: float, b: float, count: int
) -> None:
    low, high = min(a, b), max(a, b)
    assume(high - low > 1e-3)
    ticks = nice_ticks(low, high, count)
    # Rounding the step up and the ends outwards adds at most two steps beyond ``count``.
    assert len(ticks) - 1 <= count + 2


def test_ticks_for_a_typical_month_of_money() -> None:
    assert nice_ticks(0, 9_400) == [0, 2_000, 4_000, 6_000, 8_000, 10_000]
    assert nice_ticks(-1_200, 800) == [-1_500, -1_000, -500, 0, 500, 1_000]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


# --- bars -----------------------------------------------------------------------------------


def test_every_non_zero_value_is_one_mark_carrying_its_value() -> None:
    svg = bar_chart(
        "drift",
        "Drift by day",
        ["1 Jun", "2 Jun", "3 Jun"],
        [Series("stock", [10, 0, -5]), Series("cash", [Decimal("2.50"), 3, 0])],
    )
    assert sorted(float(m.get("data-value")) for m in marks(svg)) == [-5, 2.5, 3, 10]


def test_a_bar_tooltip_names_its_category_series_and_pounds() -> None:
    svg = bar_chart("d", "Drift", ["1 Jun"], [Series("stock", [1234.5])])
    (mark,) = marks(svg)
    assert "".join(mark.itertext()) == "1 Jun · stock: £1,234.50"


def test_stacked_bars_of_one_category_sit_on_top_of_each_other() -> None:
    svg = bar_chart("s", "Stacked", ["Jun"], [Series("a", [10]), Series("b", [10])])
    first, second = marks(svg)
    assert float(first.get("x")) == float(second.get("x"))
    # Equal values: equal heights, the second bar ending where the first one starts.
    assert math.isclose(float(first.get("height")), float(second.get("height")), abs_tol=0.2)
    assert math.isclose(
        float(second.get("y")) + float(second.get("height")), float(first.get("y")), abs_tol=0.2
    )


def test_side_by_side_bars_share_the_band_without_overlapping() -> None:
    svg = bar_chart("g", "Grouped", ["Jun"], [Series("a", [10]), Series("b", [10])], stacked=False)
    first, second = marks(svg)
    assert float(first.get("x")) + float(first.get("width")) <= float(second.get("x")) + 0.1


def test_a_negative_bar_hangs_below_the_zero_line() -> None:
    svg = bar_chart("n", "Negative", ["Jun"], [Series("drift", [-40]), Series("up", [60])])
    zero = next(e for e in parse(svg).iter("line") if e.get("class") == "axis-zero")
    zero_y = float(zero.get("y1"))
    down, up = marks(svg)
    assert math.isclose(float(down.get("y")), zero_y, abs_tol=0.2)
    assert math.isclose(float(up.get("y")) + float(up.get("height")), zero_y, abs_tol=0.2)


def test_a_chart_with_nothing_to_show_says_so() -> None:
    for svg in (
        bar_chart("e", "Empty", [], []),
        line_chart("e", "Empty", ["1 Jun"], []),
        hbar_chart("e", "Empty", [], []),
    ):
        assert marks(svg) == []
        assert "Nothing to show for this period" in texts(svg)


def test_a_legend_appears_only_when_there_are_several_series() -> None:
    one = bar_chart("o", "One", ["Jun"], [Series("stock", [1])])
    two = bar_chart("t", "Two", ["Jun"], [Series("stock", [1]), Series("cash", [2])])
    legend = [e for e in parse(two).iter("text") if e.get("class") == "legend"]
    assert sorted(e.text for e in legend) == ["cash", "stock"]
    assert not [e for e in parse(one).iter("text") if e.get("class") == "legend"]


def test_money_axis_labels_are_pounds_and_thousands_above_ten_thousand() -> None:
    svg = bar_chart("m", "Money", ["Jun"], [Series("v", [40_000])])
    ticks = [e.text for e in parse(svg).iter("text") if e.get("class") == "tick" and e.text]
    assert ticks[:3] == ["£0", "£10k", "£20k"]
    units = bar_chart("u", "Units", ["Jun"], [Series("v", [4])], kind="int")
    labels = [e.text for e in parse(units).iter("text") if e.get("class") == "tick" and e.text]
    assert labels[:3] == ["0", "1", "2"]


# --- escaping and long labels ---------------------------------------------------------------


def test_text_from_data_is_escaped_everywhere_it_appears() -> None:
    evil = '<script>alert("x")</script>'
    for svg in (
        bar_chart("b", evil, [evil], [Series(evil, [1]), Series("b", [2])]),
        line_chart("l", evil, [evil], [Series(evil, [1])]),
        hbar_chart("h", evil, [evil], [1]),
    ):
        assert "<script>" not in str(svg)
        assert not list(parse(svg).iter("script"))
        assert any(evil in t for t in texts(svg))  # shown as text, whole, in a title


def test_a_long_category_is_shortened_on_the_axis_but_whole_in_its_tooltip() -> None:
    name = "Refurbishment and repairs — Eurocentral"
    svg = hbar_chart("h", "Sites", [name], [Decimal("12.50")])
    label = next(e for e in parse(svg).iter("text") if e.find("title") is not None)
    assert label.find("title").text == name
    assert label.find("title").tail == "Refurbishment and repairs —…"
    assert "£12.50" in texts(svg)


def test_a_month_of_days_thins_its_labels_so_they_do_not_overlap() -> None:
    days = [f"{d} Jun" for d in range(1, 31)]
    svg = line_chart("l", "Daily", days, [Series("drift", list(range(30)))])
    shown = [e for e in parse(svg).iter("text") if e.find("title") is not None]
    assert [e.find("title").text for e in shown] == days[::2]
    assert all("rotate(-35" in e.get("transform", "") for e in shown)
    assert len(marks(svg)) == 30


def test_a_line_chart_draws_one_point_per_day_zero_included() -> None:
    svg = line_chart(
        "l", "Daily", ["1", "2", "3"], [Series("a", [0, 5, 0]), Series("b", [1, 1, 1])]
    )
    assert [float(m.get("data-value")) for m in marks(svg)] == [0, 5, 0, 1, 1, 1]
    assert len(list(parse(svg).iter("polyline"))) == 2


def test_a_missing_number_is_drawn_at_zero_rather_than_breaking_the_chart() -> None:
    svg = line_chart("l", "Gaps", ["1", "2"], [Series("a", [float("nan"), 4])])
    assert [float(m.get("data-value")) for m in marks(svg)] == [0, 4]


def test_each_chart_is_identified_for_the_page_and_titled_for_screen_readers() -> None:
    root = parse(hbar_chart("refunds-by-site", "Refunds by site", ["A"], [1]))
    assert root.get("id") == "refunds-by-site"
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Refunds by site"
    assert root.find("title").text == "Refunds by site"
