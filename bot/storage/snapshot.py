"""The anonymous statistics read for `helpline-bot report`: read-only, no migrations.

Rules:
- The file is opened with SQLite's `mode=ro`: this never creates, migrates or changes it,
  so the report can run while the bot writes (a WAL reader does not block the writer)
  and on a backup copy.
- A schema newer than this code knows is refused (its rows could mean something else);
  an older one is read with what it has: rows from before migration 7 have no estimate
  told and no hour counts; before migration 8, blocks are counted from the block list.
- Plain sqlite3 and no event loop: the report is a short command, not part of the bot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.core.model import StatsRecord
from bot.storage.migrations import SchemaTooNew, latest_version
from bot.storage.stats import COLUMNS, day_range, stats_record

DATABASE_FILE = "helpline.db"  # in storage.data_dir


class SnapshotError(RuntimeError):
    """The database cannot be read for a report; the text says why, without a traceback."""


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """What the statistics hold for a range of days."""

    records: tuple[StatsRecord, ...]
    hours: Mapping[tuple[date, int], int]  # (day, hour of day) -> arrivals
    blocks: Mapping[date, int]  # day -> chatters blocked that day
    schema_version: int


def read_snapshot(
    path: Path, since: date | None = None, until: date | None = None
) -> StatsSnapshot:
    """The statistics of the days within [since, until] (both inclusive)."""
    if not path.is_file():
        raise SnapshotError(f"{path}: no such database file")
    try:
        # Autocommit, so that the explicit BEGIN below is the one read transaction.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise SnapshotError(f"{path}: cannot be opened read-only ({e})") from e
    try:
        return _read(conn, path, since, until)
    except sqlite3.Error as e:
        raise SnapshotError(f"{path}: cannot be read ({e})") from e
    finally:
        conn.close()


def _read(
    conn: sqlite3.Connection, path: Path, since: date | None, until: date | None
) -> StatsSnapshot:
    conn.execute("PRAGMA busy_timeout = 5000")  # the bot may be checkpointing
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > latest_version():
        raise SnapshotError(str(SchemaTooNew(version, latest_version())))
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    if "stats" not in tables:
        raise SnapshotError(f"{path}: not a helpline-bot database (it has no statistics)")
    where, params = day_range(since, until)
    columns = COLUMNS
    if version < 7:  # before the estimate told was kept
        columns = columns.replace("told_wait_minutes", "NULL")
    conn.execute("BEGIN")  # one read transaction: every table as of the same moment
    try:
        rows = conn.execute(
            f"SELECT {columns} FROM stats{where} ORDER BY day, id", params
        ).fetchall()
        hours: dict[tuple[date, int], int] = {}
        if "stats_hours" in tables:
            for day, hour, contacts in conn.execute(
                f"SELECT day, hour, contacts FROM stats_hours{where}", params
            ):
                hours[(date.fromisoformat(day), int(hour))] = int(contacts)
        # From migration 8 blocks end and leave the block list, so they are counted per
        # day apart from it; before, the list's rows were every block there had been.
        if "stats_blocks" in tables:
            counted = f"SELECT day, blocks FROM stats_blocks{where}"
        else:
            where_added, _ = day_range(since, until, column="added_day")
            counted = f"SELECT added_day, count(*) FROM blocklist{where_added} GROUP BY added_day"
        blocks = {date.fromisoformat(day): int(n) for day, n in conn.execute(counted, params)}
    finally:
        conn.execute("ROLLBACK")  # nothing was written: this only ends the read
    return StatsSnapshot(
        records=tuple(stats_record(row) for row in rows),
        hours=hours,
        blocks=blocks,
        schema_version=version,
    )
