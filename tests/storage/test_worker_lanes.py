"""The worker's purge lane: a purge takes seconds (minutes, when the admin API is away and
it retries), and the other conversations must not wait for it. Real storage; the Matrix
side is an executor that records what it is asked to do and holds a purge until the test
lets it go."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.core import codec
from bot.core.events import Purge, RoomRef, Say, Text
from bot.core.ids import RoomID, SessionID
from bot.core.model import Changes, Role
from bot.outcomes import Done
from bot.storage import Storage
from bot.storage.repos import OutboxItem
from bot.worker import Worker
from tests.storage.conftest import T0, make_session


class HeldPurges:
    """Carries out effects at once, but a purge only when `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.purging = asyncio.Event()
        self.done: list[str] = []

    async def run(self, effect: Any, txn_id: str, known: Any = None) -> Any:
        if isinstance(effect, Purge):
            self.purging.set()
            await self.release.wait()
        self.done.append(txn_id)
        return Done()


def say(session: int, key: str) -> dict[str, Any]:
    return codec.encode(Say(RoomRef(SessionID(session), Role.CHATTER), Text(key), "nb"))


def outbox_worker(storage: Storage, executor: HeldPurges) -> Worker:
    """A worker that only carries out the outbox: no input is applied in these tests."""
    return Worker(
        core=None,  # type: ignore[arg-type]
        db=storage.db,
        runner=executor,
        timers=None,  # type: ignore[arg-type]
        clock=lambda: T0,
    )


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_purge_holds_up_only_its_own_conversation(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "bot.db")
    executor = HeldPurges()
    worker = outbox_worker(storage, executor)
    task: asyncio.Task[None] | None = None
    try:
        one, two = SessionID(1), SessionID(2)
        await storage.state.apply(
            Changes(sessions={one: make_session(1), two: make_session(2)}), now=T0
        )
        purge = codec.encode(Purge(one, (RoomID("!a:hs"),), ()))
        await storage.outbox.add(
            [
                OutboxItem("purge-1", one, purge),
                OutboxItem("say-2", two, say(2, "a")),
                OutboxItem("say-1", one, say(1, "b")),  # behind the purge, same conversation
                OutboxItem("say-2b", two, say(2, "c")),
            ],
            now=T0,
        )
        task = asyncio.create_task(worker.run())
        await until(lambda: executor.purging.is_set() and "say-2b" in executor.done)
        # The other conversation went on while the purge was held; its own did not.
        assert executor.done == ["say-2", "say-2b"]
        assert [r.txn_id for r in await storage.outbox.pending()] == ["purge-1", "say-1"]

        executor.release.set()
        await until(lambda: "say-1" in executor.done)
        assert executor.done == ["say-2", "say-2b", "purge-1", "say-1"]
        await until(lambda: worker.inbox.empty())
        assert await storage.outbox.pending() == []
    finally:
        if task is not None:
            worker.inbox.put_nowait(None)
            await asyncio.wait_for(task, 5)
        await storage.close()


async def test_a_purge_cut_short_stays_in_the_outbox(tmp_path: Path) -> None:
    """Stopping the worker mid-purge leaves its row, so the next start resumes it."""
    storage = await Storage.open(tmp_path / "bot.db")
    executor = HeldPurges()
    worker = outbox_worker(storage, executor)
    try:
        one = SessionID(1)
        await storage.state.apply(Changes(sessions={one: make_session(1)}), now=T0)
        purge = codec.encode(Purge(one, (RoomID("!a:hs"),), ()))
        await storage.outbox.add([OutboxItem("purge-1", one, purge)], now=T0)
        task = asyncio.create_task(worker.run())
        await until(executor.purging.is_set)
        worker.inbox.put_nowait(None)
        await asyncio.wait_for(task, 5)
        assert [r.txn_id for r in await storage.outbox.pending()] == ["purge-1"]
        assert executor.done == []
    finally:
        await storage.close()
