"""The outbox: the effects a step stored, to be carried out towards Matrix with their
stored transaction IDs, done, or parked with their error class; and the attempts of a room
creation, so that a retry after a crash knows it may have made the room already."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.ids import SessionID
from bot.storage.db import Database, Tx, dumps, epoch, from_epoch


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
                created_at=from_epoch(created),
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
        return from_epoch(rows[0][0]) if rows and rows[0][0] is not None else None

    async def done(self, row_id: int, *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    async def count(self) -> int:
        async with self._db.read() as tx:
            return int(await tx.fetchval("SELECT count(*) FROM outbox"))


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
