"""Repositories: typed reads and writes of the bot's state, one class per concern.

Rules:
- Every write method takes an optional `tx`; pass the `Tx` of a `db.transaction()` to
  make it part of a larger atomic write (e.g. `StateRepo.apply` and `Checkpoint.set` for
  the same sync batch), or leave it out to have the method commit on its own.
- `StateRepo.apply` writes one core step in one transaction, in an order that satisfies
  the foreign keys: session upserts first, the rows that point at sessions after them,
  deleted sessions last (their cascade then also takes whatever this step added for them).
- Upserts use `ON CONFLICT DO UPDATE`, never `INSERT OR REPLACE`: REPLACE deletes the old
  row first, and that delete would cascade away the session's timers and outbox.
- Nothing here logs values: IDs and content never reach the logs.
- Privacy: a conversation's rows all hang off its `sessions` row by `ON DELETE CASCADE`
  (timers, outbox, relay map, media, processed event IDs bound to it).
  `forget_session` (or a step's `deleted_sessions`) deletes that row and scrubs; a
  step's `deleted_sessions` also deletes the sessions' purge jobs (which list the rooms
  and media), as `PurgeJobs.finish` does. After that, nothing of it is in the files.
  Event IDs marked without a session (direct messages, lobbies) stay only as long as a
  replay could bring them back (`EventLog.prune_settled`, run by the app every minute),
  so the database cannot tell whether a Matrix ID or an event ever reached the bot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.core.counters import Counters
from bot.core.ids import EventID, RoomID, SessionID, UserID
from bot.core.model import Changes, Session, Timer, TimerKind, VolunteerState
from bot.storage.db import Database, ScrubIncomplete, Tx, epoch, open_database
from bot.storage.stats import Stats

log = logging.getLogger(__name__)


def dumps(value: Any) -> str:
    # ensure_ascii=False keeps text as UTF-8 rather than \u escapes, so a byte-level
    # privacy audit of the file can find a non-ASCII body if it were ever left behind.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


# -- the core's state ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An action towards Matrix, to be carried out after the step that made it commits."""

    txn_id: str
    session_id: SessionID | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    txn_id: str
    session_id: SessionID | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LoadedState:
    sessions: list[Session] = field(default_factory=list)
    volunteers: list[VolunteerState] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)  # soonest first
    counters: Counters = field(default_factory=Counters)
    blocked: set[str] = field(default_factory=set)


Processed = Iterable[str] | Mapping[str, SessionID | None]


