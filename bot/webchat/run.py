"""The web chat wired into a running bot: its listener, and the sweep that erases
accounts left without a conversation (every `SWEEP_EVERY` seconds, or sooner when
`idle_erase` is shorter)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from bot.config import Config
from bot.core.hours import is_open
from bot.core.ids import UserID
from bot.matrix.admin import AdminAPI
from bot.messages import Texts
from bot.storage.webaccounts import WebAccounts
from bot.webchat.accounts import Accounts
from bot.webchat.guard import Challenges, RateLimit
from bot.webchat.server import WebChat

SWEEP_EVERY = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


class RunningWebChat:
    def __init__(self, server: WebChat, admin: AdminAPI, sweep: asyncio.Task[None]) -> None:
        self.server, self.admin, self.sweep = server, admin, sweep

    async def stop(self) -> None:
        self.sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sweep
        await self.server.stop()
        await self.admin.close()


async def start_webchat(config: Config, db: Any, worker: Any) -> RunningWebChat:
    w = config.webchat
    assert config.homeserver.admin_token is not None  # the config requires it
    admin = AdminAPI(config.homeserver.url, config.homeserver.admin_token)

    def has_conversation(user: UserID) -> bool:
        return any(s.chatter == user for s in worker.core.sessions.values())

    accounts = Accounts(
        admin,
        WebAccounts(db),
        prefix=w.account_prefix,
        server_name=config.server_name,
        idle_erase=w.idle_erase,
        has_conversation=has_conversation,
        clock=_now,
    )
    hours = config.opening_hours.hours()
    server = WebChat(
        accounts=accounts,
        put=worker.put,
        homeserver=w.homeserver_url or config.homeserver.url,
        challenges=Challenges(w.pow_difficulty),
        rate=RateLimit(w.rate_limit.accounts, w.rate_limit.per.total_seconds()),
        max_open=w.max_open_accounts,
        is_open=lambda: is_open(hours, _now()),
        texts=Texts(
            config.messages,
            default_language=config.language.default,
            bot_name=config.bot.display_name,
        ),
        overrides=w.texts,
        languages=config.language.available,
        quick_exit_url=w.quick_exit_url,
        frame_ancestors=w.frame_ancestors,
    )
    await server.start(*w.listen)
    every = min(SWEEP_EVERY, max(1.0, w.idle_erase.total_seconds() / 4))
    sweep = asyncio.create_task(accounts.sweep_forever(every), name="web account sweep")
    return RunningWebChat(server, admin, sweep)
