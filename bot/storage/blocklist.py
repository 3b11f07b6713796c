"""The chatters staff blocked, by their keyed hash only (never a Matrix ID)."""

from __future__ import annotations

from datetime import date

from bot.storage.db import Database, Tx


class Blocklist:
    """Keyed hashes (HMAC) of blocked Matrix IDs; never the IDs themselves."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def contains(self, hash_: str) -> bool:
        return bool(await self._db.query("SELECT 1 FROM blocklist WHERE hash = ?", (hash_,)))

    async def add(self, hash_: str, day: date, *, tx: Tx | None = None) -> None:
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT OR IGNORE INTO blocklist (hash, added_day) VALUES (?, ?)",
                (hash_, day.isoformat()),
            )
