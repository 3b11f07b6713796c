"""The opening_hours section: weekly hours like ``mon-fri: "14:00-23:00"``, closed dates.

"20:00-02:00" passes midnight and belongs to the day it starts on; "24:00" ends at midnight.
Each day may be given by one entry only.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config.fields import _bool, _text
from bot.config.model import OpeningHoursConfig
from bot.config.reader import _Section
from bot.config.source import _BAD, _MISSING, _Checker, _join, _show
from bot.core.model import Interval

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")


def _read_opening_hours(root: _Section) -> OpeningHoursConfig:
    s = root.section("opening_hours")
    tz_name = s.get("timezone", _text, default="Europe/Oslo")
    timezone: Any = _BAD
    if tz_name is not _BAD:
        try:
            timezone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            s.chk.problem(
                s.path_of("timezone"),
                "a time zone name like Europe/Oslo",
                _show(tz_name),
                "names come from the tz database (install tzdata if Europe/Oslo fails too)",
            )
    always_open = s.get("always_open", _bool, default=False)
    weekly: Any = ((),) * 7
    if s.has("weekly") or always_open is False:
        weekly = _read_weekly(s, required=always_open is False)
    closed = s.items("closed_dates", _iso_date, default=(), expected="a list of dates")
    s.done()
    return OpeningHoursConfig(
        timezone, always_open, weekly, frozenset(closed) if closed is not _BAD else _BAD
    )


def _read_weekly(s: _Section, *, required: bool) -> Any:
    value = s.raw("weekly")
    path = s.path_of("weekly")
    expected = 'weekly hours like mon-fri: "14:00-23:00", or always_open: true'
    if value is _BAD:
        return _BAD
    if value is _MISSING or value is None or value == {}:
        if required:
            return s.chk.problem(path, expected, "no hours", "without hours the line never opens")
        return ((),) * 7
    if not isinstance(value, dict):
        return s.chk.problem(path, expected, _show(value))
    days: list[list[Interval]] = [[] for _ in _DAYS]
    given_by: dict[int, str] = {}
    broken = False
    for key, hours in value.items():
        key_path = _join(path, key)
        day_indexes = _parse_days(key)
        if day_indexes is None:
            s.chk.problem(
                key_path,
                "days like mon, mon-fri, sat-sun or tue,thu",
                _show(key),
                "day names: " + ", ".join(_DAYS),
            )
            broken = True
            continue
        intervals = _parse_hours(s.chk, key_path, hours)
        if intervals is _BAD:
            broken = True
            continue
        for day in day_indexes:
            if day in given_by:
                s.chk.problem(
                    key_path,
                    "each day in one entry",
                    f"{_DAYS[day]} again",
                    f"{_DAYS[day]} is already given by {given_by[day]}",
                )
                broken = True
                continue
            given_by[day] = key
            days[day].extend(intervals)
    if broken:
        return _BAD
    if required and not any(days):
        return s.chk.problem(path, expected, "every day closed", "set always_open, or open hours")
    return tuple(tuple(sorted(d, key=lambda iv: iv.start)) for d in days)


def _parse_days(key: str) -> list[int] | None:
    result: list[int] = []
    for part in key.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            return None
        start = _DAYS.index(first)
        end = _DAYS.index(last) if last else start
        # A range may wrap round the week: fri-mon is fri, sat, sun, mon.
        count = (end - start) % 7 + 1
        result.extend((start + i) % 7 for i in range(count))
    return result


def _parse_hours(chk: _Checker, path: str, value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "closed":
        return []
    entries = value if isinstance(value, list) else [value]
    intervals: list[Interval] = []
    for index, entry in enumerate(entries):
        entry_path = f"{path}[{index}]" if isinstance(value, list) else path
        text = entry
        if not isinstance(text, str) and entry_path in chk.raw_text:
            text = chk.raw_text[entry_path]
        interval = _parse_interval(text) if isinstance(text, str) else None
        if interval is None:
            chk.problem(
                entry_path,
                'opening hours like "14:00-23:00", a list of them, or closed',
                _show(text),
                'use 24-hour clock times; "20:00-02:00" passes midnight, "24:00" ends at midnight',
            )
            return _BAD
        intervals.append(interval)
    return intervals


def _parse_interval(text: str) -> Interval | None:
    start_text, sep, end_text = text.replace(" ", "").partition("-")
    if not sep:
        return None
    start, end = _minutes(start_text), _minutes(end_text)
    if start is None or end is None or start == end or start == 24 * 60:
        return None
    return Interval(time(start // 60, start % 60), time(end // 60 % 24, end % 60))


def _minutes(text: str) -> int | None:
    match = _CLOCK_RE.fullmatch(text)
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _iso_date(chk: _Checker, path: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return chk.problem(path, "a date like 2025-12-24", _show(value.isoformat()))
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    return chk.problem(path, "a date like 2025-12-24", _show(value))
