"""The core never raises on any sequence of inputs (property-based, hypothesis).

A state machine drives one `Helpline` through generated sequences of everything the world
can send it: chatters writing (DM, lobby, their room), volunteers' commands and words,
joins and leaves in known and unknown rooms, edits and redactions of anything, typing,
timers firing, rooms made or refused, purges finishing, undecryptable events, restarts
from storage. Bodies include commands, huge text, control characters and lone
surrogates. After every input: nothing raised but `IllegalTransition` (the core's own
refusal, which changes nothing), the step's changes are storable as JSON, and a restart
from storage sees the same state.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bot.core.events import (
    ChatterUnverified,
    Edit,
    Input,
    Joined,
    Kind,
    Left,
    Message,
    Origin,
    PurgeFinished,
    Redaction,
    Removed,
    RoomCreated,
    RoomFailed,
    TimerFired,
    Typing,
    Unreadable,
)
from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.machine import IllegalTransition
from tests.unit.core_helpers import ANNA, BJORN, CARL, KARI, LOBBY, STAFF_ROOM, World, dm_room

CHATTERS = [UserID(f"@c{i}:example.org") for i in range(4)]
STAFF = [ANNA, BJORN, CARL, KARI]
PEOPLE = CHATTERS + STAFF + [UserID("@stranger:elsewhere.net")]

COMMANDS = [
    "!på", "!av", "!on", "!off", "!status", "!help", "!hjelp", "!tilbake", "!slutt", "!end",
    "!forleng 5", "!forleng x", "!forleng 99999999999", "!tema angst", "!tema", "!ja", "!nei",
    "!slett", "!delete", "!alert", "!blokker", "!", "!!", "! på", "!PÅ",
]  # fmt: skip

bodies = st.one_of(
    st.sampled_from(COMMANDS),
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=None), max_size=50),  # lone surrogates too
    st.builds(lambda n: "x" * n, st.integers(0, 70_000)),
    st.sampled_from(["", " ", "\n", "\x00", "\ud800", "@room", "<b>hei</b>"]),
)
kinds = st.sampled_from(list(Kind))
origins = st.sampled_from(list(Origin))


class CoreUnderFire(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w = World()
        self.n = 0

    # -- what we can point at ---------------------------------------------------------

    def rooms(self) -> list[RoomID]:
        known = [STAFF_ROOM, LOBBY, RoomID("!nowhere:example.org")]
        known += [dm_room(c) for c in CHATTERS]
        for s in self.w.h.sessions.values():
            if s.chatter_room:
                known.append(s.chatter_room)
            known += [o.room for o in s.offers if o.room]
        return known

    def eid(self) -> EventID:
        self.n += 1
        return EventID(f"$f{self.n}")

    def feed(self, inp: Input) -> None:
        try:
            self.w.feed(inp)
        except IllegalTransition:
            self.w.h.take_changes()

    # -- rules ------------------------------------------------------------------------

    @rule(who=st.sampled_from(CHATTERS), body=bodies)
    def dm(self, who: UserID, body: str) -> None:
        self.feed(Message(dm_room(who), who, self.eid(), body, origin=Origin.DIRECT))

    @rule(who=st.sampled_from(PEOPLE), body=bodies, kind=kinds, origin=origins, data=st.data())
    def writes(self, who: UserID, body: str, kind: Kind, origin: Origin, data: st.DataObject):
        room = data.draw(st.sampled_from(self.rooms()))
        url = data.draw(st.sampled_from([None, "mxc://example.org/x", "mxc://", "http://x"]))
        self.feed(Message(room, who, self.eid(), body, kind, origin, media_url=url))

    @rule(who=st.sampled_from(STAFF), body=st.sampled_from(COMMANDS))
    def staff_command(self, who: UserID, body: str) -> None:
        self.feed(Message(STAFF_ROOM, who, self.eid(), body, origin=Origin.STAFF))

    @rule(who=st.sampled_from(PEOPLE), data=st.data(), join=st.booleans())
    def membership(self, who: UserID, data: st.DataObject, join: bool) -> None:
        room = data.draw(st.sampled_from(self.rooms()))
        self.feed(Joined(room, who) if join else Left(room, who))

    @rule(data=st.data())
    def the_bot_is_removed(self, data: st.DataObject) -> None:
        self.feed(Removed(data.draw(st.sampled_from(self.rooms()))))

    @rule(data=st.data())
    def someone_accepts_or_joins(self, data: st.DataObject) -> None:
        """The moves that take a conversation deeper, so the sequences reach them."""
        moves: list[Input] = []
        for s in self.w.h.sessions.values():
            if s.chatter_room:
                moves.append(Joined(s.chatter_room, s.chatter))
            moves += [Joined(o.room, o.volunteer) for o in s.pending_offers() if o.room]
        for v in STAFF[:3]:
            if not self.w.h.duty[v].on_duty:
                moves.append(Message(STAFF_ROOM, v, EventID("$duty"), "!på", origin=Origin.STAFF))
        if moves:
            move = data.draw(st.sampled_from(moves))
            if isinstance(move, Message):
                move = Message(move.room, move.sender, self.eid(), move.body, origin=move.origin)
            self.feed(move)

    @rule(who=st.sampled_from(PEOPLE), body=bodies, data=st.data(), redact=st.booleans())
    def edits(self, who: UserID, body: str, data: st.DataObject, redact: bool) -> None:
        room = data.draw(st.sampled_from(self.rooms()))
        target = EventID(f"$f{data.draw(st.integers(0, self.n + 1))}")
        if redact:
            self.feed(Redaction(room, who, self.eid(), target))
        else:
            self.feed(Edit(room, who, self.eid(), target, body))

    @rule(who=st.sampled_from(PEOPLE), data=st.data(), typing=st.booleans())
    def types(self, who: UserID, data: st.DataObject, typing: bool) -> None:
        self.feed(Typing(data.draw(st.sampled_from(self.rooms())), who, typing))

    @rule(data=st.data())
    def a_timer_fires(self, data: st.DataObject) -> None:
        timers = sorted(self.w.h.timers.values(), key=lambda t: t.key)
        if timers:
            t = data.draw(st.sampled_from(timers))
            self.w.now = max(self.w.now, t.due)
            self.feed(TimerFired(t.key))
        else:
            self.feed(TimerFired(data.draw(st.text(max_size=20))))

    @rule(minutes=st.integers(0, 600))
    def time_passes(self, minutes: int) -> None:
        self.w.advance(timedelta(minutes=minutes))

    @rule(sid=st.integers(0, 12), offer=st.none() | st.integers(0, 12), data=st.data())
    def adapter_answers(self, sid: int, offer: int | None, data: st.DataObject) -> None:
        oid = OfferID(offer) if offer is not None else None
        match data.draw(st.sampled_from(["created", "failed", "purged"])):
            case "created":
                # A new room each time: a homeserver never makes the same room twice.
                self.n += 1
                room = RoomID(f"!made{self.n}:example.org")
                self.feed(RoomCreated(SessionID(sid), oid, room))
            case "failed":
                self.feed(RoomFailed(SessionID(sid), oid))
            case _:
                result = data.draw(st.sampled_from(["verified", "failed: x", "", "left"]))
                self.feed(PurgeFinished(SessionID(sid), result))

    @rule(who=st.sampled_from(PEOPLE), origin=origins, untrusted=st.booleans(), data=st.data())
    def unreadable(self, who: UserID, origin: Origin, untrusted: bool, data: st.DataObject):
        room = data.draw(st.sampled_from(self.rooms()))
        self.feed(Unreadable(room, who, self.eid(), origin, untrusted))

    @rule(who=st.sampled_from(PEOPLE), data=st.data())
    def unverified(self, who: UserID, data: st.DataObject) -> None:
        self.feed(ChatterUnverified(data.draw(st.sampled_from(self.rooms())), who))

    @rule()
    def restart(self) -> None:
        before = self.w.snapshot()
        self.w.restart()
        assert self.w.snapshot() == before

    @invariant()
    def sessions_are_consistent(self) -> None:
        for s in self.w.h.sessions.values():
            assert s.chatter in CHATTERS or s.chatter.startswith("@")
            for room in [s.chatter_room, *(o.room for o in s.offers)]:
                if room is not None:
                    hit = self.w.h.session_for_room(room)
                    assert hit is not None
                    assert hit[0].id == s.id


CoreUnderFire.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_the_core_never_raises = CoreUnderFire.TestCase
