"""StateRepo: a core step written atomically, loaded back losslessly, cascades."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.core.counters import Counters
from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.model import Block, Changes, State, StatsRecord, Timer, TimerKind
from bot.storage import OutboxItem, Storage

from .conftest import T0, make_session, make_timers, make_volunteer


def _stats(outcome: str = "completed") -> StatsRecord:
    return StatsRecord(
        day=date(2026, 3, 14),
        language="nb",
        source="lobby",
        outcome=outcome,
        wait_seconds=120,
        duration_seconds=1800,
        requeues=0,
        tags=("angst",),
        rating=4,
        purge_result="verified",
    )


def _blocks() -> list[Block]:
    return [
        Block("hmac-abc", date(2026, 3, 14), T0 + timedelta(days=7), 4821, date(2026, 3, 14)),
        Block("hmac-def", date(2026, 3, 14), None, 1234),
    ]


def _full_changes() -> Changes:
    s1, s2 = make_session(1), make_session(2, state=State.ENDING)
    timers = [*make_timers(1), *make_timers(2)]
    return Changes(
        sessions={s1.id: s1, s2.id: s2},
        volunteers={
            UserID("@vol-a:localhost"): make_volunteer("@vol-a:localhost"),
            UserID("@vol-b:localhost"): make_volunteer("@vol-b:localhost", on_duty=False),
        },
        timers_set={t.key: t for t in timers},
        counters=Counters(
            next_session_id=103,
            next_offer_id=7,
            last_offered=UserID("@vol-a:localhost"),
            recent_durations=[600.0, 1250.5],
            day="2026-03-14",
            day_counts={"hmac-abc": 2},
        ),
        stats=[_stats()],
        blocks={b.hash: b for b in _blocks()},
        blocks_set=[date(2026, 3, 14), date(2026, 3, 14)],
    )


async def _count(storage: Storage, table: str) -> int:
    async with storage.db.read() as tx:
        return int(await tx.fetchval(f"SELECT count(*) FROM {table}"))


async def test_empty_load(storage: Storage) -> None:
    loaded = await storage.state.load()
    assert loaded.sessions == []
    assert loaded.volunteers == []
    assert loaded.timers == []
    assert loaded.counters == Counters()
    assert loaded.blocked == set()


async def test_round_trip(storage: Storage) -> None:
    changes = _full_changes()
    await storage.state.apply(changes, now=T0)
    loaded = await storage.state.load()

    # Session is a plain dataclass: equality covers every field, nested offers and held
    # messages included, and the datetimes down to the microsecond.
    assert loaded.sessions == [changes.sessions[SessionID(1)], changes.sessions[SessionID(2)]]
    assert sorted(loaded.volunteers, key=lambda v: v.user_id) == sorted(
        changes.volunteers.values(), key=lambda v: v.user_id
    )
    assert loaded.timers == sorted(changes.timers_set.values(), key=lambda t: (t.due, t.key))
    assert {t.key for t in loaded.timers} == set(changes.timers_set)
    assert loaded.counters == changes.counters
    assert loaded.blocks == _blocks()
    assert await storage.stats.blocks_by_day() == {date(2026, 3, 14): 2}
    assert await storage.stats.query() == changes.stats


async def test_round_trip_survives_reopen(db_path: Path) -> None:
    changes = _full_changes()
    st = await Storage.open(db_path)
    await st.state.apply(changes, now=T0)
    await st.close()
    st = await Storage.open(db_path)
    try:
        loaded = await st.state.load()
        assert loaded.sessions == list(changes.sessions.values())
        assert len(loaded.timers) == 6
    finally:
        await st.close()


async def test_upsert_updates_without_cascading(storage: Storage) -> None:
    """Updating a session must keep its timers and outbox (no INSERT OR REPLACE)."""
    await storage.state.apply(
        _full_changes(),
        outbox=[OutboxItem("txn-1", SessionID(1), {"type": "send", "body": "x"})],
        now=T0,
    )
    s1 = make_session(1, state=State.ENDING)
    s1.tags.append("familie")
    await storage.state.apply(Changes(sessions={s1.id: s1}), now=T0 + timedelta(minutes=1))

    loaded = await storage.state.load()
    assert loaded.sessions[0] == s1
    assert len([t for t in loaded.timers if t.session_id == 1]) == 3
    assert await storage.outbox.count() == 1
    async with storage.db.read() as tx:
        state, updated = await tx.fetchone("SELECT state, updated_at FROM sessions WHERE id = 1")
    assert state == "ending"
    assert updated == (T0 + timedelta(minutes=1)).timestamp()


async def test_timers_cleared_and_replaced(storage: Storage) -> None:
    await storage.state.apply(_full_changes(), now=T0)
    warn = Timer(
        TimerKind.WARN, SessionID(1), T0 + timedelta(minutes=50), before=timedelta(seconds=600)
    )
    moved = Timer(TimerKind.MAX_DURATION, SessionID(1), T0 + timedelta(hours=2))
    await storage.state.apply(Changes(timers_cleared={warn.key}, timers_set={moved.key: moved}))

    timers = {t.key: t for t in (await storage.state.load()).timers}
    assert warn.key not in timers
    assert timers[moved.key].due == T0 + timedelta(hours=2)
    assert len(timers) == 5


async def test_a_timer_for_an_offer_or_a_warning_is_stored_as_before(storage: Storage) -> None:
    """Typed in the core (`offer`, `before`), the stored `ref` stays the text it always was:
    the offer ID, or the seconds before the end. Rows written by an older bot load too."""
    s = make_session(8, state=State.OFFERED)
    lapse = Timer(TimerKind.OFFER_TIMEOUT, s.id, T0, offer=OfferID(12))
    warn = Timer(TimerKind.WARN, s.id, T0, before=timedelta(minutes=2))
    await storage.state.apply(
        Changes(sessions={s.id: s}, timers_set={lapse.key: lapse, warn.key: warn}), now=T0
    )
    async with storage.db.read() as tx:
        rows = await tx.fetchall("SELECT key, kind, ref FROM timers ORDER BY kind")
    assert rows == [("offer_timeout:8:12", "offer_timeout", "12"), ("warn:8:120", "warn", "120")]
    async with storage.db.transaction() as tx:
        await tx.execute("DELETE FROM timers")
        await tx.executemany(
            "INSERT INTO timers (key, kind, session_id, due, ref) VALUES (?, ?, 8, ?, ?)",
            [(k, kind, T0.timestamp(), ref) for k, kind, ref in rows],
        )
    loaded = {t.key: t for t in (await storage.state.load()).timers}
    assert loaded == {lapse.key: lapse, warn.key: warn}


async def test_counters_are_stored_as_before(storage: Storage) -> None:
    """Typed in the core, the counters keep their rows in `meta`: one key per counter, its
    value as JSON, as an older bot wrote them (and loads them back from such rows)."""
    old = {
        "next_session_id": "12",
        "next_offer_id": "30",
        "last_offered": '"@vol-a:localhost"',
        "recent_durations": "[600.0,90.5]",
        "day": '"2026-03-14"',
        "day_counts": '{"hmac-abc":2}',
        "attempt:hb1": "1",  # another part of the bot's row: not a counter
    }
    async with storage.db.transaction() as tx:
        await tx.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(old.items()))
    counters = (await storage.state.load()).counters
    assert counters == Counters(
        12, 30, UserID("@vol-a:localhost"), [600.0, 90.5], "2026-03-14", {"hmac-abc": 2}
    )
    counters.next_session_id = 13
    await storage.state.apply(Changes(counters=counters), now=T0)
    async with storage.db.read() as tx:
        rows = dict(await tx.fetchall("SELECT key, value FROM meta"))
    assert rows == {**old, "next_session_id": "13"}


async def test_timer_set_with_its_new_session_in_one_step(storage: Storage) -> None:
    """The session row is written before the timer that points at it."""
    s = make_session(7, state=State.WAITING)
    t = Timer(TimerKind.QUEUE_MAX_WAIT, s.id, T0 + timedelta(minutes=30))
    await storage.state.apply(Changes(sessions={s.id: s}, timers_set={t.key: t}))
    assert (await storage.state.load()).timers == [t]


async def test_mismatched_timer_key_refused(storage: Storage) -> None:
    await storage.state.apply(Changes(sessions={SessionID(1): make_session(1)}))
    t = make_timers(1)[0]
    with pytest.raises(ValueError, match="key"):
        await storage.state.apply(Changes(timers_set={"wrong": t}))
    assert await _count(storage, "timers") == 0


async def test_failing_apply_writes_nothing(storage: Storage) -> None:
    """A timer for a session that does not exist fails the foreign key: the sessions,
    volunteers, meta, stats, blocks, outbox and processed IDs of the same step, written
    before it, are all rolled back."""
    await storage.state.apply(Changes(counters=Counters(next_session_id=2)), now=T0)
    bad = _full_changes()
    orphan = Timer(TimerKind.PURGE, SessionID(999), T0)
    bad.timers_set[orphan.key] = orphan
    with pytest.raises(sqlite3.IntegrityError):
        await storage.state.apply(
            bad,
            outbox=[OutboxItem("txn-a", SessionID(1), {"k": "v"})],
            processed=["$e1", "$e2"],
            now=T0,
        )
    loaded = await storage.state.load()
    assert loaded.sessions == []
    assert loaded.volunteers == []
    assert loaded.timers == []
    assert loaded.counters == Counters(next_session_id=2)
    assert loaded.blocked == set()
    for table in ("stats", "outbox", "processed_events", "timers", "sessions"):
        assert await _count(storage, table) == 0, table
    assert not await storage.events.seen("$e1")
    # And the database is fine for the next step.
    await storage.state.apply(_full_changes(), now=T0)
    assert len((await storage.state.load()).sessions) == 2


async def test_duplicate_txn_id_rolls_back_step(storage: Storage) -> None:
    await storage.state.apply(_full_changes(), outbox=[OutboxItem("txn-1", None, {})], now=T0)
    s1 = make_session(1, state=State.ENDING)
    with pytest.raises(sqlite3.IntegrityError):
        await storage.state.apply(
            Changes(sessions={s1.id: s1}), outbox=[OutboxItem("txn-1", None, {})], now=T0
        )
    assert (await storage.state.load()).sessions[0].state is State.ACTIVE


async def test_delete_cascades(storage: Storage) -> None:
    await storage.state.apply(
        _full_changes(),
        outbox=[
            OutboxItem("txn-1", SessionID(1), {"body": "one"}),
            OutboxItem("txn-2", SessionID(2), {"body": "two"}),
            OutboxItem("txn-3", None, {"notice": "staff"}),
        ],
        processed={"$a": SessionID(1), "$b": SessionID(2), "$c": None},
        now=T0,
    )
    await storage.relay.record(SessionID(1), EventID("$a"), RoomID("!v:l"), EventID("$a2"))
    await storage.relay.record(SessionID(2), EventID("$b"), RoomID("!v:l"), EventID("$b2"))
    await storage.media.record(SessionID(1), "mxc://localhost/one")
    await storage.media.record(SessionID(2), "mxc://localhost/two")

    await storage.state.apply(Changes(deleted_sessions={SessionID(1)}), now=T0)

    loaded = await storage.state.load()
    assert [s.id for s in loaded.sessions] == [2]
    assert {t.session_id for t in loaded.timers} == {2}
    assert [r.txn_id for r in await storage.outbox.pending()] == ["txn-2", "txn-3"]
    assert await storage.relay.lookup(SessionID(1), EventID("$a"), RoomID("!v:l")) is None
    assert await storage.relay.lookup(SessionID(2), EventID("$b"), RoomID("!v:l")) == "$b2"
    assert await storage.media.for_session(SessionID(1)) == []
    assert await storage.media.for_session(SessionID(2)) == ["mxc://localhost/two"]
    assert not await storage.events.seen("$a")
    assert await storage.events.seen("$b")
    assert await storage.events.seen("$c")
    # Unrelated state stays.
    assert len(loaded.volunteers) == 2
    assert loaded.counters.next_session_id == 103


async def test_session_upserted_and_deleted_in_one_step_is_gone(storage: Storage) -> None:
    s = make_session(3)
    t = make_timers(3)[0]
    await storage.state.apply(
        Changes(sessions={s.id: s}, timers_set={t.key: t}, deleted_sessions={s.id}),
        outbox=[OutboxItem("txn-x", s.id, {})],
    )
    assert (await storage.state.load()).sessions == []
    assert await _count(storage, "timers") == 0
    assert await _count(storage, "outbox") == 0


async def test_apply_with_checkpoint_in_one_transaction(storage: Storage) -> None:
    """A sync batch's effects and its token commit together, or neither does."""
    s = make_session(4)
    async with storage.db.transaction() as tx:
        await storage.state.apply(Changes(sessions={s.id: s}), processed=["$x"], tx=tx)
        await storage.checkpoint.set("batch-1", T0, tx=tx)
    assert await storage.checkpoint.get() == "batch-1"

    # The block is the transaction under test; `match` pins the statement that raises.
    with pytest.raises(RuntimeError, match="crash before commit"):  # noqa: PT012
        async with storage.db.transaction() as tx:
            await storage.state.apply(Changes(deleted_sessions={s.id}), tx=tx)
            await storage.checkpoint.set("batch-2", T0, tx=tx)
            raise RuntimeError("crash before commit")
    assert await storage.checkpoint.get() == "batch-1"
    assert [x.id for x in (await storage.state.load()).sessions] == [4]


