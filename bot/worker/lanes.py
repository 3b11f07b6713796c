"""The lanes: the outbox's rows carried out in order per conversation, side by side
across conversations, each until its outcome is recorded or it is parked.

A lane is the effects of one conversation (or, for effects addressed to a room by its ID,
a DM or the volunteers' room, of that room). Lanes run side by side, at most
`max_in_flight` requests at once. Each outcome goes back to the worker on its inbox, and
the lane waits until the worker has recorded it before it starts the next row, so the
conversation's next effect finds the room its previous one made. Transient failures are
tried again for as long as it takes, anything unexpected `MAX_UNEXPECTED` times before the
row is parked (`retry.py`). Lanes read the database (the outbox, what an effect needs to
know) but never write it: recording is the worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.core import codec
from bot.core.events import (
    CreateRoom,
    Effect,
    Purge,
    PurgeStalled,
    RelayEdit,
    RelayReceipt,
    RelayRedaction,
    RoomRef,
    room_of,
    session_of,
)
from bot.core.ids import SessionID
from bot.core.rooms import RoomIndex
from bot.inbox import EffectDone, Inbound, Parked
from bot.outcomes import EffectRunner, Known, Outcome, Transient
from bot.storage.events import RelayMap
from bot.storage.outbox import Attempts, OutboxRepo, OutboxRow
from bot.worker.retry import ATTEMPT_TIMEOUT, MAX_UNEXPECTED, PurgeBackoff

log = logging.getLogger("bot.worker")  # one logger for the whole worker, as before its split

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
class _Lane:
    rows: deque[OutboxRow]
    task: asyncio.Task[None] | None = None


class Lanes:
    """`hand_back` puts an outcome on the worker's inbox, `tell` a new input for the core."""

    def __init__(
        self,
        *,
        outbox: OutboxRepo,
        attempts: Attempts,
        relay_map: RelayMap,
        rooms: RoomIndex,
        runner: EffectRunner,
        hand_back: Callable[[EffectDone], None],
        tell: Callable[[Inbound], None],
        max_in_flight: int,
        backoff: Callable[[int], float],
        purge_backoff: PurgeBackoff,
    ) -> None:
        self.outbox = outbox
        self.attempts = attempts
        self.relay_map = relay_map
        self.rooms = rooms
        self.runner = runner
        self.hand_back = hand_back
        self.tell = tell
        self.backoff = backoff
        self.purge_backoff = purge_backoff
        self._slots = asyncio.Semaphore(max_in_flight)
        self._lanes: dict[LaneKey, _Lane] = {}
        self._dispatched = 0  # the highest outbox row id handed to a lane
        self._queued = True  # the outbox may hold rows not yet in a lane (it may at start)
        # room creations carried out, not yet recorded: outbox row id -> the invited user
        self.creating: dict[int, str] = {}

    @property
    def in_flight(self) -> int:
        """Effects handed to lanes and not yet recorded."""
        return sum(len(lane.rows) for lane in self._lanes.values())

    def stored(self) -> None:
        """New rows are in the outbox: the next `dispatch` looks for them."""
        self._queued = True

    def drop_session(self, sid: SessionID) -> None:
        """The session was deleted; its rows went with it (cascade)."""
        lane = self._lanes.get(("session", sid))
        if lane is not None:
            lane.rows.clear()

    def recorded(self, row_id: int) -> None:
        """The worker stored the outcome of this row."""
        self.creating.pop(row_id, None)

    async def stop(self) -> None:
        """Lanes cut short keep their rows in the outbox: the next start carries them out."""
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in lanes:
            task.cancel()
        for task in lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lanes.clear()

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
        if isinstance(effect, CreateRoom):
            self.creating[row.id] = effect.invite
        try:
            await self._until_recorded(row, effect, "")
        finally:
            # Cut short too (a stop, a lane ending on an error): held inputs must never
            # wait for a creation nobody carries out any more.
            if creating:
                self.creating.pop(row.id, None)

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
            self.hand_back(EffectDone(row, effect, outcome, recorded))
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
            self.tell(Inbound(PurgeStalled(effect.session_id)))
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
        if isinstance(effect, RelayReceipt):
            original = await self.relay_map.source_of(effect.to.session_id, effect.read)
            return Known(original=original)
        return Known()


def _name(effect: Effect | None) -> str:
    return type(effect).__name__
