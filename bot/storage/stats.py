"""Anonymous statistics: one row per finished conversation (the report reads them).

Rules:
- A row holds no person, room, session id or content: the local day, language, source,
  outcome, whole-second wait and duration, requeue count, topic tags, rating, how the
  purge went and the wait estimate told on arrival. Nothing here can be joined back to a
  conversation.
- The hour a conversation began is not in its row: `stats_hours` counts arrivals per day
  and hour, so a row cannot be placed at a time of day (`query` gives `hour=None`).
- The figures (counts, medians, the 90th percentile, the small-number rule) are the
  report's (`bot.report`), over the rows `query` reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.core.model import StatsRecord

if TYPE_CHECKING:
    from bot.storage.db import Database, Tx

COLUMNS = (
    "day, language, source, outcome, wait_seconds, duration_seconds, requeues, tags, "
    "rating, purge_result, told_wait_minutes"
)


def stats_row(record: StatsRecord) -> tuple[Any, ...]:
    return (
        record.day.isoformat(),
        record.language,
        record.source,
        record.outcome,
        record.wait_seconds,
        record.duration_seconds,
        record.requeues,
        json.dumps(list(record.tags), separators=(",", ":"), ensure_ascii=False),
        record.rating,
        record.purge_result,
        record.told_wait_minutes,
    )


def stats_record(row: Sequence[Any]) -> StatsRecord:
    """A row of `COLUMNS`, as read back (`hour` is not in a row: always None)."""
    day, language, source, outcome, wait, duration, requeues, tags, rating, purge, told = row
    return StatsRecord(
        day=date.fromisoformat(day),
        language=language or "",
        source=source or "",
        outcome=outcome,
        wait_seconds=wait,
        duration_seconds=duration,
        requeues=requeues,
        tags=tuple(json.loads(tags)),
        rating=rating,
        purge_result=purge,
        told_wait_minutes=told,
    )


def day_range(
    since: date | None, until: date | None, *, column: str = "day"
) -> tuple[str, list[str]]:
    """A WHERE clause (or "") for the days within [since, until], with its parameters."""
    # ISO dates compare correctly as text, and the day index serves the range.
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{column} >= ?")
        params.append(since.isoformat())
    if until is not None:
        clauses.append(f"{column} <= ?")
        params.append(until.isoformat())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class Stats:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, records: Sequence[StatsRecord], *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.executemany(
                f"INSERT INTO stats ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [stats_row(r) for r in records],
            )
            await t.executemany(
                "INSERT INTO stats_hours (day, hour, contacts) VALUES (?, ?, 1) "
                "ON CONFLICT (day, hour) DO UPDATE SET contacts = contacts + 1",
                [(r.day.isoformat(), r.hour) for r in records if r.hour is not None],
            )

    async def count_blocks(self, days: Sequence[date], *, tx: Tx | None = None) -> None:
        """One more block set on each of `days` (a day may come more than once)."""
        async with self._db.writing(tx) as t:
            await t.executemany(
                "INSERT INTO stats_blocks (day, blocks) VALUES (?, 1) "
                "ON CONFLICT (day) DO UPDATE SET blocks = blocks + 1",
                [(d.isoformat(),) for d in days],
            )

    async def blocks_by_day(
        self, since: date | None = None, until: date | None = None
    ) -> dict[date, int]:
        """Blocks set per local day within [since, until], oldest first; days without
        any are absent."""
        where, params = day_range(since, until)
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                f"SELECT day, blocks FROM stats_blocks{where} ORDER BY day", params
            )
        return {date.fromisoformat(day): n for day, n in rows}

    async def query(
        self, since: date | None = None, until: date | None = None
    ) -> list[StatsRecord]:
        """Rows whose day is within [since, until] (both inclusive), oldest first."""
        where, params = day_range(since, until)
        async with self._db.read() as tx:
            rows = await tx.fetchall(f"SELECT {COLUMNS} FROM stats{where} ORDER BY day, id", params)
        return [stats_record(row) for row in rows]
