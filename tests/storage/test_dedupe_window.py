"""Processed event IDs stay only while a replay could bring their event back.

A row in `processed_events` makes a replayed event harmless; once the checkpoint after
its batch is saved (plus a margin for events handled ahead of an earlier batch's
checkpoint), no replay can bring it back and the row only tells whoever reads the file
that this event (so its sender) reached the helpline.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from bot.app import prune_events
from bot.core.ids import SessionID
from bot.core.model import Changes
from bot.storage import Storage

from .conftest import T0, make_session

REPO_ROOT = Path(__file__).resolve().parents[2]
MARGIN = timedelta(minutes=5)


def raw(db_path: Path) -> bytes:
    return b"".join(
        Path(f"{db_path}{suffix}").read_bytes()
        for suffix in ("", "-wal")
        if Path(f"{db_path}{suffix}").exists()
    )


async def test_rows_older_than_the_checkpoint_by_the_margin_go(
    storage: Storage, db_path: Path
) -> None:
    await storage.state.apply(Changes(sessions={SessionID(1): make_session(1)}), now=T0)
    # A direct message and a lobby event (unbound), and one bound to a conversation.
    await storage.events.mark(["$dm-old", "$lobby-old"], T0)
    await storage.events.mark(["$bound-old"], T0, session_id=SessionID(1))
    await storage.events.mark(["$recent"], T0 + timedelta(minutes=8))

    # No checkpoint yet: nothing can be known to be settled.
    assert await storage.events.prune_settled(MARGIN) == 0

    # The checkpoint is saved 10 minutes on: older than 5 minutes before it goes.
    await storage.checkpoint.set("token-2", T0 + timedelta(minutes=10))
    assert await storage.events.prune_settled(MARGIN) == 3
    for event in ("$dm-old", "$lobby-old", "$bound-old"):
        assert not await storage.events.seen(event)
    assert await storage.events.seen("$recent")
    assert len((await storage.state.load()).sessions) == 1  # only the event IDs went

    await storage.db.scrub()
    assert b"$dm-old" not in raw(db_path)
    assert b"$recent" in raw(db_path)


async def test_the_app_prunes_and_scrubs_at_its_pace(storage: Storage, db_path: Path) -> None:
    await storage.events.mark(["$dm-old"], T0)
    await storage.checkpoint.set("token", T0 + timedelta(hours=1))
    task = asyncio.create_task(prune_events(storage.db, MARGIN, every=3600))
    try:
        for _ in range(100):
            if not await storage.events.seen("$dm-old"):
                break
            await asyncio.sleep(0.02)
        assert not await storage.events.seen("$dm-old")
        assert b"$dm-old" not in raw(db_path)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# The bot handles a batch's events (their rows commit, at T0 + 30 min) while the
# checkpoint still names the batch before (saved at T0), prunes, and is killed before
# the batch's own checkpoint is saved: the restart replays the batch.
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import timedelta
    from pathlib import Path

    from bot.storage import Storage
    from tests.storage.conftest import T0

    async def main() -> None:
        st = await Storage.open(Path(sys.argv[1]))
        await st.events.mark(["$settled"], T0 - timedelta(minutes=20))
        await st.checkpoint.set("token-1", T0)
        await st.events.mark(["$dm-in-batch-2", "$lobby-in-batch-2"], T0 + timedelta(minutes=30))
        pruned = await st.events.prune_settled(timedelta(minutes=5))
        print(f"pruned {pruned}", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_a_replay_after_a_crash_is_still_deduplicated(db_path: Path) -> None:
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
        assert line == b"pruned 1\n", (line, await proc.stderr.read() if proc.stderr else b"")
    finally:
        proc.kill()  # SIGKILL, by this process's own PID
        await proc.wait()

    st = await Storage.open(db_path)
    try:
        assert await st.checkpoint.get() == "token-1"  # the restart replays batch 2
        assert await st.events.seen("$dm-in-batch-2")
        assert await st.events.seen("$lobby-in-batch-2")
        assert not await st.events.seen("$settled")
        # A prune at the restart, before the replay is handled, keeps them too.
        assert await st.events.prune_settled(MARGIN) == 0
        assert await st.events.seen("$dm-in-batch-2")
    finally:
        await st.close()
