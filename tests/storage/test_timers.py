"""The timers on start: overdue ones fire at once, but not before the first sync.

Real APScheduler on the test's event loop; the sync's catch-up is an `asyncio.Event`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.core.events import TimerFired
from bot.core.model import SessionID, Timer, TimerKind
from bot.scheduler import Timers


def _timer(kind: TimerKind, session: int, due_in: float) -> Timer:
    return Timer(kind, SessionID(session), datetime.now(UTC) + timedelta(seconds=due_in))


class Fired:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, event: TimerFired) -> None:
        self.keys.append(event.key)
        self.changed.set()

    async def until(self, count: int, timeout: float = 5.0) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(self.keys) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.keys


async def test_without_a_gate_an_overdue_timer_fires_at_once():
    fired = Fired()
    timers = Timers(fire=fired)
    overdue = _timer(TimerKind.MAX_DURATION, 1, -30)
    timers.start([overdue])
    try:
        assert await fired.until(1) == [overdue.key]
    finally:
        timers.shutdown()


async def test_overdue_timers_wait_for_the_first_sync_then_fire_in_order():
    fired = Fired()
    caught_up = asyncio.Event()
    timers = Timers(fire=fired)
    older = _timer(TimerKind.MAX_DURATION, 1, -60)
    newer = _timer(TimerKind.IDLE_END, 2, -10)
    soon = _timer(TimerKind.WARN, 3, 0.2)  # comes due while the sync is still out
    timers.start([newer, soon, older], after=caught_up)
    try:
        await asyncio.sleep(0.6)  # all three are due by now; none may have fired
        assert fired.keys == []
        caught_up.set()
        assert await fired.until(3) == [older.key, newer.key, soon.key]
    finally:
        timers.shutdown()


async def test_a_timer_set_again_while_catching_up_keeps_its_new_time():
    """What the first sync replays can move a deadline (a chatter who wrote while the
    bot was down is not idle): the overdue time it had must not fire."""
    fired = Fired()
    caught_up = asyncio.Event()
    timers = Timers(fire=fired)
    idle = _timer(TimerKind.IDLE_END, 1, -5)
    other = _timer(TimerKind.MAX_DURATION, 2, -5)
    timers.start([idle, other], after=caught_up)
    try:
        await asyncio.sleep(0.1)
        moved = Timer(idle.kind, idle.session_id, datetime.now(UTC) + timedelta(seconds=60))
        timers.arm(moved)  # the worker applies the replayed message's changes
        timers.disarm(other.key)  # ...or clears a deadline altogether
        caught_up.set()
        await asyncio.sleep(0.3)
        assert fired.keys == []
        assert timers.armed() == [idle.key]
    finally:
        timers.shutdown()


async def test_without_a_sync_the_timers_fire_after_the_longest_wait():
    fired = Fired()
    timers = Timers(fire=fired)
    overdue = _timer(TimerKind.MAX_DURATION, 1, -30)
    timers.start([overdue], after=asyncio.Event(), wait_at_most=0.3)
    try:
        assert await fired.until(1) == [overdue.key]
    finally:
        timers.shutdown()
