"""Crash safety: what was committed is there after an unclean stop, and nothing else."""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
from pathlib import Path

from bot.core.counters import Counters
from bot.core.ids import SessionID
from bot.core.model import Changes
from bot.storage import Storage

from .conftest import T0, make_session, make_timers

REPO_ROOT = Path(__file__).resolve().parents[2]

# The writer commits one step and the sync token with it, then opens a second
# transaction and waits in the middle of it to be killed.
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path

    from bot.core.model import Changes
    from bot.storage import Storage
    from tests.storage.conftest import T0, make_session, make_timers

    async def main() -> None:
        st = await Storage.open(Path(sys.argv[1]))
        s = make_session(1)
        timers = make_timers(1)
        async with st.db.transaction() as tx:
            await st.state.apply(
                Changes(sessions={s.id: s}, timers_set={t.key: t for t in timers}),
                processed=["$committed"],
                now=T0,
                tx=tx,
            )
            await st.checkpoint.set("token-1", T0, tx=tx)
        print("committed", flush=True)
        async with st.db.transaction() as tx:
            await tx.execute("INSERT INTO meta (key, value) VALUES ('uncommitted', '1')")
            await tx.execute("UPDATE sync_checkpoint SET next_batch = 'token-2'")
            print("in-transaction", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_reopen_after_sigkill(db_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(db_path),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line == b"committed\n", (line, await proc.stderr.read() if proc.stderr else b"")
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"in-transaction\n"
    finally:
        proc.kill()  # SIGKILL, by this process's own PID
        await proc.wait()
    assert Path(f"{db_path}-wal").exists()  # it died without checkpointing

    st = await Storage.open(db_path)
    try:
        loaded = await st.state.load()
        assert loaded.sessions == [make_session(1)]
        assert loaded.timers == sorted(make_timers(1), key=lambda t: (t.due, t.key))
        assert loaded.counters == Counters()
        assert await st.checkpoint.get() == "token-1"
        assert await st.events.seen("$committed")
    finally:
        await st.close()


async def test_copy_of_open_database_has_committed_data(db_path: Path, tmp_path: Path) -> None:
    """A snapshot of the files taken while the bot runs (as after a power cut with the
    WAL not yet checkpointed) holds every committed step."""
    st = await Storage.open(db_path)
    try:
        for i in range(1, 4):
            s = make_session(i)
            await st.state.apply(Changes(sessions={s.id: s}), now=T0)
        wal = Path(f"{db_path}-wal")
        assert wal.stat().st_size > 0
        copy_dir = tmp_path / "copy"
        copy_dir.mkdir()
        shutil.copy(db_path, copy_dir / "bot.db")
        shutil.copy(wal, copy_dir / "bot.db-wal")
    finally:
        await st.close()

    copy = await Storage.open(copy_dir / "bot.db")
    try:
        assert [s.id for s in (await copy.state.load()).sessions] == [
            SessionID(1),
            SessionID(2),
            SessionID(3),
        ]
    finally:
        await copy.close()
