"""Fixtures for the storage tests: a fresh database file in a temp dir, and real core
objects (sessions with offers, held messages and timers) to store in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.model import (
    HeldMessage,
    Offer,
    OfferState,
    Outcome,
    Session,
    Source,
    State,
    Timer,
    TimerKind,
    VolunteerState,
)
from bot.storage import Storage

# Microseconds on purpose: the round trip through epoch floats must keep them.
T0 = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[Storage]:
    st = await Storage.open(db_path)
    try:
        yield st
    finally:
        await st.close()


def make_session(
    sid: int,
    *,
    chatter: str = "@chatter:localhost",
    body: str = "hello",
    state: State = State.ACTIVE,
) -> Session:
    """A session in mid-conversation, with every kind of nested data filled in."""
    return Session(
        id=SessionID(sid),
        number=100 + sid,
        chatter=UserID(chatter),
        language="nb",
        source=Source.LOBBY,
        source_room=RoomID("!lobby:localhost"),
        created_at=T0,
        state=state,
        chatter_room=RoomID(f"!chatter-room-{sid}:localhost"),
        chatter_joined=True,
        priority=1,
        queued_at=T0 + timedelta(seconds=1.25),
        accepted_at=T0 + timedelta(minutes=2, microseconds=7),
        last_chatter_activity=T0 + timedelta(minutes=3),
        volunteer=UserID("@vol-a:localhost"),
        volunteer_room=RoomID(f"!vol-room-{sid}:localhost"),
        offers=[
            Offer(
                OfferID(1),
                UserID("@vol-b:localhost"),
                T0 + timedelta(seconds=5),
                RoomID(f"!offer-b-{sid}:localhost"),
                OfferState.WITHDRAWN,
            ),
            Offer(
                OfferID(2),
                UserID("@vol-a:localhost"),
                T0 + timedelta(seconds=6),
                RoomID(f"!vol-room-{sid}:localhost"),
                OfferState.ACCEPTED,
            ),
        ],
        retired_rooms=[RoomID(f"!old-{sid}:localhost")],
        extended=timedelta(minutes=10),
        outcome=Outcome.COMPLETED if state is State.ENDING else None,
        tags=["angst", "ensomhet"],
        rating=None,
        held=[
            HeldMessage(EventID(f"$held1-{sid}"), body),
            HeldMessage(EventID(f"$held2-{sid}"), "blåbærsyltetøy æøå"),
        ],
        announced_position=2,
        announced_estimate=5,
        first_wait=timedelta(seconds=120.5),
        requeues=1,
    )


def make_timers(sid: int) -> list[Timer]:
    return [
        Timer(TimerKind.MAX_DURATION, SessionID(sid), T0 + timedelta(hours=1)),
        Timer(
            TimerKind.WARN,
            SessionID(sid),
            T0 + timedelta(minutes=50),
            before=timedelta(seconds=600),
        ),
        Timer(TimerKind.IDLE_WARN, SessionID(sid), T0 + timedelta(minutes=12, microseconds=3)),
    ]


def make_volunteer(user: str, *, on_duty: bool = True) -> VolunteerState:
    return VolunteerState(
        user_id=UserID(user),
        on_duty=on_duty,
        duty_since=T0 - timedelta(hours=1) if on_duty else None,
        last_assigned_at=T0,
        lapses=1,
    )
