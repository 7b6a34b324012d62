"""Charts drawn by the portal itself: server-side SVG, so a dashboard needs no chart library,
no JavaScript and no third-party request, and reads the same in a PDF print or a screen reader.

Every text that reaches the markup is escaped here (labels come from imports and users). No
``style=`` attribute is written (the CSP forbids inline styles): colours are SVG presentation
attributes (``fill``, ``stroke``), and each element has a ``cs-chart-*`` class for CSS to refine.
Each chart is a ``<figure>`` holding the SVG (``role="img"``, a ``<title>`` and a ``<desc>``
summary) and the same data as a visually hidden table for assistive technology.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date

from flask_babel import gettext
from markupsafe import Markup, escape

__all__ = ["BAND_FILLS", "bar_chart", "line_chart"]

# Light fills for the horizontal band zones, strong fills for bars; keyed by band or css class.
BAND_FILLS = {"green": "#d1e7dd", "yellow": "#fff3cd", "red": "#f8d7da", "none": "#e9ecef"}
BAR_FILLS = {
    "green": "#198754",
    "yellow": "#ffc107",
    "red": "#dc3545",
    "none": "#adb5bd",
    "primary": "#0d6efd",
    "secondary": "#6c757d",
    "info": "#0dcaf0",
}
SERIES_STROKES = ("#0d6efd", "#6f42c1", "#fd7e14", "#20c997", "#d63384", "#6c757d")
TEXT_FILL = "#212529"
MUTED_FILL = "#6c757d"

_ids = itertools.count(1)

Point = tuple[date, float | None]
Series = tuple[str, Sequence[Point]]


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _num(value: float) -> str:
    """A coordinate: short, locale-free, never ``nan``."""
    return f"{value:.1f}".rstrip("0").rstrip(".") if value == value else "0"


def _text_width(text: str, font_size: float = 11) -> float:
    """About how wide ``text`` renders in the sans-serif face: CJK characters are square,
    Latin ones a little over half as wide. Enough to keep a label inside the chart."""
    return sum(
        font_size if unicodedata.east_asian_width(ch) in "WF" else font_size * 0.6 for ch in text
    )


def _fmt(value_format: str | Callable[[float], str], value: float | None) -> str:
    if value is None:
        return "–"
    if callable(value_format):
        return str(value_format(value))
    return value_format.format(value)


def _fill(palette: dict[str, str], css_class: str, default: str) -> str:
    for part in (css_class or "").split():
        key = part.rsplit("-", 1)[-1]
        if part in palette:
            return palette[part]
        if key in palette:
            return palette[key]
    return default


def _hidden_table(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<table class="visually-hidden"><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def line_chart(
    series: Sequence[Series],
    *,
    y_min: float = 0,
    y_max: float = 100,
    bands: Sequence[tuple[float, float, str]] | None = None,
    markers: Sequence[tuple[date, str]] | None = None,
    title: str,
    width: int = 640,
    height: int = 240,
    value_format: str | Callable[[float], str] = "{:.0f}",
) -> Markup:
    """A line per series over dates; ``None`` values leave a gap instead of a false line.

    ``bands`` are horizontal zones ``(from_y, to_y, name)`` (``name`` "red", "yellow",
    "green" or a class), drawn behind the lines; ``markers`` are vertical lines with a label
    at a date (a model version change, an override)."""
    if y_max <= y_min:
        y_max = y_min + 1
    legend = len(series) > 1  # a legend only when there is something to tell apart
    # Below the plot: the x-axis dates, then (its own row, never over the dates) the legend.
    # Above the plot, marker labels get a row of their own, clear of the top y tick.
    left, right = 36, 12
    top, bottom = (30 if markers else 16), 28 + (18 if legend else 0)
    plot_w, plot_h = width - left - right, height - top - bottom
    axis_y = top + plot_h + 16
    days = sorted({d for _, points in series for d, _ in points} | {d for d, _ in markers or ()})
    first, last = (days[0], days[-1]) if days else (date.today(), date.today())
    span = max(1, (last - first).days)

    def x(day: date) -> float:
        if first == last:
            return left + plot_w / 2
        return left + plot_w * (day - first).days / span

    def y(value: float) -> float:
        clamped = min(max(value, y_min), y_max)
        return top + plot_h * (1 - (clamped - y_min) / (y_max - y_min))

    title_id, desc_id = _id("chart-title"), _id("chart-desc")
    parts: list[str] = [
        f'<svg class="cs-chart-svg" role="img" aria-labelledby="{title_id} {desc_id}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f'<title id="{title_id}">{escape(title)}</title>',
    ]
    summary = []
    for label, points in series:
        values = [(d, v) for d, v in points if v is not None]
        if values:
            summary.append(
                f"{label}: {_fmt(value_format, values[0][1])} ({values[0][0].isoformat()})"
                f" → {_fmt(value_format, values[-1][1])} ({values[-1][0].isoformat()})"
            )
        else:
            summary.append(f"{label}: –")
    for day, label in markers or ():
        summary.append(f"{day.isoformat()}: {label}")
    parts.append(f'<desc id="{desc_id}">{escape("; ".join(summary))}</desc>')

    for low, high, name in bands or ():
        y_top, y_bottom = y(max(low, high)), y(min(low, high))
        parts.append(
            f'<rect class="cs-chart-band cs-chart-band-{escape(name)}" x="{left}" '
            f'y="{_num(y_top)}" width="{plot_w}" height="{_num(y_bottom - y_top)}" '
            f'fill="{_fill(BAND_FILLS, name, BAND_FILLS["none"])}"/>'
        )
    for i in range(5):  # y grid and ticks
        value = y_min + (y_max - y_min) * i / 4
        yy = _num(y(value))
        parts.append(
            f'<line class="cs-chart-grid" x1="{left}" x2="{left + plot_w}" y1="{yy}" y2="{yy}" '
            f'stroke="#dee2e6" stroke-width="1"/>'
            f'<text class="cs-chart-tick" x="{left - 4}" y="{yy}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{MUTED_FILL}">{escape(_fmt(value_format, value))}'
            "</text>"
        )
    for day in {first, last}:  # x ticks: the first and the last day
        anchor = "start" if day == first and first != last else "end"
        if first == last:
            anchor = "middle"
        parts.append(
            f'<text class="cs-chart-tick" x="{_num(x(day))}" y="{axis_y}" '
            f'text-anchor="{anchor}" fill="{MUTED_FILL}">{escape(day.isoformat())}</text>'
        )
    for day, label in markers or ():
        xx = _num(x(day))
        # Centred over its line unless that would cut it off at an edge of the chart.
        half = _text_width(str(label)) / 2
        if x(day) + half > width - 2:
            anchor, text_x = "end", _num(min(x(day), width - 2))
        elif x(day) - half < 2:
            anchor, text_x = "start", _num(max(x(day), 2))
        else:
            anchor, text_x = "middle", xx
        parts.append(
            f'<g class="cs-chart-marker"><line x1="{xx}" x2="{xx}" y1="{top}" '
            f'y2="{top + plot_h}" stroke="{TEXT_FILL}" stroke-width="1" stroke-dasharray="4 3"/>'
            f'<text x="{text_x}" y="{top - 10}" text-anchor="{anchor}" fill="{TEXT_FILL}">'
            f"{escape(label)}</text><title>{escape(day.isoformat())}: {escape(label)}</title></g>"
        )
    for index, (label, points) in enumerate(series):
        stroke = SERIES_STROKES[index % len(SERIES_STROKES)]
        segments: list[list[str]] = [[]]
        dots: list[str] = []
        for day, value in sorted(points, key=lambda p: p[0]):
            if value is None:
                segments.append([])
                continue
            xx, yy = _num(x(day)), _num(y(value))
            segments[-1].append(f"{xx},{yy}")
            dots.append(
                f'<circle cx="{xx}" cy="{yy}" r="2.5" fill="{stroke}"><title>'
                f"{escape(label)} {escape(day.isoformat())}: {escape(_fmt(value_format, value))}"
                "</title></circle>"
            )
        parts.append(f'<g class="cs-chart-series cs-chart-series-{index}">')
        for segment in segments:
            if len(segment) > 1:
                parts.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="{stroke}" '
                    f'stroke-width="2" stroke-linejoin="round"/>'
                )
        parts.extend(dots)
        parts.append("</g>")
    if legend:
        lx = float(left)
        for index, (label, _points) in enumerate(series):
            stroke = SERIES_STROKES[index % len(SERIES_STROKES)]
            parts.append(
                f'<g class="cs-chart-legend"><rect x="{_num(lx)}" y="{height - 10}" width="10" '
                f'height="3" fill="{stroke}"/><text x="{_num(lx + 14)}" y="{height - 6}" '
                f'fill="{TEXT_FILL}">{escape(label)}</text></g>'
            )
            lx += 14 + _text_width(str(label)) + 18
    parts.append("</svg>")

    header = [str(label) for label, _ in series]
    by_day: dict[date, list[str]] = {}
    for index, (_label, points) in enumerate(series):
        for day, value in points:
            by_day.setdefault(day, ["–"] * len(series))[index] = _fmt(value_format, value)
    rows = [[d.isoformat(), *by_day[d]] for d in sorted(by_day)]
    table = _hidden_table(title, [gettext("Date"), *header], rows)
    return Markup(f'<figure class="cs-chart cs-chart-line">{"".join(parts)}{table}</figure>')  # noqa: S704 - every text above is escaped  # nosec B704


def bar_chart(
    bars: Sequence[tuple[str, float | None, str]],
    *,
    title: str,
    label_header: str,
    value_format: str | Callable[[float], str] = "{:,.0f}",
    width: int = 640,
    bar_height: int = 22,
) -> Markup:
    """Horizontal bars ``(label, value, css_class)``, longest = largest value; a negative or
    missing value draws no bar but still shows its figure. ``label_header`` heads the labels'
    column in the table screen readers read."""
    label_w, value_w, gap = 140, 110, 6
    plot_w = width - label_w - value_w
    height = max(1, len(bars)) * (bar_height + gap) + gap
    largest = max((v for _, v, _ in bars if v is not None and v > 0), default=0.0)
    title_id, desc_id = _id("chart-title"), _id("chart-desc")
    summary = "; ".join(f"{label}: {_fmt(value_format, value)}" for label, value, _ in bars)
    parts: list[str] = [
        f'<svg class="cs-chart-svg" role="img" aria-labelledby="{title_id} {desc_id}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(summary)}</desc>',
    ]
    for i, (label, value, css_class) in enumerate(bars):
        top = gap + i * (bar_height + gap)
        middle = _num(top + bar_height / 2)
        length = plot_w * value / largest if value is not None and value > 0 and largest else 0
        fill = _fill(BAR_FILLS, css_class, BAR_FILLS["primary"])
        parts.append(
            f'<g class="cs-chart-bar-item {escape(css_class)}">'
            f'<text x="{label_w - 8}" y="{middle}" text-anchor="end" dominant-baseline="middle" '
            f'fill="{TEXT_FILL}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{top}" width="{_num(length)}" height="{bar_height}" '
            f'rx="2" fill="{fill}"/>'
            f'<text x="{_num(label_w + length + 6)}" y="{middle}" dominant-baseline="middle" '
            f'fill="{TEXT_FILL}">{escape(_fmt(value_format, value))}</text>'
            f"<title>{escape(label)}: {escape(_fmt(value_format, value))}</title></g>"
        )
    parts.append("</svg>")
    table = _hidden_table(
        title,
        [label_header, title],
        [[str(label), _fmt(value_format, value)] for label, value, _ in bars],
    )
    return Markup(f'<figure class="cs-chart cs-chart-bar">{"".join(parts)}{table}</figure>')  # noqa: S704 - every text above is escaped  # nosec B704