class StateRepo:
    """Sessions, volunteers, timers, meta, stats and block list: what the core keeps."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> LoadedState:
        async with self._db.read() as tx:
            sessions = [
                Session.from_dict(json.loads(data))
                for (data,) in await tx.fetchall("SELECT data FROM sessions ORDER BY id")
            ]
            volunteers = [
                VolunteerState.from_dict(json.loads(data))
                for (data,) in await tx.fetchall("SELECT data FROM volunteers ORDER BY user_id")
            ]
            timers = [
                Timer.from_stored(TimerKind(kind), SessionID(session_id), _from_epoch(due), ref)
                for kind, session_id, due, ref in await tx.fetchall(
                    "SELECT kind, session_id, due, ref FROM timers ORDER BY due, key"
                )
            ]
            meta = {k: json.loads(v) for k, v in await tx.fetchall("SELECT key, value FROM meta")}
            counters = Counters.from_meta(meta)
            blocked = {h for (h,) in await tx.fetchall("SELECT hash FROM blocklist")}
        return LoadedState(sessions, volunteers, timers, counters, blocked)

    async def apply(
        self,
        changes: Changes,
        *,
        outbox: Sequence[OutboxItem] = (),
        processed: Processed = (),
        now: datetime | None = None,
        tx: Tx | None = None,
    ) -> None:
        """Write one step atomically: all of it or, on any error, none of it.

        `processed` is the event IDs the step handled; give a mapping event ID -> session
        to tie them to their conversation, so that its purge removes them too.
        `now` stamps updated_at, created_at and handled_at (default: the wall clock).

        Deleting a session here scrubs the files after the commit, as `forget_session`
        does, so that no step leaves a deleted conversation in the WAL. With a caller's
        `tx` that cannot happen inside the transaction: call `db.scrub()` after it.
        """
        at = epoch(now) if now is not None else datetime.now(UTC).timestamp()
        # Check before writing: a mismatched key would make a timer impossible to clear.
        for key, timer in changes.timers_set.items():
            if key != timer.key:
                raise ValueError(f"timer stored under {key!r} but its key is {timer.key!r}")
        processed_rows = _processed_rows(processed, at)
        day = datetime.fromtimestamp(at, UTC).date().isoformat()

        async with self._db.writing(tx) as t:
            if changes.sessions:
                await t.executemany(
                    "INSERT INTO sessions (id, state, updated_at, data) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at, data = excluded.data",
                    [
                        (int(sid), s.state.value, at, dumps(s.to_dict()))
                        for sid, s in changes.sessions.items()
                    ],
                )
            if changes.volunteers:
                await t.executemany(
                    "INSERT INTO volunteers (user_id, data) VALUES (?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET data = excluded.data",
                    [(str(uid), dumps(v.to_dict())) for uid, v in changes.volunteers.items()],
                )
            if changes.timers_cleared:
                await t.executemany(
                    "DELETE FROM timers WHERE key = ?", [(k,) for k in changes.timers_cleared]
                )
            if changes.timers_set:
                await t.executemany(
                    "INSERT INTO timers (key, kind, session_id, due, ref) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, "
                    "session_id = excluded.session_id, due = excluded.due, ref = excluded.ref",
                    [
                        (tm.key, tm.kind.value, int(tm.session_id), epoch(tm.due), tm.stored_ref)
                        for tm in changes.timers_set.values()
                    ],
                )
            if changes.counters is not None:
                await t.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [(k, dumps(v)) for k, v in changes.counters.to_meta().items()],
                )
            if changes.stats:
                await Stats(self._db).add(changes.stats, tx=t)
            if changes.blocked:
                await t.executemany(
                    "INSERT OR IGNORE INTO blocklist (hash, added_day) VALUES (?, ?)",
                    [(h, day) for h in changes.blocked],
                )
            if outbox:
                await OutboxRepo(self._db).add(outbox, now=_from_epoch(at), tx=t)
            if processed_rows:
                await t.executemany(
                    "INSERT OR IGNORE INTO processed_events (event_id, handled_at, session_id) "
                    "VALUES (?, ?, ?)",
                    processed_rows,
                )
            if changes.deleted_sessions:
                await t.executemany(
                    "DELETE FROM sessions WHERE id = ?",
                    [(int(sid),) for sid in changes.deleted_sessions],
                )
                # A closed conversation's purge is over: its job (which names the rooms)
                # goes in the same transaction, so a crash can never leave a finished job
                # to be run again, nor a job outliving its conversation.
                await t.executemany(
                    "DELETE FROM purge_jobs WHERE session_id = ?",
                    [(int(sid),) for sid in changes.deleted_sessions],
                )
        if changes.deleted_sessions and tx is None:
            try:
                await self._db.scrub()
            except ScrubIncomplete:
                # The step itself is committed; failing it now would make the caller
                # think otherwise. The next scrub (every purge runs one) finishes the job.
                log.warning("scrub after deleting sessions was incomplete")

    async def forget_session(self, session_id: SessionID) -> None:
        """Delete a conversation's row and everything hanging off it, then scrub the files.

        Idempotent, so a purge resumed after a crash can simply call it again.
        """
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM sessions WHERE id = ?", (int(session_id),))
        await self._db.scrub()


def _processed_rows(processed: Processed, at: float) -> list[tuple[str, float, int | None]]:
    if isinstance(processed, str):
        # A lone string is iterable too: refuse it rather than mark each character.
        raise TypeError("processed must be a collection of event IDs, not one string")
    if isinstance(processed, Mapping):
        return [(str(e), at, int(sid) if sid is not None else None) for e, sid in processed.items()]
    return [(str(e), at, None) for e in processed]


# -- outbox --------------------------------------------------------------------------------


class OutboxRepo:
    """Actions towards Matrix, done in id order; each row is deleted once carried out.

    Rows bound to a session vanish with it (cascade): an action that must outlive its
    session row (a purge's room deletion, say) is stored with session_id None.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, items: Sequence[OutboxItem], *, now: datetime, tx: Tx | None = None
    ) -> None:
        at = epoch(now)
        async with self._db.writing(tx) as t:
            await t.executemany(
                "INSERT INTO outbox (session_id, txn_id, payload, created_at) VALUES (?, ?, ?, ?)",
                [
                    (
                        int(i.session_id) if i.session_id is not None else None,
                        i.txn_id,
                        dumps(i.payload),
                        at,
                    )
                    for i in items
                ],
            )

    async def pending(self, after: int = 0, limit: int | None = None) -> list[OutboxRow]:
        """Rows not yet carried out (nor parked), oldest first, with ids above `after`."""
        rows = await self._db.query(
            "SELECT id, txn_id, session_id, payload, created_at FROM outbox"
            " WHERE id > ? AND parked IS NULL ORDER BY id LIMIT ?",
            (after, limit if limit is not None else -1),
        )
        return [
            OutboxRow(
                id=row_id,
                txn_id=txn_id,
                session_id=SessionID(sid) if sid is not None else None,
                payload=json.loads(payload),
                created_at=_from_epoch(created),
            )
            for row_id, txn_id, sid, payload, created in rows
        ]

    async def park(self, row_id: int, error: str, *, tx: Tx | None = None) -> None:
        """Set a row aside after unexpected failures; `error` is an exception class name."""
        async with self._db.writing(tx) as t:
            await t.execute("UPDATE outbox SET parked = ? WHERE id = ?", (error, row_id))

    async def parked(self) -> list[tuple[int, str]]:
        """(row id, error class) of every parked row."""
        rows = await self._db.query(
            "SELECT id, parked FROM outbox WHERE parked IS NOT NULL ORDER BY id"
        )
        return [(int(row_id), str(error)) for row_id, error in rows]

    async def unpark_all(self) -> int:
        """Give every parked row another try (at start: an upgrade may have fixed it)."""
        async with self._db.transaction() as tx:
            return await tx.execute_changes(
                "UPDATE outbox SET parked = NULL WHERE parked IS NOT NULL"
            )

    async def oldest(self) -> datetime | None:
        """When the oldest row still to be carried out was stored."""
        rows = await self._db.query("SELECT min(created_at) FROM outbox WHERE parked IS NULL")
        return _from_epoch(rows[0][0]) if rows and rows[0][0] is not None else None

    async def done(self, row_id: int, *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    async def count(self) -> int:
        async with self._db.read() as tx:
            return int(await tx.fetchval("SELECT count(*) FROM outbox"))


# -- sync bookkeeping ----------------------------------------------------------------------


class EventLog:
    """Event IDs already handled, so that an event replayed after a crash is harmless."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def seen(self, event_id: str, *, tx: Tx | None = None) -> bool:
        sql = "SELECT 1 FROM processed_events WHERE event_id = ?"
        if tx is not None:
            return await tx.fetchone(sql, (event_id,)) is not None
        return bool(await self._db.query(sql, (event_id,)))

    async def mark(
        self,
        event_ids: Iterable[str],
        now: datetime,
        *,
        session_id: SessionID | None = None,
        tx: Tx | None = None,
    ) -> None:
        if isinstance(event_ids, str):
            raise TypeError("event_ids must be a collection of event IDs, not one string")
        rows = _processed_rows({e: session_id for e in event_ids}, epoch(now))
        async with self._db.writing(tx) as t:
            await t.executemany(
                "INSERT OR IGNORE INTO processed_events (event_id, handled_at, session_id) "
                "VALUES (?, ?, ?)",
                rows,
            )

    async def prune(self, older_than: datetime, *, tx: Tx | None = None) -> int:
        """Forget events handled before `older_than`; returns how many."""
        async with self._db.writing(tx) as t:
            return await t.execute_changes(
                "DELETE FROM processed_events WHERE handled_at < ?", (epoch(older_than),)
            )

    async def prune_settled(self, margin: timedelta, *, tx: Tx | None = None) -> int:
        """Forget the events no replay can bring back; returns how many.

        An event ID is needed only while a crash could replay the sync batch that held
        it, i.e. until the checkpoint after that batch is saved. The checkpoint of a
        batch is saved after all of its events are handled, but an event of a later
        batch may be handled before it (while an undecryptable event of an earlier batch
        waits for its key, up to the grace period). So: what was handled more than
        `margin` before the saved checkpoint's `saved_at` goes, where `margin` must
        exceed that wait. Anchored on the checkpoint, not the clock: after a long
        downtime, what the restart replays is still known. Without a checkpoint,
        nothing goes. Uses the index on handled_at.
        """
        async with self._db.writing(tx) as t:
            return await t.execute_changes(
                "DELETE FROM processed_events WHERE handled_at <"
                " (SELECT saved_at FROM sync_checkpoint WHERE id = 1) - ?",
                (margin.total_seconds(),),
            )


class Checkpoint:
    """The sync token (`next_batch`), saved only once its batch has been handled."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self) -> str | None:
        async with self._db.read() as tx:
            value = await tx.fetchval("SELECT next_batch FROM sync_checkpoint WHERE id = 1")
        return str(value) if value is not None else None

    async def set(self, next_batch: str, now: datetime, *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT INTO sync_checkpoint (id, next_batch, saved_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET next_batch = excluded.next_batch, "
                "saved_at = excluded.saved_at",
                (next_batch, epoch(now)),
            )


# -- per-conversation bookkeeping ----------------------------------------------------------


class RelayMap:
    """Which event a relayed message became in each target room, to mirror edits,
    redactions and replies."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        session_id: SessionID,
        source_event: EventID,
        target_room: RoomID,
        target_event: EventID,
        *,
        tx: Tx | None = None,
    ) -> None:
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT INTO relay_map (session_id, source_event, target_room, target_event) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (session_id, source_event, target_room) "
                "DO UPDATE SET target_event = excluded.target_event",
                (int(session_id), source_event, target_room, target_event),
            )

    async def lookup(
        self, session_id: SessionID, source_event: EventID, target_room: RoomID
    ) -> EventID | None:
        rows = await self._db.query(
            "SELECT target_event FROM relay_map "
            "WHERE session_id = ? AND source_event = ? AND target_room = ?",
            (int(session_id), source_event, target_room),
        )
        return EventID(rows[0][0]) if rows else None

    async def targets(
        self, session_id: SessionID, source_event: EventID
    ) -> list[tuple[RoomID, EventID]]:
        """Every copy of a source event, e.g. to redact all of them."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT target_room, target_event FROM relay_map "
                "WHERE session_id = ? AND source_event = ? ORDER BY target_room",
                (int(session_id), source_event),
            )
        return [(RoomID(room), EventID(event)) for room, event in rows]

    async def source_of(self, session_id: SessionID, target_event: EventID) -> EventID | None:
        """The original of a relayed copy (a reply to the copy points at the original)."""
        rows = await self._db.query(
            "SELECT source_event FROM relay_map WHERE session_id = ? AND target_event = ?",
            (int(session_id), target_event),
        )
        return EventID(rows[0][0]) if rows else None


class MediaSeen:
    """Every mxc:// a conversation carried; the purge deletes them on the server."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        session_id: SessionID,
        mxc: str,
        sender: UserID | None = None,
        *,
        tx: Tx | None = None,
    ) -> None:
        """`sender`: who posted it; the first to post an item is kept."""
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT OR IGNORE INTO media_seen (session_id, mxc, sender) VALUES (?, ?, ?)",
                (int(session_id), mxc, sender),
            )

    async def posters(self, session_id: SessionID) -> dict[str, UserID | None]:
        """Who posted each item of the conversation (None: recorded before it was kept)."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT mxc, sender FROM media_seen WHERE session_id = ?", (int(session_id),)
            )
        return {mxc: UserID(sender) if sender else None for mxc, sender in rows}

    async def for_session(self, session_id: SessionID) -> list[str]:
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT mxc FROM media_seen WHERE session_id = ? ORDER BY mxc",
                (int(session_id),),
            )
        return [mxc for (mxc,) in rows]


