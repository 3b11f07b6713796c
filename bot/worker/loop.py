"""The worker's loop: one input at a time from the inbox, each stored with its effects in
one transaction; the outcomes the lanes hand back, recorded; the sync token saved after
its batch. See the package's docstring for the whole."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.core import codec
from bot.core.events import Effect, Input, RecordMedia, Unreadable, session_of
from bot.core.ids import EventID, RoomID, SessionID
from bot.core.machine import IllegalTransition
from bot.core.model import Changes, Session
from bot.core.rooms import RoomIndex
from bot.inbox import BatchEnd, EffectDone, Inbound, Item, Parked
from bot.outcomes import EffectRunner
from bot.storage.db import Database, Tx
from bot.storage.events import Checkpoint, EventLog, RelayMap
from bot.storage.outbox import Attempts, OutboxItem, OutboxRepo
from bot.storage.purges import MediaSeen
from bot.storage.state import StateRepo
from bot.worker.held import HOLD_S, HeldInputs
from bot.worker.lanes import Lanes
from bot.worker.record import follow_up, write_done
from bot.worker.retry import PurgeBackoff, backoff

log = logging.getLogger("bot.worker")  # one logger for the whole worker, as before its split

CHECKPOINT_IDLE = timedelta(seconds=30)
MAX_IN_FLIGHT = 16  # effects carried out at once, over all lanes
STALLED_AFTER = 120.0  # seconds without progress while effects wait: /healthz says 503


class Core(Protocol):
    """What the worker needs of `bot.core.machine.Helpline`."""

    sessions: dict[SessionID, Session]

    def handle(self, event: Input, now: datetime) -> list[Effect]: ...

    def take_changes(self) -> Changes: ...

    def session_for_room(self, room: RoomID) -> tuple[Any, Any] | None: ...

    def status(self, now: datetime) -> dict[str, int]: ...


class Scheduler(Protocol):
    """Arms and disarms the timers a step set or cleared (`bot.scheduler.Timers`)."""

    def apply(self, changes: Changes) -> None: ...


class Observer(Protocol):
    """Sees each stored step and each carried-out effect (the metrics); never changes them."""

    def stepped(
        self,
        inp: Input,
        event_id: str | None,
        effects: Sequence[Effect],
        changes: Changes,
        now: datetime,
    ) -> None: ...

    def received(self, event_id: str | None) -> None: ...

    def carried_out(self, effect: Effect) -> None: ...


class Worker:
    def __init__(
        self,
        *,
        core: Core,
        db: Database,
        runner: EffectRunner,
        timers: Scheduler,
        clock: Callable[[], datetime],
        rooms: RoomIndex | None = None,
        observer: Observer | None = None,
        vouch: Callable[[str, str], Awaitable[bool]] | None = None,
        restore: Callable[[], Awaitable[Core]] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        backoff: Callable[[int], float] = backoff,
        purge_backoff: PurgeBackoff | None = None,
        hold_s: float = HOLD_S,
    ) -> None:
        self.core = core
        self.db = db
        self.state = StateRepo(db)
        self.outbox = OutboxRepo(db)
        self.events = EventLog(db)
        self.checkpoint = Checkpoint(db)
        self.attempts = Attempts(db)
        self.relay_map = RelayMap(db)
        self.media = MediaSeen(db)
        self.runner = runner
        self.timers = timers
        self.clock = clock
        if rooms is None:
            rooms = RoomIndex(getattr(core, "sessions", {}).values())
        self.rooms = rooms
        self.observer = observer
        self.vouch = vouch  # (sender, device Curve25519 key) -> act on what they wrote?
        self.restore = restore  # rebuilds the core from storage after a failed write
        self.inbox: asyncio.Queue[Item] = asyncio.Queue()
        self.lanes = Lanes(
            outbox=self.outbox,
            attempts=self.attempts,
            relay_map=self.relay_map,
            rooms=rooms,
            runner=runner,
            hand_back=self.inbox.put_nowait,
            tell=self.put,
            max_in_flight=max_in_flight,
            backoff=backoff,
            purge_backoff=purge_backoff or PurgeBackoff(),
        )
        self.handled = 0
        self.last_step_at: datetime | None = None
        self.last_progress = 0.0  # loop time of the last recorded effect (0: none yet)
        self.held = HeldInputs(hold_s)
        self._unsaved = 0  # inputs enqueued since the last saved checkpoint
        self._saved_at: datetime | None = None

    def put(self, item: Inbound | BatchEnd) -> None:
        if self.observer is not None and isinstance(item, Inbound):
            self.observer.received(item.event_id)
        self.inbox.put_nowait(item)

    @property
    def in_flight(self) -> int:
        """Effects handed to lanes and not yet recorded."""
        return self.lanes.in_flight

    # ----------------------------------------------------------------------------------
    # the main loop

    async def run(self) -> None:
        """Until a None arrives on the inbox. Lanes cut short by the stop keep their rows
        in the outbox: the next start carries them out."""
        self.last_progress = asyncio.get_running_loop().time()
        try:
            await self._loop()
        finally:
            await self.lanes.stop()

    async def _loop(self) -> None:
        ahead: Item = None
        started = False
        while True:
            try:
                if not started:
                    started = True
                    await self.lanes.dispatch()
                    continue
                item: Item
                if ahead is not None:
                    item, ahead = ahead, None
                else:
                    item = await self._next()
                if item is None:
                    return
                if isinstance(item, BatchEnd):
                    await self._checkpoint(item.token)
                    continue
                if isinstance(item, EffectDone):
                    await self._record(item)
                else:
                    # The sync loop puts a batch's inputs and then its end on the inbox
                    # in one go: the last input of a batch saves the token in its step.
                    token = None
                    if not self.inbox.empty():
                        ahead = self.inbox.get_nowait()
                        if isinstance(ahead, BatchEnd):
                            token, ahead = ahead.token, None
                    if self.held.must_hold(item, self.lanes.creating, self.rooms):
                        now = asyncio.get_running_loop().time()
                        self.held.hold(item, self.lanes.creating, token, now)
                    else:
                        await self._input(item, token)
                await self._release_held()
                await self.lanes.dispatch()
            except Exception:
                # One bad input must not stop the helpline; the log has no content.
                log.exception("worker step failed")

    async def _next(self) -> Item:
        """The next inbox item; while inputs are held, no longer than the first one's
        hold may last (then `None`-free: the loop releases it and asks again)."""
        while True:
            if not self.held:
                return await self.inbox.get()
            left = self.held.deadline() - asyncio.get_running_loop().time()
            try:
                return await asyncio.wait_for(self.inbox.get(), max(0.0, left))
            except TimeoutError:
                await self._release_held()

    async def _release_held(self) -> None:
        if not self.held:
            return
        now = asyncio.get_running_loop().time()
        for item in self.held.release(self.lanes.creating, now):
            try:
                await self._input(item, None)
            except Exception:
                log.exception("worker step failed")
        if not self.held and self.held.token is not None:
            token, self.held.token = self.held.token, None
            await self._checkpoint(token)

    async def _input(self, item: Inbound, token: str | None) -> None:
        if token is not None and self.held:
            # Inputs of this batch are held: its token is saved once they are handled.
            self.held.token, token = token, None
        self._unsaved += 1
        try:
            inp = await self._vouched(item)
            await self.step(inp, item.event_id, checkpoint=token)
        except Exception:
            if token is not None:
                await self._checkpoint(token)  # the input failed; its batch is done
            raise

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

    async def _checkpoint(self, token: str) -> None:
        """Save the sync token after its batch (once held inputs are handled). A batch
        with nothing in it (a long-poll timeout, a batch of events the bot does not act
        on) is saved at most every CHECKPOINT_IDLE: a replay of a few empty batches after
        a crash costs nothing."""
        if self.held:
            self.held.token = token
            return
        now = self.clock()
        if self._unsaved or self._saved_at is None or now - self._saved_at > CHECKPOINT_IDLE:
            await self.checkpoint.set(token, now)
            self._saved(now)

    def _saved(self, now: datetime) -> None:
        self._unsaved, self._saved_at = 0, now

    # ----------------------------------------------------------------------------------
    # one step

    async def step(
        self,
        inp: Input,
        event_id: str | None = None,
        *,
        checkpoint: str | None = None,
        done: EffectDone | None = None,
    ) -> None:
        """Apply one input. `done`: the carried-out effect whose result `inp` is; its row
        is marked done in the same transaction, so a crash cannot lose the result (a
        created room the core never heard of would strand its chatter). `checkpoint`:
        the sync token to save with it, when `inp` is the last input of its batch."""
        now = self.clock()
        touched = False
        try:
            async with self.db.transaction() as tx:
                if checkpoint is not None:
                    await self.checkpoint.set(checkpoint, now, tx=tx)
                if event_id is not None and await self.events.seen(event_id, tx=tx):
                    if done is not None:
                        await self._write_done(done, tx)
                    if checkpoint is not None:
                        self._saved(now)
                    return
                touched = True
                try:
                    effects = self.core.handle(inp, now)
                except IllegalTransition:
                    self.core.take_changes()  # an illegal move changes nothing
                    raise
                changes = self.core.take_changes()
                items: list[OutboxItem] = []
                for effect in effects:
                    if isinstance(effect, RecordMedia):
                        # Bookkeeping for the purge, not a request to Matrix.
                        await self.media.record(effect.session_id, effect.mxc, effect.sender, tx=tx)
                        continue
                    items.append(
                        OutboxItem(
                            txn_id=f"hb{secrets.token_hex(12)}",
                            session_id=session_of(effect),
                            payload=codec.encode(effect),
                        )
                    )
                processed: dict[str, SessionID | None] = {}
                if event_id is not None:
                    # Tied to its conversation, so that the purge removes the event ID too.
                    room = getattr(inp, "room", None)
                    hit = self.core.session_for_room(room) if room else None
                    processed[event_id] = hit[0].id if hit else None
                await self.state.apply(changes, outbox=items, processed=processed, now=now, tx=tx)
                if done is not None:
                    await self._write_done(done, tx)
        except IllegalTransition:
            raise
        except Exception:
            if touched:
                await self._restore()
            raise
        if checkpoint is not None:
            self._saved(now)
        if items:
            self.lanes.stored()
        self.rooms.update(changes)
        if changes.deleted_sessions:
            for sid in changes.deleted_sessions:
                self.lanes.drop_session(sid)  # its rows went with the session (cascade)
            await self.db.scrub()  # deleted rows must not linger in the WAL or free pages
        self.timers.apply(changes)
        self.handled += 1
        self.last_step_at = now
        if self.observer is not None:
            self.observer.stepped(inp, event_id, effects, changes, now)

    async def _restore(self) -> None:
        """The core changed and its changes could not be stored: memory and database
        must not disagree, so the core is rebuilt from the database."""
        if self.restore is None:
            return
        log.error("a step could not be stored; the core is reloaded from the database")
        self.core = await self.restore()
        self.rooms.reset(self.core.sessions.values())

    # ----------------------------------------------------------------------------------
    # recording what came of an effect

    async def _record(self, done: EffectDone) -> None:
        try:
            await self._record_outcome(done)
            self.lanes.recorded(done.row.id)  # before the held inputs are looked at
        except BaseException as exc:
            if not done.recorded.done():
                done.recorded.set_exception(exc)
            raise
        if not done.recorded.done():
            done.recorded.set_result(None)
        self.last_progress = asyncio.get_running_loop().time()

    async def _record_outcome(self, done: EffectDone) -> None:
        effect, outcome = done.effect, done.outcome
        if isinstance(outcome, Parked):
            log.error("effect parked after repeated failures", extra={"error": outcome.error})
            await self.outbox.park(done.row.id, outcome.error)
            return
        assert effect is not None  # only a row that could not be read has none, and is parked
        if self.observer is not None:
            self.observer.carried_out(effect)
        follow = follow_up(effect, outcome)
        if follow is not None:
            await self.step(follow, done=done)
            return
        async with self.db.transaction() as tx:
            await self._write_done(done, tx)

    async def _write_done(self, done: EffectDone, tx: Tx) -> None:
        await write_done(
            done,
            tx,
            outbox=self.outbox,
            attempts=self.attempts,
            relay_map=self.relay_map,
            media=self.media,
        )

    # ----------------------------------------------------------------------------------
    # health

    async def health(self) -> list[str]:
        """Why the worker is unhealthy (for /healthz); empty when it is not."""
        reasons: list[str] = []
        parked = await self.outbox.parked()
        if parked:
            errors = ", ".join(sorted({error for _, error in parked}))
            reasons.append(f"{len(parked)} effect(s) parked ({errors})")
        oldest = await self.outbox.oldest()
        idle = asyncio.get_running_loop().time() - self.last_progress
        if oldest is not None and idle > STALLED_AFTER:
            waiting = (self.clock() - oldest).total_seconds()
            if waiting > STALLED_AFTER:
                reasons.append(
                    f"effects waiting for {round(waiting)} s, none carried out for {round(idle)} s"
                )
        return reasons
