"""Events that came without their Megolm key, the room order behind them, and the
checkpoint that waits for them.

Rules:
- An event nio cannot decrypt yet is held per room, in order, and tried again after every
  sync (its key comes as a to-device `m.room_key` or forwarded key). What comes later in
  that room waits behind it for up to `HOLD` seconds, so a late key still keeps the order;
  past that, the room goes on and the held event is passed on when (or if) its key comes.
- After the grace period a held event becomes `Unreadable`: its sender is asked to send it
  again.
- A batch's sync token is passed on (`BatchEnd`) only once nothing from that batch or an
  older one is held, so a crash replays it (the worker drops what it already handled by
  event ID).
- Pure: the clock is injected and nothing here touches nio or the event loop. `release`
  returns what to put on the inbox, in order, and in how many seconds to call it again;
  the caller arms that timer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.core.events import Origin, Unreadable
from bot.core.ids import EventID, RoomID, UserID
from bot.inbox import BatchEnd, Inbound

log = logging.getLogger(__name__)

HOLD = 3.0
"""Seconds that later events of a room wait behind one whose key has not come. A late key
usually arrives within a second (its to-device message took another sync); past this, the
room goes on and the held event is handled when (or if) its key comes."""

Decrypt = Callable[[RoomID, Any, Origin], tuple[bool, Inbound | None]]
"""Tries a held event's key: (False, None) while it has not come; (True, its input) once
decrypted, the input None for an event the core ignores (it still frees its place)."""


@dataclass(slots=True)
class _Held:
    batch: int  # the sync batch it came in, for the checkpoint
    arrived: float  # clock time
    origin: Origin
    event: Any = None  # still without its key (opaque here: the caller's to decrypt)
    sender: UserID | None = None  # of `event`, asked again if its key never comes
    event_id: EventID | None = None  # of `event`
    inbound: Inbound | None = None  # translated, waiting behind `event`s


@dataclass(slots=True)
class HeldCounts:
    held: int = 0
    decrypted_late: int = 0
    unreadable: int = 0


@dataclass(frozen=True, slots=True)
class Released:
    items: list[Inbound | BatchEnd]  # for the inbox, in this order
    wake_in: float | None  # call `release` again in this many seconds; None: nothing waits


class HeldEvents:
    def __init__(self, *, grace: float, clock: Callable[[], float], hold: float = HOLD) -> None:
        self._grace = grace
        self._hold = hold
        self._clock = clock
        self._held: dict[RoomID, list[_Held]] = {}
        self._unsaved: deque[tuple[int, str]] = deque()  # batches whose checkpoint waits
        self.batch = 0  # sync batches begun
        self.counts = HeldCounts()

    def __bool__(self) -> bool:
        """Something is held (a key, or the order behind one)."""
        return bool(self._held)

    def begin_batch(self) -> None:
        """What is held or queued from now on came in the next sync batch."""
        self.batch += 1

    def end_batch(self, token: str) -> None:
        """The batch begun last ends at `token`: saved once nothing from it is held."""
        self._unsaved.append((self.batch, token))

    def hold(
        self, room: RoomID, event: Any, *, sender: UserID, event_id: EventID, origin: Origin
    ) -> None:
        """`event` came without its key; later events of `room` wait behind it."""
        log.info("undecryptable event held for its key")
        self.counts.held += 1
        self._held.setdefault(room, []).append(
            _Held(self.batch, self._clock(), origin, event, sender, event_id)
        )

    def queue(self, room: RoomID, inbound: Inbound, origin: Origin) -> bool:
        """Put `inbound` behind what waits for a key in `room`. False when nothing waits
        there: the caller passes it on at once."""
        if room not in self._held:
            return False
        self._held[room].append(_Held(self.batch, self._clock(), origin, inbound=inbound))
        return True

    def release(self, decrypt: Decrypt | None) -> Released:
        """What can go, in each room's order: events whose key has come (`decrypt`, given
        after a sync), events that waited out the grace period (as `Unreadable`), events
        queued behind them; then the checkpoint of every batch nothing is held from."""
        now = self._clock()
        out: list[Inbound | BatchEnd] = []
        for room, items in list(self._held.items()):
            keep: list[_Held] = []
            blocked = False
            for item in items:
                if item.event is not None:
                    done, ready = (False, None)
                    if decrypt is not None:
                        done, ready = decrypt(room, item.event, item.origin)
                        if done:
                            self.counts.decrypted_late += 1
                    if not done and now - item.arrived >= self._grace:
                        done, ready = True, self._unreadable(room, item)
                    if not done:
                        keep.append(item)
                        blocked = blocked or now - item.arrived < self._hold
                        continue
                    item.event, item.inbound = None, ready
                if item.inbound is None:
                    continue  # decrypted into something the core ignores
                if blocked:
                    keep.append(item)
                else:
                    out.append(item.inbound)
            if keep:
                self._held[room] = keep
            else:
                del self._held[room]
        checkpoint = self._checkpoint()
        if checkpoint is not None:
            out.append(checkpoint)
        return Released(out, self._wake_in(now))

    def _unreadable(self, room: RoomID, item: _Held) -> Inbound:
        assert item.sender is not None
        assert item.event_id is not None
        log.warning("an event's key never came: its sender is asked to send it again")
        self.counts.unreadable += 1
        return Inbound(Unreadable(room, item.sender, item.event_id, item.origin), item.event_id)

    def _checkpoint(self) -> BatchEnd | None:
        """The token of the newest batch that nothing is held from (or older)."""
        oldest = min((i.batch for items in self._held.values() for i in items), default=None)
        token = None
        while self._unsaved and (oldest is None or self._unsaved[0][0] < oldest):
            token = self._unsaved.popleft()[1]
        return BatchEnd(token) if token is not None else None

    def _wake_in(self, now: float) -> float | None:
        due = [
            i.arrived + (self._hold if now - i.arrived < self._hold else self._grace)
            for items in self._held.values()
            for i in items
            if i.event is not None
        ]
        return max(0.0, min(due) - now) if due else None