# -- purge ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurgeJob:
    session_id: SessionID
    step: str
    rooms: tuple[RoomID, ...]
    media: tuple[str, ...]
    started_at: datetime
    attempts: int


class PurgeJobs:
    """Purges in progress, so that one interrupted by a crash resumes on start.

    A job row has no foreign key (it outlives the session row) and names rooms and media,
    so `finish` scrubs after deleting it.
    """

    INITIAL_STEP = "start"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self,
        session_id: SessionID,
        rooms: Sequence[RoomID],
        media: Sequence[str],
        now: datetime,
        *,
        tx: Tx | None = None,
    ) -> PurgeJob:
        """Record a purge; if one is already recorded for the session, keep it as it is
        (a resumed purge must not go back to its first step). Returns the job."""
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT INTO purge_jobs (session_id, step, rooms, media, started_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                (
                    int(session_id),
                    self.INITIAL_STEP,
                    dumps(list(rooms)),
                    dumps(list(media)),
                    epoch(now),
                ),
            )
            job = await self._get(t, session_id)
        if job is None:  # cannot happen: written or found in this very transaction
            raise RuntimeError("purge job vanished inside its own transaction")
        return job

    async def get(self, session_id: SessionID) -> PurgeJob | None:
        async with self._db.read() as tx:
            return await self._get(tx, session_id)

    async def advance(self, session_id: SessionID, step: str, *, tx: Tx | None = None) -> bool:
        """Record that the purge reached `step`; False if there is no such job."""
        async with self._db.writing(tx) as t:
            changed = await t.execute_changes(
                "UPDATE purge_jobs SET step = ? WHERE session_id = ?", (step, int(session_id))
            )
        return changed > 0

    async def bump_attempts(self, session_id: SessionID, *, tx: Tx | None = None) -> int:
        """Count one more attempt; returns the new count (0 if there is no such job)."""
        async with self._db.writing(tx) as t:
            await t.execute(
                "UPDATE purge_jobs SET attempts = attempts + 1 WHERE session_id = ?",
                (int(session_id),),
            )
            value = await t.fetchval(
                "SELECT attempts FROM purge_jobs WHERE session_id = ?", (int(session_id),)
            )
        return int(value) if value is not None else 0

    async def pending(self) -> list[PurgeJob]:
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT session_id, step, rooms, media, started_at, attempts FROM purge_jobs "
                "ORDER BY started_at, session_id"
            )
        return [_purge_job(row) for row in rows]

    async def finish(self, session_id: SessionID) -> None:
        """Delete the job and scrub: its row named the conversation's rooms and media."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM purge_jobs WHERE session_id = ?", (int(session_id),))
        await self._db.scrub()

    @staticmethod
    async def _get(tx: Tx, session_id: SessionID) -> PurgeJob | None:
        row = await tx.fetchone(
            "SELECT session_id, step, rooms, media, started_at, attempts FROM purge_jobs "
            "WHERE session_id = ?",
            (int(session_id),),
        )
        return _purge_job(row) if row is not None else None


def _purge_job(row: tuple[Any, ...]) -> PurgeJob:
    session_id, step, rooms, media, started_at, attempts = row
    return PurgeJob(
        session_id=SessionID(session_id),
        step=step,
        rooms=tuple(RoomID(r) for r in json.loads(rooms)),
        media=tuple(json.loads(media)),
        started_at=_from_epoch(started_at),
        attempts=attempts,
    )


# -- abuse ---------------------------------------------------------------------------------


class Blocklist:
    """Keyed hashes (HMAC) of blocked Matrix IDs; never the IDs themselves."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def contains(self, hash_: str) -> bool:
        return bool(await self._db.query("SELECT 1 FROM blocklist WHERE hash = ?", (hash_,)))

    async def add(self, hash_: str, day: date, *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT OR IGNORE INTO blocklist (hash, added_day) VALUES (?, ?)",
                (hash_, day.isoformat()),
            )


