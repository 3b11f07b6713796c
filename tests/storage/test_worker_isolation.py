"""One conversation's trouble never reaches another: the worker's lanes, its retries and
its parking, with real storage and a scripted Matrix side.

The runner here answers each transaction ID from a script (an outcome, or an exception
to raise), so each test says exactly which effect fails how, and how often."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core import codec
from bot.core.events import CreateRoom, Input, Joined, Message, RoomRef, Say, Text
from bot.core.ids import EventID, RoomID, SessionID, UserID
from bot.core.model import Changes, Role
from bot.inbox import BatchEnd, Inbound
from bot.outcomes import Done, RoomMade, Transient
from bot.storage import Storage
from bot.storage.outbox import OutboxItem
from bot.worker.loop import STALLED_AFTER, Worker
from tests.storage.conftest import T0, make_session


class Scripted:
    """Answers each transaction ID from its script, in turn; then `Done()`. Records the
    order in which effects were carried out, and can hold one until released."""

    def __init__(self, **script: list[Any]) -> None:
        self.script: dict[str, deque[Any]] = defaultdict(
            deque, {k: deque(v) for k, v in script.items()}
        )
        self.done: list[str] = []
        self.tries: dict[str, int] = defaultdict(int)
        self.hold: dict[str, asyncio.Event] = {}

    async def run(self, effect: Any, txn_id: str, known: Any = None) -> Any:
        self.tries[txn_id] += 1
        if txn_id in self.hold:
            await self.hold[txn_id].wait()
        if self.script[txn_id]:
            answer = self.script[txn_id].popleft()
            if isinstance(answer, BaseException):
                raise answer
            return answer
        self.done.append(txn_id)
        return Done()


class NoTimers:
    def apply(self, changes: Changes) -> None:
        return None


def say(session: int, key: str) -> dict[str, Any]:
    return codec.encode(Say(RoomRef(SessionID(session), Role.CHATTER), Text(key), "nb"))


@pytest.fixture
async def two_sessions(tmp_path: Path) -> Any:
    storage = await Storage.open(tmp_path / "bot.db")
    await storage.state.apply(
        Changes(sessions={SessionID(1): make_session(1), SessionID(2): make_session(2)}), now=T0
    )
    try:
        yield storage
    finally:
        await storage.close()


class Running:
    """A worker over `storage` with `runner`, running until the test ends."""

    def __init__(self, storage: Storage, runner: Scripted, **kw: Any) -> None:
        kw.setdefault("core", None)
        self.worker = Worker(
            db=storage.db,
            runner=runner,
            timers=NoTimers(),
            clock=kw.pop("clock", lambda: T0),
            backoff=lambda tries: 0.001,
            **kw,
        )
        self.task = asyncio.create_task(self.worker.run())

    async def stop(self) -> None:
        self.worker.inbox.put_nowait(None)
        await asyncio.wait_for(self.task, 5)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def transient(n: int) -> list[Any]:
    return [Transient("503")] * n


async def test_a_send_retrying_for_long_holds_up_only_its_own_conversation(two_sessions):
    """Twenty transient failures (more than any fixed give-up) for conversation 1: it is
    neither dropped nor reordered, and conversation 2 goes on meanwhile."""
    storage = two_sessions
    runner = Scripted(**{"a1": transient(20)})
    gate = runner.hold["a1"] = asyncio.Event()
    await storage.outbox.add(
        [
            OutboxItem("a1", SessionID(1), say(1, "a")),
            OutboxItem("b1", SessionID(1), say(1, "b")),
            OutboxItem("a2", SessionID(2), say(2, "a")),
            OutboxItem("b2", SessionID(2), say(2, "b")),
        ],
        now=T0,
    )
    running = Running(storage, runner)
    try:
        await until(lambda: runner.done == ["a2", "b2"])
        assert runner.tries["b1"] == 0  # behind its own conversation's first effect
        gate.set()
        await until(lambda: "b1" in runner.done)
        assert runner.done == ["a2", "b2", "a1", "b1"]
        assert runner.tries["a1"] == 21
        await until(lambda: running.worker.in_flight == 0)
        assert await storage.outbox.pending() == []
    finally:
        await running.stop()


async def test_an_effect_that_keeps_failing_unexpectedly_is_parked(two_sessions):
    """A bug or a poisoned row: tried a few times, then set aside with its error class,
    and the outbox goes on, its own conversation's later effects included."""
    storage = two_sessions
    runner = Scripted(**{"bad": [ValueError("a body that must not be logged")] * 10})
    await storage.outbox.add(
        [
            OutboxItem("bad", SessionID(1), say(1, "a")),
            OutboxItem("next", SessionID(1), say(1, "b")),
            OutboxItem("other", SessionID(2), say(2, "a")),
        ],
        now=T0,
    )
    running = Running(storage, runner)
    try:
        await until(lambda: {"next", "other"} <= set(runner.done))
        await until(lambda: running.worker.in_flight == 0)
        assert runner.tries["bad"] == 3
        parked = await storage.outbox.parked()
        assert [error for _, error in parked] == ["ValueError"]
        assert await storage.outbox.pending() == []
        assert await running.worker.health() == ["1 effect(s) parked (ValueError)"]
    finally:
        await running.stop()
    # The next start gives it another try.
    assert await storage.outbox.unpark_all() == 1
    assert [r.txn_id for r in await storage.outbox.pending()] == ["bad"]


