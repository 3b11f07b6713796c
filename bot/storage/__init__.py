"""Storage: the bot's SQLite database (aiosqlite), its migrations and repositories.

Only this package imports aiosqlite. `Storage.open(path)` gives the database with every
repo over it; see `db` for the connection rules and `repos` for what is stored and how a
purged conversation leaves no trace.
"""

from __future__ import annotations

from bot.storage.db import Database, ScrubIncomplete, Tx, open_database
from bot.storage.migrations import SchemaTooNew
from bot.storage.repos import (
    Blocklist,
    Checkpoint,
    EventLog,
    LoadedState,
    MediaSeen,
    OutboxItem,
    OutboxRepo,
    OutboxRow,
    PurgeJob,
    PurgeJobs,
    RelayMap,
    StateRepo,
    Storage,
)
from bot.storage.stats import Spread, Stats, StatsSummary

__all__ = [
    "Blocklist",
    "Checkpoint",
    "Database",
    "EventLog",
    "LoadedState",
    "MediaSeen",
    "OutboxItem",
    "OutboxRepo",
    "OutboxRow",
    "PurgeJob",
    "PurgeJobs",
    "RelayMap",
    "SchemaTooNew",
    "ScrubIncomplete",
    "Spread",
    "StateRepo",
    "Stats",
    "StatsSummary",
    "Storage",
    "Tx",
    "open_database",
]