async def test_processed_string_refused(storage: Storage) -> None:
    with pytest.raises(TypeError):
        await storage.state.apply(Changes(), processed="$oops")


async def test_a_block_is_updated_in_place_and_goes_when_lifted(storage: Storage) -> None:
    first = Block("h1", date(2026, 3, 14), T0 + timedelta(hours=24), 4821)
    await storage.state.apply(Changes(blocks={"h1": first}), now=T0)
    assert await storage.blocklist.contains("h1")
    async with storage.db.read() as tx:
        assert await tx.fetchval("SELECT added_day FROM blocklist") == "2026-03-14"
    told = Block("h1", date(2026, 3, 14), T0 + timedelta(hours=24), 4821, date(2026, 3, 15))
    await storage.state.apply(Changes(blocks={"h1": told}), now=T0)
    assert (await storage.state.load()).blocks == [told]
    assert await storage.blocklist.get("h1") == told
    await storage.state.apply(Changes(unblocked={"h1"}), now=T0)
    assert (await storage.state.load()).blocks == []
    assert await _count(storage, "blocklist") == 0
    # The count for the report stays: it says how many, never whom.
    assert await storage.stats.blocks_by_day() == {}


async def test_blocks_are_counted_per_day_apart_from_the_list(storage: Storage) -> None:
    days = [date(2026, 3, 14), date(2026, 3, 14), date(2026, 3, 16)]
    await storage.state.apply(Changes(blocks_set=days[:2]), now=T0)
    await storage.state.apply(Changes(blocks_set=days[2:]), now=T0)
    by_day = await storage.stats.blocks_by_day()
    assert by_day == {date(2026, 3, 14): 2, date(2026, 3, 16): 1}
    assert await storage.stats.blocks_by_day(since=date(2026, 3, 15)) == {date(2026, 3, 16): 1}
    async with storage.db.read() as tx:
        cols = [r[1] for r in await tx.fetchall("PRAGMA table_info(stats_blocks)")]
    assert cols == ["day", "blocks"]  # nothing that could name anyone


async def test_contains_with_a_time_reads_the_end(storage: Storage) -> None:
    b = Block("h1", date(2026, 3, 14), T0 + timedelta(hours=1), None)
    await storage.state.apply(Changes(blocks={"h1": b}), now=T0)
    assert await storage.blocklist.contains("h1", T0)
    assert not await storage.blocklist.contains("h1", T0 + timedelta(hours=1))
    assert not await storage.blocklist.contains("h2")
