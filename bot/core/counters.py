"""The helpline's running numbers: what the core counts across conversations.

Kept across restarts in storage's `meta` table, one row per field with its value as JSON
(`to_meta`/`from_meta`); the keys and values are those the bot has always written, so a
database from before this class loads unchanged. A step that changed any of them hands
a copy of them all to storage (`Changes.counters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bot.core.ids import UserID


@dataclass
class Counters:
    next_session_id: int = 1
    next_offer_id: int = 1
    last_offered: UserID | None = None  # whom the last offer went to (round robin)
    # Seconds each of the last conversations lasted (the newest last): the wait estimate.
    recent_durations: list[float] = field(default_factory=list)
    day: str = ""  # the helpline's local day (ISO date) that `day_counts` counts
    day_counts: dict[str, int] = field(default_factory=dict)  # chatter hash -> conversations

    def copy(self) -> Counters:
        return Counters(
            self.next_session_id,
            self.next_offer_id,
            self.last_offered,
            list(self.recent_durations),
            self.day,
            dict(self.day_counts),
        )

    def to_meta(self) -> dict[str, Any]:
        """The `meta` rows: key -> JSON value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Counters:
        """From the `meta` rows; absent keys (a new database) take their defaults, and keys
        of other parts of the bot (`attempt:...`) are not read."""
        last = meta.get("last_offered")
        return cls(
            next_session_id=int(meta.get("next_session_id", 1)),
            next_offer_id=int(meta.get("next_offer_id", 1)),
            last_offered=UserID(last) if last else None,
            recent_durations=[float(d) for d in meta.get("recent_durations", [])],
            day=str(meta.get("day", "")),
            day_counts={str(k): int(v) for k, v in dict(meta.get("day_counts", {})).items()},
        )
