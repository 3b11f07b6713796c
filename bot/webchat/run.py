"""The web chat wired into a running bot: its listener, and the sweep that erases
accounts left without a conversation (every `SWEEP_EVERY` seconds, or sooner when
`idle_erase` is shorter)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from bot.config import Config
from bot.core.hours import opening
from bot.core.ids import UserID
from bot.core.pseudonyms import chatter_hash
from bot.exits import EXIT_CONFIG, StartupError
from bot.matrix.admin import AdminAPI
from bot.messages import Texts
from bot.storage.webaccounts import WebAccounts
from bot.webchat.accounts import Accounts
from bot.webchat.guard import Browsers, Challenges, RateLimit
from bot.webchat.server import WebChat

SWEEP_EVERY = 60.0


# How long a page's earlier accounts are remembered after its last one (`Browsers`): a
# block's default life.
BROWSER_MEMORY_S = 24 * 3600.0


def _now() -> datetime:
    return datetime.now(UTC)


class CoreDesk:
    """The account endpoint's questions, answered from the worker's core (read only)."""

    def __init__(self, worker: Any, block_key: bytes) -> None:
        self.worker = worker
        self.block_key = block_key

    def refusal(self) -> str | None:
        why = self.worker.core.intake_refusal(_now())
        return None if why is None else {"closed_hours": "closed"}.get(why.value, why.value)

    def opening(self) -> dict[str, int] | None:
        return opening(self.worker.core.policy.hours, _now())

    def pseudonym(self, user: UserID) -> str:
        return chatter_hash(self.block_key, user)

    def is_blocked(self, pseudonym: str) -> bool:
        return pseudonym in self.worker.core.blocked

    def has_conversation(self, user: UserID) -> bool:
        return bool(self.worker.core.has_conversation(user))


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
    if await admin.delegates_accounts():
        await admin.close()
        raise StartupError(
            "webchat.enabled: the homeserver hands its accounts to Matrix Authentication "
            "Service (it publishes auth metadata), and Synapse's admin API cannot make "
            "accounts there; web chat needs it. Set webchat.enabled: false",
            EXIT_CONFIG,
        )

    desk = CoreDesk(worker, worker.core.policy.block_key)
    accounts = Accounts(
        admin,
        WebAccounts(db),
        prefix=w.account_prefix,
        server_name=config.server_name,
        idle_erase=w.idle_erase,
        has_conversation=desk.has_conversation,
        clock=_now,
    )
    server = WebChat(
        accounts=accounts,
        put=worker.put,
        homeserver=w.homeserver_url or config.homeserver.url,
        challenges=Challenges(w.pow_difficulty),
        rate=RateLimit(w.rate_limit.accounts, w.rate_limit.per.total_seconds()),
        max_open=w.max_open_accounts,
        desk=desk,
        browsers=Browsers(BROWSER_MEMORY_S),
        texts=Texts(
            config.messages,
            default_language=config.language.default,
            bot_name=config.bot.display_name,
        ),
        overrides=w.texts,
        languages=config.language.available,
        quick_exit_url=w.quick_exit_url,
        frame_ancestors=w.frame_ancestors,
        trusted_proxies=w.trusted_proxies,
    )
    try:
        await server.start(*w.listen)
    except OSError as exc:
        await admin.close()
        host, port = w.listen
        raise StartupError(
            f"webchat.listen: cannot listen on {host}:{port} ({exc.strerror or exc})",
            EXIT_CONFIG,
        ) from None
    every = min(SWEEP_EVERY, max(1.0, w.idle_erase.total_seconds() / 4))
    sweep = asyncio.create_task(accounts.sweep_forever(every), name="web account sweep")
    return RunningWebChat(server, admin, sweep)
