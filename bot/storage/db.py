"""The one SQLite connection the bot uses, its pragmas, transactions and scrubbing.

Rules:
- One `Database` per process, one aiosqlite connection inside it. Every statement goes
  through a `Tx` handed out under the database's lock, so no coroutine can ever see or
  join another coroutine's half-done transaction (aiosqlite would happily interleave them
  on the shared connection).
- Writes happen only inside `async with db.transaction() as tx:` (BEGIN IMMEDIATE, COMMIT,
  ROLLBACK on any error or cancellation). Repos take an optional `tx` so that several of
  them can write in one transaction; without one they open their own.
- Python's sqlite3 runs with `isolation_level=None`: it never begins or commits behind our
  back, and `executescript` (which commits first) is used only by `scrub`, outside any
  transaction.
- Confidentiality: `secure_delete` zeroes deleted rows in place; `scrub()` then vacuums
  the free pages away and truncates the write-ahead log, so nothing of a purged
  conversation is left in the database file or its `-wal` file.
- Times are epoch seconds (REAL), from timezone-aware datetimes only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.storage.migrations import MIGRATIONS, Migration, check_version, upgrade

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000

# Per-connection settings: they write nothing to the file, so they are safe to set even
# on a database that is about to be refused as too new.
_CONNECTION_PRAGMAS: tuple[tuple[str, str], ...] = (
    ("foreign_keys", "ON"),
    ("busy_timeout", str(BUSY_TIMEOUT_MS)),
    ("secure_delete", "ON"),
    ("synchronous", "NORMAL"),
)


class ScrubIncomplete(RuntimeError):
    """The WAL could not be checkpointed and truncated, so old page images may remain."""

    def __init__(self, busy: int, log_frames: int, checkpointed: int) -> None:
        super().__init__(
            f"WAL checkpoint incomplete (busy={busy}, frames={log_frames}, "
            f"checkpointed={checkpointed}); another connection is reading the database"
        )
        self.busy = busy
        self.log_frames = log_frames
        self.checkpointed = checkpointed


def epoch(value: datetime) -> float:
    """A timezone-aware datetime as epoch seconds; naive ones are refused, not guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime given to storage; pass a timezone-aware one")
    return value.timestamp()


