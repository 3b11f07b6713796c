"""The worker: applies inputs to the core one at a time, and carries out the effects in
lanes, one lane per conversation.

Steps (one at a time, in inbox order): skip an input whose event was handled before (a
replayed sync batch); let the core decide; store the state changes, the effects (as outbox
rows with fresh transaction IDs) and the event ID in ONE transaction; arm the timers; hand
the new rows to their lanes. The last input of a sync batch also saves the batch's sync
token in its transaction. A step whose write fails leaves nothing half done: the core is
rebuilt from what is stored.

Lanes: the effects of one conversation (or, for effects addressed to a room by its ID, a
DM or the volunteers' room, of that room) are carried out in order, one at a time; lanes
run side by side, at most `max_in_flight` requests at once. So one conversation's effect
that waits (a send retrying while the homeserver is away, a purge waiting for the admin
API, a slow room creation) never holds up another conversation. A lane hands each outcome
back on the inbox and waits until the worker has recorded it (the row marked done in the
same transaction as what follows from it: the relay map, the created room as an input to
the core), so the conversation's next effect finds the room its previous one made.

Failures: transient ones (transport, 5xx, 429) are tried again with a capped backoff,
for as long as it takes: nothing is dropped while the homeserver is down, and it is sent
once (the stored transaction ID) and in order when it is back. A refusal is recorded (a
room that could not be made is an input to the core). Anything unexpected (a bug, a
poisoned row) is tried `MAX_UNEXPECTED` times, then parked: kept with its error class for
the operator and `/healthz`, and tried again at the next start.

A crash anywhere leaves either nothing (the event is seen again and handled then) or a
stored step whose outbox is carried out on start, with the same transaction IDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.core import codec
from bot.core.events import (
    CreateRoom,
    Effect,
    Input,
    Origin,
    Purge,
    PurgeFinished,
    PurgeStalled,
    RecordMedia,
    Relay,
    RelayEdit,
    RelayRedaction,
    Removed,
    RoomCreated,
    RoomFailed,
    RoomRef,
    Unreadable,
    room_of,
    session_of,
)
from bot.core.ids import EventID, RoomID, SessionID
from bot.core.machine import IllegalTransition
from bot.core.model import Changes, Session
from bot.core.rooms import RoomIndex
from bot.inbox import BatchEnd, EffectDone, Inbound, Item, Parked
from bot.outcomes import (
    EffectRunner,
    Known,
    Lost,
    Outcome,
    Purged,
    Refused,
    RoomMade,
    Sent,
    Transient,
)
from bot.storage.db import Database, Tx
from bot.storage.repos import (
    Attempts,
    EventLog,
    MediaSeen,
    OutboxItem,
    OutboxRepo,
    OutboxRow,
    RelayMap,
    StateRepo,
)
from bot.storage.repos import Checkpoint as CheckpointRepo

log = logging.getLogger(__name__)

MAX_UNEXPECTED = 3
CHECKPOINT_IDLE = timedelta(seconds=30)
ATTEMPT_TIMEOUT = 120.0  # one try of one effect; nio retries a dead connection forever
MAX_IN_FLIGHT = 16  # effects carried out at once, over all lanes
HOLD_S = 30.0  # an input for an unknown room waits at most this for room creations
STALLED_AFTER = 120.0  # seconds without progress while effects wait: /healthz says 503


class Core(Protocol):
    """What the worker needs of `bot.core.machine.Helpline`."""

    sessions: dict[SessionID, Session]

    def handle(self, event: Input, now: datetime) -> list[Effect]: ...

    def take_changes(self) -> Changes: ...

    def session_for_room(self, room: RoomID) -> tuple[Any, Any] | None: ...


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


def backoff(tries: int) -> float:
    """Seconds before try number `tries + 1`: 1, 2, 4, ... up to a minute."""
    return float(min(60.0, 0.5 * 2**tries))


@dataclass(frozen=True)
class PurgeBackoff:
    """When a purge that failed for a reason that may pass (the admin API down, 5xx) is
    tried again: after `first` seconds, then twice as long each time, up to `cap`; the
    supervisors are told after `alert_after` failures in a row (some 3.5 minutes of
    failing, by default), once. A purge is never given up for such a reason."""

    first: float = 30.0
    cap: float = 3600.0
    alert_after: int = 3

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, failures - 1))


LaneKey = tuple[str, object]


def lane_of(effect: Effect, row: OutboxRow) -> LaneKey:
    """Effects of one conversation share a lane; so do effects addressed to one room."""
    if row.session_id is not None:
        return ("session", row.session_id)
    sid = session_of(effect)
    if sid is not None:
        return ("session", sid)
    room = room_of(effect)
    if room is not None:
        return ("room", room)
    return ("row", row.id)


@dataclass
class _HeldInput:
    item: Inbound
    room: Any
    waits_for: set[int]  # the room creations (outbox row ids) it waits for
    until: float  # loop time: released by then in any case


@dataclass
class _Lane:
    rows: deque[OutboxRow]
    task: asyncio.Task[None] | None = None


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
        self.checkpoint = CheckpointRepo(db)
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
        self.backoff = backoff
        self.purge_backoff = purge_backoff or PurgeBackoff()
        self.hold_s = hold_s
        self.inbox: asyncio.Queue[Item] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._lanes: dict[LaneKey, _Lane] = {}
        self._dispatched = 0  # the highest outbox row id handed to a lane
        self._queued = True  # the outbox may hold rows not yet in a lane (it may at start)
        self.handled = 0
        self.last_step_at: datetime | None = None
        self.last_progress = 0.0  # loop time of the last recorded effect (0: none yet)
        self._creating: set[int] = set()  # room creations carried out, not yet recorded
        self._held: list[_HeldInput] = []
        self._held_token: str | None = None  # the newest sync token behind held inputs
        self._unsaved = 0  # inputs enqueued since the last saved checkpoint
        self._saved_at: datetime | None = None

    def put(self, item: Inbound | BatchEnd) -> None:
        if self.observer is not None and isinstance(item, Inbound):
            self.observer.received(item.event_id)
        self.inbox.put_nowait(item)

    @property
    def in_flight(self) -> int:
        """Effects handed to lanes and not yet recorded."""
        return sum(len(lane.rows) for lane in self._lanes.values())

    # ----------------------------------------------------------------------------------
    # the main loop

    async def run(self) -> None:
        """Until a None arrives on the inbox. Lanes cut short by the stop keep their rows
        in the outbox: the next start carries them out."""
        self.last_progress = asyncio.get_running_loop().time()
        try:
            await self._loop()
        finally:
            lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
            for task in lanes:
                task.cancel()
            for task in lanes:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._lanes.clear()

    async def _loop(self) -> None:
        ahead: Item = None
        started = False
        while True:
            try:
                if not started:
                    started = True
                    await self.dispatch()
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
                    if self._must_hold(item):
                        self._hold(item, token)
                    else:
                        await self._input(item, token)
                await self._release_held()
                await self.dispatch()
            except Exception:
                # One bad input must not stop the helpline; the log has no content.
                log.exception("worker step failed")

    async def _next(self) -> Item:
        """The next inbox item; while inputs are held, no longer than the first one's
        hold may last (then `None`-free: the loop releases it and asks again)."""
        while True:
            if not self._held:
                return await self.inbox.get()
            left = min(h.until for h in self._held) - asyncio.get_running_loop().time()
            try:
                return await asyncio.wait_for(self.inbox.get(), max(0.0, left))
            except TimeoutError:
                await self._release_held()

    # ----------------------------------------------------------------------------------
    # inputs that may concern a room being created
    #
    # A lane that creates a room hands the new room to the core only when the creation's
    # answer is in. Under load the sync can deliver what the invited person did in that
    # room (joined, wrote) before the answer is handled; the core would not know the room
    # and drop it. So an input for a room the core does not know waits while creations
    # that were under way when it came are not yet recorded (at most `HOLD_S`: a creation
    # slower than that has the homeserver in trouble anyway); later
    # inputs of the same room wait behind it, so each room keeps its order.

    def _must_hold(self, item: Inbound) -> bool:
        room = getattr(item.input, "room", None)
        if room is None or item.origin in (Origin.STAFF, Origin.LOBBY):
            return False  # rooms of the configuration, never made by the bot
        if any(h.room == room for h in self._held):
            return True
        return bool(self._creating) and not self.rooms.is_session_room(room)

    def _hold(self, item: Inbound, token: str | None) -> None:
        room = getattr(item.input, "room", None)
        waits = set(self._creating)
        for h in self._held:
            if h.room == room:
                waits |= h.waits_for
        until = asyncio.get_running_loop().time() + self.hold_s
        self._held.append(_HeldInput(item, room, waits, until))
        if token is not None:
            self._held_token = token

    async def _release_held(self) -> None:
        if not self._held:
            return
        now = asyncio.get_running_loop().time()
        blocked: set[Any] = set()
        keep: list[_HeldInput] = []
        ready: list[_HeldInput] = []
        for h in self._held:
            if h.room in blocked or (h.waits_for & self._creating and now < h.until):
                blocked.add(h.room)
                keep.append(h)
            else:
                ready.append(h)
        self._held = keep
        for h in ready:
            try:
                await self._input(h.item, None)
            except Exception:
                log.exception("worker step failed")
        if not self._held and self._held_token is not None:
            token, self._held_token = self._held_token, None
            await self._checkpoint(token)

    async def _input(self, item: Inbound, token: str | None) -> None:
        if token is not None and self._held:
            # Inputs of this batch are held: its token is saved once they are handled.
            self._held_token, token = token, None
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
        if self._held:
            self._held_token = token
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
            self._queued = True
        self.rooms.update(changes)
        if changes.deleted_sessions:
            for sid in changes.deleted_sessions:
                lane = self._lanes.get(("session", sid))
                if lane is not None:
                    lane.rows.clear()  # its rows went with the session (cascade)
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
    # lanes

    async def dispatch(self) -> None:
        """Hand the outbox rows stored since the last call to their lanes."""
        if not self._queued:
            return
        self._queued = False
        for row in await self.outbox.pending(after=self._dispatched):
            self._dispatched = row.id
            try:
                key = lane_of(codec.decode_effect(row.payload), row)
            except Exception:
                key = ("row", row.id)  # undecodable: it will be parked in a lane of its own
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(deque())
                lane.rows.append(row)
                lane.task = asyncio.create_task(self._lane(key, lane), name="effect lane")
            else:
                lane.rows.append(row)

    async def _lane(self, key: LaneKey, lane: _Lane) -> None:
        try:
            while lane.rows:
                row = lane.rows[0]
                await self._carry_out(row)
                if lane.rows and lane.rows[0] is row:
                    lane.rows.popleft()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _carry_out(self, row: OutboxRow) -> None:
        """Carry out one row until its outcome is recorded (or it is parked)."""
        try:
            effect: Effect = codec.decode_effect(row.payload)
        except Exception as exc:
            await self._until_recorded(row, None, type(exc).__name__)  # parked at once
            return
        creating = isinstance(effect, CreateRoom)
        if creating:
            self._creating.add(row.id)
        try:
            await self._until_recorded(row, effect, "")
        finally:
            # Cut short too (a stop, a lane ending on an error): held inputs must never
            # wait for a creation nobody carries out any more.
            if creating:
                self._creating.discard(row.id)

    async def _until_recorded(self, row: OutboxRow, effect: Effect | None, error: str) -> None:
        """`effect` None: the row cannot be read (`error` says why) and is parked."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        transient = 0
        unexpected = MAX_UNEXPECTED if effect is None else 0
        while True:
            if effect is None or unexpected >= MAX_UNEXPECTED:
                outcome: Outcome | Parked = Parked(error)
            else:
                try:
                    outcome = await self._attempt(effect, row)
                except Transient as exc:
                    transient += 1
                    delay = self._retry_in(effect, transient)
                    log.warning(
                        "effect failed, will retry",
                        extra={"effect": _name(effect), "why": str(exc), "in_s": delay},
                    )
                    await asyncio.sleep(delay)
                    continue
                except Exception as exc:
                    unexpected += 1
                    error = type(exc).__name__
                    log.warning(
                        "effect failed unexpectedly",
                        extra={"effect": _name(effect), "error": error, "tries": unexpected},
                    )
                    if unexpected < MAX_UNEXPECTED:
                        await asyncio.sleep(self.backoff(unexpected))
                    continue
            carried = loop.time()
            recorded: asyncio.Future[None] = loop.create_future()
            self.inbox.put_nowait(EffectDone(row, effect, outcome, recorded))
            try:
                await recorded
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "effect done",
                        extra={
                            "effect": _name(effect),
                            "ms": round((carried - began) * 1000),
                            "record_ms": round((loop.time() - carried) * 1000),
                            "tries": transient + unexpected + 1,
                        },
                    )
                return
            except Exception as exc:
                # Not stored: the effect is carried out again (same transaction ID).
                unexpected += 1
                error = type(exc).__name__
                await asyncio.sleep(self.backoff(unexpected))

    def _retry_in(self, effect: Effect, failures: int) -> float:
        """Seconds before the next try. A purge waits for the admin API with a backoff of
        its own (growing to an hour), and after a few failures the supervisors hear that
        it is still being tried."""
        if not isinstance(effect, Purge):
            return self.backoff(failures)
        if failures == self.purge_backoff.alert_after:
            self.put(Inbound(PurgeStalled(effect.session_id)))
        return self.purge_backoff.delay(failures)

    async def _attempt(self, effect: Effect, row: OutboxRow) -> Outcome:
        known = await self._known(effect, row)
        if self._slots.locked():
            log.debug("effect waits for a slot", extra={"effect": _name(effect)})
        async with self._slots:
            try:
                return await asyncio.wait_for(
                    self.runner.run(effect, row.txn_id, known), ATTEMPT_TIMEOUT
                )
            except TimeoutError as exc:
                raise Transient("no answer in time") from exc

    async def _known(self, effect: Effect, row: OutboxRow) -> Known:
        """What an effect needs from the database before it runs."""
        if isinstance(effect, CreateRoom):
            return Known(retry=await self.attempts.begin(row.txn_id))
        if isinstance(effect, (RelayEdit, RelayRedaction)) and isinstance(effect.to, RoomRef):
            room = self.rooms.room(effect.to)
            if room is None:
                return Known()
            relayed = await self.relay_map.lookup(effect.to.session_id, effect.original, room)
            return Known(relayed=relayed)
        return Known()

    # ----------------------------------------------------------------------------------
    # recording what came of an effect

    async def _record(self, done: EffectDone) -> None:
        try:
            await self._record_outcome(done)
            self._creating.discard(done.row.id)  # before the held inputs are looked at
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
        follow: Input | None = None
        if isinstance(effect, CreateRoom):
            ref = effect.ref
            if isinstance(outcome, RoomMade):
                follow = RoomCreated(ref.session_id, ref.offer_id, outcome.room)
            elif isinstance(outcome, Refused):
                log.error("room creation refused", extra={"code": outcome.code})
                follow = RoomFailed(ref.session_id, ref.offer_id)
        elif isinstance(outcome, Purged) and isinstance(effect, Purge):
            follow = PurgeFinished(effect.session_id, outcome.result)
        elif isinstance(outcome, Lost):
            log.warning(
                "the bot is no longer in a room of a conversation", extra={"effect": _name(effect)}
            )
            follow = Removed(outcome.room)
        elif isinstance(outcome, Refused):
            log.warning("effect refused", extra={"effect": _name(effect), "code": outcome.code})
        if follow is not None:
            await self.step(follow, done=done)
            return
        async with self.db.transaction() as tx:
            await self._write_done(done, tx)

    async def _write_done(self, done: EffectDone, tx: Tx) -> None:
        """Mark the row done, with what must be remembered of it."""
        effect, outcome = done.effect, done.outcome
        await self.outbox.done(done.row.id, tx=tx)
        if isinstance(effect, CreateRoom):
            await self.attempts.clear(done.row.txn_id, tx=tx)
        if isinstance(effect, Relay) and isinstance(outcome, Sent):
            await self.relay_map.record(
                effect.to.session_id, effect.source, outcome.room, outcome.event_id, tx=tx
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


def _name(effect: Effect | None) -> str:
    return type(effect).__name__
