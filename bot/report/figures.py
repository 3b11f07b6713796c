"""The report's figures: the anonymous statistics in, the published tables out.

Rules:
- Pure: no database, no files, no clock, no charts. The input is what storage read (the
  stats rows, arrivals per day and hour, blocks per day) and the period asked for.
- Small numbers are not published: a count from 1 to 4 is shown as "<5" (`Count`), and a
  median or p90 over fewer than 5 conversations is left out (it would be one person's
  wait). Zero is shown: it tells of nobody.
- Days, never times: the finest grain is a day, or a weekday x hour cell summed over the
  whole period.
- Medians and p90 as storage's `Spread` (the usual median, nearest-rank p90), in minutes
  with one decimal.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from bot.core.model import Outcome, StatsRecord

MIN_SHOWN = 5
HIDDEN = "<5"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
RATINGS = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class Count:
    """A count as published: 1 to 4 are hidden behind "<5"."""

    value: int

    @property
    def hidden(self) -> bool:
        return 0 < self.value < MIN_SHOWN

    @property
    def shown(self) -> int | None:
        """The value, or None when it must not be published."""
        return None if self.hidden else self.value

    def __str__(self) -> str:
        return HIDDEN if self.hidden else str(self.value)


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and p90 in minutes, both None when fewer than 5 values stand behind them."""

    count: Count
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, seconds: Iterable[int]) -> Spread:
        values = sorted(seconds)
        n = len(values)
        if n < MIN_SHOWN:
            return cls(Count(n), None, None)
        p90 = values[math.ceil(0.9 * n) - 1]  # nearest rank
        return cls(Count(n), _minutes(statistics.median(values)), _minutes(p90))


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 1)


class Fate(enum.Enum):
    """What came of a contact, as the helplines publish it ("we answered N of M")."""

    ANSWERED = "answered"
    LEFT = "left"  # went before an answer: left, ended, gave up, the queue timed out
    CLOSED = "closed"  # turned away: outside opening hours
    FULL = "full"  # turned away: the queue was full
    OTHER = "other"  # the bot could not make or keep the chatter's room


_LEFT = frozenset(
    o.value
    for o in (
        Outcome.LEFT_WAITING,
        Outcome.QUEUE_TIMEOUT,
        Outcome.DELETED,
        Outcome.CHATTER_LEFT,
        Outcome.CHATTER_IDLE,
        Outcome.NO_CONSENT,
    )
)


def fate(record: StatsRecord) -> Fate:
    # The wait is recorded at the first answer, and only then.
    if record.wait_seconds is not None:
        return Fate.ANSWERED
    if record.outcome == Outcome.CLOSED_HOURS.value:
        return Fate.CLOSED
    if record.outcome == Outcome.QUEUE_FULL.value:
        return Fate.FULL
    if record.outcome in _LEFT:
        return Fate.LEFT
    return Fate.OTHER


@dataclass(frozen=True, slots=True)
class DayRow:
    day: date
    contacts: Count
    fates: Mapping[Fate, Count]


@dataclass(frozen=True, slots=True)
class WeekRow:
    week: str  # ISO week, like 2026-W09
    spread: Spread


@dataclass(frozen=True, slots=True)
class Tally:
    label: str
    count: Count


@dataclass(frozen=True, slots=True)
class EstimateRow:
    """Conversations told `told_minutes` on arrival, and what they then waited."""

    told_minutes: int
    told: Count
    within: Count  # answered within the estimate
    later: Count  # answered, later than the estimate
    unanswered: Count  # went before an answer, or were turned away
    wait: Spread  # of those answered


