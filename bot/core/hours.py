"""Opening hours: is the line open at a given moment?

Pure: the moment is passed in (UTC-aware) and converted to the configured timezone with
zoneinfo. An interval whose end is not after its start passes midnight: "20:00-02:00" on a
Friday covers Friday 20:00 to Saturday 02:00. A closed date closes the whole local day,
including the early-morning tail of an interval that started the evening before; and an
interval that starts on a closed date does not run at all, its tail on the next day
included (as `next_opening` has it).

`opening` gives the next opening as a text's param: on the helpline's clock, so that the
chatter reads "we open again Monday at 14:00" as the helpline means it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core.model import Hours


def is_open(hours: Hours, now: datetime) -> bool:
    if hours.always_open:
        return True
    local = now.astimezone(ZoneInfo(hours.timezone))
    if local.date() in hours.closed_dates:
        return False
    t = local.time().replace(tzinfo=None)
    today = local.weekday()
    yesterday = (today - 1) % 7
    yesterday_closed = local.date() - timedelta(days=1) in hours.closed_dates
    for iv in hours.weekly[today]:
        if iv.passes_midnight and t >= iv.start:
            return True
        if not iv.passes_midnight and iv.start <= t < iv.end:
            return True
    if yesterday_closed:
        return False
    return any(iv.passes_midnight and t < iv.end for iv in hours.weekly[yesterday])


def next_opening(hours: Hours, now: datetime) -> datetime | None:
    """The next moment (UTC) the line opens, within two weeks; None if never or open now."""
    if hours.always_open or is_open(hours, now):
        return None
    zone = ZoneInfo(hours.timezone)
    local = now.astimezone(zone)
    best: datetime | None = None
    for day_offset in range(15):
        day = (local + timedelta(days=day_offset)).date()
        if day in hours.closed_dates:
            continue
        for iv in hours.weekly[day.weekday()]:
            start = datetime.combine(day, iv.start, zone)
            if start > local and (best is None or start < best):
                best = start
        if best is not None:
            return best.astimezone(now.tzinfo)
    return None


def opening(hours: Hours, now: datetime) -> dict[str, int] | None:
    """When the line opens next, on the helpline's clock, as a text's `opens` param:
    `days` from today (0 today, 1 tomorrow), `weekday` (0 Monday), `day` of the month,
    `month`, `hour`, `minute`. None when it does not open within two weeks (or is open)."""
    at = next_opening(hours, now)
    if at is None:
        return None
    zone = ZoneInfo(hours.timezone)
    local = at.astimezone(zone)
    return {
        "days": (local.date() - now.astimezone(zone).date()).days,
        "weekday": local.weekday(),
        "day": local.day,
        "month": local.month,
        "hour": local.hour,
        "minute": local.minute,
    }
