"""The web chat's throw-away accounts that exist on the homeserver and are not erased yet.

A row is written before the account is made (a crash in between leaves a row for an
account that may not exist: erasing it is harmless) and deleted once it is erased. It
holds the Matrix ID of a random account and when it was made, nothing else.
"""

from __future__ import annotations

from datetime import datetime

from bot.core.ids import UserID
from bot.storage.db import Database, epoch, from_epoch


class WebAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, user: UserID, now: datetime) -> None:
        async with self._db.writing(None) as tx:
            await tx.execute(
                "INSERT INTO web_accounts (user_id, created_at) VALUES (?, ?)", (user, epoch(now))
            )

    async def remove(self, user: UserID) -> None:
        async with self._db.writing(None) as tx:
            await tx.execute("DELETE FROM web_accounts WHERE user_id = ?", (user,))

    async def all(self) -> list[tuple[UserID, datetime]]:
        rows = await self._db.query("SELECT user_id, created_at FROM web_accounts")
        return [(UserID(r[0]), from_epoch(r[1])) for r in rows]

    async def count(self) -> int:
        rows = await self._db.query("SELECT count(*) FROM web_accounts")
        return int(rows[0][0])
