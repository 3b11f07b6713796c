"""Identity pins: each staff member's cross-signing master key, trusted on first use.

A pin's subject is a staff member's (or the bot's own) Matrix ID: volunteers and
supervisors come from the config, so keeping their IDs adds nothing. Chatters are never
pinned (`bot.matrix.trust`): their changed key is accepted anyway, so a pin would protect
nothing and keep a trace of them. Databases from before that rule lose their chatter
pins in migration 3. (`kept` still makes an HMAC of a non-staff subject, which only
`helpline-bot reset-identity` uses, to find nothing.)

A staff member whose master key changes keeps the old pin with the new key noted in
`changed_to`; an admin accepts the new identity by resetting the pin
(`helpline-bot reset-identity`), after which the next key seen is pinned.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from bot.storage.db import Database, Tx, epoch


@dataclass(frozen=True, slots=True)
class Pin:
    subject: str
    staff: bool
    master_key: str
    changed_to: str | None


def kept(value: str, staff: bool, key: bytes) -> str:
    """What a pin keeps of a user ID or a master key: as is for staff, else an HMAC."""
    return value if staff else hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


class Pins:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, subject: str) -> Pin | None:
        rows = await self._db.query(
            "SELECT subject, staff, master_key, changed_to FROM identity_pins WHERE subject = ?",
            (subject,),
        )
        return Pin(rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def pin(
        self, subject: str, staff: bool, master_key: str, now: datetime, *, tx: Tx | None = None
    ) -> None:
        """Pin `master_key` (replacing any earlier pin and clearing a pending change)."""
        async with self._db.writing(tx) as t:
            await t.execute(
                "INSERT INTO identity_pins (subject, staff, master_key, pinned_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET"
                " staff = excluded.staff, master_key = excluded.master_key,"
                " pinned_at = excluded.pinned_at, changed_to = NULL, changed_at = NULL",
                (subject, int(staff), master_key, epoch(now)),
            )

    async def note_change(self, subject: str, new_key: str, now: datetime) -> bool:
        """Record that `subject` now shows `new_key`; True if this change is news (so the
        supervisors are told once, not on every send)."""
        async with self._db.transaction() as t:
            changed = await t.execute_changes(
                "UPDATE identity_pins SET changed_to = ?, changed_at = ?"
                " WHERE subject = ? AND (changed_to IS NULL OR changed_to != ?)",
                (new_key, epoch(now), subject, new_key),
            )
        return changed > 0

    async def reset(self, subject: str) -> bool:
        """Forget the pin; the next master key seen is trusted. True if there was one."""
        async with self._db.transaction() as t:
            deleted = await t.execute_changes(
                "DELETE FROM identity_pins WHERE subject = ?", (subject,)
            )
        return deleted > 0

    async def staff_pins(self) -> list[Pin]:
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT subject, staff, master_key, changed_to FROM identity_pins"
                " WHERE staff = 1 ORDER BY subject"
            )
        return [Pin(r[0], True, r[2], r[3]) for r in rows]
