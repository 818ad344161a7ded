"""Server-rendered SVG bar charts: geometry computed here, drawn by templates/analytics/_chart.html with
SVG attributes and CSS classes only (the CSP allows no inline style or script)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT = 600, 200
LEFT, BOTTOM, TOP = 36, 22, 8
GAP = 0.2  # of each slot's width, between bars


@dataclass
class Series:
    name: str
    css: str  # a class of static/app.css: chart-ok, chart-bad, chart-created, ...
    values: list[int]


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Chart:
    id: str
    title: str
    labels: list[str]
    series: list[Series]
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # y, label
    axis_labels: list[tuple[float, str]]  # x, label (a few along the bottom)
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = HEIGHT - BOTTOM


def slot_label(start: datetime, step: timedelta) -> str:
    return start.strftime("%H:00") if step < timedelta(days=1) else start.strftime("%b %d")


def nice_top(largest: int) -> int:
    """A round axis maximum at or above `largest`: 1, 2, 5, 10, 20, 50, ..."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= largest:
                return factor * magnitude
        magnitude *= 10


def stacked_bars(chart_id: str, title: str, labels: list[str], series: list[Series]) -> Chart:
    count = len(labels)
    plot_width, plot_height = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot_width = plot_width / max(count, 1)
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    top = nice_top(max(totals, default=0))
    bars = []
    for i, label in enumerate(labels):
        base = HEIGHT - BOTTOM
        for s in series:
            value = s.values[i]
            if not value:
                continue
            height = plot_height * value / top
            base -= height
            x = LEFT + slot_width * i + slot_width * GAP / 2
            bars.append(
                Bar(
                    round(x, 2),
                    round(base, 2),
                    round(slot_width * (1 - GAP), 2),
                    round(height, 2),
                    s.css,
                    f"{label}: {value} {s.name}",
                )
            )
    shares = (0, 0.5, 1) if top % 2 == 0 else (0, 1)  # whole numbers only
    ticks = [(round(HEIGHT - BOTTOM - plot_height * f, 2), str(int(top * f))) for f in shares]
    every = max(1, count // 6)
    axis = [(round(LEFT + slot_width * (i + 0.5), 2), labels[i]) for i in range(0, count, every)]
    return Chart(chart_id, title, labels, series, bars, ticks, axis, sum(totals))
