"""Reading the config file again while the bot runs: an admin's `!reload`, or SIGHUP.

The file is checked first, exactly as `helpline-bot check-config` checks it. A bad file
changes nothing: each problem goes to the log with its line (problems never carry a
secret's value), and the admin who asked gets their number and a pointer to check-config
(from the core, on `ReloadRefused`). A good file becomes the config the bot runs with,
except for what only a restart can change (`bot.config.reload.RESTART_ONLY`), which keeps
its running value and is reported as needing a restart.

Who sees the new config: the core through `PolicyChanged` (an input like any other, so it
takes effect between two steps, never inside one), and the parts of the app that read the
config as they go (the texts, the invite gate, the trust policy's list of staff), through
the functions given to `watch`. Nothing else is re-read: the connection, the database and
the listeners stay as they were started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.config import Config, ConfigErrors, build_policy
from bot.config.reload import compare
from bot.core.events import Reload
from bot.core.ids import RoomID
from bot.core.model import Policy
from bot.outcomes import EffectRunner, Known, Outcome, Reloaded, ReloadFailed

log = logging.getLogger(__name__)


class Reloader:
    """The running config and policy, and the one way to replace them (`reload`).

    `read`: reads and checks the config file (`load_config` on its path), raising
    `ConfigErrors`. `staff_room`: the volunteers' room as resolved at start (a restart-only
    setting, so it stays)."""

    def __init__(
        self, read: Callable[[], Config], running: Config, staff_room: RoomID | None
    ) -> None:
        self._read = read
        self._staff_room = staff_room
        self.config = running
        self.policy: Policy = build_policy(running, staff_room)
        self._watchers: list[Callable[[Config, Policy], None]] = []
        self._lock = asyncio.Lock()

    def watch(self, apply: Callable[[Config, Policy], None]) -> None:
        """`apply(config, policy)` after each good reload."""
        self._watchers.append(apply)

    async def reload(self) -> Reloaded | ReloadFailed:
        # One at a time: a SIGHUP during an admin's !reload must not interleave with it.
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(self._read)
            except ConfigErrors as e:
                for problem in e.problems:
                    log.error("config problem: %s", problem)
                log.error(
                    "the config file was not reloaded: the running config stays in force",
                    extra={"problems": len(e.problems)},
                )
                return ReloadFailed(len(e.problems))
            found = compare(self.config, loaded)
            self.config = found.config
            self.policy = build_policy(found.config, self._staff_room)
            for apply in self._watchers:
                apply(self.config, self.policy)
            if found.restart:
                log.warning(
                    "config reloaded; some changes need a restart",
                    extra={"restart": ", ".join(found.restart)},
                )
            else:
                log.info("config reloaded")
            return Reloaded(self.policy, found.restart)


class WithReload:
    """The effect runner, with `Reload` carried out here (it is not a Matrix request) and
    every other effect by `inner`."""

    def __init__(self, inner: EffectRunner, reloader: Reloader) -> None:
        self.inner = inner
        self.reloader = reloader

    async def run(self, effect: Any, txn_id: str, known: Known) -> Outcome:
        if isinstance(effect, Reload):
            return await self.reloader.reload()
        return await self.inner.run(effect, txn_id, known)
