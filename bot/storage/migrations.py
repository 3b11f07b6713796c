"""Numbered schema migrations, in the manner of mautrix's UpgradeTable.

Rules:
- `MIGRATIONS` is an ordered tuple numbered 1, 2, 3 ... without gaps. A released step is
  never edited; a change is a new step.
- Each step runs in its own transaction together with `PRAGMA user_version = N`, so a
  crash or an error leaves the database at the previous version, never in between
  (SQLite's DDL is transactional).
- Steps use single `tx.execute` calls, never `executescript`, which would commit first.
- A database whose user_version is newer than the code's latest step is refused with
  `SchemaTooNew`: running old code on it could misread or damage what it does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.storage.db import Database, Tx

log = logging.getLogger(__name__)


class SchemaTooNew(RuntimeError):
    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the database has schema version {found}, but this version of helpline-bot "
            f"knows only up to {known}; it was written by a newer release. Run that "
            "release (or newer) instead; the database was left untouched."
        )
        self.found = found
        self.known = known


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Tx], Awaitable[None]]


async def _v1_initial(tx: Tx) -> None:
    statements = [
        # A session's whole state as Session.to_dict() JSON; `state` is duplicated as a
        # column so that an operator (or a test) can count sessions without parsing.
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            state TEXT NOT NULL,
            updated_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        """CREATE TABLE volunteers (
            user_id TEXT PRIMARY KEY,
            data TEXT NOT NULL
        )""",
        # Timers are rows: stored before they are armed, re-armed from here on start.
        """CREATE TABLE timers (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            due REAL NOT NULL,
            ref TEXT NOT NULL
        )""",
        "CREATE INDEX timers_due ON timers(due)",
        "CREATE INDEX timers_session ON timers(session_id)",
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        # session_id (nullable) ties an event to its conversation so that the purge's
        # cascade removes the conversation's event IDs too; unbound rows age out by prune.
        """CREATE TABLE processed_events (
            event_id TEXT PRIMARY KEY,
            handled_at REAL NOT NULL,
            session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE
        )""",
        "CREATE INDEX processed_events_handled_at ON processed_events(handled_at)",
        "CREATE INDEX processed_events_session ON processed_events(session_id)",
        """CREATE TABLE sync_checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            next_batch TEXT NOT NULL,
            saved_at REAL NOT NULL
        )""",
        # Actions towards Matrix, carried out in id order; a row is deleted when done.
        # AUTOINCREMENT so that an id is never reused, even after the newest row is done.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            txn_id TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX outbox_session ON outbox(session_id)",
        """CREATE TABLE relay_map (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            source_event TEXT NOT NULL,
            target_room TEXT NOT NULL,
            target_event TEXT NOT NULL,
            PRIMARY KEY (session_id, source_event, target_room)
        )""",
        """CREATE TABLE media_seen (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            mxc TEXT NOT NULL,
            PRIMARY KEY (session_id, mxc)
        )""",
        # No foreign key: the job outlives the session row and is deleted when finished.
        """CREATE TABLE purge_jobs (
            session_id INTEGER PRIMARY KEY,
            step TEXT NOT NULL,
            rooms TEXT NOT NULL,
            media TEXT NOT NULL,
            started_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0
        )""",
        # Anonymous only: no person, no room, no content, no session id.
        """CREATE TABLE stats (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            day TEXT NOT NULL,
            language TEXT,
            source TEXT,
            outcome TEXT NOT NULL,
            wait_seconds INTEGER,
            duration_seconds INTEGER,
            requeues INTEGER NOT NULL,
            tags TEXT NOT NULL,
            rating INTEGER,
            purge_result TEXT NOT NULL
        )""",
        "CREATE INDEX stats_day ON stats(day)",
        """CREATE TABLE blocklist (
            hash TEXT PRIMARY KEY,
            added_day TEXT NOT NULL
        )""",
    ]
    for sql in statements:
        await tx.execute(sql)


async def _v2_identity_pins(tx: Tx) -> None:
    # Each user's cross-signing master key as first seen (trust on first use). Staff
    # (volunteers, supervisors: people from the config) are kept by Matrix ID with the
    # public key, so an admin can read and reset them; anyone else only as an HMAC of the
    # ID and an HMAC of the key, so that no chatter's ID stays in the database.
    # `changed_to`: a staff member's new master key, seen and not accepted (until an
    # admin resets the pin); NULL when nothing is pending.
    await tx.execute(
        """CREATE TABLE identity_pins (
            subject TEXT PRIMARY KEY,
            staff INTEGER NOT NULL CHECK (staff IN (0, 1)),
            master_key TEXT NOT NULL,
            pinned_at REAL NOT NULL,
            changed_to TEXT,
            changed_at REAL
        )"""
    )


async def _v3_parked_effects(tx: Tx) -> None:
    # An effect that keeps failing for an unexpected reason is set aside with its error
    # class (never its text), for the operator and /healthz, instead of blocking others.
    await tx.execute("ALTER TABLE outbox ADD COLUMN parked TEXT")


async def _v4_no_chatter_pins(tx: Tx) -> None:
    # Chatters are no longer pinned (a changed chatter key was accepted anyway): their
    # pins, HMACs of an ID and a key, go.
    await tx.execute("DELETE FROM identity_pins WHERE staff = 0")


async def _v5_media_sender(tx: Tx) -> None:
    # Who posted each mxc:// in the conversation: the purge deletes a media item only if
    # that person uploaded it (an mxc:// in a message can name anyone's upload). NULL for
    # rows from before. Goes with the conversation's row, like the mxc.
    await tx.execute("ALTER TABLE media_seen ADD COLUMN sender TEXT")


async def _v6_web_accounts(tx: Tx) -> None:
    # A throw-away web account exists from before its conversation until it is erased:
    # kept here so that a restart still erases it.
    await tx.execute(
        "CREATE TABLE web_accounts (user_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)"
        " WITHOUT ROWID"
    )


async def _v7_report_figures(tx: Tx) -> None:
    # The wait estimate a chatter was told on arrival, held against the wait they had.
    await tx.execute("ALTER TABLE stats ADD COLUMN told_wait_minutes INTEGER")
    # Arrivals per local day and hour, for the report's weekday x hour map. Counted apart
    # from the stats rows, so that no row says at what time its conversation took place.
    await tx.execute(
        """CREATE TABLE stats_hours (
            day TEXT NOT NULL,
            hour INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
            contacts INTEGER NOT NULL,
            PRIMARY KEY (day, hour)
        ) WITHOUT ROWID"""
    )


async def _v8_timed_blocks(tx: Tx) -> None:
    # A block lasts until `until` (epoch seconds; NULL: permanent, as every block before
    # this step was), names the session number it was set on (for !unblock N; NULL before)
    # and the local day its person was last told the emergency numbers. The row goes when
    # the block ends, and with it the number.
    await tx.execute("ALTER TABLE blocklist ADD COLUMN until REAL")
    await tx.execute("ALTER TABLE blocklist ADD COLUMN number INTEGER")
    await tx.execute("ALTER TABLE blocklist ADD COLUMN told_day TEXT")
    # Blocks set per local day, for the report: a count, apart from the block list, so it
    # stays when the blocks go and says nothing of whom. Until now the report counted the
    # block list's rows by day: those counts come along.
    await tx.execute(
        "CREATE TABLE stats_blocks (day TEXT PRIMARY KEY, blocks INTEGER NOT NULL) WITHOUT ROWID"
    )
    await tx.execute(
        "INSERT INTO stats_blocks (day, blocks) "
        "SELECT added_day, count(*) FROM blocklist GROUP BY added_day"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: state, timers, outbox, purge jobs, stats", _v1_initial),
    Migration(2, "identity pins: each user's cross-signing master key", _v2_identity_pins),
    Migration(3, "outbox: effects parked after unexpected failures", _v3_parked_effects),
    Migration(4, "identity pins: staff only, chatters' pins removed", _v4_no_chatter_pins),
    Migration(5, "media seen: who posted each item", _v5_media_sender),
    Migration(6, "web accounts: throw-away accounts not yet erased", _v6_web_accounts),
    Migration(7, "stats: the wait estimate told, arrivals per hour", _v7_report_figures),
    Migration(8, "block list: an end, the session number, the day last told", _v8_timed_blocks),
)


def _check_numbering(migrations: Sequence[Migration]) -> None:
    for expected, step in enumerate(migrations, start=1):
        if step.version != expected:
            raise ValueError(f"migration #{expected} is numbered {step.version}")


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


async def current_version(db: Database) -> int:
    return int(await db.pragma("user_version"))


async def check_version(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The database's schema version; raises `SchemaTooNew` if the code is older."""
    _check_numbering(migrations)
    found = await current_version(db)
    if found > latest_version(migrations):
        raise SchemaTooNew(found, latest_version(migrations))
    return found


async def upgrade(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every step newer than the database's user_version; returns those applied."""
    found = await check_version(db, migrations)
    applied: list[int] = []
    for step in migrations[found:]:
        log.info("database migration %d: %s", step.version, step.description)
        async with db.transaction() as tx:
            # Re-read inside the write lock: another process may have upgraded meanwhile.
            now = int(await tx.fetchval("PRAGMA user_version"))
            if now >= step.version:
                continue
            await step.apply(tx)
            # An int from our own table, never user input: formatting it in is safe (a
            # pragma takes no bound parameters).
            await tx.execute(f"PRAGMA user_version = {int(step.version)}")
        applied.append(step.version)
    return applied
