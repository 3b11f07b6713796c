"""Builders for the core's unit tests: a policy, and a `World` around one `Helpline`.

The world plays the parts the core leaves to others: a clock it advances by hand, the
adapter (every `CreateRoom` is answered with `RoomCreated` at once, with a fresh room ID),
and storage (every `Changes` is written to plain JSON dicts, from which `restart()` builds
a new Helpline, as the bot does on start). Nothing here is a mock: the core is pure.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, TypeVar

from bot.core.counters import Counters
from bot.core.events import (
    CreateRoom,
    Effect,
    Input,
    Joined,
    Kind,
    Message,
    Origin,
    RoomCreated,
    Say,
    TimerFired,
)
from bot.core.ids import EventID, OfferID, RoomID, UserID
from bot.core.machine import Helpline
from bot.core.model import (
    Block,
    Changes,
    Offer,
    OfferState,
    Policy,
    Session,
    Timer,
    TimerKind,
    VolunteerProfile,
    VolunteerState,
    timer_key,
)
from bot.core.pseudonyms import chatter_hash

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Oslo
STAFF_ROOM = RoomID("!vakt:example.org")
LOBBY = RoomID("!lobby:example.org")
ANNA = UserID("@anna:example.org")  # nb, en
BJORN = UserID("@bjorn:example.org")  # nb
CARL = UserID("@carl:example.org")  # en, two at a time
KARI = UserID("@kari:example.org")  # supervisor, not a volunteer
PROFILES = (
    VolunteerProfile(ANNA, "Anna", ("nb", "en")),
    VolunteerProfile(BJORN, "Bjørn", ("nb",)),
    VolunteerProfile(CARL, "Carl", ("en",), max_sessions=2),
)
TOPICS = ("angst", "ensomhet", "skole")


def chatter(n: int) -> UserID:
    return UserID(f"@chatter{n}:example.org")


def policy(**overrides: Any) -> Policy:
    base = Policy(
        volunteers=PROFILES,
        supervisors=frozenset({KARI}),
        staff_room=STAFF_ROOM,
        topics=TOPICS,
        canned=("taushet",),
        block_key=b"test-key",
        server_name="example.org",
    )
    return replace(base, **overrides)


E = TypeVar("E")


def of(effects: list[Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def keys(effects: list[Effect]) -> list[str]:
    """The text keys of every Say, in order."""
    return [e.text.key for e in effects if isinstance(e, Say)]


def said(effects: list[Effect], key: str) -> Say:
    """The one Say with text `key`."""
    found = [e for e in effects if isinstance(e, Say) and e.text.key == key]
    assert len(found) == 1, f"{key!r} said {len(found)} times in {keys(effects)}"
    return found[0]


class Store:
    """What storage keeps: JSON-shaped rows written from each step's Changes."""

    def __init__(self) -> None:
        self.sessions: dict[int, dict[str, Any]] = {}
        self.volunteers: dict[str, dict[str, Any]] = {}
        self.timers: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}
        self.stats: list[Any] = []
        self.blocks_set: list[Any] = []
        self.blocks: dict[str, dict[str, Any]] = {}

    def apply(self, c: Changes) -> None:
        def row(value: Any) -> Any:
            return json.loads(json.dumps(value))  # proves it is JSON, and detaches it

        for sid, s in c.sessions.items():
            self.sessions[sid] = row(s.to_dict())
        for sid in c.deleted_sessions:
            self.sessions.pop(sid, None)
        for uid, v in c.volunteers.items():
            self.volunteers[uid] = row(v.to_dict())
        for key in c.timers_cleared:
            self.timers.pop(key, None)
        for key, t in c.timers_set.items():
            self.timers[key] = row(t.to_dict())
        if c.counters is not None:
            self.meta.update(row(c.counters.to_meta()))
        self.stats.extend(c.stats)
        for h in c.unblocked:
            self.blocks.pop(h, None)
        for h, b in c.blocks.items():
            self.blocks[h] = row(b.to_dict())
        self.blocks_set.extend(c.blocks_set)


