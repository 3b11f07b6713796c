"""Inputs that may concern a room being created.

A lane that creates a room hands the new room to the core only when the creation's answer
is in. Under load the sync can deliver what the invited person did in that room (joined,
wrote) before the answer is handled; the core would not know the room and drop it. So an
input for a room the core does not know, from someone a creation under way invites, waits
until those creations are recorded (at most `HOLD_S`: a creation slower than that has the
homeserver in trouble anyway); later inputs of the same room wait behind it, so each room
keeps its order. Nobody else waits: a creation that hangs on another server (a volunteer
or chatter whose server does not answer the invite) must not hold up a new chatter's
first words. The sync token of a batch with held inputs is kept here too: it is saved
only once they are handled.

This module only keeps the books; the worker handles what it releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.events import Origin
from bot.core.rooms import RoomIndex
from bot.inbox import Inbound

HOLD_S = 30.0  # an input for an unknown room waits at most this for room creations


@dataclass
class _HeldInput:
    item: Inbound
    room: Any
    waits_for: set[int]  # the room creations (outbox row ids) it waits for
    until: float  # loop time: released by then in any case


class HeldInputs:
    """The held inputs, in arrival order. `creating`: the room creations carried out and
    not yet recorded, outbox row id -> the invited user; times are the event loop's."""

    def __init__(self, hold_s: float = HOLD_S) -> None:
        self.hold_s = hold_s
        self._held: list[_HeldInput] = []
        self.token: str | None = None  # the newest sync token behind held inputs

    def __bool__(self) -> bool:
        return bool(self._held)

    def deadline(self) -> float:
        """When the first held input is released in any case (some must be held)."""
        return min(h.until for h in self._held)

    def must_hold(self, item: Inbound, creating: Mapping[int, str], rooms: RoomIndex) -> bool:
        room = getattr(item.input, "room", None)
        if room is None or item.origin in (Origin.STAFF, Origin.LOBBY):
            return False  # rooms of the configuration, never made by the bot
        if any(h.room == room for h in self._held):
            return True
        if not creating or rooms.is_session_room(room):
            return False
        return bool(_concerned(item, creating))

    def hold(
        self, item: Inbound, creating: Mapping[int, str], token: str | None, now: float
    ) -> None:
        room = getattr(item.input, "room", None)
        waits = _concerned(item, creating)
        for h in self._held:
            if h.room == room:
                waits |= h.waits_for
        self._held.append(_HeldInput(item, room, waits, now + self.hold_s))
        if token is not None:
            self.token = token

    def release(self, creating: Mapping[int, str], now: float) -> list[Inbound]:
        """Take out, in order, the inputs whose creations are recorded or whose hold is
        over, but none behind a still-held input of the same room."""
        blocked: set[Any] = set()
        keep: list[_HeldInput] = []
        ready: list[Inbound] = []
        for h in self._held:
            if h.room in blocked or (h.waits_for & creating.keys() and now < h.until):
                blocked.add(h.room)
                keep.append(h)
            else:
                ready.append(h.item)
        self._held = keep
        return ready


def _concerned(item: Inbound, creating: Mapping[int, str]) -> set[int]:
    """The creations this input may be about: those inviting its sender (all of them for
    an input that names nobody)."""
    who = getattr(item.input, "sender", None) or getattr(item.input, "user", None)
    if who is None:
        return set(creating)
    return {row for row, invited in creating.items() if invited == who}
