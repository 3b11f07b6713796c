"""The chatters supervisors blocked, by their keyed hash only (never a Matrix ID).

The core decides and `StateRepo.apply` writes (`Changes.blocks`, `Changes.unblocked`); this
repository reads, for tools and tests.
"""

from __future__ import annotations

from datetime import date, datetime

from bot.core.model import Block
from bot.storage.db import Database, Tx
from bot.storage.state import block_of, block_row


class Blocklist:
    """Keyed hashes (HMAC) of blocked Matrix IDs, with each block's end; never the IDs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def contains(self, hash_: str, now: datetime | None = None) -> bool:
        """Whether `hash_` is on the list (and, given `now`, its block lasts then)."""
        block = await self.get(hash_)
        return block is not None and (now is None or block.lasts(now))

    async def get(self, hash_: str) -> Block | None:
        rows = await self._db.query(
            "SELECT hash, added_day, until, number, told_day FROM blocklist WHERE hash = ?",
            (hash_,),
        )
        return block_of(rows[0]) if rows else None

    async def add(
        self, hash_: str, day: date, *, until: datetime | None = None, tx: Tx | None = None
    ) -> None:
        """A block from outside the core (an operator's tool): kept as it was if the hash
        is on the list already."""
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT OR IGNORE INTO blocklist (hash, added_day, until, number, told_day) "
                "VALUES (?, ?, ?, ?, ?)",
                block_row(Block(hash_, day, until, None)),
            )
