"""The report's charts as matplotlib Figures, built from the published figures only.

Rules:
- A chart shows what the CSV shows: a count from 1 to 4 is drawn as a hatched bar up
  to 5 (labelled "1-4") or written "<5", never as its value; a median over fewer than 5
  is not drawn.
- No pyplot and no global state: each Figure has its own Agg canvas, so this runs
  headless and a test can look at the axes. Writing the files is `bot.report.run`'s job.
- A table with no rows gets no chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.report.figures import HIDDEN, MIN_SHOWN, Count, EstimateRow, Fate, Report, Tally, WeekRow
from bot.report.texts import Words, outcome_label, purge_label

DPI = 100
SIZE = (10.0, 5.0)  # inches: 1000 x 500 pixels
HEAT_SIZE = (12.0, 4.5)
HIDDEN_GID = "hidden"  # the gid of a bar that stands for 1-4
COLOURS = {
    Fate.ANSWERED: "#2b7a3d",
    Fate.LEFT: "#e0a030",
    Fate.CLOSED: "#8a8a8a",
    Fate.FULL: "#c0392b",
    Fate.OTHER: "#5b6fa8",
}
HIDDEN_CELL = "#d9d9d9"  # the heat map's "<5" cells: grey, not the colour of zero
MEDIAN_COLOUR, P90_COLOUR, TOLD_COLOUR = "#3b6ea8", "#a8c4e6", "#555555"


CHART_NAMES = (
    "contacts_per_day",
    "answered_per_day",
    "weekday_hour",
    "wait_per_week",
    "length_per_week",
    "topics",
    "outcomes",
    "ratings",
    "purge_results",
    "wait_estimate",
)


def build_charts(report: Report, words: Words) -> dict[str, Figure]:
    """File name (without .png) -> Figure, for every table that has rows."""
    charts: dict[str, Figure] = {}
    if report.days:
        charts["contacts_per_day"] = _contacts(report, words)
        charts["answered_per_day"] = _answered(report, words)
    if report.contacts.value:
        charts["weekday_hour"] = _heat(report, words)
    if report.waits:
        charts["wait_per_week"] = _weeks(report.waits, words, words.title_wait)
    if report.lengths:
        charts["length_per_week"] = _weeks(report.lengths, words, words.title_length)
    if report.topics:
        charts["topics"] = _tallies(report.topics, words, words.title_topics)
    if report.outcomes:
        labelled = [Tally(outcome_label(words, t.label), t.count) for t in report.outcomes]
        charts["outcomes"] = _tallies(labelled, words, words.title_outcomes)
    if report.ratings:
        charts["ratings"] = _ratings(report.ratings, words)
    if report.purges:
        labelled = [Tally(purge_label(words, t.label), t.count) for t in report.purges]
        charts["purge_results"] = _tallies(labelled, words, words.title_purges)
    if report.estimates:
        charts["wait_estimate"] = _estimates(report.estimates, words)
    return charts


def _figure(title: str, size: tuple[float, float] = SIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _bars(
    ax: Axes,
    positions: Sequence[float],
    counts: Sequence[Count],
    *,
    width: float,
    colour: str,
    label: str,
    words: Words,
    horizontal: bool = False,
) -> None:
    """One series; a hidden count becomes a hatched bar up to 5."""
    draw = ax.barh if horizontal else ax.bar
    shown = [c.value if not c.hidden else 0 for c in counts]
    draw(positions, shown, width, color=colour, label=label)
    hidden = [p for p, c in zip(positions, counts, strict=True) if c.hidden]
    if hidden:
        legend = words.hidden_legend
        if any(c.get_label() == legend for c in ax.containers):
            legend = "_nolegend_"
        bars = draw(
            hidden,
            [MIN_SHOWN] * len(hidden),
            width,
            color="none",
            edgecolor=colour,
            hatch="///",
            label=legend,
        )
        for bar in bars:
            bar.set_gid(HIDDEN_GID)


def _day_ticks(ax: Axes, days: Sequence[date]) -> None:
    step = max(1, len(days) // 15)
    ticks = list(range(0, len(days), step))
    ax.set_xticks(ticks, [days[i].isoformat() for i in ticks], rotation=45, ha="right")


def _contacts(report: Report, words: Words) -> Figure:
    fig, ax = _figure(words.title_contacts)
    days = [r.day for r in report.days]
    _bars(
        ax,
        list(range(len(days))),
        [r.contacts for r in report.days],
        width=0.8,
        colour=COLOURS[Fate.ANSWERED],
        label=words.contacts,
        words=words,
    )
    _day_ticks(ax, days)
    ax.set_xlabel(words.day)
    ax.set_ylabel(words.contacts)
    ax.legend()
    return fig


def _answered(report: Report, words: Words) -> Figure:
    fig, ax = _figure(words.title_answered)
    days = [r.day for r in report.days]
    series = [f for f in Fate if f is not Fate.OTHER or report.fates[f].value]
    width = 0.8 / len(series)
    for i, f in enumerate(series):
        _bars(
            ax,
            [d - 0.4 + width * (i + 0.5) for d in range(len(days))],
            [r.fates[f] for r in report.days],
            width=width,
            colour=COLOURS[f],
            label=words.fates[f],
            words=words,
        )
    _day_ticks(ax, days)
    ax.set_xlabel(words.day)
    ax.set_ylabel(words.contacts)
    ax.legend()
    return fig


def _heat(report: Report, words: Words) -> Figure:
    fig, ax = _figure(words.title_heat, HEAT_SIZE)
    # A hidden cell is blank (NaN) and says "<5"; the colour scale knows only shown values.
    values = np.array(
        [[np.nan if c.hidden else float(c.value) for c in row] for row in report.heat]
    )
    cmap = colormaps["Blues"].with_extremes(bad=HIDDEN_CELL)
    image = ax.imshow(values, aspect="auto", cmap=cmap, vmin=0)
    for d, row in enumerate(report.heat):
        for h, c in enumerate(row):
            if c.value:
                ax.text(h, d, str(c), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(7), list(words.weekdays))
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)])
    ax.set_xlabel(words.hour)
    fig.colorbar(image, ax=ax, label=words.contacts)
    return fig


def _weeks(rows: Sequence[WeekRow], words: Words, title: str) -> Figure:
    fig, ax = _figure(title)
    x = np.arange(len(rows))
    medians = [r.spread.median if r.spread.median is not None else 0.0 for r in rows]
    p90s = [r.spread.p90 if r.spread.p90 is not None else 0.0 for r in rows]
    ax.bar(x - 0.2, medians, 0.4, color=MEDIAN_COLOUR, label=words.median)
    ax.bar(x + 0.2, p90s, 0.4, color=P90_COLOUR, label=words.p90)
    for i, r in enumerate(rows):
        if r.spread.median is None and r.spread.count.value:
            ax.text(i, 0, HIDDEN, ha="center", va="bottom")
    ax.set_xticks(x, [r.week for r in rows], rotation=45, ha="right")
    ax.set_xlabel(words.week)
    ax.set_ylabel(words.minutes)
    ax.legend()
    return fig


def _tallies(rows: Sequence[Tally], words: Words, title: str) -> Figure:
    fig, ax = _figure(title)
    y = list(range(len(rows)))
    _bars(
        ax,
        y,
        [t.count for t in rows],
        width=0.7,
        colour=MEDIAN_COLOUR,
        label=words.conversations,
        words=words,
        horizontal=True,
    )
    ax.set_yticks(y, [t.label for t in rows])
    ax.invert_yaxis()  # the most frequent on top
    ax.set_xlabel(words.conversations)
    ax.legend()
    return fig


def _ratings(rows: Sequence[Tally], words: Words) -> Figure:
    fig, ax = _figure(words.title_ratings)
    x = list(range(len(rows)))
    _bars(
        ax,
        x,
        [t.count for t in rows],
        width=0.7,
        colour=MEDIAN_COLOUR,
        label=words.conversations,
        words=words,
    )
    ax.set_xticks(x, [t.label for t in rows])
    ax.set_xlabel(words.rating)
    ax.set_ylabel(words.conversations)
    ax.legend()
    return fig


def _estimates(rows: Sequence[EstimateRow], words: Words) -> Figure:
    fig, ax = _figure(words.title_estimate)
    x = np.arange(len(rows))
    medians = [r.wait.median if r.wait.median is not None else 0.0 for r in rows]
    p90s = [r.wait.p90 if r.wait.p90 is not None else 0.0 for r in rows]
    ax.bar(
        x - 0.27, [float(r.told_minutes) for r in rows], 0.27, color=TOLD_COLOUR, label=words.told
    )
    ax.bar(x, medians, 0.27, color=MEDIAN_COLOUR, label=words.median)
    ax.bar(x + 0.27, p90s, 0.27, color=P90_COLOUR, label=words.p90)
    for i, r in enumerate(rows):
        if r.wait.median is None and r.wait.count.value:
            ax.text(i + 0.13, 0, HIDDEN, ha="center", va="bottom")
    ax.set_xticks(x, [str(r.told_minutes) for r in rows])
    ax.set_xlabel(f"{words.told} ({words.minutes})")
    ax.set_ylabel(words.minutes)
    ax.legend()
    return fig
