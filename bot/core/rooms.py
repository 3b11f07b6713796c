"""Which rooms belong to conversations, as the Matrix side needs to know them.

The core owns the sessions; the Matrix side (the sync's translation, the executor) must
not reach into it while it runs. The worker keeps this index up to date from each step's
stored changes, and hands it out read-only: `room(ref)` for the effects that address a
conversation's room by `RoomRef`, `is_session_room(room)` for telling a conversation room
from a DM.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bot.core.events import RoomRef
from bot.core.ids import OfferID, RoomID, SessionID
from bot.core.model import Changes, Session

_Key = tuple[SessionID, OfferID | None]


class Rooms(Protocol):
    """The read-only side of `RoomIndex`."""

    def room(self, ref: RoomRef) -> RoomID | None: ...

    def is_session_room(self, room: RoomID) -> bool: ...


class RoomIndex:
    def __init__(self, sessions: Iterable[Session] = ()) -> None:
        self.reset(sessions)

    def reset(self, sessions: Iterable[Session]) -> None:
        """Forget everything and index these sessions."""
        self._rooms: dict[_Key, RoomID] = {}
        self._owner: dict[RoomID, _Key] = {}
        self._keys: dict[SessionID, list[_Key]] = {}
        for s in sessions:
            self._put(s)

    def room(self, ref: RoomRef) -> RoomID | None:
        return self._rooms.get((ref.session_id, ref.offer_id))

    def is_session_room(self, room: RoomID) -> bool:
        return room in self._owner

    def update(self, changes: Changes) -> None:
        for sid in changes.deleted_sessions:
            self._drop(sid)
        for s in changes.sessions.values():
            if s.id not in changes.deleted_sessions:
                self._put(s)

    def _put(self, s: Session) -> None:
        self._drop(s.id)
        if s.chatter_room:
            self._add((s.id, None), s.chatter_room)
        for offer in s.offers:
            if offer.room:
                self._add((s.id, offer.id), offer.room)

    def _add(self, key: _Key, room: RoomID) -> None:
        self._rooms[key] = room
        self._owner[room] = key
        self._keys.setdefault(key[0], []).append(key)

    def _drop(self, sid: SessionID) -> None:
        for key in self._keys.pop(sid, ()):
            self._owner.pop(self._rooms.pop(key), None)
