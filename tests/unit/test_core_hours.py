"""Opening hours in Europe/Oslo: weekly intervals, overnight, closed dates, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.hours import is_open, next_opening, opening
from bot.core.model import Hours, Interval

OSLO = ZoneInfo("Europe/Oslo")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def weekly(*spec: tuple[int, str]) -> tuple[tuple[Interval, ...], ...]:
    days: list[list[Interval]] = [[] for _ in range(7)]
    for day, span in spec:
        start, end = (time.fromisoformat(x) for x in span.split("-"))
        days[day].append(Interval(start, end))
    return tuple(tuple(d) for d in days)


def local(text: str) -> datetime:
    """An Oslo wall-clock time, as the UTC moment the core is given."""
    return datetime.fromisoformat(text).replace(tzinfo=OSLO).astimezone(UTC)


# The example config: weekdays 14-23, weekends 16-23.
ALLTIDHJELP = Hours(
    always_open=False,
    weekly=weekly(
        *((d, "14:00-23:00") for d in range(5)), (SAT, "16:00-23:00"), (SUN, "16:00-23:00")
    ),
)
# Friday night and Sunday night past midnight (Sunday's wraps into Monday).
NIGHTS = Hours(always_open=False, weekly=weekly((FRI, "20:00-02:00"), (SUN, "22:00-01:00")))

# March 2026: Monday the 2nd; Friday the 6th; Saturday the 7th.


@pytest.mark.parametrize(
    ("hours", "when", "open_"),
    [
        (ALLTIDHJELP, "2026-03-02 13:59", False),
        (ALLTIDHJELP, "2026-03-02 14:00", True),
        (ALLTIDHJELP, "2026-03-02 22:59", True),
        (ALLTIDHJELP, "2026-03-02 23:00", False),  # the end is not included
        (ALLTIDHJELP, "2026-03-03 00:30", False),
        (ALLTIDHJELP, "2026-03-07 15:00", False),  # Saturday opens later
        (ALLTIDHJELP, "2026-03-07 16:00", True),
        (NIGHTS, "2026-03-06 19:59", False),
        (NIGHTS, "2026-03-06 20:00", True),
        (NIGHTS, "2026-03-06 23:59", True),
        (NIGHTS, "2026-03-07 00:00", True),  # Friday's interval, on Saturday
        (NIGHTS, "2026-03-07 01:59", True),
        (NIGHTS, "2026-03-07 02:00", False),
        (NIGHTS, "2026-03-07 20:30", False),  # Saturday has no interval of its own
        (NIGHTS, "2026-03-05 01:00", False),  # nor does Wednesday night
        (NIGHTS, "2026-03-08 23:00", True),
        (NIGHTS, "2026-03-09 00:30", True),  # Sunday into Monday: the week wraps
        (NIGHTS, "2026-03-09 01:00", False),
    ],
)
def test_weekly_and_overnight(hours: Hours, when: str, open_: bool) -> None:
    assert is_open(hours, local(when)) is open_


def closing(hours: Hours, *days: str) -> Hours:
    return Hours(
        always_open=False,
        weekly=hours.weekly,
        closed_dates=frozenset(date.fromisoformat(d) for d in days),
    )


@pytest.mark.parametrize(
    ("hours", "when", "open_"),
    [
        (closing(ALLTIDHJELP, "2026-03-02"), "2026-03-02 15:00", False),
        (closing(ALLTIDHJELP, "2026-03-02"), "2026-03-03 15:00", True),  # only that day
        (closing(ALLTIDHJELP, "2026-03-02"), "2026-03-09 15:00", True),  # not every Monday
        # a closed Saturday takes the early-morning tail of Friday's night with it
        (closing(NIGHTS, "2026-03-07"), "2026-03-06 23:00", True),
        (closing(NIGHTS, "2026-03-07"), "2026-03-07 01:00", False),
        # a closed Friday: that night's interval does not run at all, tail included
        (closing(NIGHTS, "2026-03-06"), "2026-03-06 23:00", False),
        (closing(NIGHTS, "2026-03-06"), "2026-03-07 01:00", False),
        (closing(NIGHTS, "2026-03-06"), "2026-03-13 23:00", True),
    ],
)
def test_closed_dates(hours: Hours, when: str, open_: bool) -> None:
    assert is_open(hours, local(when)) is open_


def test_closed_dates_are_local_dates() -> None:
    # 23:30 UTC on Sunday the 1st is already Monday the 2nd in Oslo.
    hours = closing(Hours(always_open=False, weekly=weekly((MON, "00:00-02:00"))), "2026-03-02")
    assert not is_open(hours, datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    assert is_open(
        Hours(always_open=False, weekly=hours.weekly), datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "when",
    [datetime(2026, 3, 2, 3, 0, tzinfo=UTC), datetime(2026, 12, 24, 18, 0, tzinfo=UTC)],
)
def test_always_open(when: datetime) -> None:
    hours = Hours(always_open=True, closed_dates=frozenset({when.date()}))
    assert is_open(hours, when)
    assert next_opening(hours, when) is None


SUNDAY = Hours(always_open=False, weekly=weekly((SUN, "14:00-23:00"), (SAT, "22:00-04:00")))


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        # 29 March 2026: clocks go from 02:00 to 03:00 (CET, UTC+1 -> CEST, UTC+2)
        (datetime(2026, 3, 29, 11, 59, tzinfo=UTC), False),  # 13:59 CEST
        (datetime(2026, 3, 29, 12, 0, tzinfo=UTC), True),  # 14:00 CEST (13:00 in CET)
        (datetime(2026, 3, 29, 20, 59, tzinfo=UTC), True),
        (datetime(2026, 3, 29, 21, 0, tzinfo=UTC), False),  # 23:00 CEST
        # Saturday night across the change: 04:00 comes one UTC hour earlier
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), True),  # 01:30 CET
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), True),  # 03:30 CEST
        (datetime(2026, 3, 29, 2, 0, tzinfo=UTC), False),  # 04:00 CEST
        # 25 October 2026: clocks go from 03:00 back to 02:00 (CEST -> CET)
        (datetime(2026, 10, 25, 12, 59, tzinfo=UTC), False),  # 13:59 CET
        (datetime(2026, 10, 25, 13, 0, tzinfo=UTC), True),  # 14:00 CET (15:00 in CEST)
        (datetime(2026, 10, 25, 21, 59, tzinfo=UTC), True),
        (datetime(2026, 10, 25, 22, 0, tzinfo=UTC), False),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), True),  # 02:30 CEST, the first time
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), True),  # 02:30 CET, the second time
        (datetime(2026, 10, 25, 2, 59, tzinfo=UTC), True),  # 03:59 CET
        (datetime(2026, 10, 25, 3, 0, tzinfo=UTC), False),  # 04:00 CET
    ],
)
def test_dst_change_days(when: datetime, open_: bool) -> None:
    assert is_open(SUNDAY, when) is open_


@pytest.mark.parametrize(
    ("hours", "when", "expected"),
    [
        (ALLTIDHJELP, "2026-03-02 12:00", "2026-03-02 14:00"),
        (ALLTIDHJELP, "2026-03-02 23:30", "2026-03-03 14:00"),
        (ALLTIDHJELP, "2026-03-06 23:30", "2026-03-07 16:00"),
        (ALLTIDHJELP, "2026-03-02 15:00", None),  # open now
        (closing(ALLTIDHJELP, "2026-03-03"), "2026-03-02 23:30", "2026-03-04 14:00"),
        (closing(NIGHTS, "2026-03-06"), "2026-03-06 21:00", "2026-03-08 22:00"),
        (NIGHTS, "2026-03-09 02:00", "2026-03-13 20:00"),
        (SUNDAY, "2026-03-28 12:00", "2026-03-28 22:00"),
        (SUNDAY, "2026-03-29 05:00", "2026-03-29 14:00"),  # the DST day, in CEST
        (Hours(always_open=False), "2026-03-02 12:00", None),  # never
    ],
)
def test_next_opening(hours: Hours, when: str, expected: str | None) -> None:
    got = next_opening(hours, local(when))
    assert got == (local(expected) if expected else None)
    if got is not None:
        assert got.tzinfo == UTC


def test_next_opening_gives_up_after_two_weeks() -> None:
    days = [(date(2026, 3, 3) + timedelta(days=i)).isoformat() for i in range(15)]
    assert next_opening(closing(ALLTIDHJELP, *days), local("2026-03-02 23:30")) is None


@pytest.mark.parametrize(
    "hours",
    [
        ALLTIDHJELP,
        NIGHTS,
        SUNDAY,
        closing(NIGHTS, "2026-03-06", "2026-03-15"),
        closing(ALLTIDHJELP, "2026-03-04", "2026-03-29"),
    ],
)
def test_next_opening_agrees_with_is_open(hours: Hours) -> None:
    """Sampled every 30 minutes over four weeks: when closed, the line stays closed until
    the next opening, and is open then."""
    step = timedelta(minutes=30)
    moments = [datetime(2026, 3, 1, tzinfo=UTC) + i * step for i in range(4 * 7 * 48)]
    state = {m: is_open(hours, m) for m in moments}
    for m in moments:
        if state[m]:
            continue
        n = next_opening(hours, m)
        assert n is not None
        assert n > m
        assert is_open(hours, n), (m, n)
        between = [x for x in moments if m <= x < n]
        assert not any(state[x] for x in between), (m, n)


def told(days: int, weekday: int, day: int, month: int, hour: int) -> dict[str, int]:
    return {"days": days, "weekday": weekday, "day": day, "month": month, "hour": hour, "minute": 0}


@pytest.mark.parametrize(
    ("hours", "when", "expected"),
    [
        (ALLTIDHJELP, "2026-03-02 12:00", told(0, MON, 2, 3, 14)),  # today
        (ALLTIDHJELP, "2026-03-02 23:30", told(1, TUE, 3, 3, 14)),  # tomorrow
        (ALLTIDHJELP, "2026-03-03 00:30", told(0, TUE, 3, 3, 14)),  # past midnight: today
        (ALLTIDHJELP, "2026-03-06 23:30", told(1, SAT, 7, 3, 16)),  # Saturday's own hours
        (NIGHTS, "2026-03-07 03:00", told(1, SUN, 8, 3, 22)),
        (NIGHTS, "2026-03-09 02:00", told(4, FRI, 13, 3, 20)),  # after Sunday's tail
        (NIGHTS, "2026-03-07 01:00", None),  # open: Friday's night, on Saturday
        # a closed Friday: its night does not run, tail included
        (closing(NIGHTS, "2026-03-06"), "2026-03-06 21:00", told(2, SUN, 8, 3, 22)),
        # Christmas closed: from the 23rd's late evening to the 27th, a Sunday
        (
            closing(ALLTIDHJELP, "2026-12-24", "2026-12-25", "2026-12-26"),
            "2026-12-23 23:30",
            told(4, SUN, 27, 12, 16),
        ),
        # a week or more away: a weekday name alone would mean the coming one
        (
            closing(ALLTIDHJELP, *(f"2026-12-{d}" for d in range(24, 32))),
            "2026-12-23 23:30",
            told(9, FRI, 1, 1, 14),
        ),
        # across the DST changes the local hour is the configured one
        (SUNDAY, "2026-03-29 05:00", told(0, SUN, 29, 3, 14)),
        (SUNDAY, "2026-10-25 05:00", told(0, SUN, 25, 10, 14)),
        (SUNDAY, "2026-03-28 12:00", told(0, SAT, 28, 3, 22)),
    ],
)
def test_opening_is_told_on_the_helplines_clock(
    hours: Hours, when: str, expected: dict[str, int] | None
) -> None:
    assert opening(hours, local(when)) == expected


def test_opening_counts_days_from_the_helplines_date_not_utcs() -> None:
    # 23:30 UTC on Monday the 2nd is already Tuesday 00:30 in Oslo: Tuesday's 14:00 is
    # today for the chatter reading it there.
    assert opening(ALLTIDHJELP, datetime(2026, 3, 2, 23, 30, tzinfo=UTC)) == told(0, TUE, 3, 3, 14)


def test_opening_in_the_utc_moment_of_a_dst_day() -> None:
    # Sunday 29 March 14:00 is CEST (UTC+2): 12:00 UTC; the text says 14:00.
    assert next_opening(SUNDAY, local("2026-03-29 05:00")) == datetime(
        2026, 3, 29, 12, 0, tzinfo=UTC
    )
    assert next_opening(SUNDAY, local("2026-10-25 05:00")) == datetime(
        2026, 10, 25, 13, 0, tzinfo=UTC
    )
