"""The connection: pragmas, file mode, transactions and their lock."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from datetime import datetime
from pathlib import Path

import pytest

from bot.storage import Database, open_database
from bot.storage.db import epoch


async def test_pragmas_in_effect(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        assert await db.pragma("journal_mode") == "wal"
        assert await db.pragma("foreign_keys") == 1
        assert await db.pragma("secure_delete") == 1
        assert await db.pragma("synchronous") == 1  # NORMAL
        assert await db.pragma("busy_timeout") == 5000
        assert await db.pragma("auto_vacuum") == 2  # INCREMENTAL
    finally:
        await db.close()


async def test_pragmas_survive_reopen(db_path: Path) -> None:
    await (await open_database(db_path)).close()
    db = await open_database(db_path)
    try:
        assert await db.pragma("auto_vacuum") == 2
        assert await db.pragma("foreign_keys") == 1
        assert await db.pragma("secure_delete") == 1
    finally:
        await db.close()


async def test_file_is_private(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        wal = Path(f"{db_path}-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        await db.close()


async def _count(db: Database) -> int:
    async with db.read() as tx:
        return int(await tx.fetchval("SELECT count(*) FROM meta"))


async def test_transaction_commits(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta VALUES ('a', '1')")
        assert await _count(db) == 1
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        # The block is the transaction under test; `match` pins the statement that raises.
        with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO meta VALUES ('a', '1')")
                raise RuntimeError("boom")
        assert await _count(db) == 0
        # The connection is usable afterwards: no transaction was left open.
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta VALUES ('b', '1')")
        assert await _count(db) == 1
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error_after_a_read(db_path: Path) -> None:
    """A read sends the held BEGIN and writes to SQLite; an error after it must still roll
    them back and leave no transaction open (the worker's step reads, then the core may
    refuse the input)."""
    db = await open_database(db_path)
    try:
        # The block is the transaction under test; `match` pins the statement that raises.
        with pytest.raises(RuntimeError, match="refused"):  # noqa: PT012
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO meta VALUES ('a', '1')")
                assert await tx.fetchval("SELECT count(*) FROM meta") == 1
                raise RuntimeError("refused")
        assert await _count(db) == 0
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta VALUES ('b', '1')")
        assert await _count(db) == 1
    finally:
        await db.close()


async def test_transaction_rolls_back_on_sql_error(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        # The block is the transaction under test; `match` pins the statement that raises.
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # noqa: PT012
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO meta VALUES ('a', '1')")
                await tx.execute("INSERT INTO meta VALUES ('a', '2')")
        assert await _count(db) == 0
    finally:
        await db.close()


async def test_a_string_sqlite_cannot_encode_rolls_back_and_the_next_write_works(
    db_path: Path,
) -> None:
    """A lone surrogate (the network can send one) fails only when the held INSERT runs,
    at COMMIT, and not as an sqlite3.Error: the transaction must still end, or every
    later BEGIN would fail ("cannot start a transaction within a transaction")."""
    db = await open_database(db_path)
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE t (x TEXT)")
        with pytest.raises(UnicodeEncodeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (?)", ("\ud800",))
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (?)", ("fine",))
        assert await db.query("SELECT x FROM t") == [("fine",)]
    finally:
        await db.close()


async def test_transaction_rolls_back_on_cancel(db_path: Path) -> None:
    db = await open_database(db_path)
    started = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta VALUES ('a', '1')")
            started.set()
            await asyncio.sleep(30)

    try:
        task = asyncio.create_task(writer())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _count(db) == 0
    finally:
        await db.close()


async def test_nested_transaction_in_same_task_is_refused(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        with pytest.raises(RuntimeError, match="pass tx="):
            async with db.transaction(), db.transaction():
                pass
        # The refusal rolled back the outer transaction and released the lock.
        assert await _count(db) == 0
    finally:
        await db.close()


async def test_concurrent_tasks_do_not_share_a_transaction(db_path: Path) -> None:
    """A second task's write must not slip into (and roll back with) the first's."""
    db = await open_database(db_path)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def failing_writer() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta VALUES ('doomed', '1')")
            inside.set()
            await release.wait()
            raise RuntimeError("fails after the other task tried to write")

    async def other_writer() -> None:
        await inside.wait()
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta VALUES ('kept', '1')")

    try:
        first = asyncio.create_task(failing_writer())
        second = asyncio.create_task(other_writer())
        await inside.wait()
        await asyncio.sleep(0.05)
        assert not second.done()  # waiting for the lock, not writing into the open txn
        release.set()
        with pytest.raises(RuntimeError):
            await first
        await second
        async with db.read() as tx:
            keys = [k for (k,) in await tx.fetchall("SELECT key FROM meta")]
        assert keys == ["kept"]
    finally:
        await db.close()


async def test_stale_tx_is_refused(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        async with db.transaction() as tx:
            pass
        with pytest.raises(RuntimeError, match="already ended"):
            await tx.execute("SELECT 1")
    finally:
        await db.close()


async def test_close_is_idempotent_and_truncates_wal(db_path: Path) -> None:
    db = await open_database(db_path)
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO meta VALUES ('a', '1')")
    await db.close()
    await db.close()
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with pytest.raises(RuntimeError, match="closed"):
        await db.pragma("user_version")


def test_naive_datetime_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        epoch(datetime(2026, 1, 1))  # naive on purpose


async def test_writes_wait_for_the_next_trip_and_reads_see_them(db_path: Path) -> None:
    """A transaction's writes go to aiosqlite's thread with the next read or the COMMIT
    (bot.storage.db.Tx): five writes and a read are two trips, and the read sees the
    writes before it. Every aiosqlite call goes through its `_execute`; counting the
    calls counts the trips (and fails loudly should aiosqlite ever rename it)."""
    db = await open_database(db_path)
    conn = db._conn
    real = conn._execute
    trips = 0

    async def counted(fn: object, *args: object, **kwargs: object) -> object:
        nonlocal trips
        trips += 1
        return await real(fn, *args, **kwargs)

    try:
        conn._execute = counted  # type: ignore[method-assign]
        async with db.transaction() as tx:
            for i in range(4):
                await tx.execute("INSERT INTO meta VALUES (?, '1')", (f"k{i}",))
            await tx.executemany("INSERT INTO meta VALUES (?, '2')", [("m1",), ("m2",)])
            assert await tx.fetchval("SELECT count(*) FROM meta") == 6
            await tx.execute("DELETE FROM meta WHERE key = 'k0'")
        assert trips == 2  # BEGIN + six writes + the read; the delete + COMMIT
        assert await _count(db) == 5
        trips = 0
        assert await db.query("SELECT value FROM meta WHERE key = 'm1'") == [("2",)]
        assert trips == 1  # one SELECT: no BEGIN, no ROLLBACK
    finally:
        conn._execute = real  # type: ignore[method-assign]
        await db.close()
