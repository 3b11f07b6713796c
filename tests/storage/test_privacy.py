"""After a purge, nothing of the conversation is left in the database's files.

The check is on raw bytes of the database file and its WAL, the way an auditor (or an
attacker with the disk) would look, not through SQL.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.ids import EventID, RoomID, SessionID
from bot.core.model import Changes, State
from bot.storage import OutboxItem, Storage

from .conftest import T0, make_session, make_timers

BODY = "PURPLE-ELEPHANT-42"
CHATTER = "@chatter-x:localhost"
MEDIA = "mxc://localhost/PURPLEMEDIA"
# Every trace of session 1 that the setup below writes somewhere.
MARKERS = [BODY, CHATTER, MEDIA, "!chatter-room-1:", "!vol-room-1:", "$held1-1", "$relayed-1"]


def _files(db_path: Path) -> dict[str, bytes]:
    out = {}
    for suffix in ("", "-wal", "-journal"):
        p = Path(f"{db_path}{suffix}")
        if p.exists():
            out[p.name] = p.read_bytes()
    return out


def _leaks(db_path: Path) -> list[tuple[str, str]]:
    return [
        (name, marker)
        for name, data in _files(db_path).items()
        for marker in MARKERS
        if marker.encode() in data
    ]


async def _write_conversation(st: Storage, body: str) -> None:
    sid = SessionID(1)
    others = {SessionID(i): make_session(i, chatter=f"@other{i}:localhost") for i in (2, 3, 4)}
    await st.state.apply(Changes(sessions=others), now=T0)

    s = make_session(1, chatter=CHATTER, body=body, state=State.WAITING)
    timers = make_timers(1)
    await st.state.apply(
        Changes(sessions={sid: s}, timers_set={t.key: t for t in timers}),
        outbox=[
            OutboxItem("txn-relay-1", sid, {"room": "!vol-room-1:localhost", "body": body}),
        ],
        processed={"$held1-1": sid},
        now=T0,
    )
    # Several versions of the row, so that older page images pile up in the WAL.
    for minute, state in enumerate((State.OFFERED, State.ACTIVE, State.ENDING), start=1):
        s.state = state
        s.tags.append(f"tag{minute}")
        await st.state.apply(Changes(sessions={sid: s}), now=T0 + timedelta(minutes=minute))
    await st.relay.record(
        sid, EventID("$held1-1"), RoomID("!vol-room-1:localhost"), EventID("$relayed-1")
    )
    await st.media.record(sid, MEDIA)
    # Unrelated activity after it, as in a running bot.
    await st.checkpoint.set("token", T0)
    await st.outbox.add([OutboxItem("txn-staff", None, {"notice": "queue 1"})], now=T0)


@pytest.mark.parametrize(
    "body",
    [BODY, f"{BODY} " + "x" * 20_000 + f" {BODY}"],  # the second spills into overflow pages
    ids=["short", "overflow"],
)
async def test_no_trace_after_forget_and_scrub(db_path: Path, body: str) -> None:
    st = await Storage.open(db_path)
    try:
        await _write_conversation(st, body)
        assert _leaks(db_path), "setup wrote nothing to find: the test would prove nothing"

        # The purge, as the pipeline runs it: record the job, do the server side, forget.
        job = await st.purges.start(
            SessionID(1),
            [RoomID("!chatter-room-1:localhost"), RoomID("!vol-room-1:localhost")],
            await st.media.for_session(SessionID(1)),
            T0 + timedelta(minutes=5),
        )
        assert MEDIA in job.media
        await st.purges.advance(SessionID(1), "rooms_deleted")
        await st.state.forget_session(SessionID(1))
        await st.purges.finish(SessionID(1))

        assert _leaks(db_path) == []
        # The rest of the state is intact.
        loaded = await st.state.load()
        assert [s.id for s in loaded.sessions] == [2, 3, 4]
        assert await st.outbox.count() == 1
        assert await st.checkpoint.get() == "token"
    finally:
        await st.close()
    assert _leaks(db_path) == []


async def test_no_trace_after_session_deleted_by_a_step(db_path: Path) -> None:
    """A core step that deletes the session (not the purge's forget_session) scrubs too."""
    st = await Storage.open(db_path)
    try:
        await _write_conversation(st, BODY)
        assert _leaks(db_path)
        await st.state.apply(Changes(deleted_sessions={SessionID(1)}), now=T0)
        assert _leaks(db_path) == []
    finally:
        await st.close()


async def test_scrub_vacuums_free_pages_and_empties_wal(storage: Storage, db_path: Path) -> None:
    big = make_session(1, body="y" * 50_000)  # spans many overflow pages
    await storage.state.apply(Changes(sessions={big.id: big}), now=T0)
    await storage.db.scrub()
    pages = await storage.db.pragma("page_count")

    # Inside a caller's transaction apply cannot scrub: the caller does, below.
    async with storage.db.transaction() as tx:
        await storage.state.apply(Changes(deleted_sessions={big.id}), now=T0, tx=tx)
    assert await storage.db.pragma("freelist_count") > 0
    assert Path(f"{db_path}-wal").stat().st_size > 0
    await storage.db.scrub()
    assert await storage.db.pragma("freelist_count") == 0
    assert await storage.db.pragma("page_count") < pages
    assert Path(f"{db_path}-wal").stat().st_size == 0
    assert db_path.stat().st_size == await storage.db.pragma(
        "page_count"
    ) * await storage.db.pragma("page_size")
