"""Small hand-drawn SVG charts for reports that must open from disk with no server.

No plotting library and no script: each chart is a self-contained ``<svg>`` element.
Every text that comes from data is escaped here, so the result can be marked safe for
the (auto-escaping) templates. Each data mark (bar or point) has ``class="mark"`` and a
``data-value`` so tests can count what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from markupsafe import Markup

from acs_khaos_dagster.reports._tables import format_value

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
WIDTH = 640
HEIGHT = 300
MARGIN_LEFT = 78
MARGIN_RIGHT = 16
MARGIN_TOP = 34
MARGIN_BOTTOM = 58
MAX_LABEL_CHARS = 14


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | int | Decimal]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _num(value: float | int | Decimal) -> float:
    number = float(value)
    return 0.0 if math.isnan(number) else number


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], always including zero."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    end = math.ceil(high / step) * step
    ticks = []
    value = start
    while value <= end + step / 2:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _axis_label(value: float, kind: str) -> str:
    if kind == "money":
        if abs(value) >= 10_000:
            return f"{'-' if value < 0 else ''}£{abs(value) / 1000:,.0f}k"
        return f"{'-' if value < 0 else ''}£{abs(value):,.0f}"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _short(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _open(chart_id: str, title: str, height: int = HEIGHT) -> list[str]:
    return [
        # No xmlns: inline SVG in HTML does not need it, and the page stays free of URLs.
        f'<svg class="chart" id="{_e(chart_id)}" '
        f'data-chart="{_e(chart_id)}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<text x="{MARGIN_LEFT}" y="20" class="chart-title">{_e(title)}</text>',
    ]


def _empty(chart_id: str, title: str) -> Markup:
    parts = _open(chart_id, title, 120)
    parts.append(
        f'<text x="{WIDTH / 2}" y="70" text-anchor="middle" class="chart-empty">'
        "Nothing to show for this period</text></svg>"
    )
    return Markup("".join(parts))


def _y_axis(parts: list[str], ticks: list[float], y_of, kind: str) -> None:  # type: ignore[no-untyped-def]
    for tick in ticks:
        y = y_of(tick)
        css = "axis-zero" if tick == 0 else "grid"
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'class="{css}"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_e(_axis_label(tick, kind))}</text>"
        )


def _x_labels(parts: list[str], categories: Sequence[str], centre_of) -> None:  # type: ignore[no-untyped-def]
    # Thin the labels out so they never overlap (a month of days has 31).
    every = max(1, math.ceil(len(categories) / 16))
    rotate = len(categories) > 8
    # Roughly 6.5 px per character at the tick font size; rotated labels get more room.
    band = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / len(categories)
    limit = MAX_LABEL_CHARS if rotate else max(MAX_LABEL_CHARS, int(band / 6.5))
    base = HEIGHT - MARGIN_BOTTOM + 14
    for index, category in enumerate(categories):
        if index % every:
            continue
        x = centre_of(index)
        transform = f' transform="rotate(-35 {x:.1f} {base})"' if rotate else ""
        anchor = "end" if rotate else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{base}" text-anchor="{anchor}" class="tick"{transform}>'
            f"<title>{_e(category)}</title>{_e(_short(category, limit))}</text>"
        )


def _legend(parts: list[str], series: Sequence[Series]) -> None:
    if len(series) < 2:
        return
    x = WIDTH - MARGIN_RIGHT
    for index, item in reversed(list(enumerate(series))):
        width = 18 + 7 * len(item.name)
        x -= width
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="9" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="18" class="legend">{_e(item.name)}</text>')


def bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    kind: str = "money",
    stacked: bool = True,
) -> Markup:
    """Vertical bars per category; several series are stacked (or side by side)."""
    if not categories or not series:
        return _empty(chart_id, title)
    values = [[_num(v) for v in s.values] for s in series]
    if stacked:
        highs = [sum(max(v[i], 0) for v in values) for i in range(len(categories))]
        lows = [sum(min(v[i], 0) for v in values) for i in range(len(categories))]
    else:
        highs = [max(v[i] for v in values) for i in range(len(categories))]
        lows = [min(v[i] for v in values) for i in range(len(categories))]
    ticks = nice_ticks(min(lows), max(highs))
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    span = ticks[-1] - ticks[0]

    def y_of(value: float) -> float:
        return bottom - (value - ticks[0]) / span * (bottom - top)

    band = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / len(categories)
    parts = _open(chart_id, title)
    _legend(parts, series)
    _y_axis(parts, ticks, y_of, kind)
    for i, category in enumerate(categories):
        x0 = MARGIN_LEFT + i * band + band * 0.15
        inner = band * 0.7
        up, down = 0.0, 0.0
        for s_index, item in enumerate(series):
            value = values[s_index][i]
            if value == 0:  # nothing to draw; a hairline would read as a tiny value
                continue
            colour = PALETTE[s_index % len(PALETTE)]
            if stacked:
                start = up if value >= 0 else down
                end = start + value
                if value >= 0:
                    up = end
                else:
                    down = end
                x, width = x0, inner
            else:
                start, end = 0.0, value
                width = inner / len(series)
                x = x0 + s_index * width
            y1, y2 = sorted((y_of(start), y_of(end)))
            label = f"{category} · {item.name}: {format_value(item.values[i], kind)}"
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y1:.1f}" width="{max(width, 1):.1f}" '
                f'height="{max(y2 - y1, 0.5):.1f}" fill="{colour}" '
                f'data-value="{value}"><title>{_e(label)}</title></rect>'
            )
    _x_labels(parts, categories, lambda i: MARGIN_LEFT + (i + 0.5) * band)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    kind: str = "money",
) -> Markup:
    """One line per series over the categories (for example the days of a month)."""
    if not categories or not series:
        return _empty(chart_id, title)
    values = [[_num(v) for v in s.values] for s in series]
    flat = [v for row in values for v in row]
    ticks = nice_ticks(min(flat), max(flat))
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    span = ticks[-1] - ticks[0]

    def y_of(value: float) -> float:
        return bottom - (value - ticks[0]) / span * (bottom - top)

    step = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / len(categories)

    def x_of(index: int) -> float:
        return MARGIN_LEFT + (index + 0.5) * step

    parts = _open(chart_id, title)
    _legend(parts, series)
    _y_axis(parts, ticks, y_of, kind)
    for s_index, item in enumerate(series):
        colour = PALETTE[s_index % len(PALETTE)]
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values[s_index]))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for i, value in enumerate(values[s_index]):
            label = f"{categories[i]} · {item.name}: {format_value(item.values[i], kind)}"
            parts.append(
                f'<circle class="mark" cx="{x_of(i):.1f}" cy="{y_of(value):.1f}" r="3.5" '
                f'fill="{colour}" data-value="{value}"><title>{_e(label)}</title></circle>'
            )
    _x_labels(parts, categories, x_of)
    parts.append("</svg>")
    return Markup("".join(parts))


def hbar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    values: Sequence[float | int | Decimal],
    *,
    kind: str = "money",
) -> Markup:
    """Horizontal bars, one per category; for long names such as sites or sources."""
    if not categories:
        return _empty(chart_id, title)
    numbers = [_num(v) for v in values]
    row_height = 26
    left = 190
    height = MARGIN_TOP + row_height * len(categories) + 30
    ticks = nice_ticks(min(numbers), max(numbers), 4)
    span = ticks[-1] - ticks[0]
    right = WIDTH - MARGIN_RIGHT - 70

    def x_of(value: float) -> float:
        return left + (value - ticks[0]) / span * (right - left)

    parts = _open(chart_id, title, height)
    axis_y = MARGIN_TOP + row_height * len(categories)
    for tick in ticks:
        x = x_of(tick)
        css = "axis-zero" if tick == 0 else "grid"
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_TOP}" y2="{axis_y}" class="{css}"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" class="tick">'
            f"{_e(_axis_label(tick, kind))}</text>"
        )
    for i, (category, value) in enumerate(zip(categories, numbers, strict=True)):
        y = MARGIN_TOP + i * row_height + 4
        x1, x2 = sorted((x_of(0), x_of(value)))
        text = format_value(values[i], kind)
        name = category if len(category) <= 28 else category[:27] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" class="tick">'
            f"<title>{_e(category)}</title>{_e(name)}</text>"
        )
        parts.append(
            f'<rect class="mark" x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 0.5):.1f}" '
            f'height="{row_height - 8}" fill="{PALETTE[0]}" data-value="{value}">'
            f"<title>{_e(category)}: {_e(text)}</title></rect>"
        )
        parts.append(
            f'<text x="{max(x1, x2) + 6:.1f}" y="{y + 13}" class="value">{_e(text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
