"""The one worker that applies inputs to the core, one at a time.

For each input: skip it if its event was handled before (a replayed sync batch); let the
core decide; store the state changes, the effects (as outbox rows with fresh transaction
IDs) and the event ID in ONE transaction; arm the timers; then carry out the outbox in
order, deleting each row once done. A crash anywhere leaves either nothing (the event is
seen again and handled then) or a stored step whose outbox is carried out on start, with
the same transaction IDs, so that the homeserver drops a second copy. The last input of
a sync batch also saves the batch's sync token in its transaction.

Follow-up inputs from effects (a created room, a finished purge) are applied at once, so
that the next effect that needs the new room finds it.

A purge takes seconds (and retries for minutes when the homeserver's admin API is away):
it runs in a lane of its own, one at a time, and its result comes back on the inbox to be
stored in order like any input. Its outbox row stays until then, so a crash resumes it.
A purge that fails for a reason that may pass is never given up: it goes back to the lane
after a delay that grows to an hour (`PurgeBackoff`), without holding up the purges of
other conversations meanwhile, and the supervisors are told once that it is still trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.core import codec
from bot.core.events import Input, Purge, PurgeStalled, Unreadable
from bot.core.ids import EventID, SessionID
from bot.core.machine import Helpline, IllegalTransition
from bot.core.model import Changes
from bot.matrix.connection import Checkpoint, Inbound
from bot.matrix.executor import Executor, Later, Permanent, Transient, session_of
from bot.scheduler import Timers
from bot.storage.db import Database
from bot.storage.repos import Attempts, EventLog, OutboxItem, OutboxRepo, OutboxRow, StateRepo
from bot.storage.repos import Checkpoint as CheckpointRepo

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
CHECKPOINT_IDLE = timedelta(seconds=30)
_ATTEMPTED = "CreateRoom"  # the only effect that records attempts (see Attempts)
_LANE = "Purge"  # carried out in the purge lane, not in the worker's own loop


@dataclass(frozen=True)
class PurgeBackoff:
    """When a purge that failed for a reason that may pass (the admin API down, 5xx) is
    tried again: after `first` seconds, then twice as long each time, up to `cap`; the
    supervisors are told after `alert_after` failures in a row (default: some 3.5 minutes
    of failing), once."""

    first: float = 30.0
    cap: float = 3600.0
    alert_after: int = 3

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, failures - 1))


@dataclass(frozen=True)
class _Carried:
    """On the inbox: the purge lane carried out `row`; the worker stores the result."""

    row: OutboxRow
    effect: Any
    follow: list[Input]
    later: Later


class Observer(Protocol):
    """Sees each stored step and each carried-out effect (the metrics); never changes them."""

    def stepped(
        self,
        inp: Input,
        event_id: str | None,
        effects: Sequence[Any],
        changes: Changes,
        now: datetime,
    ) -> None: ...

    def received(self, event_id: str | None) -> None: ...

    def carried_out(self, effect: Any) -> None: ...


class Worker:
    def __init__(
        self,
        *,
        core: Helpline,
        db: Database,
        executor: Executor,
        timers: Timers,
        clock: Callable[[], datetime],
        observer: Observer | None = None,
        vouch: Callable[[str, str], Awaitable[bool]] | None = None,
        purge_backoff: PurgeBackoff | None = None,
    ) -> None:
        self.core = core
        self.db = db
        self.state = StateRepo(db)
        self.outbox = OutboxRepo(db)
        self.events = EventLog(db)
        self.checkpoint = CheckpointRepo(db)
        self.attempts = Attempts(db)
        self.executor = executor
        self.timers = timers
        self.clock = clock
        self.observer = observer
        self.vouch = vouch  # (sender, device Curve25519 key) -> act on what they wrote?
        self.inbox: asyncio.Queue[Inbound | Checkpoint | _Carried | None] = asyncio.Queue()
        self._lane: asyncio.Queue[OutboxRow] = asyncio.Queue()
        # outbox rows handed to the lane and not yet stored -> their conversations
        self._in_lane: dict[int, SessionID | None] = {}
        self.purge_backoff = purge_backoff or PurgeBackoff()
        self._purge_failures: dict[int, int] = {}  # outbox row -> failures in a row
        self._purge_retries: dict[int, asyncio.TimerHandle] = {}
        self.handled = 0
        self.last_step_at: datetime | None = None
        self._unsaved = 0  # inputs enqueued since the last saved checkpoint
        self._queued = True  # the outbox may hold rows (it always may at start)
        self._saved_at: datetime | None = None

    def put(self, item: Inbound | Checkpoint) -> None:
        if self.observer is not None and isinstance(item, Inbound):
            self.observer.received(item.event_id)
        self.inbox.put_nowait(item)

    async def run(self) -> None:
        """Until a None arrives on the inbox."""
        lane = asyncio.create_task(self._run_lane(), name="purge lane")
        try:
            await self._run()
        finally:
            for handle in self._purge_retries.values():
                handle.cancel()  # the rows stay: the next start hands them over again
            lane.cancel()  # a purge cut short resumes on the next start (its row stays)
            with contextlib.suppress(asyncio.CancelledError):
                await lane

    async def _run(self) -> None:
        await self.drain()
        ahead: Inbound | Checkpoint | _Carried | None = None
        while True:
            item = ahead if ahead is not None else await self.inbox.get()
            ahead = None
            if item is None:
                return
            try:
                if isinstance(item, Checkpoint):
                    await self._checkpoint(item.token)
                    continue
                if isinstance(item, _Carried):
                    try:
                        await self._finish(item.row, item.effect, item.follow, item.later)
                    finally:
                        self._in_lane.pop(item.row.id, None)
                    self._queued = True  # what waited behind the purge may go now
                    await self.drain()
                    continue
                # The sync loop puts a batch's inputs and then its checkpoint on the inbox
                # in one go: the last input of a batch saves the token in its own step.
                token = None
                if not self.inbox.empty():
                    ahead = self.inbox.get_nowait()
                    if isinstance(ahead, Checkpoint):
                        token, ahead = ahead.token, None
                self._unsaved += 1
                try:
                    inp = await self._vouched(item)
                    await self.step(inp, item.event_id, checkpoint=token)
                except Exception:
                    if token is not None:
                        await self._checkpoint(token)  # the input failed; its batch is done
                    raise
                await self.drain()
            except Exception:
                # One bad input must not stop the helpline; the log has no content.
                log.exception("input failed", extra={"input": _kind(item)})

    async def _vouched(self, item: Inbound) -> Input:
        """The input, or, when its device is one the trust policy would not share keys
        with (a staff member's device they have not cross-signed), an `Unreadable` that
        tells the writer why nothing happened."""
        inp = item.input
        sender = getattr(inp, "sender", None)
        room = getattr(inp, "room", None)
        if item.sender_key is None or self.vouch is None or sender is None or room is None:
            return inp
        if await self.vouch(sender, item.sender_key):
            return inp
        log.warning("a message from a device its owner has not verified was not acted on")
        return Unreadable(room, sender, EventID(item.event_id or ""), item.origin, True)

    async def _run_lane(self) -> None:
        """Purges, one at a time, beside the worker; each result goes back on the inbox."""
        while True:
            row = await self._lane.get()
            self._purge_retries.pop(row.id, None)
            effect = codec.decode_effect(row.payload)
            later: Later = []
            try:
                follow = await self.executor.run(effect, row.txn_id, later)
            except Transient as exc:
                self._retry_purge(row, effect, str(exc))
                continue
            except Permanent as exc:
                log.error("effect refused", extra={"effect": _kind(effect), "why": str(exc)})
                follow, later = [], []
            except Exception:
                # Not stored: the row stays in the outbox and the next drain hands it over
                # again (and so does the next start).
                log.exception("purge lane: effect failed", extra={"effect": _kind(effect)})
                self._in_lane.pop(row.id, None)
                self._purge_failures.pop(row.id, None)
                continue
            self._purge_failures.pop(row.id, None)
            self.inbox.put_nowait(_Carried(row, effect, follow, later))

    def _retry_purge(self, row: OutboxRow, effect: Any, why: str) -> None:
        """Back to the lane after the backoff; the row stays "in the lane" meanwhile, so
        that neither a drain nor its own conversation's next effects overtake it, while
        other conversations' purges go ahead."""
        failures = self._purge_failures[row.id] = self._purge_failures.get(row.id, 0) + 1
        delay = self.purge_backoff.delay(failures)
        log.warning(
            "purge failed, will retry",
            extra={"effect": _kind(effect), "why": why, "failures": failures, "in_s": delay},
        )
        if failures == self.purge_backoff.alert_after and isinstance(effect, Purge):
            self.put(Inbound(PurgeStalled(effect.session_id)))
        loop = asyncio.get_running_loop()
        self._purge_retries[row.id] = loop.call_later(delay, self._lane.put_nowait, row)

    async def _checkpoint(self, token: str) -> None:
        """Save the sync token after its batch. A batch with nothing in it (a long-poll
        timeout, a batch of events the bot does not act on) is saved at most every
        CHECKPOINT_IDLE: a replay of a few empty batches after a crash costs nothing."""
        now = self.clock()
        if self._unsaved or self._saved_at is None or now - self._saved_at > CHECKPOINT_IDLE:
            await self.checkpoint.set(token, now)
            self._saved(now)

    def _saved(self, now: datetime) -> None:
        self._unsaved, self._saved_at = 0, now

    async def step(
        self,
        inp: Input,
        event_id: str | None = None,
        done_row: int | None = None,
        done_txn: str | None = None,
        later: Later | None = None,
        checkpoint: str | None = None,
    ) -> None:
        """Apply one input. `done_row`: the outbox row whose result `inp` is; it is marked
        done in the same transaction (with the writes `later` left by carrying it out), so
        a crash cannot lose the result (a created room the core never heard of would
        strand its chatter). `checkpoint`: the sync token to save with it, when `inp` is
        the last input of its batch."""
        now = self.clock()
        async with self.db.transaction() as tx:
            if checkpoint is not None:
                await self.checkpoint.set(checkpoint, now, tx=tx)
            if event_id is not None and await self.events.seen(event_id, tx=tx):
                if checkpoint is not None:
                    self._saved(now)
                return
            try:
                effects = self.core.handle(inp, now)
            except IllegalTransition:
                self.core.take_changes()
                raise
            changes = self.core.take_changes()
            items = [
                OutboxItem(
                    txn_id=f"hb{secrets.token_hex(12)}",
                    session_id=session_of(e),
                    payload=codec.encode(e),
                )
                for e in effects
            ]
            processed: dict[str, SessionID | None] = {}
            if event_id is not None:
                # Tied to its conversation, so that the purge removes the event ID too.
                room = getattr(inp, "room", None)
                hit = self.core.session_for_room(room) if room else None
                processed[event_id] = hit[0].id if hit else None
            await self.state.apply(changes, outbox=items, processed=processed, now=now, tx=tx)
            if done_row is not None:
                await self.outbox.done(done_row, tx=tx)
            if done_txn is not None:
                await self.attempts.clear(done_txn, tx=tx)
            for write in later or ():
                await write(tx)
        if checkpoint is not None:
            self._saved(now)
        if items:
            self._queued = True
        if changes.deleted_sessions:
            await self.db.scrub()  # deleted rows must not linger in the WAL or free pages
        self.timers.apply(changes)
        self.handled += 1
        self.last_step_at = now
        if self.observer is not None:
            self.observer.stepped(inp, event_id, effects, changes, now)

    async def drain(self) -> None:
        """Carry out the stored outbox, oldest first, until no step adds to it. Purges go
        to their lane; what comes after a purge in the same conversation waits for it, as
        it would have in line (and goes with the conversation's row when it ends)."""
        while self._queued:
            self._queued = False
            for row in await self.outbox.pending():
                if row.id in self._in_lane:
                    continue
                if row.session_id is not None and row.session_id in self._in_lane.values():
                    continue
                if row.payload.get("type") == _LANE:
                    self._in_lane[row.id] = row.session_id
                    self._lane.put_nowait(row)
                    continue
                effect = codec.decode_effect(row.payload)
                follow, later = await self._attempt(effect, row)
                await self._finish(row, effect, follow, later)

    async def _attempt(self, effect: Any, row: OutboxRow) -> tuple[list[Input], Later]:
        """Carry out one effect, retrying with backoff; its follow-up inputs and the
        writes it leaves for the transaction that marks it done."""
        later: Later = []
        attempts = 0
        while True:
            try:
                return await self.executor.run(effect, row.txn_id, later), later
            except Transient as exc:
                attempts += 1
                if attempts < MAX_ATTEMPTS:
                    delay = min(30.0, 0.5 * 2**attempts)
                    log.warning(
                        "effect failed, will retry",
                        extra={"effect": type(effect).__name__, "why": str(exc), "in_s": delay},
                    )
                    await asyncio.sleep(delay)
                    later.clear()
                    continue
                log.error("effect dropped after retries", extra={"effect": type(effect).__name__})
            except Permanent as exc:
                log.error(
                    "effect refused", extra={"effect": type(effect).__name__, "why": str(exc)}
                )
            return [], []

    async def _finish(self, row: OutboxRow, effect: Any, follow: list[Input], later: Later) -> None:
        """Mark the row done, with its writes, or apply its follow-ups with it."""
        if self.observer is not None:
            self.observer.carried_out(effect)
        attempted = row.payload.get("type") == _ATTEMPTED
        if not follow:
            async with self.db.transaction() as tx:
                await self.outbox.done(row.id, tx=tx)
                if attempted:
                    await self.attempts.clear(row.txn_id, tx=tx)
                for write in later:
                    await write(tx)
        for i, inp in enumerate(follow):
            first = i == 0
            await self.step(
                inp,
                done_row=row.id if first else None,
                done_txn=row.txn_id if first and attempted else None,
                later=later if first else None,
            )


def _kind(item: object) -> str:
    inner = getattr(item, "input", item)
    return type(inner).__name__