class Tx:
    """Statements on the connection, valid only while its transaction (or read) lasts.

    Every statement is one trip to aiosqlite's thread (`execute_fetchall`: run, fetch
    every row, drop the cursor there), so no open cursor ever keeps a read snapshot
    alive (that would make the WAL checkpoint in `scrub()` report busy), and a relayed
    message costs a handful of trips rather than three per statement.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._open = True

    def _check(self) -> aiosqlite.Connection:
        if not self._open:
            raise RuntimeError("this Tx belongs to a transaction that has already ended")
        return self._conn

    def _close(self) -> None:
        self._open = False

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        await self._check().execute_fetchall(sql, params)

    async def execute_changes(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        conn = self._check()
        await conn.execute_fetchall(sql, params)
        [(changed,)] = await conn.execute_fetchall("SELECT changes()")
        return int(changed)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if len(rows) == 1:  # the common case, one trip instead of two
            await self.execute(sql, rows[0])
        elif rows:
            async with self._check().executemany(sql, rows):
                pass

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._check().execute_fetchall(sql, params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return row[0] if row else None


class Database:
    """One aiosqlite connection with a lock, transactions and privacy housekeeping."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._closed = False

    # -- access ------------------------------------------------------------------------

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[Tx]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            # asyncio.Lock is not reentrant: without this check a repo call made without
            # `tx=` inside a transaction would wait for itself forever.
            raise RuntimeError("database already in use by this task; pass tx= to nest")
        if self._closed:
            raise RuntimeError("database is closed")
        async with self._lock:
            self._owner = task
            tx = Tx(self._conn)
            try:
                yield tx
            finally:
                tx._close()
                self._owner = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the body raises or is cancelled.

        IMMEDIATE takes the write lock up front, so a transaction never fails halfway
        through on a lock upgrade.
        """
        async with self._locked() as tx:
            await tx.execute("BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                await self._rollback()
                raise
            try:
                # If the task is cancelled while waiting here, the COMMIT is already
                # queued on aiosqlite's thread and still runs before any later statement.
                await tx.execute("COMMIT")
            except sqlite3.Error:
                await self._rollback()
                raise

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One SELECT on its own: consistent by itself, so no transaction around it."""
        async with self._locked() as tx:
            return await tx.fetchall(sql, params)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A consistent read of several statements (a deferred read transaction)."""
        async with self._locked() as tx:
            await tx.execute("BEGIN")
            try:
                yield tx
            finally:
                await self._rollback()

    @asynccontextmanager
    async def writing(self, tx: Tx | None) -> AsyncIterator[Tx]:
        """Use the caller's transaction if given, else a new one of our own."""
        if tx is not None:
            yield tx
        else:
            async with self.transaction() as own:
                yield own

    @asynccontextmanager
    async def reading(self, tx: Tx | None) -> AsyncIterator[Tx]:
        if tx is not None:
            yield tx
        else:
            async with self.read() as own:
                yield own

    async def _rollback(self) -> None:
        # SQLite rolls back by itself on some errors (SQLITE_FULL, IOERR, BUSY ...), after
        # which ROLLBACK complains that no transaction is active: that is fine.
        with suppress(sqlite3.OperationalError):
            await self._conn.execute_fetchall("ROLLBACK")

    async def pragma(self, name: str) -> Any:
        """Read one pragma's value (for checks and tests)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a pragma name: {name!r}")
        async with self._locked() as tx:
            return await tx.fetchval(f"PRAGMA {name}")

    # -- privacy housekeeping ------------------------------------------------------------

    async def scrub(self, attempts: int = 3) -> None:
        """Leave no trace of deleted rows in the file or the WAL.

        Deleted rows are already zeroed in their pages (secure_delete), but the WAL still
        holds earlier images of those pages and free pages still occupy the file. The
        incremental vacuum moves free pages out, then the TRUNCATE checkpoint copies
        every page into the database file and cuts the WAL to zero bytes.
        """
        async with self._locked() as tx:
            # The vacuum pragma frees one page per step and has no result columns, so
            # `execute` steps it once and stops (one page freed); `executescript` steps
            # every statement to the end. It commits first, which is harmless here: we
            # hold the lock and no transaction is open.
            async with self._conn.executescript("PRAGMA incremental_vacuum;"):
                pass
            for attempt in range(attempts):
                row = await tx.fetchone("PRAGMA wal_checkpoint(TRUNCATE)")
                busy, frames, done = row if row is not None else (1, -1, -1)
                if busy == 0:
                    return
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.05 * (attempt + 1))
            raise ScrubIncomplete(busy, frames, done)

    async def check_writable(self) -> None:
        """A real write that changes nothing, for the health check: raises when the file
        cannot be written (disk full, I/O error, locked by another process)."""
        async with self.transaction() as tx:
            await tx.execute("UPDATE sync_checkpoint SET saved_at = saved_at")

    async def close(self) -> None:
        """Checkpoint the WAL into the file and close. Safe to call twice."""
        if self._closed:
            return
        async with self._locked() as tx:
            try:
                await tx.execute("PRAGMA optimize")
                busy, _, _ = await tx.fetchone("PRAGMA wal_checkpoint(TRUNCATE)") or (0, 0, 0)
                if busy:
                    log.warning("WAL checkpoint on close was incomplete")
            finally:
                self._closed = True
                await self._conn.close()


async def open_database(path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> Database:
    """Open (creating if needed) the bot's database and bring its schema up to date.

    Raises `SchemaTooNew`, before writing anything, if a newer bot wrote the file.
    `migrations` is for tests; the bot always uses the default.
    """
    # The file holds conversations until they are purged: readable by the bot's user
    # only. SQLite gives the -wal and -shm files the same mode as the database file.
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
    conn = await aiosqlite.connect(path, isolation_level=None)
    db = Database(conn, path)
    try:
        for name, value in _CONNECTION_PRAGMAS:
            async with conn.execute(f"PRAGMA {name} = {value}"):
                pass
        found = await check_version(db, migrations)
        if found == 0:
            # Only takes effect before the first table exists; setting it later would
            # still open a write transaction, so it is done for a new file only.
            async with conn.execute("PRAGMA auto_vacuum = INCREMENTAL"):
                pass
        async with conn.execute("PRAGMA journal_mode = WAL") as cur:
            row = await cur.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            raise RuntimeError(f"could not switch {path} to WAL journal mode")
        await upgrade(db, migrations)
    except BaseException:
        await conn.close()
        raise
    return db
