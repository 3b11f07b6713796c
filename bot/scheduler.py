"""Timers: APScheduler arms what storage holds.

A timer is a row first (written by the worker in the same transaction as the state change
that set it) and a scheduled job second. On start every stored timer is armed again; one
whose time passed while the bot was down fires at once (matrix-reminder-bot silently drops
those; a helpline must not), but only after the first sync has put on the inbox what was
written while the bot was down: a chatter's last words, sent before the conversation's
end, are relayed before the end closes it. A job only enqueues `TimerFired(key)`: the
worker decides, and a timer that no longer exists in the core is ignored there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.core.events import TimerFired
from bot.core.model import Changes, Timer

log = logging.getLogger(__name__)

CATCH_UP_WAIT = 30.0
"""How long timers wait at most for the first sync on start: a homeserver that does not
answer must not keep conversations from ending for good."""


class Timers:
    def __init__(self, fire: Callable[[TimerFired], None]) -> None:
        self._fire = fire
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._waiting: dict[str, datetime] | None = None  # come due before the catch-up
        self._gate: asyncio.Task[None] | None = None

    def start(
        self,
        stored: Iterable[Timer],
        *,
        after: asyncio.Event | None = None,
        wait_at_most: float = CATCH_UP_WAIT,
    ) -> None:
        """Arm the stored timers. With `after`, a timer that comes due before that event
        is set (the first sync is on the inbox) waits for it, at most `wait_at_most`
        seconds, and then fires in the order it came due."""
        if after is not None and not after.is_set():
            self._waiting = {}
            self._gate = asyncio.get_running_loop().create_task(
                self._open_after(after, wait_at_most), name="timers wait for the first sync"
            )
        self._scheduler.start()
        count = 0
        for timer in sorted(stored, key=lambda t: t.due):  # overdue ones fire in order
            self.arm(timer)
            count += 1
        log.info("timers re-armed from storage", extra={"count": count})

    async def _open_after(self, event: asyncio.Event, wait_at_most: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), wait_at_most)
        except TimeoutError:
            log.warning("no sync yet: timers fire anyway", extra={"after_s": wait_at_most})
        waiting, self._waiting = self._waiting or {}, None
        if waiting:
            log.info("timers due while catching up fire now", extra={"count": len(waiting)})
        for key in sorted(waiting, key=waiting.__getitem__):
            self._fire(TimerFired(key))

    def shutdown(self) -> None:
        if self._gate is not None:
            self._gate.cancel()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def arm(self, timer: Timer) -> None:
        # An overdue timer runs now; misfire_grace_time=None means "never skip a late run".
        self._unwait(timer.key)  # set again while catching up: the new time counts
        run_at = max(timer.due, datetime.now(UTC))
        self._scheduler.add_job(
            self._fire_job,
            "date",
            run_date=run_at,
            args=[timer.key, timer.due],
            id=timer.key,
            replace_existing=True,
            misfire_grace_time=None,
        )

    def disarm(self, key: str) -> None:
        self._unwait(key)
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(key)

    def apply(self, changes: Changes) -> None:
        for key in changes.timers_cleared:
            self.disarm(key)
        for timer in changes.timers_set.values():
            self.arm(timer)

    def _unwait(self, key: str) -> None:
        if self._waiting is not None:
            self._waiting.pop(key, None)

    def armed(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    async def _fire_job(self, key: str, due: datetime) -> None:
        if self._waiting is not None:
            self._waiting[key] = due
            return
        self._fire(TimerFired(key))
        await asyncio.sleep(0)