class World:
    def __init__(self, pol: Policy | None = None, *, now: datetime = T0, seed: int = 7) -> None:
        self.policy = pol or policy()
        self.seed = seed
        self.h = Helpline(self.policy, random.Random(seed))
        self.now = now
        self.store = Store()
        self.changes = Changes()  # of the last input fed (not of the adapter's answers)
        self.log: list[Effect] = []  # every effect so far
        self._ids = count(1)

    # -- clock and feeding ------------------------------------------------------------

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def feed(self, event: Input) -> list[Effect]:
        fx = self.h.handle(event, self.now)
        self.changes = self.h.take_changes()
        self.store.apply(self.changes)
        self.log.extend(fx)
        for e in fx:
            if isinstance(e, CreateRoom):  # the adapter creates the room at once
                room = RoomID(f"!r{next(self._ids)}:example.org")
                self.log.extend(
                    self.h.handle(RoomCreated(e.ref.session_id, e.ref.offer_id, room), self.now)
                )
                self.store.apply(self.h.take_changes())
        return fx

    def blocked_before(
        self, user: UserID, until: datetime | None = None, number: int | None = None
    ) -> None:
        """`user` on the block list, as if a supervisor had blocked them before a restart."""
        h = chatter_hash(self.policy.block_key, user)
        self.store.blocks[h] = Block(h, self.now.date(), until, number).to_dict()
        self.restart()

    def restart(self) -> None:
        """A new Helpline from what storage holds, as after a crash."""
        s = self.store
        self.h = Helpline(
            self.policy,
            random.Random(self.seed + 1),
            sessions=[Session.from_dict(d) for d in s.sessions.values()],
            volunteers=[VolunteerState.from_dict(d) for d in s.volunteers.values()],
            timers=[Timer.from_dict(d) for d in s.timers.values()],
            counters=Counters.from_meta(s.meta),
            blocks=[Block.from_dict(d) for d in s.blocks.values()],
        )

    # -- what people do -----------------------------------------------------------------

    def event_id(self) -> EventID:
        return EventID(f"$e{next(self._ids)}")

    def msg(
        self, room: RoomID, sender: UserID, body: str, *, origin: Origin = Origin.OTHER, **kw: Any
    ) -> list[Effect]:
        return self.feed(Message(room, sender, self.event_id(), body, origin=origin, **kw))

    def dm(self, user: UserID, body: str = "hei", **kw: Any) -> list[Effect]:
        return self.msg(dm_room(user), user, body, origin=Origin.DIRECT, **kw)

    def lobby(self, user: UserID, body: str = "hei", **kw: Any) -> list[Effect]:
        return self.msg(LOBBY, user, body, origin=Origin.LOBBY, **kw)

    def staff(self, user: UserID, body: str) -> list[Effect]:
        return self.msg(STAFF_ROOM, user, body, origin=Origin.STAFF)

    def on_duty(self, *users: UserID) -> None:
        for u in users:
            self.staff(u, "!på")
            self.advance(timedelta(seconds=1))  # so that longest_idle has an order

    def chatter_says(
        self, s: Session, body: str, kind: Kind = Kind.TEXT, **kw: Any
    ) -> list[Effect]:
        assert s.chatter_room is not None
        return self.msg(s.chatter_room, s.chatter, body, kind=kind, **kw)

    def volunteer_says(
        self, s: Session, body: str, kind: Kind = Kind.TEXT, **kw: Any
    ) -> list[Effect]:
        assert s.volunteer is not None
        assert s.volunteer_room is not None
        return self.msg(s.volunteer_room, s.volunteer, body, kind=kind, **kw)

    # -- flows --------------------------------------------------------------------------

    def session_of(self, user: UserID) -> Session:
        """The chatter's newest conversation."""
        return max((s for s in self.h.sessions.values() if s.chatter == user), key=lambda s: s.id)

    def join_chatter(self, s: Session) -> list[Effect]:
        assert s.chatter_room is not None
        return self.feed(Joined(s.chatter_room, s.chatter))

    def arrive(self, user: UserID, body: str = "hei") -> Session:
        """A chatter writes a DM and joins the room made for them."""
        self.dm(user, body)
        s = self.session_of(user)
        self.join_chatter(s)
        return s

    def offer_to(self, s: Session, volunteer: UserID) -> Offer:
        found = [o for o in s.offers if o.volunteer == volunteer and o.state is OfferState.PENDING]
        assert len(found) == 1, f"pending offers to {volunteer}: {s.offers}"
        return found[0]

    def pending_to(self, s: Session) -> list[UserID]:
        return [o.volunteer for o in s.pending_offers()]

    def accept(self, s: Session, volunteer: UserID) -> list[Effect]:
        room = self.offer_to(s, volunteer).room
        assert room is not None
        return self.feed(Joined(room, volunteer))

    def active(self, user: UserID, volunteer: UserID = ANNA) -> Session:
        """A conversation between `user` and `volunteer` (who is put on duty if needed)."""
        if not self.h.duty[volunteer].on_duty:
            self.on_duty(volunteer)
        s = self.arrive(user)
        self.accept(s, volunteer)
        return s

    def timer(
        self,
        kind: TimerKind,
        s: Session,
        *,
        offer: OfferID | None = None,
        before: timedelta | None = None,
    ) -> Timer:
        return self.h.timers[timer_key(kind, s.id, offer=offer, before=before)]

    def fire(
        self,
        kind: TimerKind,
        s: Session,
        *,
        offer: OfferID | None = None,
        before: timedelta | None = None,
    ) -> list[Effect]:
        """Let time run to the timer's due moment and fire it."""
        t = self.timer(kind, s, offer=offer, before=before)
        self.now = max(self.now, t.due)
        return self.feed(TimerFired(t.key))

    def snapshot(self) -> dict[str, Any]:
        """Everything observable of the core's state, as plain data."""
        return {
            "sessions": {sid: s.to_dict() for sid, s in self.h.sessions.items()},
            "duty": {u: v.to_dict() for u, v in self.h.duty.items()},
            "timers": {k: t.to_dict() for k, t in self.h.timers.items()},
        }


def dm_room(user: UserID) -> RoomID:
    return RoomID(f"!dm-{user.strip('@').split(':')[0]}:example.org")
