"""Numbered migrations: from empty, reopening, refusing a newer schema, atomic steps."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from bot.core.model import Block
from bot.storage import SchemaTooNew, open_database
from bot.storage.db import Tx
from bot.storage.migrations import MIGRATIONS, Migration, latest_version, upgrade
from bot.storage.state import StateRepo

TABLES = {
    "sessions",
    "volunteers",
    "timers",
    "meta",
    "processed_events",
    "sync_checkpoint",
    "outbox",
    "relay_map",
    "media_seen",
    "purge_jobs",
    "stats",
    "stats_hours",
    "blocklist",
    "identity_pins",
    "web_accounts",
    "stats_blocks",
}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return {name for (name,) in rows}


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


async def test_migrates_from_empty(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        assert await db.pragma("user_version") == latest_version() == len(MIGRATIONS)
    finally:
        await db.close()
    assert _tables(db_path) == TABLES
    assert _user_version(db_path) == len(MIGRATIONS)


async def test_reopen_runs_nothing(db_path: Path) -> None:
    await (await open_database(db_path)).close()
    db = await open_database(db_path)
    try:
        assert await upgrade(db) == []
        assert await db.pragma("user_version") == latest_version()
    finally:
        await db.close()


async def test_refuses_newer_schema(db_path: Path) -> None:
    await (await open_database(db_path)).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    before = db_path.read_bytes()

    with pytest.raises(SchemaTooNew) as info:
        await open_database(db_path)
    assert info.value.found == latest_version() + 1
    assert info.value.known == latest_version()
    assert "newer release" in str(info.value)
    assert _user_version(db_path) == latest_version() + 1
    assert _tables(db_path) == TABLES
    assert db_path.read_bytes() == before


async def test_each_step_is_atomic_with_its_version(db_path: Path) -> None:
    """A step that fails halfway leaves neither its tables nor its version number."""
    await (await open_database(db_path)).close()
    ran: list[int] = []
    n = latest_version()  # the two test steps come after the real ones

    async def v2(tx: Tx) -> None:
        ran.append(2)
        await tx.execute("CREATE TABLE extra (x INTEGER)")

    async def v3(tx: Tx) -> None:
        ran.append(3)
        await tx.execute("CREATE TABLE half_done (x INTEGER)")
        await tx.execute("THIS IS NOT SQL")

    steps = (*MIGRATIONS, Migration(n + 1, "extra", v2), Migration(n + 2, "broken", v3))
    with pytest.raises(sqlite3.OperationalError):
        await open_database(db_path, steps)
    assert ran == [2, 3]
    assert _user_version(db_path) == n + 1
    assert _tables(db_path) == TABLES | {"extra"}

    # Fixed, the remaining step runs alone on the next start.
    async def v3_fixed(tx: Tx) -> None:
        ran.append(30)
        await tx.execute("CREATE TABLE fixed (x INTEGER)")

    db = await open_database(db_path, (*steps[: n + 1], Migration(n + 2, "fixed", v3_fixed)))
    await db.close()
    assert ran == [2, 3, 30]
    assert _user_version(db_path) == n + 2
    assert _tables(db_path) == TABLES | {"extra", "fixed"}


async def test_numbering_gaps_are_refused(db_path: Path) -> None:
    async def noop(tx: Tx) -> None:
        return None

    db = await open_database(db_path)
    try:
        gap = latest_version() + 2
        with pytest.raises(ValueError, match=f"numbered {gap}"):
            await upgrade(db, (*MIGRATIONS, Migration(gap, "gap", noop)))
    finally:
        await db.close()


async def test_new_database_gets_incremental_auto_vacuum(db_path: Path) -> None:
    await (await open_database(db_path)).close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    finally:
        conn.close()


async def test_migration_4_removes_chatter_pins_and_keeps_staff_pins(db_path: Path) -> None:
    db = await open_database(db_path, MIGRATIONS[:2])
    try:
        async with db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO identity_pins (subject, staff, master_key, pinned_at)"
                " VALUES (?, ?, ?, 0)",
                [("@irene:localhost", 1, "KEY"), ("a1b2c3-hmac-of-a-chatter", 0, "d4e5f6")],
            )
        assert await upgrade(db) == list(range(3, latest_version() + 1))
        assert await db.query("SELECT subject, staff FROM identity_pins") == [
            ("@irene:localhost", 1)
        ]
    finally:
        await db.close()


async def test_migration_7_keeps_older_stats_rows_with_no_estimate(db_path: Path) -> None:
    db = await open_database(db_path, MIGRATIONS[:6])
    try:
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO stats (day, outcome, requeues, tags, purge_result)"
                " VALUES ('2026-03-01', 'completed', 0, '[]', 'verified')"
            )
        assert await upgrade(db, MIGRATIONS[:7]) == [7]
        assert await db.query("SELECT day, told_wait_minutes FROM stats") == [("2026-03-01", None)]
        assert await db.query("SELECT count(*) FROM stats_hours") == [(0,)]
    finally:
        await db.close()


async def test_migration_8_keeps_earlier_blocks_as_permanent_ones_and_counts_them(
    db_path: Path,
) -> None:
    db = await open_database(db_path, MIGRATIONS[:7])
    try:
        async with db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO blocklist (hash, added_day) VALUES (?, ?)",
                [("hmac-a", "2026-01-02"), ("hmac-b", "2026-01-02"), ("hmac-c", "2026-01-05")],
            )
        assert await upgrade(db) == [8]
        blocks = (await StateRepo(db).load()).blocks
        assert blocks[0] == Block("hmac-a", date(2026, 1, 2), None, None, None)
        assert all(b.until is None and b.number is None for b in blocks)
        # The report counted these rows by day; the counts move to stats_blocks.
        assert await db.query("SELECT day, blocks FROM stats_blocks ORDER BY day") == [
            ("2026-01-02", 2),
            ("2026-01-05", 1),
        ]
    finally:
        await db.close()
