"""Timers: APScheduler arms what storage holds.

A timer is a row first (written by the worker in the same transaction as the state change
that set it) and a scheduled job second. On start every stored timer is armed again; one
whose time passed while the bot was down fires at once (matrix-reminder-bot silently drops
those; a helpline must not). A job only enqueues `TimerFired(key)`: the worker decides,
and a timer that no longer exists in the core is ignored there.
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


class Timers:
    def __init__(self, fire: Callable[[TimerFired], None]) -> None:
        self._fire = fire
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    def start(self, stored: Iterable[Timer]) -> None:
        self._scheduler.start()
        count = 0
        for timer in stored:
            self.arm(timer)
            count += 1
        log.info("timers re-armed from storage", extra={"count": count})

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def arm(self, timer: Timer) -> None:
        # An overdue timer runs now; misfire_grace_time=None means "never skip a late run".
        run_at = max(timer.due, datetime.now(UTC))
        self._scheduler.add_job(
            self._fire_job,
            "date",
            run_date=run_at,
            args=[timer.key],
            id=timer.key,
            replace_existing=True,
            misfire_grace_time=None,
        )

    def disarm(self, key: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(key)

    def apply(self, changes: Changes) -> None:
        for key in changes.timers_cleared:
            self.disarm(key)
        for timer in changes.timers_set.values():
            self.arm(timer)

    def armed(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    async def _fire_job(self, key: str) -> None:
        self._fire(TimerFired(key))
        await asyncio.sleep(0)
