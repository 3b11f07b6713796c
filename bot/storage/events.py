"""Sync bookkeeping: the event IDs already handled (a replayed batch is harmless), the
sync token saved after its batch, and the relay map (which copy of a message was relayed
where, so that edits and redactions follow it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from bot.core.ids import EventID, RoomID, SessionID
from bot.storage.db import Database, Tx, epoch

Processed = Iterable[str] | Mapping[str, SessionID | None]


def processed_event_rows(processed: Processed, at: float) -> list[tuple[str, float, int | None]]:
    if isinstance(processed, str):
        # A lone string is iterable too: refuse it rather than mark each character.
        raise TypeError("processed must be a collection of event IDs, not one string")
    if isinstance(processed, Mapping):
        return [(str(e), at, int(sid) if sid is not None else None) for e, sid in processed.items()]
    return [(str(e), at, None) for e in processed]


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
        rows = processed_event_rows(dict.fromkeys(event_ids, session_id), epoch(now))
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