async def test_a_row_that_cannot_be_read_is_parked_at_once(two_sessions):
    storage = two_sessions
    runner = Scripted()
    await storage.outbox.add(
        [
            OutboxItem("junk", SessionID(1), {"type": "NoSuchEffect", "x": [1]}),
            OutboxItem("fine", SessionID(1), say(1, "a")),
        ],
        now=T0,
    )
    running = Running(storage, runner)
    try:
        await until(lambda: runner.done == ["fine"])
        await until(lambda: running.worker.in_flight == 0)
        assert runner.tries["junk"] == 0
        assert len(await storage.outbox.parked()) == 1
    finally:
        await running.stop()


async def test_effects_of_many_conversations_are_carried_out_side_by_side(tmp_path: Path):
    """Forty conversations each waiting on a slow first effect: the waits overlap (up to
    the in-flight limit) instead of adding up."""
    storage = await Storage.open(tmp_path / "bot.db")
    sessions = {SessionID(i): make_session(i) for i in range(1, 41)}
    await storage.state.apply(Changes(sessions=sessions), now=T0)
    runner = Scripted()
    gate = asyncio.Event()
    for i in sessions:
        runner.hold[f"s{i}"] = gate
    await storage.outbox.add([OutboxItem(f"s{i}", i, say(i, "a")) for i in sessions], now=T0)
    running = Running(storage, runner, max_in_flight=16)
    try:
        await until(lambda: sum(runner.tries.values()) == 16)
        assert running.worker.in_flight == 40
        gate.set()
        await until(lambda: len(runner.done) == 40)
    finally:
        await running.stop()
        await storage.close()


class Poisoning:
    """A core whose step changes a session in a way the database refuses (a lone
    surrogate, as the network can send), and which remembers that change in memory."""

    def __init__(self) -> None:
        self.sessions = {SessionID(1): make_session(1)}

    def handle(self, event: Input, now: datetime) -> list[Any]:
        self.sessions[SessionID(1)] = make_session(1, body="\ud800")
        return []

    def take_changes(self) -> Changes:
        return Changes(sessions=dict(self.sessions))

    def session_for_room(self, room: RoomID) -> Any:
        return None


async def test_a_step_whose_write_fails_leaves_memory_as_the_database(two_sessions):
    storage = two_sessions
    restored: list[Any] = []

    async def restore() -> Any:
        core = Poisoning()
        core.sessions = {s.id: s for s in (await storage.state.load()).sessions}
        restored.append(core)
        return core

    running = Running(storage, Scripted(), core=Poisoning(), restore=restore)
    try:
        msg = Message(RoomID("!r:hs"), UserID("@u:hs"), EventID("$e"), "hi")
        with pytest.raises(UnicodeEncodeError):
            await running.worker.step(msg, "$e")
        assert running.worker.core is restored[0]
        assert running.worker.core.sessions[SessionID(1)].held == make_session(1).held
        assert not await storage.events.seen("$e")
    finally:
        await running.stop()


async def test_health_says_when_effects_wait_and_nothing_moves(two_sessions):
    storage = two_sessions
    runner = Scripted(**{"stuck": transient(10_000)})
    await storage.outbox.add([OutboxItem("stuck", SessionID(1), say(1, "a"))], now=T0)
    later = T0 + timedelta(seconds=STALLED_AFTER + 60)
    running = Running(storage, runner, clock=lambda: later)
    try:
        await until(lambda: runner.tries["stuck"] > 2)
        assert await running.worker.health() == []  # it has just started
        running.worker.last_progress -= STALLED_AFTER + 1
        [reason] = await running.worker.health()
        assert reason.startswith("effects waiting for 180 s")
    finally:
        await running.stop()


