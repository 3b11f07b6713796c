"""`Storage`: the database and every repository over it, what `bot.app` wires in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.storage.blocklist import Blocklist
from bot.storage.db import Database, open_database
from bot.storage.events import Checkpoint, EventLog, RelayMap
from bot.storage.outbox import OutboxRepo
from bot.storage.purges import MediaSeen, PurgeJobs
from bot.storage.state import StateRepo
from bot.storage.stats import Stats


@dataclass(frozen=True)
class Storage:
    """The database and every repo over it: what `bot.app` wires in."""

    db: Database
    state: StateRepo
    outbox: OutboxRepo
    events: EventLog
    checkpoint: Checkpoint
    relay: RelayMap
    media: MediaSeen
    purges: PurgeJobs
    stats: Stats
    blocklist: Blocklist

    @classmethod
    def over(cls, db: Database) -> Storage:
        return cls(
            db=db,
            state=StateRepo(db),
            outbox=OutboxRepo(db),
            events=EventLog(db),
            checkpoint=Checkpoint(db),
            relay=RelayMap(db),
            media=MediaSeen(db),
            purges=PurgeJobs(db),
            stats=Stats(db),
            blocklist=Blocklist(db),
        )

    @classmethod
    async def open(cls, path: Path) -> Storage:
        return cls.over(await open_database(path))

    async def close(self) -> None:
        await self.db.close()
