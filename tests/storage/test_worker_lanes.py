"""The worker's purge lane: a purge takes seconds (minutes, when the admin API is away and
it retries), and the other conversations must not wait for it. Real storage; the Matrix
side is an executor that records what it is asked to do and holds a purge until the test
lets it go."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.core import codec
from bot.core.events import Purge, PurgeStalled, RoomRef, Say, Text
from bot.core.ids import RoomID, SessionID
from bot.core.model import Changes, Role
from bot.outcomes import Done, Transient
from bot.storage import Storage
from bot.storage.outbox import OutboxItem
from bot.worker.loop import Worker
from bot.worker.retry import PurgeBackoff
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


class FailingPurges:
    """A purge of session 1 fails `failures` times with a reason that may pass (the admin
    API down), then succeeds; everything else is carried out at once."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []
        self.done: list[str] = []

    async def run(self, effect: Any, txn_id: str, known: Any = None) -> Any:
        self.calls.append(txn_id)
        if txn_id == "purge-1" and self.calls.count(txn_id) <= self.failures:
            raise Transient("admin API 502")
        self.done.append(txn_id)
        return Done()


async def test_a_failing_purge_is_retried_with_backoff_for_as_long_as_it_takes(
    tmp_path: Path,
) -> None:
    """Today's give-up point was 6 attempts (some 30 s): twelve failures here, and the purge
    still goes through in the end; the supervisors hear once that it is still trying, and
    another conversation's purge does not wait for it."""
    storage = await Storage.open(tmp_path / "bot.db")
    executor = FailingPurges(failures=12)
    worker = outbox_worker(storage, executor)  # type: ignore[arg-type]
    worker.lanes.purge_backoff = PurgeBackoff(first=0.005, cap=0.02, alert_after=3)
    told: list[Any] = []
    worker.lanes.tell = lambda item: told.append(item.input)
    task: asyncio.Task[None] | None = None
    try:
        one, two = SessionID(1), SessionID(2)
        await storage.state.apply(
            Changes(sessions={one: make_session(1), two: make_session(2)}), now=T0
        )
        await storage.outbox.add(
            [
                OutboxItem("purge-1", one, codec.encode(Purge(one, (RoomID("!a:hs"),), ()))),
                OutboxItem("purge-2", two, codec.encode(Purge(two, (RoomID("!b:hs"),), ()))),
                OutboxItem("say-1", one, say(1, "b")),  # behind its conversation's purge
            ],
            now=T0,
        )
        task = asyncio.create_task(worker.run())
        await until(lambda: "say-1" in executor.done)
        assert executor.calls.count("purge-1") == 13
        assert executor.done.index("purge-2") < executor.done.index("purge-1")
        assert executor.done.index("purge-1") < executor.done.index("say-1")
        assert told == [PurgeStalled(one)]
        await until(lambda: worker.inbox.empty())
        assert await storage.outbox.pending() == []
    finally:
        if task is not None:
            worker.inbox.put_nowait(None)
            await asyncio.wait_for(task, 5)
        await storage.close()


def test_the_purge_backoff_grows_from_half_a_minute_to_an_hour() -> None:
    backoff = PurgeBackoff()
    delays = [backoff.delay(n) for n in range(1, 11)]
    assert delays[:4] == [30, 60, 120, 240]
    assert delays[-1] == 3600
    assert max(delays) == 3600