def _ids(rows: Iterator[Any]) -> list[str]:
    return [r.txn_id for r in rows]


class Recording:
    """A core that records the inputs it was given, and knows the rooms it was told of."""

    def __init__(self) -> None:
        self.sessions: dict[SessionID, Any] = {}
        self.seen: list[Input] = []

    def handle(self, event: Input, now: datetime) -> list[Any]:
        self.seen.append(event)
        return []

    def take_changes(self) -> Changes:
        return Changes()

    def session_for_room(self, room: RoomID) -> Any:
        return None


async def test_what_happens_in_a_room_being_created_waits_for_its_creation(two_sessions):
    """Under load the sync can bring the invited chatter's join before the creation's
    answer is handled: the join must still reach the core after `RoomCreated`, and an
    input of another room is not held up by it for long."""
    storage = two_sessions
    new = RoomID("!new:hs")
    create = CreateRoom(RoomRef(SessionID(1), Role.CHATTER), UserID("@c:hs"), "X")
    runner = Scripted(create=[RoomMade(new)])
    gate = runner.hold["create"] = asyncio.Event()
    await storage.outbox.add([OutboxItem("create", SessionID(1), codec.encode(create))], now=T0)
    core = Recording()
    running = Running(storage, runner, core=core)
    try:
        await until(lambda: runner.tries["create"] == 1)
        running.worker.put(Inbound(Joined(new, UserID("@c:hs")), "$join"))
        running.worker.put(Inbound(Message(new, UserID("@c:hs"), EventID("$m"), "hei"), "$m"))
        running.worker.put(BatchEnd("s1"))
        await asyncio.sleep(0.2)
        assert core.seen == []  # both wait for the creation
        assert await storage.checkpoint.get() is None  # and so does their batch's token
        gate.set()
        await until(lambda: len(core.seen) == 3)
        assert [type(i).__name__ for i in core.seen] == ["RoomCreated", "Joined", "Message"]
        await until(lambda: running.worker.held.token is None)
        assert await storage.checkpoint.get() == "s1"
    finally:
        await running.stop()


async def test_a_held_input_goes_on_after_a_while_even_if_the_creation_does_not_end(
    two_sessions,
):
    storage = two_sessions
    create = CreateRoom(RoomRef(SessionID(1), Role.CHATTER), UserID("@c:hs"), "X")
    runner = Scripted(create=transient(10_000))
    await storage.outbox.add([OutboxItem("create", SessionID(1), codec.encode(create))], now=T0)
    core = Recording()
    running = Running(storage, runner, core=core, hold_s=0.5)
    try:
        await until(lambda: runner.tries["create"] >= 1)
        new = RoomID("!new:hs")
        running.worker.put(Inbound(Message(new, UserID("@c:hs"), EventID("$c"), "hei"), "$c"))
        await asyncio.sleep(0.2)
        assert core.seen == []  # the invited person's words wait for the creation...
        await until(lambda: len(core.seen) == 1, timeout=3)  # ...but not for ever
    finally:
        await running.stop()


async def test_a_creation_that_hangs_holds_up_nobody_it_does_not_invite(two_sessions):
    """A room for someone whose server does not answer the invite can take a minute to
    make: a new chatter's first words in a DM go to the core at once all the same."""
    storage = two_sessions
    create = CreateRoom(RoomRef(SessionID(1), Role.VOLUNTEER), UserID("@ruth:far.away"), "X")
    runner = Scripted(create=[RoomMade(RoomID("!slow:hs"))])
    runner.hold["create"] = asyncio.Event()  # never set: the creation hangs
    await storage.outbox.add([OutboxItem("create", SessionID(1), codec.encode(create))], now=T0)
    core = Recording()
    running = Running(storage, runner, core=core)  # the default hold: 30 s
    try:
        await until(lambda: runner.tries["create"] == 1)
        dm = RoomID("!dm:hs")
        running.worker.put(Inbound(Message(dm, UserID("@d:hs"), EventID("$d"), "hei"), "$d"))
        await until(lambda: len(core.seen) == 1, timeout=3)
        assert not running.worker.held
    finally:
        await running.stop()
