"""Storage: the bot's SQLite database (aiosqlite), its migrations and repositories.

Only this package imports aiosqlite. `Storage.open(path)` (`store`) gives the database
with every repository over it; see `db` for the connection rules. One module per family of
repositories: `state` (the core's state, one step per transaction), `outbox`, `events`
(handled event IDs, the sync token, the relay map), `purges` (purge jobs, media seen),
`stats`, `blocklist`, `pins`.

Rules of the repositories:
- Every write method takes an optional `tx`; pass the `Tx` of a `db.transaction()` to
  make it part of a larger atomic write (e.g. `StateRepo.apply` and `Checkpoint.set` for
  the same sync batch), or leave it out to have the method commit on its own.
- `StateRepo.apply` writes one core step in one transaction, in an order that satisfies
  the foreign keys: session upserts first, the rows that point at sessions after them,
  deleted sessions last (their cascade then also takes whatever this step added for them).
- Upserts use `ON CONFLICT DO UPDATE`, never `INSERT OR REPLACE`: REPLACE deletes the old
  row first, and that delete would cascade away the session's timers and outbox.
- Nothing here logs values: IDs and content never reach the logs.
- Privacy: a conversation's rows all hang off its `sessions` row by `ON DELETE CASCADE`
  (timers, outbox, relay map, media, processed event IDs bound to it).
  `forget_session` (or a step's `deleted_sessions`) deletes that row and scrubs; a
  step's `deleted_sessions` also deletes the sessions' purge jobs (which list the rooms
  and media), as `PurgeJobs.finish` does. After that, nothing of it is in the files.
  Event IDs marked without a session (direct messages, lobbies) stay only as long as a
  replay could bring them back (`EventLog.prune_settled`, run by the app every minute),
  so the database cannot tell whether a Matrix ID or an event ever reached the bot.
"""

from __future__ import annotations

from bot.storage.blocklist import Blocklist
from bot.storage.db import Database, ScrubIncomplete, Tx, open_database
from bot.storage.events import Checkpoint, EventLog, RelayMap
from bot.storage.migrations import SchemaTooNew
from bot.storage.outbox import OutboxItem, OutboxRepo, OutboxRow
from bot.storage.purges import MediaSeen, PurgeJob, PurgeJobs
from bot.storage.state import LoadedState, StateRepo
from bot.storage.stats import Stats
from bot.storage.store import Storage

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
    "StateRepo",
    "Stats",
    "Storage",
    "Tx",
    "open_database",
]
