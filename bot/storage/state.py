"""The core's state: sessions, volunteers, timers and counters, loaded at start and
written one core step at a time (`StateRepo.apply`: the step's changes, its outbox rows and
the event IDs it handled, in one transaction). See the package's docstring for the rules."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from bot.core.counters import Counters
from bot.core.ids import SessionID
from bot.core.model import Block, Changes, Session, Timer, TimerKind, VolunteerState
from bot.storage.db import Database, ScrubIncomplete, Tx, dumps, epoch, from_epoch
from bot.storage.events import Processed, processed_event_rows
from bot.storage.outbox import OutboxItem, OutboxRepo
from bot.storage.stats import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedState:
    sessions: list[Session] = field(default_factory=list)
    volunteers: list[VolunteerState] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)  # soonest first
    counters: Counters = field(default_factory=Counters)
    blocks: list[Block] = field(default_factory=list)

    @property
    def blocked(self) -> set[str]:
        """The hashes of `blocks`."""
        return {b.hash for b in self.blocks}


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
                Timer.from_stored(TimerKind(kind), SessionID(session_id), from_epoch(due), ref)
                for kind, session_id, due, ref in await tx.fetchall(
                    "SELECT kind, session_id, due, ref FROM timers ORDER BY due, key"
                )
            ]
            meta = {k: json.loads(v) for k, v in await tx.fetchall("SELECT key, value FROM meta")}
            counters = Counters.from_meta(meta)
            blocks = [
                block_of(row)
                for row in await tx.fetchall(
                    "SELECT hash, added_day, until, number, told_day FROM blocklist ORDER BY hash"
                )
            ]
        return LoadedState(sessions, volunteers, timers, counters, blocks)

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
        processed_rows = processed_event_rows(processed, at)

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
            if changes.unblocked:
                await t.executemany(
                    "DELETE FROM blocklist WHERE hash = ?", [(h,) for h in changes.unblocked]
                )
            if changes.blocks:
                await t.executemany(
                    "INSERT INTO blocklist (hash, added_day, until, number, told_day) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE SET "
                    "added_day = excluded.added_day, until = excluded.until, "
                    "number = excluded.number, told_day = excluded.told_day",
                    [block_row(b) for b in changes.blocks.values()],
                )
            if changes.blocks_set:
                await Stats(self._db).count_blocks(changes.blocks_set, tx=t)
            if outbox:
                await OutboxRepo(self._db).add(outbox, now=from_epoch(at), tx=t)
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


def block_row(b: Block) -> tuple[str, str, float | None, int | None, str | None]:
    return (
        b.hash,
        b.since.isoformat(),
        epoch(b.until) if b.until is not None else None,
        b.number,
        b.told_day.isoformat() if b.told_day is not None else None,
    )


def block_of(row: Sequence[Any]) -> Block:
    hash_, since, until, number, told = row
    return Block(
        hash=hash_,
        since=date.fromisoformat(since),
        until=from_epoch(until) if until is not None else None,
        number=number,
        told_day=date.fromisoformat(told) if told is not None else None,
    )
