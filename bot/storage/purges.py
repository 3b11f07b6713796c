"""What a purge needs stored: the media a conversation carried (and who posted it), and
the purge jobs, resumable step by step; `bot.matrix.purge` reads them through its own
small protocols, never the database."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.ids import RoomID, SessionID, UserID
from bot.storage.db import Database, Tx, dumps, epoch, from_epoch


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
        started_at=from_epoch(started_at),
        attempts=attempts,
    )
