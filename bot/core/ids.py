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


def server_of(user: UserID) -> str:
    """The server part of a user ID: `example.org` of `@anna:example.org`, `127.0.0.1:8448`
    of `@anna:127.0.0.1:8448` (the localpart never holds a colon)."""
    return user.partition(":")[2]
