"""Line charts as inline SVG text, so a report page needs no JavaScript and no network.

Every number written into the SVG is finite: points with a non-finite (or absurdly large)
value are dropped before drawing, and degenerate ranges (one point, a constant series) are
widened, so a chart never carries NaN coordinates that a browser would silently not draw.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Distinguishable series colours, in the order series are drawn.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
#: Beyond this magnitude a value is not drawn: no axis could show it beside ordinary ones.
LARGEST = 1e100
#: A series longer than this is thinned to the minimum and maximum of each of LIMIT / 2 buckets.
LIMIT = 800
#: From this many points on, a moving average is drawn over the (faint) logged values.
SMOOTH_FROM = 30
#: Up to this many points, each point gets a marker (a lone point is otherwise invisible).
MARKERS_UP_TO = 30

WIDTH, HEIGHT = 520, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 28, 40


Scale = Callable[[float], float]


@dataclass(frozen=True)
class Series:
    """One named line: (step, value) points in any order."""

    name: str
    points: Sequence[tuple[float, float]]


def drawable(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points a chart can draw, in step order: finite, of ordinary magnitude."""
    kept = [(float(x), float(y)) for x, y in points if _plain(x) and _plain(y)]
    return sorted(kept, key=lambda point: point[0])


def _plain(value: float) -> bool:
    return math.isfinite(value) and abs(value) < LARGEST


def thin(points: list[tuple[float, float]], limit: int = LIMIT) -> list[tuple[float, float]]:
    """At most about `limit` points that keep the series' envelope: the lowest and highest point
    of each bucket, in step order (an average would hide the spikes one looks for)."""
    if len(points) <= limit:
        return points
    buckets = limit // 2
    kept: list[tuple[float, float]] = []
    for b in range(buckets):
        bucket = points[b * len(points) // buckets:(b + 1) * len(points) // buckets]
        low, high = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
        kept.extend(sorted({low, high}, key=lambda p: p[0]))
    return kept


def moving_average(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A trailing mean over a window of about 1/20 of the series: the trend under the noise."""
    window = max(2, len(points) // 20)
    total, averaged = 0.0, []
    for i, (x, y) in enumerate(points):
        total += y
        if i >= window:
            total -= points[i - window][1]
        averaged.append((x, total / min(i + 1, window)))
    return averaged


def tick_step(low: float, high: float, count: int = 5, smallest: float = 0.0) -> float:
    """A round spacing (1, 2 or 5 times a power of ten, at least `smallest`) giving about
    `count` ticks over [low, high]."""
    raw = max((high - low) / count, smallest)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def ticks_between(low: float, high: float, step: float) -> list[float]:
    """The multiples of `step` in [low, high] (at least two: step is at most half the span)."""
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [0.0 if k == 0 else k * step for k in range(first, last + 1)]


def tick_labels(ticks: Sequence[float], step: float) -> list[str]:
    """Labels in one format for a whole axis, with just the digits the spacing needs: k or M
    for large round numbers (steps), exponents for tiny spacings (learning rates)."""
    biggest = max(abs(t) for t in ticks) or step
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if biggest >= 10 * size and step >= size / 10:
            decimals = max(0, -math.floor(math.log10(step / size) + 1e-9))
            return [f"{t / size:.{decimals}f}{suffix}" if t else "0" for t in ticks]
    if step < 1e-4 or biggest >= 1e6:
        digits = max(0, math.floor(math.log10(biggest)) - math.floor(math.log10(step) + 1e-9))
        return [f"{t:.{digits}e}" if t else "0" for t in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t:.{decimals}f}" for t in ticks]


def _range(values: Sequence[float]) -> tuple[float, float]:
    """The span of `values`, widened where it is empty (one point, a constant series)."""
    low, high = min(values), max(values)
    if high - low <= abs(high) * 1e-6:  # closer than labels could tell apart
        pad = abs(high) * 0.05 or 1.0
        return low - pad, high + pad
    return low, high


def line_chart(title: str, series: Sequence[Series]) -> str:
    """An SVG line chart of `series` over training steps, with axes, ticks, labels and a legend;
    every name is escaped. Series with nothing drawable are listed as such instead of drawn."""
    lines = [(s, thin(drawable(s.points))) for s in series]
    shown = [(s, pts) for s, pts in lines if pts]
    columns = 2 if all(len(s.name) <= 32 for s in series) else 1
    height = HEIGHT + 16 * math.ceil(len(series) / columns)
    parts = [
        f'<svg class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        + f'aria-label="{html.escape(title)}">',
        f'<text x="{LEFT}" y="17" class="title">{html.escape(title)}</text>',
    ]
    if not shown:
        parts.append(f'<text x="{WIDTH / 2:.1f}" y="{HEIGHT / 2:.1f}" text-anchor="middle" class="note">'
                     "no finite values to draw</text>")
    else:
        parts.extend(_plot(shown))
    parts.extend(_legend(lines, columns, HEIGHT))
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
                 f'class="axis-label">step</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _plot(shown: list[tuple[Series, list[tuple[float, float]]]]) -> list[str]:
    x_low, x_high = _range([x for _, pts in shown for x, _ in pts])
    y_low, y_high = _range([y for _, pts in shown for _, y in pts])
    x_step, y_step = tick_step(x_low, x_high, smallest=1.0), tick_step(y_low, y_high)  # steps are whole
    y_low, y_high = math.floor(y_low / y_step + 1e-9) * y_step, math.ceil(y_high / y_step - 1e-9) * y_step
    x_ticks, y_ticks = ticks_between(x_low, x_high, x_step), ticks_between(y_low, y_high, y_step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return TOP + (y_high - y) / (y_high - y_low) * plot_h

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>']
    for tick, label in zip(x_ticks, tick_labels(x_ticks, x_step)):
        x = px(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" class="tick">{label}</text>')
    for tick, label in zip(y_ticks, tick_labels(y_ticks, y_step)):
        y = py(tick)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label}</text>')
    for i, (_, pts) in enumerate(shown):
        colour = PALETTE[i % len(PALETTE)]
        smooth = len(pts) >= SMOOTH_FROM
        parts.append(_polyline(pts, px, py, colour, "raw" if smooth else "line"))
        if smooth:
            parts.append(_polyline(moving_average(pts), px, py, colour, "line"))
        if len(pts) <= MARKERS_UP_TO:
            parts.extend(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in pts)
    return parts


def _polyline(points: list[tuple[float, float]], px: Scale, py: Scale, colour: str, kind: str) -> str:
    coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    return f'<polyline points="{coords}" fill="none" stroke="{colour}" class="{kind}"/>'


def _legend(lines: list[tuple[Series, list[tuple[float, float]]]], columns: int, top: int) -> list[str]:
    """Colour swatches and names under the x axis label, in the colours `_plot` drew them in."""
    parts, drawn = [], 0
    column = (WIDTH - LEFT) / columns
    for i, (s, pts) in enumerate(lines):
        x = LEFT + (i % columns) * column
        y = top + 4 + (i // columns) * 16
        if not pts:
            label = f"{s.name} (no finite values)"
            parts.append(f'<text x="{x + 18:.1f}" y="{y + 10}" class="legend note">{html.escape(label)}</text>')
            continue
        colour = PALETTE[drawn % len(PALETTE)]
        drawn += 1
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 18:.1f}" y="{y + 10}" class="legend">{html.escape(s.name)}</text>')
    return parts
