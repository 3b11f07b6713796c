"""The one SQLite connection the bot uses, its pragmas, transactions and scrubbing.

Rules:
- One `Database` per process, one aiosqlite connection inside it. Every statement goes
  through a `Tx` handed out under the database's lock, so no coroutine can ever see or
  join another coroutine's half-done transaction (aiosqlite would happily interleave them
  on the shared connection).
- Writes happen only inside `async with db.transaction() as tx:` (BEGIN IMMEDIATE, COMMIT,
  ROLLBACK on any error or cancellation). Repos take an optional `tx` so that several of
  them can write in one transaction; without one they open their own. The statements of a
  transaction travel to aiosqlite's thread in as few trips as its reads allow (see `Tx`).
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
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
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


def from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def dumps(value: Any) -> str:
    # ensure_ascii=False keeps text as UTF-8 rather than \u escapes, so a byte-level
    # privacy audit of the file can find a non-ASCII body if it were ever left behind.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Tx:
    """Statements on the connection, valid only while its transaction (or read) lasts.

    Statements whose result nobody waits for (every write, BEGIN, COMMIT) are held and
    sent to aiosqlite's thread together with the next one whose result is needed (a
    read, a changed-row count) or with the COMMIT: a step that writes five rows and reads
    one is two trips to that thread instead of eight, and each trip costs more CPU than
    the SQLite work it carries. An error in a held statement surfaces at that next trip,
    still inside the transaction, which then rolls back as a whole.

    Every trip runs its statements to the end and drops the cursor in the thread, so no
    open cursor ever keeps a read snapshot alive (that would make the WAL checkpoint in
    `scrub()` report busy).
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._open = True
        self._held: list[tuple[str, Sequence[Any] | list[Sequence[Any]], bool]] = []

    def _check(self) -> aiosqlite.Connection:
        if not self._open:
            raise RuntimeError("this Tx belongs to a transaction that has already ended")
        return self._conn

    def _close(self) -> None:
        self._open = False
        self._held.clear()

    async def _trip(self, sql: str | None = None, params: Sequence[Any] = ()) -> list[Any]:
        """The held statements, then `sql` (if any) whose rows are returned, in one trip."""
        conn = self._check()
        held, self._held = self._held, []
        if not held and sql is not None:
            return list(await conn.execute_fetchall(sql, params))
        # aiosqlite runs every call of its own through `_execute(fn)` on its thread; a
        # function of ours runs there the same way. It is not public API: pyproject pins
        # aiosqlite below 0.23, and tests/storage/test_db.py counts the trips through it.
        return list(await conn._execute(_run, conn._conn, held, sql, params))

    async def flush(self) -> None:
        if self._held:
            await self._trip()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (held until the next trip; see the class)."""
        self._check()
        self._held.append((sql, params, False))

    async def execute_changes(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        await self.execute(sql, params)
        [(changed,)] = await self._trip("SELECT changes()")
        return int(changed)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._check()
            self._held.append((sql, rows, True))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._trip(sql, params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return row[0] if row else None


def _run(
    conn: sqlite3.Connection,
    held: list[tuple[str, Any, bool]],
    sql: str | None,
    params: Sequence[Any],
) -> list[Any]:
    """On aiosqlite's thread: the held statements in order, then `sql`'s rows."""
    for statement, args, many in held:
        cur = conn.executemany(statement, args) if many else conn.execute(statement, args)
        try:
            cur.fetchall()  # to the end, like execute_fetchall (some pragmas step)
        finally:
            cur.close()
    if sql is None:
        return []
    cur = conn.execute(sql, params)
    try:
        return cur.fetchall()
    finally:
        cur.close()


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
                await tx.flush()
            except BaseException:
                # Anything a held statement raises surfaces here, not only sqlite3.Error:
                # a lone surrogate in a bound string raises UnicodeEncodeError, and left
                # open, the transaction would refuse every later BEGIN.
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
    # O_EXCL on an existing file is the "already there" answer: no separate check that
    # could be stale by the time the file is created.
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
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