@dataclass(frozen=True, slots=True)
class Table:
    """One CSV file: its name (without .csv), header and rows, every cell as published."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Report:
    first: date | None  # the period shown; None when there is nothing in it
    last: date | None
    contacts: Count
    fates: Mapping[Fate, Count]
    days: tuple[DayRow, ...]
    heat: tuple[tuple[Count, ...], ...]  # [weekday][hour], Monday first
    wait: Spread  # over the whole period
    length: Spread
    waits: tuple[WeekRow, ...]
    lengths: tuple[WeekRow, ...]
    topics: tuple[Tally, ...]
    outcomes: tuple[Tally, ...]
    ratings: tuple[Tally, ...]
    purges: tuple[Tally, ...]
    blocks: tuple[Tally, ...]  # per ISO week
    estimates: tuple[EstimateRow, ...]
    estimate_within: Count  # of those told an estimate and answered
    estimate_answered: Count

    @property
    def empty(self) -> bool:
        return self.contacts.value == 0 and not self.blocks

    def tables(self) -> tuple[Table, ...]:
        return (
            Table(
                "per_day",
                ("day", "contacts", *(f.value for f in Fate)),
                tuple(
                    (r.day.isoformat(), str(r.contacts), *(str(r.fates[f]) for f in Fate))
                    for r in self.days
                ),
            ),
            Table(
                "weekday_hour",
                ("weekday", *(f"{h:02d}" for h in range(24))),
                tuple((WEEKDAYS[d], *(str(c) for c in row)) for d, row in enumerate(self.heat))
                if self.contacts.value
                else (),
            ),
            _spread_table("wait_per_week", self.waits),
            _spread_table("length_per_week", self.lengths),
            _tally_table("topics", "topic", self.topics),
            _tally_table("outcomes", "outcome", self.outcomes),
            _tally_table("ratings", "rating", self.ratings),
            _tally_table("purge_results", "purge_result", self.purges),
            _tally_table("blocks_per_week", "week", self.blocks, column="blocks"),
            Table(
                "wait_estimate",
                (
                    "told_minutes",
                    "told",
                    "answered_within",
                    "answered_later",
                    "not_answered",
                    "wait_median_minutes",
                    "wait_p90_minutes",
                ),
                tuple(
                    (
                        str(r.told_minutes),
                        str(r.told),
                        str(r.within),
                        str(r.later),
                        str(r.unanswered),
                        _cell(r.wait.median),
                        _cell(r.wait.p90),
                    )
                    for r in self.estimates
                ),
            ),
        )


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _spread_table(name: str, rows: Sequence[WeekRow]) -> Table:
    return Table(
        name,
        ("week", "conversations", "median_minutes", "p90_minutes"),
        tuple(
            (r.week, str(r.spread.count), _cell(r.spread.median), _cell(r.spread.p90)) for r in rows
        ),
    )


def _tally_table(
    name: str, key: str, rows: Sequence[Tally], *, column: str = "conversations"
) -> Table:
    return Table(name, (key, column), tuple((t.label, str(t.count)) for t in rows))


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _tallies(counts: Counter[str], order: Iterable[str] | None = None) -> tuple[Tally, ...]:
    """Most frequent first, ties by name, or in the given order. Hidden counts sort as
    equals (by name), so that their order cannot tell one from another."""

    def rank(key: str) -> tuple[int, str]:
        c = Count(counts[key])
        return (-(c.value if not c.hidden else 1), key)

    keys = list(order) if order is not None else sorted(counts, key=rank)
    return tuple(Tally(k, Count(counts[k])) for k in keys)


def build_report(
    records: Sequence[StatsRecord],
    hours: Mapping[tuple[date, int], int],
    blocks: Mapping[date, int],
    since: date | None = None,
    until: date | None = None,
) -> Report:
    """Every figure of the report for the days within [since, until].

    Rows outside the range are left out (storage has filtered them already; this keeps
    the figures right for any input). The period shown runs from `since` (or the first
    day with a contact) to `until` (or the last one), every day listed, zeros included.
    """

    def inside(day: date) -> bool:
        return (since is None or day >= since) and (until is None or day <= until)

    records = [r for r in records if inside(r.day)]
    block_days = {d: n for d, n in blocks.items() if inside(d) and n}
    seen = [r.day for r in records] + list(block_days)
    first = since or (min(seen) if seen else None)
    last = until or (max(seen) if seen else None)

    per_day: dict[date, Counter[Fate]] = {}
    for r in records:
        per_day.setdefault(r.day, Counter())[fate(r)] += 1
    fates_total: Counter[Fate] = Counter(fate(r) for r in records)
    days = (
        tuple(
            DayRow(
                day,
                Count(sum(per_day.get(day, Counter()).values())),
                {f: Count(per_day.get(day, Counter())[f]) for f in Fate},
            )
            for day in _days(first, last)
        )
        if records and first is not None and last is not None
        else ()
    )

    heat = [[0] * 24 for _ in range(7)]
    for (day, hour), n in hours.items():
        if inside(day) and 0 <= hour < 24:
            heat[day.weekday()][hour] += n

    weeks = (
        sorted({iso_week(d) for d in _days(first, last)})
        if records and first is not None and last is not None
        else []
    )
    waits_by_week: dict[str, list[int]] = {w: [] for w in weeks}
    lengths_by_week: dict[str, list[int]] = {w: [] for w in weeks}
    for r in records:
        if r.wait_seconds is not None:
            waits_by_week[iso_week(r.day)].append(r.wait_seconds)
        if r.duration_seconds is not None:
            lengths_by_week[iso_week(r.day)].append(r.duration_seconds)

    topics: Counter[str] = Counter(t for r in records for t in dict.fromkeys(r.tags))
    ratings: Counter[str] = Counter(str(r.rating) for r in records if r.rating is not None)
    blocks_by_week: Counter[str] = Counter()
    for d, n in block_days.items():
        blocks_by_week[iso_week(d)] += n

    told = [r for r in records if r.told_wait_minutes is not None]
    estimates = tuple(
        _estimate_row(minutes, [r for r in told if r.told_wait_minutes == minutes])
        for minutes in sorted(
            {r.told_wait_minutes for r in told if r.told_wait_minutes is not None}
        )
    )
    answered_told = [r for r in told if r.wait_seconds is not None]

    return Report(
        first=first if records or block_days else None,
        last=last if records or block_days else None,
        contacts=Count(len(records)),
        fates={f: Count(fates_total[f]) for f in Fate},
        days=days,
        heat=tuple(tuple(Count(n) for n in row) for row in heat),
        wait=Spread.of(r.wait_seconds for r in records if r.wait_seconds is not None),
        length=Spread.of(r.duration_seconds for r in records if r.duration_seconds is not None),
        waits=tuple(WeekRow(w, Spread.of(v)) for w, v in waits_by_week.items()),
        lengths=tuple(WeekRow(w, Spread.of(v)) for w, v in lengths_by_week.items()),
        topics=_tallies(topics),
        outcomes=_tallies(Counter(r.outcome for r in records)),
        ratings=_tallies(ratings, [str(n) for n in RATINGS]) if ratings else (),
        purges=_tallies(Counter(r.purge_result for r in records)),
        blocks=_tallies(blocks_by_week, sorted(blocks_by_week)),
        estimates=estimates,
        estimate_within=Count(sum(_within(r) for r in answered_told)),
        estimate_answered=Count(len(answered_told)),
    )


def _within(r: StatsRecord) -> bool:
    """Answered no later than the estimate told on arrival."""
    wait, told = r.wait_seconds, r.told_wait_minutes
    return wait is not None and told is not None and wait <= told * 60


def _estimate_row(minutes: int, rows: Sequence[StatsRecord]) -> EstimateRow:
    answered = [r for r in rows if r.wait_seconds is not None]
    within = sum(_within(r) for r in answered)
    return EstimateRow(
        told_minutes=minutes,
        told=Count(len(rows)),
        within=Count(within),
        later=Count(len(answered) - within),
        unanswered=Count(len(rows) - len(answered)),
        wait=Spread.of(r.wait_seconds for r in answered if r.wait_seconds is not None),
    )