class Attempts:
    """Marks an outbox effect that was started but whose result may not have been stored.

    Room creation has no transaction ID on the wire: if the bot dies after the server made
    the room and before the result was committed, a blind retry would make a second room
    (with a second invite to the chatter). The mark says "look for the first one first".
    Kept in `meta` under `attempt:<txn_id>`; cleared with the effect's outbox row.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(self, txn_id: str) -> bool:
        """Mark `txn_id` as started; True if it was already marked (this is a retry)."""
        key = f"attempt:{txn_id}"
        async with self._db.transaction() as tx:
            seen = await tx.fetchone("SELECT 1 FROM meta WHERE key = ?", (key,))
            if seen is None:
                await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, "1"))
        return seen is not None

    async def clear(self, txn_id: str, *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.execute("DELETE FROM meta WHERE key = ?", (f"attempt:{txn_id}",))


# -- everything together -------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """The database and every repo over it: what `bot.app` wires in."""

    db: Database
    state: StateRepo
    outbox: OutboxRepo
    events: EventLog
    checkpoint: Checkpoint
    relay: RelayMap
    media: MediaSeen
    purges: PurgeJobs
    stats: Stats
    blocklist: Blocklist

    @classmethod
    def over(cls, db: Database) -> Storage:
        return cls(
            db=db,
            state=StateRepo(db),
            outbox=OutboxRepo(db),
            events=EventLog(db),
            checkpoint=Checkpoint(db),
            relay=RelayMap(db),
            media=MediaSeen(db),
            purges=PurgeJobs(db),
            stats=Stats(db),
            blocklist=Blocklist(db),
        )

    @classmethod
    async def open(cls, path: Path) -> Storage:
        return cls.over(await open_database(path))

    async def close(self) -> None:
        await self.db.close()


__all__ = [
    "Blocklist",
    "Checkpoint",
    "EventLog",
    "LoadedState",
    "MediaSeen",
    "OutboxItem",
    "OutboxRepo",
    "OutboxRow",
    "PurgeJob",
    "PurgeJobs",
    "RelayMap",
    "StateRepo",
    "Storage",
    "dumps",
]
