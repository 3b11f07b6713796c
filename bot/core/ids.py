"""Typed identifiers.

Matrix IDs are plain strings on the wire; inside the bot they are distinct types so that
a chatter's user ID can never be passed where a room ID is expected (mypy catches it).
"""

from __future__ import annotations

from typing import NewType

UserID = NewType("UserID", str)
RoomID = NewType("RoomID", str)
EventID = NewType("EventID", str)
SessionID = NewType("SessionID", int)
OfferID = NewType("OfferID", int)
