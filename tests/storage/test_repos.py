"""The smaller repos: outbox, event log, checkpoint, relay map, media, purge jobs,
block list and statistics."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import date, timedelta
from pathlib import Path

from bot.core.ids import EventID, RoomID, SessionID, UserID
from bot.core.model import Changes, StatsRecord
from bot.storage import OutboxItem, Storage

from .conftest import T0, make_session


async def _with_sessions(storage: Storage, *ids: int) -> None:
    await storage.state.apply(
        Changes(sessions={SessionID(i): make_session(i) for i in ids}), now=T0
    )


# -- outbox --------------------------------------------------------------------------------


async def test_outbox_keeps_insertion_order(storage: Storage) -> None:
    await _with_sessions(storage, 1, 2)
    first = [OutboxItem(f"t{i}", SessionID(1 + i % 2), {"n": i}) for i in range(5)]
    await storage.state.apply(Changes(), outbox=first, now=T0)
    await storage.outbox.add([OutboxItem("t5", None, {"n": 5})], now=T0 + timedelta(seconds=1))

    pending = await storage.outbox.pending()
    assert [r.payload["n"] for r in pending] == [0, 1, 2, 3, 4, 5]
    assert [r.txn_id for r in pending] == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert pending[0].session_id == 1
    assert pending[1].session_id == 2
    assert pending[5].session_id is None
    assert pending[5].created_at == T0 + timedelta(seconds=1)
    assert [r.id for r in pending] == sorted(r.id for r in pending)
    assert await storage.outbox.count() == 6
    assert [r.txn_id for r in await storage.outbox.pending(limit=2)] == ["t0", "t1"]


async def test_outbox_done_and_ids_never_reused(storage: Storage) -> None:
    await storage.outbox.add([OutboxItem("a", None, {}), OutboxItem("b", None, {})], now=T0)
    rows = await storage.outbox.pending()
    for row in rows:
        await storage.outbox.done(row.id)
    assert await storage.outbox.count() == 0
    await storage.outbox.add([OutboxItem("c", None, {"nested": {"x": [1, "æ"]}})], now=T0)
    (row,) = await storage.outbox.pending()
    assert row.id > rows[-1].id  # AUTOINCREMENT: a new action never takes an old id
    assert row.payload == {"nested": {"x": [1, "æ"]}}
    await storage.outbox.done(row.id)
    await storage.outbox.done(row.id)  # idempotent: a retried "done" is harmless


# -- event log and checkpoint ------------------------------------------------------------------


async def test_event_log_seen_mark_prune(storage: Storage) -> None:
    assert not await storage.events.seen("$old")
    await storage.events.mark(["$old", "$old2"], T0)
    await storage.events.mark(["$new"], T0 + timedelta(hours=2))
    await storage.events.mark(["$old"], T0 + timedelta(hours=3))  # a replay: no error
    assert await storage.events.seen("$old")
    assert await storage.events.seen("$new")

    pruned = await storage.events.prune(T0 + timedelta(hours=1))
    assert pruned == 2
    assert not await storage.events.seen("$old")
    assert not await storage.events.seen("$old2")
    assert await storage.events.seen("$new")


async def test_event_log_bound_to_session_goes_with_it(storage: Storage) -> None:
    await _with_sessions(storage, 1)
    await storage.events.mark(["$in-session"], T0, session_id=SessionID(1))
    assert await storage.events.seen("$in-session")
    await storage.state.forget_session(SessionID(1))
    assert not await storage.events.seen("$in-session")


async def test_checkpoint_get_set(storage: Storage) -> None:
    assert await storage.checkpoint.get() is None
    await storage.checkpoint.set("s1_2_3", T0)
    assert await storage.checkpoint.get() == "s1_2_3"
    await storage.checkpoint.set("s4_5_6", T0 + timedelta(seconds=1))
    assert await storage.checkpoint.get() == "s4_5_6"
    async with storage.db.read() as tx:
        assert await tx.fetchval("SELECT count(*) FROM sync_checkpoint") == 1
        saved = await tx.fetchval("SELECT saved_at FROM sync_checkpoint")
    assert saved == (T0 + timedelta(seconds=1)).timestamp()


async def test_checkpoint_survives_reopen(db_path: Path) -> None:
    st = await Storage.open(db_path)
    await st.checkpoint.set("tok", T0)
    await st.close()
    st = await Storage.open(db_path)
    try:
        assert await st.checkpoint.get() == "tok"
    finally:
        await st.close()


# -- relay map and media ---------------------------------------------------------------------


async def test_relay_map(storage: Storage) -> None:
    await _with_sessions(storage, 1)
    sid, src = SessionID(1), EventID("$src")
    vol, chat = RoomID("!vol:localhost"), RoomID("!chat:localhost")
    await storage.relay.record(sid, src, vol, EventID("$copy-v"))
    await storage.relay.record(sid, src, chat, EventID("$copy-c"))
    assert await storage.relay.lookup(sid, src, vol) == "$copy-v"
    assert await storage.relay.lookup(sid, src, RoomID("!other:localhost")) is None
    assert await storage.relay.lookup(sid, EventID("$nope"), vol) is None
    assert await storage.relay.targets(sid, src) == [(chat, "$copy-c"), (vol, "$copy-v")]
    assert await storage.relay.source_of(sid, EventID("$copy-v")) == src
    # Re-recording (e.g. after a resend) replaces the copy's ID.
    await storage.relay.record(sid, src, vol, EventID("$copy-v2"))
    assert await storage.relay.lookup(sid, src, vol) == "$copy-v2"


async def test_media_seen(storage: Storage) -> None:
    await _with_sessions(storage, 1, 2)
    await storage.media.record(SessionID(1), "mxc://localhost/b")
    await storage.media.record(SessionID(1), "mxc://localhost/a")
    await storage.media.record(SessionID(1), "mxc://localhost/a")  # seen twice: one row
    await storage.media.record(SessionID(2), "mxc://localhost/c")
    assert await storage.media.for_session(SessionID(1)) == [
        "mxc://localhost/a",
        "mxc://localhost/b",
    ]
    assert await storage.media.for_session(SessionID(3)) == []


async def test_media_seen_keeps_who_posted_each_item_first(storage: Storage) -> None:
    await _with_sessions(storage, 1)
    chatter, volunteer = UserID("@c:localhost"), UserID("@v:localhost")
    await storage.media.record(SessionID(1), "mxc://localhost/a", chatter)
    await storage.media.record(SessionID(1), "mxc://localhost/a", volunteer)
    await storage.media.record(SessionID(1), "mxc://localhost/b")
    assert await storage.media.posters(SessionID(1)) == {
        "mxc://localhost/a": chatter,
        "mxc://localhost/b": None,
    }


# -- purge jobs ------------------------------------------------------------------------------


async def test_purge_jobs_lifecycle(storage: Storage) -> None:
    await _with_sessions(storage, 1)
    rooms = [RoomID("!a:localhost"), RoomID("!b:localhost")]
    job = await storage.purges.start(SessionID(1), rooms, ["mxc://localhost/m"], T0)
    assert job.step == "start"
    assert job.attempts == 0
    assert job.rooms == tuple(rooms)
    assert job.media == ("mxc://localhost/m",)
    assert job.started_at == T0

    assert await storage.purges.advance(SessionID(1), "rooms_deleted")
    assert await storage.purges.bump_attempts(SessionID(1)) == 1
    assert await storage.purges.bump_attempts(SessionID(1)) == 2

    # Idempotent start: a resumed purge keeps its progress and its original lists.
    again = await storage.purges.start(SessionID(1), [], [], T0 + timedelta(minutes=5))
    assert again.step == "rooms_deleted"
    assert again.attempts == 2
    assert again.rooms == tuple(rooms)
    assert again.started_at == T0

    # The job outlives the session row (no foreign key).
    await storage.state.forget_session(SessionID(1))
    (pending,) = await storage.purges.pending()
    assert pending == again

    await storage.purges.finish(SessionID(1))
    assert await storage.purges.pending() == []
    assert await storage.purges.get(SessionID(1)) is None
    assert not await storage.purges.advance(SessionID(1), "x")
    assert await storage.purges.bump_attempts(SessionID(1)) == 0


async def test_purge_jobs_pending_in_start_order(storage: Storage) -> None:
    await storage.purges.start(SessionID(5), [], [], T0 + timedelta(seconds=2))
    await storage.purges.start(SessionID(9), [], [], T0)
    assert [j.session_id for j in await storage.purges.pending()] == [9, 5]


async def test_closing_a_session_deletes_its_purge_job_in_the_same_step(storage: Storage) -> None:
    """The core's PurgeFinished step deletes the session; the job (naming the rooms) must
    go in that same transaction, or a crash between the two would run a finished purge
    again or leave the room IDs in the file."""
    await _with_sessions(storage, 1, 2)
    await storage.purges.start(SessionID(1), [RoomID("!a:localhost")], [], T0)
    await storage.purges.start(SessionID(2), [RoomID("!b:localhost")], [], T0)
    await storage.state.apply(Changes(deleted_sessions={SessionID(1)}), now=T0)
    assert await storage.purges.get(SessionID(1)) is None
    assert [j.session_id for j in await storage.purges.pending()] == [2]


# -- block list ------------------------------------------------------------------------------


async def test_blocklist(storage: Storage) -> None:
    assert not await storage.blocklist.contains("h")
    await storage.blocklist.add("h", date(2026, 1, 2))
    await storage.blocklist.add("h", date(2026, 2, 3))  # already there: kept as it was
    assert await storage.blocklist.contains("h")
    assert (await storage.state.load()).blocked == {"h"}
    block = await storage.blocklist.get("h")
    assert block is not None
    assert (block.since, block.until, block.number) == (date(2026, 1, 2), None, None)


# -- statistics ------------------------------------------------------------------------------


def _rec(
    day: int,
    outcome: str,
    *,
    language: str = "nb",
    wait: int | None = None,
    duration: int | None = None,
    tags: tuple[str, ...] = (),
    rating: int | None = None,
) -> StatsRecord:
    return StatsRecord(
        day=date(2026, 3, day),
        language=language,
        source="direct",
        outcome=outcome,
        wait_seconds=wait,
        duration_seconds=duration,
        requeues=0,
        tags=tags,
        rating=rating,
        purge_result="verified",
    )


async def test_stats_query_by_day(storage: Storage) -> None:
    records = [_rec(d, "completed", wait=d) for d in (1, 2, 3, 4)]
    await storage.stats.add(records)
    assert await storage.stats.query() == records
    assert await storage.stats.query(date(2026, 3, 2), date(2026, 3, 3)) == records[1:3]
    assert await storage.stats.query(since=date(2026, 3, 4)) == records[3:]
    assert await storage.stats.query(until=date(2026, 3, 1)) == records[:1]


async def test_stats_keep_the_told_estimate_and_count_hours_apart_from_the_rows(
    storage: Storage, db_path: Path
) -> None:
    told = dataclasses.replace(_rec(1, "completed", wait=600), told_wait_minutes=5)
    evening = [
        dataclasses.replace(_rec(1, "completed"), hour=21),
        dataclasses.replace(_rec(1, "left_waiting"), hour=21),
        dataclasses.replace(_rec(2, "completed"), hour=21),
        dataclasses.replace(_rec(2, "queue_full"), hour=9),
    ]
    await storage.state.apply(Changes(stats=[told, *evening]))
    assert (await storage.stats.query())[0].told_wait_minutes == 5
    # Read back without the hour: no row says when its conversation took place.
    assert {r.hour for r in await storage.stats.query()} == {None}
    with sqlite3.connect(db_path) as conn:
        hours = conn.execute("SELECT day, hour, contacts FROM stats_hours ORDER BY day, hour")
        assert hours.fetchall() == [
            ("2026-03-01", 21, 2),
            ("2026-03-02", 9, 1),
            ("2026-03-02", 21, 1),
        ]
