"""Throw-away accounts: made for a page, erased when their conversation is purged (the
purge does it) or when they have none (`sweep`, here).

Rules: an ID is random and never handed out twice (a `PUT` that finds the account existing
refuses it); the row in `web_accounts` is written before the account is made, so a
restart erases whatever a crash left; a password is returned once and never kept. Nothing
logged carries an ID.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from bot.core.ids import UserID
from bot.matrix.admin import AdminAPI, AdminUnusable
from bot.outcomes import Transient

log = logging.getLogger(__name__)

DISPLAY_NAME = "Chatter"


class AccountRows(Protocol):
    """`bot.storage.webaccounts.WebAccounts`."""

    async def add(self, user: UserID, now: datetime) -> None: ...

    async def remove(self, user: UserID) -> None: ...

    async def all(self) -> list[tuple[UserID, datetime]]: ...

    async def count(self) -> int: ...


class NotMade(Exception):
    """The homeserver did not make the account (its admin API refused or is down)."""


class Accounts:
    def __init__(
        self,
        admin: AdminAPI,
        rows: AccountRows,
        *,
        prefix: str,
        server_name: str,
        idle_erase: timedelta,
        has_conversation: Callable[[UserID], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self.admin = admin
        self.rows = rows
        self.prefix = prefix
        self.server_name = server_name
        self.idle_erase = idle_erase
        self.has_conversation = has_conversation
        self.clock = clock
        self._started: set[UserID] = set()  # had a conversation (in memory; see sweep)

    async def open_count(self) -> int:
        return await self.rows.count()

    async def make(self) -> tuple[UserID, str]:
        user = UserID(f"@{self.prefix}{secrets.token_hex(10)}:{self.server_name}")
        password = secrets.token_urlsafe(24)
        await self.rows.add(user, self.clock())
        try:
            made = await self.admin.create_user(user, password, DISPLAY_NAME)
        except (Transient, AdminUnusable) as exc:
            log.error("web account not made", extra={"why": type(exc).__name__})
            raise NotMade from None
        if not made:
            # 80 random bits met an existing account: never hand it out, never erase it.
            await self.rows.remove(user)
            raise NotMade
        log.info("web account made")
        return user, password

    async def sweep(self) -> int:
        """Erase the accounts with no conversation: made more than `idle_erase` ago and
        never given one (the page went away, the core refused it), or whose conversation
        is over (the purge erased it already; this forgets the row). Returns how many."""
        now = self.clock()
        erased = 0
        for user, made_at in await self.rows.all():
            if self.has_conversation(user):
                self._started.add(user)
                continue
            if user not in self._started and now - made_at < self.idle_erase:
                continue
            try:
                await self.admin.deactivate(user)
            except (Transient, AdminUnusable) as exc:
                log.warning("web account not erased yet", extra={"why": type(exc).__name__})
                continue
            await self.rows.remove(user)
            self._started.discard(user)
            erased += 1
        if erased:
            log.info("web accounts erased", extra={"count": erased})
        return erased

    async def sweep_forever(self, every: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("web account sweep failed", extra={"why": type(exc).__name__})
            await asyncio.sleep(every)
