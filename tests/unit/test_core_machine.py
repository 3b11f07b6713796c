"""The conversation state machine, driven through `Helpline.handle` with a hand-set clock.

Each test feeds inputs as the Matrix adapter would and asserts on the effects (Text keys and
params, never rendered wording) and on the stored state. See `core_helpers` for the World.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from bot.core import commands
from bot.core.commands import Audience
from bot.core.events import (
    CreateRoom,
    Edit,
    Joined,
    Kind,
    Left,
    Message,
    Origin,
    Purge,
    PurgeFinished,
    PurgeStalled,
    Receipt,
    RecordMedia,
    Redact,
    Redaction,
    RedactRoom,
    Relay,
    RelayEdit,
    RelayReceipt,
    RelayRedaction,
    Removed,
    Retire,
    RoomFailed,
    RoomRef,
    Say,
    SetPersona,
    SetTyping,
    TimerFired,
    Typing,
    Withdraw,
)
from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.machine import TRANSITIONS, IllegalTransition, check, scrub
from bot.core.model import (
    Hours,
    Interval,
    Offer,
    OfferState,
    Outcome,
    ReadReceipts,
    Role,
    Session,
    Source,
    State,
    Strategy,
    Timer,
    TimerKind,
    VolunteerState,
    timer_key,
)
from tests.unit.core_helpers import (
    ANNA,
    BJORN,
    CARL,
    KARI,
    LOBBY,
    STAFF_ROOM,
    TOPICS,
    World,
    chatter,
    dm_room,
    keys,
    of,
    policy,
    said,
)

C1, C2, C3 = chatter(1), chatter(2), chatter(3)
MIN = timedelta(minutes=1)


def chatter_ref(s: Session) -> RoomRef:
    return RoomRef(s.id, Role.CHATTER)


def volunteer_ref(s: Session, volunteer: UserID | None = None) -> RoomRef:
    wanted = volunteer or s.volunteer
    offer = next(o for o in reversed(s.offers) if o.volunteer == wanted)
    return RoomRef(s.id, Role.VOLUNTEER, offer.id)


def says_to(effects: list[Any], to: Any) -> list[str]:
    return [e.text.key for e in of(effects, Say) if e.to == to]


# ======================================================================================
# the transition table


def reach_consent() -> tuple[World, Session]:
    w = World(policy(consent_required=True))
    return w, w.arrive(C1)


def reach_waiting() -> tuple[World, Session]:
    w = World()
    return w, w.arrive(C1)


def reach_offered() -> tuple[World, Session]:
    w = World()
    w.on_duty(ANNA)
    return w, w.arrive(C1)


def reach_active() -> tuple[World, Session]:
    w = World()
    return w, w.active(C1)


def reach_ending() -> tuple[World, Session]:
    w, s = reach_active()
    w.chatter_says(s, "!slutt")
    return w, s


def reach_purging() -> tuple[World, Session]:
    w, s = reach_ending()
    w.fire(TimerKind.PURGE, s)
    return w, s


def reach_closed() -> tuple[World, Session]:
    w, s = reach_purging()
    w.feed(PurgeFinished(s.id, "verified"))
    return w, s


REACH: dict[State, Callable[[], tuple[World, Session]]] = {
    State.CONSENT: reach_consent,
    State.WAITING: reach_waiting,
    State.OFFERED: reach_offered,
    State.ACTIVE: reach_active,
    State.ENDING: reach_ending,
    State.PURGING: reach_purging,
    State.CLOSED: reach_closed,
}


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_every_state_is_reachable(state: State) -> None:
    _, s = REACH[state]()
    assert s.state is state


ILLEGAL = [(a, b) for a in State for b in State if b not in TRANSITIONS[a]]


@pytest.mark.parametrize(
    ("current", "wanted"), ILLEGAL, ids=[f"{a.value}->{b.value}" for a, b in ILLEGAL]
)
def test_illegal_move_raises_precisely_and_changes_nothing(current: State, wanted: State) -> None:
    w, s = REACH[current]()
    w.h.take_changes()
    before = w.snapshot(), s.to_dict()
    with pytest.raises(IllegalTransition) as raised:
        check(s, wanted)
    allowed = ", ".join(sorted(x.value for x in TRANSITIONS[current])) or "none"
    assert str(raised.value) == (
        f"session {s.id}: cannot go from {current.value} to {wanted.value} (allowed: {allowed})"
    )
    assert (raised.value.session_id, raised.value.current, raised.value.wanted) == (
        s.id,
        current,
        wanted,
    )
    with pytest.raises(IllegalTransition):
        w.h._move(s, wanted)
    assert (w.snapshot(), s.to_dict()) == before
    assert w.h.take_changes().empty()


# The compound steps (end, accept, requeue, purge) must refuse before their first change.
# They are private; these calls hold them to the module's rule, not to their signatures.
def _end(w: World, s: Session) -> None:
    w.h._end(s, Outcome.COMPLETED, w.now, by=None)


def _accept(w: World, s: Session) -> None:
    w.h._accept(s, s.offers[0] if s.offers else Offer(OfferID(99), ANNA, w.now), w.now)


def _requeue(w: World, s: Session) -> None:
    w.h._requeue(s, w.now, volunteer_left=True)


def _start_purge(w: World, s: Session) -> None:
    w.h._start_purge(s)


STEP_TARGET = {_end: State.ENDING, _accept: State.ACTIVE, _requeue: State.WAITING}
STEP_TARGET[_start_purge] = State.PURGING
REFUSED_STEPS = [
    (step, state)
    for step, target in STEP_TARGET.items()
    for state in State
    if target not in TRANSITIONS[state] and state is not State.CLOSED
]


@pytest.mark.parametrize(
    ("step", "state"),
    REFUSED_STEPS,
    ids=[f"{step.__name__}-from-{state.value}" for step, state in REFUSED_STEPS],
)
def test_refused_step_changes_nothing(step: Callable[[World, Session], None], state: State) -> None:
    w, s = REACH[state]()
    w.h.take_changes()
    before = w.snapshot()
    with pytest.raises(IllegalTransition):
        step(w, s)
    assert w.snapshot() == before
    assert w.h.take_changes().empty()
    assert w.h._effects == []


def to_waiting_by_consent(w: World, s: Session) -> None:
    w.chatter_says(s, "!ja")


def to_ending_by_end(w: World, s: Session) -> None:
    w.chatter_says(s, "!slutt")


def to_offered_by_duty(w: World, s: Session) -> None:
    w.on_duty(ANNA)


def to_ending_by_queue_timeout(w: World, s: Session) -> None:
    w.fire(TimerKind.QUEUE_MAX_WAIT, s)


def to_waiting_by_off_duty(w: World, s: Session) -> None:
    w.staff(ANNA, "!av")


def to_active_by_join(w: World, s: Session) -> None:
    w.accept(s, ANNA)


def to_ending_by_leaving(w: World, s: Session) -> None:
    assert s.chatter_room is not None
    w.feed(Left(s.chatter_room, s.chatter))


def to_waiting_by_handback(w: World, s: Session) -> None:
    w.staff(ANNA, "!av")  # off duty, keeps the conversation, then hands it back
    w.volunteer_says(s, "!tilbake")


def to_purging_by_timer(w: World, s: Session) -> None:
    w.fire(TimerKind.PURGE, s)


def to_closed_by_purge(w: World, s: Session) -> None:
    w.feed(PurgeFinished(s.id, "verified"))


LEGAL_MOVES = [
    (State.CONSENT, State.WAITING, to_waiting_by_consent),
    (State.CONSENT, State.ENDING, to_ending_by_end),
    (State.WAITING, State.OFFERED, to_offered_by_duty),
    (State.WAITING, State.ENDING, to_ending_by_queue_timeout),
    (State.OFFERED, State.WAITING, to_waiting_by_off_duty),
    (State.OFFERED, State.ACTIVE, to_active_by_join),
    (State.OFFERED, State.ENDING, to_ending_by_leaving),
    (State.ACTIVE, State.WAITING, to_waiting_by_handback),
    (State.ACTIVE, State.ENDING, to_ending_by_end),
    (State.ENDING, State.PURGING, to_purging_by_timer),
    (State.PURGING, State.CLOSED, to_closed_by_purge),
]


def test_legal_move_table_covers_transitions() -> None:
    legal = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert {(a, b) for a, b, _ in LEGAL_MOVES} == legal


@pytest.mark.parametrize(
    ("start", "end", "act"),
    LEGAL_MOVES,
    ids=[f"{a.value}->{b.value}" for a, b, _ in LEGAL_MOVES],
)
def test_every_legal_move_is_reachable_by_inputs(
    start: State, end: State, act: Callable[[World, Session], None]
) -> None:
    w, s = REACH[start]()
    act(w, s)
    assert s.state is end
    assert (s.id in w.h.sessions) is (end is not State.CLOSED)


# ======================================================================================
# intake


def test_dm_intake_creates_a_room_and_welcomes_only_after_the_join() -> None:
    w = World()
    w.on_duty(ANNA)
    fx = w.dm(C1, "hei, er det noen der?")
    s = w.session_of(C1)
    assert (s.state, s.source, s.source_room, s.chatter_joined) == (
        State.WAITING,
        Source.DIRECT,
        dm_room(C1),
        False,
    )
    assert of(fx, CreateRoom) == [CreateRoom(chatter_ref(s), C1, "Alltidhjelp")]
    assert keys(fx) == ["intake.invited"]
    assert said(fx, "intake.invited").to == dm_room(C1)
    assert s.offers == []  # nobody is offered a chatter who is not there yet

    fx = w.join_chatter(s)
    welcome = said(fx, "welcome")
    assert welcome.to == chatter_ref(s)
    assert welcome.text.params == {"position": 1, "minutes": 2}
    assert s.state is State.OFFERED
    assert [c.invite for c in of(fx, CreateRoom)] == [ANNA]
    assert [c.persona for c in of(fx, CreateRoom)] == [f"Chatter #{s.number}"]


def test_lobby_intake_redacts_first_and_holds_the_message_for_the_volunteer() -> None:
    w = World()
    w.on_duty(ANNA)
    fx = w.lobby(C1, "jeg har det vondt")
    s = w.session_of(C1)
    assert isinstance(fx[0], Redact)
    assert fx[0].room == LOBBY
    assert [type(e) for e in fx].index(Redact) < [type(e) for e in fx].index(CreateRoom)
    assert says_to(fx, LOBBY) == []  # nothing is said where others read
    assert (s.source, s.source_room) == (Source.LOBBY, None)
    assert [h.body for h in s.held] == ["jeg har det vondt"]
    lobby_event = fx[0].event_id
    assert s.held[0].event_id == lobby_event

    w.join_chatter(s)
    fx = w.accept(s, ANNA)
    assert of(fx, Relay) == [Relay(volunteer_ref(s), "jeg har det vondt", lobby_event)]


@pytest.mark.parametrize(
    ("allowed", "user", "served"),
    [
        ({"*"}, "@x:anywhere.net", True),
        ({"example.org"}, "@x:example.org", True),
        ({"example.org"}, "@x:evil.example", False),
        ({"example.org"}, "@x:sub.example.org", False),
        ({"example.org", "discord.example.org"}, "@_discord_42:discord.example.org", True),
    ],
)
def test_allowed_servers(allowed: set[str], user: str, served: bool) -> None:
    w = World(policy(allowed_servers=frozenset(allowed)))
    dm_fx = w.dm(UserID(user))
    lobby_fx = w.lobby(UserID(user.replace("@", "@lobby-")))
    assert bool(of(dm_fx, CreateRoom)) is served
    assert bool(of(lobby_fx, CreateRoom)) is served
    assert isinstance(lobby_fx[0], Redact)  # the lobby is cleaned whatever happens
    assert len(w.h.sessions) == (2 if served else 0)
    if not served:  # never silence: whom the line serves, once per room
        assert keys(dm_fx) == ["intake.other_server"]
        assert said(dm_fx, "intake.other_server").text.params["server"] == ", ".join(
            sorted(allowed)
        )
        assert keys(lobby_fx) == ["intake.other_server"]
        assert w.dm(UserID(user)) == []
        # A lobby is one room: the next stranger there is not told again.
        assert keys(w.lobby(UserID(user.replace("@", "@third-")))) == []


def test_someone_from_a_server_not_served_is_pointed_at_the_web_chat() -> None:
    w = World(
        policy(allowed_servers=frozenset({"example.org"}), web_chat_url="https://chat.example.org")
    )
    fx = w.dm(UserID("@x:school.example"))
    told = said(fx, "intake.other_server_web")
    assert told.text.params == {"server": "example.org", "url": "https://chat.example.org"}
    assert not of(fx, CreateRoom)


def test_a_blocked_chatter_gets_no_conversation_and_the_emergency_numbers_once() -> None:
    w = World()
    w.blocked_before(C1)
    assert keys(w.dm(C1)) == ["blocked.direct"]
    assert w.dm(C1) == []  # the same day: told already
    assert of(w.lobby(C1), Redact)
    assert not of(w.log, CreateRoom)
    assert w.h.sessions == {}
    assert w.dm(C2) != []  # only that one


def end_and_purge(w: World, s: Session) -> None:
    w.chatter_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    w.feed(PurgeFinished(s.id, "verified"))


def test_daily_cap() -> None:
    w = World(policy(sessions_per_day=2))
    for _ in range(2):
        end_and_purge(w, w.arrive(C1))
    fx = w.dm(C1)
    assert keys(fx) == ["intake.daily_cap"]
    assert said(fx, "intake.daily_cap").to == dm_room(C1)
    assert w.h.sessions == {}
    assert keys(w.lobby(C1)) == []  # in the lobby: redacted, no answer where others read
    assert w.h.sessions == {}
    assert w.arrive(C2).state is State.WAITING  # a cap per chatter
    w.advance(timedelta(days=1))
    assert w.arrive(C1).state is State.WAITING


def test_daily_cap_counts_local_days() -> None:
    # 22:30 UTC is 23:30 in Oslo; an hour later it is the next day there, not in UTC.
    w = World(policy(sessions_per_day=1), now=datetime(2026, 3, 2, 22, 30, tzinfo=UTC))
    end_and_purge(w, w.arrive(C1))
    w.now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert w.arrive(C1).state is State.WAITING


def test_daily_cap_counts_conversations_not_refusals() -> None:
    hours = Hours(always_open=False, weekly=mondays(Interval(time(14), time(23))))
    w = World(policy(sessions_per_day=1, hours=hours), now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    for _ in range(3):
        assert keys(w.dm(C1)) == ["reject.closed_hours"]
    w.now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 15:00 in Oslo: open
    assert w.arrive(C1).state is State.WAITING


def test_already_open_session() -> None:
    w = World()
    w.dm(C1)
    s = w.session_of(C1)
    fx = w.dm(C1, "hallo?")
    assert keys(fx) == ["intake.already_invited"]
    assert said(fx, "intake.already_invited").to == dm_room(C1)
    assert keys(w.lobby(C1)) == []  # lobby: only the redaction, not where others read
    w.join_chatter(s)
    fx = w.dm(C1, "hallo?")
    assert said(fx, "intake.already_open").to == chatter_ref(s)
    fx = w.lobby(C1, "hallo?")
    assert isinstance(fx[0], Redact)
    assert said(fx, "intake.already_open").to == chatter_ref(s)
    assert len(w.h.sessions) == 1
    assert not of(fx, CreateRoom)


def mondays(interval: Interval) -> tuple[tuple[Interval, ...], ...]:
    """Weekly hours open only on Mondays, in `interval`."""
    return ((interval,), (), (), (), (), (), ())


CLOSED_NOW = Hours(always_open=False, weekly=mondays(Interval(time(20), time(23))))
TODAY_AT_20 = {"days": 0, "weekday": 0, "day": 2, "month": 3, "hour": 20, "minute": 0}


def test_closed_hours_dm_is_answered_in_the_dm_without_a_session() -> None:
    w = World(policy(hours=CLOSED_NOW))
    fx = w.dm(C1)
    assert fx == [Say(dm_room(C1), said(fx, "reject.closed_hours").text, "nb")]
    # Monday 13:00 in Oslo: it opens today at 20:00, on the helpline's clock.
    assert said(fx, "reject.closed_hours").text.params == {"opens": TODAY_AT_20}
    assert w.h.sessions == {}
    [record] = w.changes.stats
    assert (record.outcome, record.source, record.purge_result) == (
        "closed_hours",
        "direct",
        "nothing_to_purge",
    )


def test_closed_hours_lobby_gets_a_session_that_ends() -> None:
    w = World(policy(hours=CLOSED_NOW))
    fx = w.lobby(C1)
    s = w.session_of(C1)
    assert isinstance(fx[0], Redact)
    assert of(fx, CreateRoom)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.CLOSED_HOURS)
    fx = w.join_chatter(s)
    assert says_to(fx, chatter_ref(s)) == ["reject.closed_hours"]
    assert said(fx, "reject.closed_hours").text.params == {"opens": TODAY_AT_20}
    assert "welcome" not in keys(fx)
    assert w.timer(TimerKind.PURGE, s).due == w.now + timedelta(minutes=2)
    fx = w.fire(TimerKind.PURGE, s)
    assert s.all_rooms() == [s.chatter_room]
    assert of(fx, Purge) == [Purge(s.id, tuple(s.all_rooms()), (C1,))]
    w.feed(PurgeFinished(s.id, "verified"))
    assert [r.outcome for r in w.changes.stats] == ["closed_hours"]


def test_queue_full() -> None:
    w = World(policy(queue_max_length=2))
    w.arrive(C1)
    w.arrive(C2)
    fx = w.dm(C3)
    assert keys(fx) == ["reject.queue_full"]
    assert said(fx, "reject.queue_full").to == dm_room(C3)
    assert len(w.h.sessions) == 2
    fx = w.lobby(C3)
    s = w.session_of(C3)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.QUEUE_FULL)
    assert keys(w.join_chatter(s)) == ["reject.queue_full"]


@pytest.mark.parametrize("yes", ["!ja", "!yes", "!JA"])
def test_consent_step(yes: str) -> None:
    w = World(policy(consent_required=True))
    w.on_duty(ANNA)
    fx = w.dm(C1, "hei")
    s = w.session_of(C1)
    assert (s.state, keys(fx)) == (State.CONSENT, ["intake.invited"])
    assert TimerKind.QUEUE_MAX_WAIT in {t.kind for t in w.h.timers.values()}
    assert keys(w.join_chatter(s)) == ["consent"]
    assert s.offers == []  # no volunteer before consent
    w.chatter_says(s, "jeg vil prate")  # held, not relayed
    fx = w.chatter_says(s, yes)
    assert s.state is State.OFFERED
    assert said(fx, "welcome").text.params["position"] == 1
    fx = w.accept(s, ANNA)
    assert [r.body for r in of(fx, Relay)] == ["hei", "jeg vil prate"]


def test_consent_never_given_ends_with_no_consent() -> None:
    w = World(policy(consent_required=True))
    s = w.arrive(C1)
    w.fire(TimerKind.QUEUE_MAX_WAIT, s)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.NO_CONSENT)


def test_nobody_on_duty() -> None:
    w = World()
    w.dm(C1)
    fx = w.join_chatter(w.session_of(C1))
    assert said(fx, "welcome.nobody_on_duty").text.params == {"position": 1, "minutes": None}


def test_staff_dm_is_not_intake() -> None:
    w = World()
    fx = w.dm(ANNA, "hei")
    assert keys(fx) == ["staff.dm_hint"]
    assert w.h.sessions == {}
    assert w.lobby(KARI) == []  # staff in the lobby: left alone
    assert World(policy(direct_messages=False)).dm(C1) == []


def test_room_failed_for_the_chatter_tells_them_in_the_dm() -> None:
    w = World()
    w.h.handle(_dm_message(w, C1), w.now)  # no adapter answer this time
    s = w.session_of(C1)
    fx = w.feed(RoomFailed(s.id, None))
    assert (s.state, s.outcome) == (State.ENDING, Outcome.ROOM_FAILED)
    assert said(fx, "intake.room_failed").to == dm_room(C1)


def _dm_message(w: World, user: UserID) -> Message:
    return Message(dm_room(user), user, w.event_id(), "hei", origin=Origin.DIRECT)


# ======================================================================================
# offers


def test_accept_by_joining_the_offer_room() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1, "hei")
    offer = w.offer_to(s, ANNA)
    w.advance(2 * MIN)
    fx = w.accept(s, ANNA)
    vref = RoomRef(s.id, Role.VOLUNTEER, offer.id)
    assert (s.state, s.volunteer, s.volunteer_room, offer.state) == (
        State.ACTIVE,
        ANNA,
        offer.room,
        OfferState.ACCEPTED,
    )
    accepted = said(fx, "accepted.volunteer")
    assert accepted.to == vref
    assert accepted.text.params == {
        "number": s.number,
        "language": "nb",
        "waited": 2,
        "minutes": 60,
        "requeued": False,
    }
    assert SetPersona(chatter_ref(s), "Anna") in fx
    assert said(fx, "accepted.chatter").text.params == {"alias": "Anna"}
    assert [(r.to, r.body) for r in of(fx, Relay)] == [(vref, "hei")]
    assert s.held == []
    assert s.first_wait == 2 * MIN
    kinds = {t.kind for t in w.h.timers.values()}
    assert kinds == {
        TimerKind.WARN,
        TimerKind.MAX_DURATION,
        TimerKind.IDLE_WARN,
        TimerKind.IDLE_END,
        TimerKind.VOLUNTEER_SILENCE,  # the held "hei" waits for an answer
    }
    assert w.h.duty[ANNA].last_assigned_at == w.now


def test_offer_timeout_withdraws_counts_a_lapse_and_offers_to_the_next() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    assert w.timer(TimerKind.OFFER_TIMEOUT, s, offer=offer.id).due == w.now + timedelta(seconds=90)
    fx = w.fire(TimerKind.OFFER_TIMEOUT, s, offer=offer.id)
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), ANNA)]
    assert offer.state is OfferState.WITHDRAWN
    assert w.h.duty[ANNA].lapses == 1
    assert w.h.duty[ANNA].on_duty
    assert [c.invite for c in of(fx, CreateRoom)] == [BJORN]
    assert s.state is State.OFFERED
    assert w.pending_to(s) == [BJORN]


def test_lapses_put_a_volunteer_off_duty_and_tell_the_staff() -> None:
    w = World(policy(lapses_before_off_duty=2))
    w.on_duty(ANNA)
    s = w.arrive(C1)
    w.fire(TimerKind.OFFER_TIMEOUT, s, offer=w.offer_to(s, ANNA).id)
    assert w.pending_to(s) == [ANNA]  # nobody else: she gets another chance
    fx = w.fire(TimerKind.OFFER_TIMEOUT, s, offer=w.offer_to(s, ANNA).id)
    notice = said(fx, "staff.lapsed_off_duty")
    assert notice.to == STAFF_ROOM
    assert notice.text.params == {"alias": "Anna", "lapses": 2}
    assert not w.h.duty[ANNA].on_duty
    assert (s.state, w.pending_to(s)) == (State.WAITING, [])
    assert ANNA in w.changes.volunteers


def test_accepting_resets_lapses() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1)
    w.fire(TimerKind.OFFER_TIMEOUT, s, offer=w.offer_to(s, ANNA).id)
    w.accept(s, ANNA)
    assert w.h.duty[ANNA].lapses == 0


def test_decline_reoffers_without_a_lapse() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    assert offer.room is not None
    fx = w.feed(Left(offer.room, ANNA))
    assert offer.state is OfferState.DECLINED
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), ANNA)]
    assert [c.invite for c in of(fx, CreateRoom)] == [BJORN]
    assert w.h.duty[ANNA].lapses == 0
    assert timer_key(TimerKind.OFFER_TIMEOUT, s.id, offer=offer.id) not in w.h.timers


def test_broadcast_first_join_wins_the_others_are_withdrawn() -> None:
    w = World(policy(strategy=Strategy.BROADCAST))
    w.on_duty(ANNA, BJORN, CARL)
    s = w.arrive(C1)  # nb: Anna and Bjørn speak it, Carl does not
    assert sorted(w.pending_to(s)) == sorted([ANNA, BJORN])
    lost = w.offer_to(s, ANNA)
    fx = w.accept(s, BJORN)
    assert (s.state, s.volunteer) == (State.ACTIVE, BJORN)
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s.id, Role.VOLUNTEER, lost.id), ANNA)]
    assert lost.state is OfferState.WITHDRAWN
    assert not any(k.startswith("offer_timeout") for k in w.h.timers)
    w.h.take_changes()
    before = w.snapshot()
    assert lost.room is not None
    assert w.feed(Joined(lost.room, ANNA)) == []  # late: nothing happens
    assert w.snapshot() == before
    assert w.changes.empty()


def test_late_join_to_a_lapsed_offer_does_nothing() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    w.fire(TimerKind.OFFER_TIMEOUT, s, offer=offer.id)
    assert offer.room is not None
    before = w.snapshot()
    assert w.feed(Joined(offer.room, ANNA)) == []
    assert w.snapshot() == before
    assert s.state is State.OFFERED


def test_offer_room_failed_goes_to_the_next_volunteer() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    fx = w.feed(RoomFailed(s.id, offer.id))
    assert offer.state is OfferState.WITHDRAWN
    assert w.h.duty[ANNA].lapses == 0
    assert [c.invite for c in of(fx, CreateRoom)] == [BJORN]


def test_next_waiting_chatter_is_offered_when_a_volunteer_frees_up() -> None:
    w = World()
    w.on_duty(ANNA)
    s1 = w.active(C1)
    s2 = w.arrive(C2)
    assert (s2.state, s2.offers) == (State.WAITING, [])  # Anna is at her cap
    fx = w.chatter_says(s1, "!slutt")
    assert [c.invite for c in of(fx, CreateRoom)] == [ANNA]
    assert s2.state is State.OFFERED


# ======================================================================================
# relay


def test_relay_both_ways_addressed_by_room_ref() -> None:
    w = World()
    s = w.active(C1)
    fx = w.chatter_says(s, "hei")
    assert of(fx, Relay) == [Relay(volunteer_ref(s), "hei", of(fx, Relay)[0].source)]
    fx = w.volunteer_says(s, "hei, jeg heter Anna")
    assert of(fx, Relay) == [Relay(chatter_ref(s), "hei, jeg heter Anna", of(fx, Relay)[0].source)]
    fx = w.chatter_says(s, "vinker", kind=Kind.EMOTE)
    assert of(fx, Relay)[0].emote is True
    assert [type(e) for e in fx] == [Relay]  # nothing else, nowhere else


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("> <@anna:example.org> hei\n> på deg\n\nsvar", "svar"),
        ("ikke et sitat\n> <@anna:example.org> hei\n\nsvar", "ikke et sitat\n> <Anna> hei\n\nsvar"),
        ("spør @anna:example.org", "spør Anna"),
        ("jeg er @chatter1:example.org", "jeg er Chatter #1234"),
        ("se https://matrix.to/#/@anna:example.org", "se [lenke fjernet / link removed]"),
        ("se <https://matrix.to/#/%40anna%3Aexample.org>", "se <[lenke fjernet / link removed]>"),
        ("helt vanlig", "helt vanlig"),
    ],
)
def test_scrub(body: str, shown: str) -> None:
    replacements = {"@anna:example.org": "Anna", "@chatter1:example.org": "Chatter #1234"}
    assert scrub(body, replacements) == shown


def test_relay_scrubs_ids_both_ways() -> None:
    w = World()
    s = w.active(C1)
    fx = w.chatter_says(s, "> <@anna:example.org> hei\n\nhei @anna:example.org")
    assert of(fx, Relay)[0].body == "hei Anna"
    fx = w.volunteer_says(s, f"du er {C1}, https://matrix.to/#/{ANNA}")
    assert of(fx, Relay)[0].body == f"du er Chatter #{s.number}, [lenke fjernet / link removed]"


def test_edits_are_mirrored() -> None:
    w = World()
    s = w.active(C1)
    assert s.chatter_room
    assert s.volunteer_room
    original = of(w.chatter_says(s, "hei"), Relay)[0].source
    fx = w.feed(Edit(s.chatter_room, C1, w.event_id(), original, f"hei {ANNA}"))
    assert fx == [RelayEdit(volunteer_ref(s), "hei Anna", original)]
    fx = w.feed(Edit(s.volunteer_room, ANNA, w.event_id(), EventID("$v1"), "hallo"))
    assert fx == [RelayEdit(chatter_ref(s), "hallo", EventID("$v1"))]
    fx = w.feed(Edit(s.chatter_room, C2, w.event_id(), original, "fremmed"))
    assert fx == []


def test_edit_and_redaction_of_a_held_message() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1, "første")
    assert s.chatter_room
    second = w.event_id()
    w.feed(_msg(s, second, "andre"))
    third = w.event_id()
    w.feed(_msg(s, third, "tredje"))
    assert w.feed(Edit(s.chatter_room, C1, w.event_id(), second, "andre, rettet")) == []
    assert w.feed(Redaction(s.chatter_room, C1, w.event_id(), third)) == []
    fx = w.accept(s, ANNA)
    assert [r.body for r in of(fx, Relay)] == ["første", "andre, rettet"]


def _msg(s: Session, event: EventID, body: str) -> Message:
    assert s.chatter_room
    return Message(s.chatter_room, s.chatter, event, body)


def test_redactions_are_mirrored() -> None:
    w = World()
    s = w.active(C1)
    assert s.chatter_room
    assert s.volunteer_room
    original = of(w.chatter_says(s, "hei"), Relay)[0].source
    fx = w.feed(Redaction(s.chatter_room, C1, w.event_id(), original))
    assert fx == [RelayRedaction(volunteer_ref(s), original)]
    fx = w.feed(Redaction(s.volunteer_room, ANNA, w.event_id(), EventID("$v1")))
    assert fx == [RelayRedaction(chatter_ref(s), EventID("$v1"))]


def test_typing_is_relayed_only_in_an_active_conversation() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1)
    assert s.chatter_room
    assert w.feed(Typing(s.chatter_room, C1, True)) == []
    w.accept(s, ANNA)
    assert s.volunteer_room
    assert w.feed(Typing(s.chatter_room, C1, True)) == [SetTyping(volunteer_ref(s), True)]
    assert w.feed(Typing(s.volunteer_room, ANNA, False)) == [SetTyping(chatter_ref(s), False)]


@pytest.mark.parametrize(
    ("setting", "to_chatter", "to_volunteer"),
    [
        (ReadReceipts.OFF, False, False),
        (ReadReceipts.VOLUNTEER_TO_CHATTER, True, False),
        (ReadReceipts.BOTH, True, True),
    ],
)
def test_read_receipts_pass_only_in_the_directions_configured(
    setting: ReadReceipts, to_chatter: bool, to_volunteer: bool
) -> None:
    w = World(policy(relay_read_receipts=setting))
    s = w.active(C1)
    assert s.chatter_room
    assert s.volunteer_room
    copy, reply = EventID("$copy-in-volunteer-room"), EventID("$copy-in-chatter-room")
    read_by_volunteer = w.feed(Receipt(s.volunteer_room, ANNA, copy))
    read_by_chatter = w.feed(Receipt(s.chatter_room, C1, reply))
    assert read_by_volunteer == ([RelayReceipt(chatter_ref(s), copy)] if to_chatter else [])
    assert read_by_chatter == ([RelayReceipt(volunteer_ref(s), reply)] if to_volunteer else [])


def test_read_receipts_of_others_or_outside_a_conversation_are_not_passed_on() -> None:
    w = World(policy(relay_read_receipts=ReadReceipts.BOTH))
    w.on_duty(ANNA)
    s = w.arrive(C1)
    assert s.chatter_room
    # Waiting: nobody to tell.
    assert w.feed(Receipt(s.chatter_room, C1, EventID("$welcome"))) == []
    w.accept(s, ANNA)
    assert s.volunteer_room
    # Someone who is not this conversation's volunteer or chatter.
    assert w.feed(Receipt(s.volunteer_room, BJORN, EventID("$x"))) == []
    assert w.feed(Receipt(s.chatter_room, C2, EventID("$x"))) == []
    assert w.feed(Receipt(STAFF_ROOM, ANNA, EventID("$x"))) == []
    w.chatter_says(s, "!slutt")
    assert w.feed(Receipt(s.volunteer_room, ANNA, EventID("$x"))) == []


@pytest.mark.parametrize(
    ("kind", "url"),
    [(Kind.MEDIA, "mxc://example.org/abc"), (Kind.MEDIA, None), (Kind.OTHER, None)],
)
@pytest.mark.parametrize("side", ["chatter", "volunteer"])
def test_media_is_refused_and_recorded_for_the_purge(
    kind: Kind, url: str | None, side: str
) -> None:
    w = World()
    s = w.active(C1)
    if side == "chatter":
        fx = w.chatter_says(s, "bilde.jpg", kind=kind, media_url=url)
        to = chatter_ref(s)
    else:
        fx = w.volunteer_says(s, "bilde.jpg", kind=kind, media_url=url)
        to = volunteer_ref(s)
    assert of(fx, Relay) == []
    assert says_to(fx, to) == ["media_refused"]
    # With who posted it: the purge deletes it only if they uploaded it.
    poster = C1 if side == "chatter" else ANNA
    assert of(fx, RecordMedia) == ([RecordMedia(s.id, url, poster)] if url else [])


@pytest.mark.parametrize("state", [State.WAITING, State.ENDING])
def test_media_outside_the_active_conversation_is_recorded_too(state: State) -> None:
    w = World()
    s = w.arrive(C1) if state is State.WAITING else w.active(C1)
    if state is State.ENDING:
        w.chatter_says(s, "!slutt")
    fx = w.chatter_says(s, "bilde.jpg", kind=Kind.MEDIA, media_url="mxc://example.org/x")
    assert of(fx, RecordMedia) == [RecordMedia(s.id, "mxc://example.org/x", C1)]
    if state is State.ENDING:
        assert s.volunteer_room
        fx = w.msg(s.volunteer_room, ANNA, "f", kind=Kind.MEDIA, media_url="mxc://example.org/y")
        assert of(fx, RecordMedia) == [RecordMedia(s.id, "mxc://example.org/y", ANNA)]


def test_too_long_is_refused() -> None:
    w = World(policy(message_max_chars=10))
    s = w.active(C1)
    fx = w.chatter_says(s, "x" * 11)
    assert of(fx, Relay) == []
    assert said(fx, "too_long").text.params == {"length": 11, "limit": 10}
    fx = w.volunteer_says(s, "y" * 11)
    assert of(fx, Relay) == []
    assert said(fx, "too_long").to == volunteer_ref(s)
    assert of(w.chatter_says(s, "x" * 10), Relay)


def test_rate_limit() -> None:
    w = World(policy(messages_per_minute=3))
    s = w.active(C1)
    for i in range(3):
        assert of(w.chatter_says(s, f"m{i}"), Relay)
        w.advance(timedelta(seconds=1))
    fx = w.chatter_says(s, "for mye")
    assert keys(fx) == ["rate_limited"]
    assert of(fx, Relay) == []
    w.advance(timedelta(seconds=60))
    assert of(w.chatter_says(s, "igjen"), Relay)


def test_messages_written_while_waiting_are_held_and_delivered_in_order() -> None:
    w = World()
    s = w.arrive(C1, "en")
    fx = w.chatter_says(s, "to")
    assert keys(fx) == []
    assert of(fx, Relay) == []
    w.chatter_says(s, "tre")
    assert [h.body for h in s.held] == ["en", "to", "tre"]
    written = [h.event_id for h in s.held]
    assert len(set(written)) == 3
    w.on_duty(ANNA)
    fx = w.accept(s, ANNA)
    vref = volunteer_ref(s)
    assert of(fx, Relay) == [
        Relay(vref, b, e) for b, e in zip(["en", "to", "tre"], written, strict=True)
    ]
    assert s.held == []
    # delivered after the volunteer is told who this is
    assert fx.index(said(fx, "accepted.volunteer")) < fx.index(of(fx, Relay)[0])


def test_first_held_message_after_a_command_intake_gets_the_notice() -> None:
    w = World()
    s = w.arrive(C1, "!hjelp")
    assert s.held == []
    assert keys(w.chatter_says(s, "hei")) == ["held"]
    assert keys(w.chatter_says(s, "hei igjen")) == []


def test_volunteer_mistyped_command_is_not_relayed() -> None:
    w = World()
    s = w.active(C1)
    fx = w.volunteer_says(s, "!xyz")
    assert of(fx, Relay) == []
    assert says_to(fx, volunteer_ref(s)) == ["unknown_command"]
    fx = w.volunteer_says(s, "!slett")  # the chatter's command: not for her, not relayed
    assert of(fx, Relay) == []
    assert keys(fx) == ["usage"]


@pytest.mark.parametrize("body", ["!!!", "!", "!hei der", "! slutt"])
def test_chatter_exclamations_are_relayed(body: str) -> None:
    w = World()
    s = w.active(C1)
    assert [r.body for r in of(w.chatter_says(s, body), Relay)] == [body]


def test_strangers_in_conversation_rooms_are_ignored() -> None:
    w = World()
    s = w.active(C1)
    assert s.chatter_room
    assert s.volunteer_room
    assert w.msg(s.chatter_room, C2, "hei") == []
    assert w.msg(s.volunteer_room, KARI, "hei") == []
    assert w.msg(RoomID("!unknown:example.org"), C1, "hei") == []


# ======================================================================================
# time


def test_warnings_before_max_duration_to_both_sides() -> None:
    w = World()
    s = w.active(C1)
    start = w.now
    assert w.timer(TimerKind.WARN, s, before=timedelta(seconds=600)).due == start + 50 * MIN
    assert w.timer(TimerKind.WARN, s, before=timedelta(seconds=120)).due == start + 58 * MIN
    assert w.timer(TimerKind.MAX_DURATION, s).due == start + 60 * MIN
    w.advance(40 * MIN)
    w.chatter_says(s, "fortsatt her")  # keeps it from idling out
    fx = w.fire(TimerKind.WARN, s, before=timedelta(seconds=600))
    assert said(fx, "warn.chatter").to == chatter_ref(s)
    assert said(fx, "warn.chatter").text.params == {"minutes": 10}
    assert said(fx, "warn.volunteer").to == volunteer_ref(s)
    assert said(fx, "warn.volunteer").text.params == {"minutes": 10, "extension_left": 30}


@pytest.mark.parametrize(
    ("requests", "granted", "replies"),
    [
        (["!forleng"], [10], ["extend.done"]),
        (["!extend 15"], [15], ["extend.done"]),
        (["!extend 1t"], [30], ["extend.done"]),
        (["!extend 20", "!extend 20"], [20, 10], ["extend.done", "extend.done"]),
        (["!extend 30", "!extend"], [30], ["extend.done", "extend.none_left"]),
    ],
)
def test_extend_up_to_the_cap(requests: list[str], granted: list[int], replies: list[str]) -> None:
    w = World()
    s = w.active(C1)
    start = w.now
    got, answers = [], []
    for body in requests:
        fx = w.volunteer_says(s, body)
        answers += says_to(fx, volunteer_ref(s))
        got += [e.text.params["minutes"] for e in of(fx, Say) if e.text.key == "extend.done"]
        chatter_told = [e for e in of(fx, Say) if e.to == chatter_ref(s)]
        assert [e.text.key for e in chatter_told] == (
            ["extend.chatter"] if "extend.done" in says_to(fx, volunteer_ref(s)) else []
        )
    assert (got, answers) == (granted, replies)
    total = sum(granted) * MIN
    assert s.extended == total
    assert w.timer(TimerKind.MAX_DURATION, s).due == start + 60 * MIN + total
    assert w.timer(TimerKind.WARN, s, before=timedelta(seconds=600)).due == start + 50 * MIN + total


def test_time_command() -> None:
    w = World()
    s = w.active(C1)
    w.advance(20 * MIN)
    w.volunteer_says(s, "!extend 5")
    fx = w.volunteer_says(s, "!tid")
    assert said(fx, "time").text.params == {"elapsed": 20, "left": 45, "extension_left": 25}


def test_max_duration_ends_the_conversation() -> None:
    w = World()
    s = w.active(C1)
    for _ in range(5):  # the chatter keeps talking, so idling never ends it
        w.advance(12 * MIN)
        w.chatter_says(s, "...")
    fx = w.fire(TimerKind.MAX_DURATION, s)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.TIMED_OUT)
    assert says_to(fx, chatter_ref(s)) == ["end.chatter.timed_out"]
    assert says_to(fx, volunteer_ref(s)) == ["end.volunteer.timed_out"]


def test_idle_warning_then_idle_end_reset_by_chatter_messages() -> None:
    w = World()
    s = w.active(C1)
    start = w.now
    assert w.timer(TimerKind.IDLE_WARN, s).due == start + 12 * MIN
    assert w.timer(TimerKind.IDLE_END, s).due == start + 15 * MIN
    w.advance(10 * MIN)
    w.chatter_says(s, "hmm")
    # A message writes no timer: the timers move themselves when they fire.
    assert not (w.changes.timers_set)
    assert not (w.changes.timers_cleared)
    fx = w.fire(TimerKind.IDLE_WARN, s)  # due at 12 min: the chatter wrote since
    assert not says_to(fx, chatter_ref(s))
    assert w.timer(TimerKind.IDLE_WARN, s).due == start + 22 * MIN
    fx = w.fire(TimerKind.IDLE_END, s)  # due at 15 min: moves too
    assert s.state is State.ACTIVE
    assert w.timer(TimerKind.IDLE_END, s).due == start + 25 * MIN
    w.volunteer_says(s, "er du der?")  # the volunteer's words do not reset it
    assert w.timer(TimerKind.IDLE_END, s).due == start + 25 * MIN
    fx = w.fire(TimerKind.IDLE_WARN, s)
    assert said(fx, "idle.warning").to == chatter_ref(s)
    assert said(fx, "idle.warning").text.params == {"minutes": 3}
    assert said(fx, "idle.volunteer").to == volunteer_ref(s)
    fx = w.fire(TimerKind.IDLE_END, s)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.CHATTER_IDLE)
    assert "end.chatter.chatter_idle" in says_to(fx, chatter_ref(s))


def test_a_message_after_the_idle_warning_arms_the_next_warning() -> None:
    w = World()
    s = w.active(C1)
    w.fire(TimerKind.IDLE_WARN, s)  # warned at 12 min
    w.chatter_says(s, "jeg er her")
    assert w.timer(TimerKind.IDLE_WARN, s).due == w.now + 12 * MIN
    assert w.timer(TimerKind.IDLE_END, s).due == w.now + 15 * MIN
    fx = w.fire(TimerKind.IDLE_WARN, s)
    assert said(fx, "idle.warning").to == chatter_ref(s)
    fx = w.fire(TimerKind.IDLE_END, s)
    assert s.outcome is Outcome.CHATTER_IDLE


def test_queue_max_wait_ends_with_queue_timeout() -> None:
    w = World()
    s = w.arrive(C1)
    assert w.timer(TimerKind.QUEUE_MAX_WAIT, s).due == w.now + 30 * MIN
    fx = w.fire(TimerKind.QUEUE_MAX_WAIT, s)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.QUEUE_TIMEOUT)
    assert says_to(fx, chatter_ref(s)) == ["end.chatter.queue_timeout"]


def test_queue_max_wait_withdraws_the_offer_out() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    fx = w.fire(TimerKind.QUEUE_MAX_WAIT, s)
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), ANNA)]
    assert (s.state, s.outcome) == (State.ENDING, Outcome.QUEUE_TIMEOUT)
    assert w.h.duty[ANNA].lapses == 0  # not her fault


def test_wait_reminders_repeat_to_the_staff_room() -> None:
    w = World()
    s = w.arrive(C1)
    fx = w.fire(TimerKind.WAIT_REMINDER, s)
    reminder = said(fx, "staff.still_waiting")
    assert reminder.to == STAFF_ROOM
    assert reminder.text.params == {"number": s.number, "language": "nb", "minutes": 3}
    fx = w.fire(TimerKind.WAIT_REMINDER, s)
    assert said(fx, "staff.still_waiting").text.params["minutes"] == 6
    w.on_duty(ANNA)
    w.accept(s, ANNA)
    assert timer_key(TimerKind.WAIT_REMINDER, s.id) not in w.h.timers


def test_stale_timers_are_ignored() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1)
    old = w.timer(TimerKind.QUEUE_MAX_WAIT, s).key
    w.accept(s, ANNA)
    w.h.take_changes()
    before = w.snapshot()
    for key in [old, "purge:999:", "nonsense"]:
        assert w.feed(TimerFired(key)) == []
        assert w.snapshot() == before
        assert w.changes.empty()


def test_timer_of_a_kind_that_no_longer_applies_is_dropped() -> None:
    # A stored IDLE_END for a conversation that is waiting again (restored from storage).
    w = World()
    s = w.arrive(C1)
    stale = Timer(TimerKind.IDLE_END, s.id, w.now)
    w.store.timers[stale.key] = stale.to_dict()
    w.restart()
    fx = w.feed(TimerFired(stale.key))
    assert fx == []
    assert w.h.sessions[s.id].state is State.WAITING
    assert w.changes.timers_cleared == {stale.key}
    assert stale.key not in w.h.timers


@pytest.mark.parametrize("kind", [TimerKind.IDLE_END, TimerKind.MAX_DURATION])
def test_overdue_timer_acts_after_a_restart(kind: TimerKind) -> None:
    w = World()
    s = w.active(C1)
    key = w.timer(kind, s).key
    w.restart()
    w.advance(3 * 60 * MIN)  # the bot was down for hours
    w.feed(TimerFired(key))
    restored = w.h.sessions[s.id]
    assert restored is not s
    assert restored.state is State.ENDING
    assert restored.outcome is (
        Outcome.CHATTER_IDLE if kind is TimerKind.IDLE_END else Outcome.TIMED_OUT
    )


def test_offer_timeout_after_a_restart_reoffers() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    key = w.timer(TimerKind.OFFER_TIMEOUT, s, offer=offer.id).key
    w.restart()
    w.advance(10 * MIN)
    fx = w.feed(TimerFired(key))
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), ANNA)]
    assert [c.invite for c in of(fx, CreateRoom)] == [BJORN]
    restored = w.h.sessions[s.id]
    assert restored.offers[-1].id > offer.id  # offer ids continue after the restart
    assert restored.offers[-1].room is not None  # the new room is known to the index
    assert w.h.session_for_room(restored.offers[-1].room) is not None


# ======================================================================================
# ending


@pytest.mark.parametrize("body", ["!slutt", "!end", "!avslutt", "!SLUTT"])
@pytest.mark.parametrize("side", [Role.CHATTER, Role.VOLUNTEER])
def test_end_from_either_side(body: str, side: Role) -> None:
    w = World(policy(ask_rating=True))
    s = w.active(C1)
    w.advance(7 * MIN)
    fx = w.chatter_says(s, body) if side is Role.CHATTER else w.volunteer_says(s, body)
    assert (s.state, s.outcome, s.ended_at) == (State.ENDING, Outcome.COMPLETED, w.now)
    assert says_to(fx, chatter_ref(s)) == ["end.chatter.completed", "rating.ask"]
    closing = said(fx, "end.volunteer.completed")
    assert closing.to == volunteer_ref(s)
    assert closing.text.params == {"number": s.number, "topics": list(TOPICS), "by": side.value}
    assert set(w.h.timers) == {timer_key(TimerKind.PURGE, s.id)}
    assert w.timer(TimerKind.PURGE, s).due == w.now + timedelta(seconds=60)


def test_end_while_waiting() -> None:
    w = World()
    s = w.arrive(C1)
    fx = w.chatter_says(s, "!end")
    assert (s.state, s.outcome) == (State.ENDING, Outcome.LEFT_WAITING)
    assert keys(fx) == ["end.chatter.left_waiting"]


def test_end_while_offered_withdraws_the_offer() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1)
    offer = w.offer_to(s, ANNA)
    fx = w.chatter_says(s, "!slutt")
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), ANNA)]
    assert (s.state, s.outcome) == (State.ENDING, Outcome.LEFT_WAITING)
    assert w.h.duty[ANNA].lapses == 0


@pytest.mark.parametrize(
    ("active", "outcome"), [(True, Outcome.CHATTER_LEFT), (False, Outcome.LEFT_WAITING)]
)
def test_chatter_leaving_ends_quietly(active: bool, outcome: Outcome) -> None:
    w = World()
    s = w.active(C1) if active else w.arrive(C1)
    assert s.chatter_room
    fx = w.feed(Left(s.chatter_room, C1))
    assert (s.state, s.outcome) == (State.ENDING, outcome)
    assert says_to(fx, chatter_ref(s)) == []  # they are gone
    if active:
        assert said(fx, "end.volunteer.chatter_left").text.params["by"] == "chatter"


@pytest.mark.parametrize("active", [True, False])
def test_the_bot_removed_from_the_chatters_room_ends_and_says_so_in_the_dm(
    active: bool,
) -> None:
    """Kicked, banned, or a state reset: the chatter's room is out of reach, so the
    conversation ends; the volunteer is told why, the chatter in the DM they wrote from."""
    w = World()
    s = w.active(C1) if active else w.arrive(C1)
    assert s.chatter_room
    fx = w.feed(Removed(s.chatter_room))
    assert (s.state, s.outcome) == (State.ENDING, Outcome.ROOM_LOST)
    assert says_to(fx, chatter_ref(s)) == []  # the room the bot is no longer in
    assert said(fx, "end.chatter.room_lost").to == dm_room(C1)
    if active:
        assert said(fx, "end.volunteer.room_lost").to == volunteer_ref(s)
    # the purge still comes, for what can be purged
    assert of(w.fire(TimerKind.PURGE, s), Purge)
    assert w.feed(Removed(s.chatter_room)) == []  # once ended, nothing more


def test_the_bot_removed_from_a_volunteers_room_is_as_if_she_left() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    assert s.volunteer == ANNA
    assert s.volunteer_room
    fx = w.feed(Removed(s.volunteer_room))
    assert says_to(fx, chatter_ref(s)) == ["requeued"]
    assert [c.invite for c in of(fx, CreateRoom)] == [BJORN]
    assert (s.state, s.priority) == (State.OFFERED, 1)


def test_the_bot_removed_from_a_room_it_does_not_know_changes_nothing() -> None:
    w = World()
    s = w.active(C1)
    before = w.snapshot()
    assert w.feed(Removed(RoomID("!elsewhere:example.org"))) == []
    assert w.snapshot() == before
    assert s.state is State.ACTIVE


def test_volunteer_leaving_requeues_with_priority() -> None:
    w = World()
    w.on_duty(ANNA)
    s1 = w.active(C1)
    w.advance(MIN)
    s2 = w.arrive(C2)  # waits: Anna is busy
    w.advance(MIN)
    w.staff(ANNA, "!av")  # off duty, still talking to C1
    old = volunteer_ref(s1)
    assert s1.volunteer_room
    fx = w.feed(Left(s1.volunteer_room, ANNA))
    assert of(fx, Retire) == [Retire(old, ANNA)]
    assert says_to(fx, chatter_ref(s1)) == ["requeued"]
    assert said(fx, "staff.requeued").to == STAFF_ROOM
    assert (s1.state, s1.priority, s1.requeues, s1.volunteer) == (State.WAITING, 1, 1, None)
    assert old.offer_id is not None
    old_offer = s1.offer(old.offer_id)
    assert old_offer is not None
    assert old_offer.state is OfferState.RETIRED
    assert {t.kind for t in w.h.timers.values() if t.session_id == s1.id} == {
        TimerKind.QUEUE_MAX_WAIT,
        TimerKind.WAIT_REMINDER,
    }
    fx = w.staff(BJORN, "!på")
    assert [(c.ref.session_id, c.invite) for c in of(fx, CreateRoom)] == [(s1.id, BJORN)]
    assert s2.state is State.WAITING
    fx = w.accept(s1, BJORN)
    assert said(fx, "accepted.volunteer").text.params["requeued"] is True
    assert s1.retired_rooms
    assert s1.retired_rooms[0] in s1.all_rooms()
    # the old room is retired: what she writes there goes nowhere
    assert w.msg(s1.retired_rooms[0], ANNA, "hallo?") == []


def test_handback() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)  # Anna came on duty first: hers
    assert s.volunteer == ANNA
    old = volunteer_ref(s)
    fx = w.volunteer_says(s, "!tilbake")
    assert of(fx, Retire) == [Retire(old, ANNA)]
    assert said(fx, "handback.done").to == old
    # Told first, then her room is redacted, then she is removed: a client that is no
    # longer in a room never gets the redactions, and would keep the chatter's words.
    assert of(fx, RedactRoom) == [RedactRoom(old)]
    done = said(fx, "handback.done")
    order = [type(e) for e in fx if isinstance(e, (RedactRoom, Retire)) or e is done]
    assert order == [Say, RedactRoom, Retire]
    assert says_to(fx, chatter_ref(s)) == ["requeued"]
    assert [c.invite for c in of(fx, CreateRoom)] == [BJORN]
    assert (s.state, s.priority) == (State.OFFERED, 1)


def test_a_volunteer_who_leaves_has_her_room_redacted_before_she_is_removed() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    old = volunteer_ref(s)
    assert s.volunteer_room is not None
    fx = w.feed(Left(s.volunteer_room, ANNA))
    kinds = [type(e) for e in fx if isinstance(e, (RedactRoom, Retire))]
    assert kinds == [RedactRoom, Retire]
    assert of(fx, RedactRoom) == [RedactRoom(old)]


def test_the_purge_takes_the_dm_the_conversation_came_from() -> None:
    w = World()
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    [purge] = of(w.fire(TimerKind.PURGE, s), Purge)
    assert purge.dm == dm_room(C1) == s.source_room
    assert purge.dm not in purge.rooms  # the chatter's own room: handled apart


def test_a_lobby_conversation_has_no_dm_to_purge() -> None:
    w = World()
    w.lobby(C1)
    s = w.session_of(C1)
    w.join_chatter(s)
    [purge] = of(w.chatter_says(s, "!slett"), Purge)
    assert s.state is State.PURGING
    assert purge.dm is None


def test_a_dm_still_in_use_waits_for_the_purge_of_the_last_conversation_using_it() -> None:
    w = World()
    w.on_duty(ANNA)
    first = w.active(C1)
    w.chatter_says(first, "!slutt")
    w.dm(C1, "hei igjen")  # the same DM, while the first conversation is still ending
    second = w.session_of(C1)
    assert second.id != first.id
    assert second.source_room == first.source_room
    [purge] = of(w.fire(TimerKind.PURGE, first), Purge)
    assert purge.dm is None  # the second conversation still needs it
    w.join_chatter(second)
    # The last one to use it takes it, even while the first purge is still under way.
    [purge] = of(w.chatter_says(second, "!slett"), Purge)
    assert first.state is State.PURGING
    assert purge.dm == dm_room(C1)


def test_a_stalled_purge_tells_supervisors_it_is_still_trying_with_the_number_only() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    fx = w.feed(PurgeStalled(s.id))
    alert = said(fx, "staff.purge_retrying")
    assert alert.to == STAFF_ROOM
    assert alert.text.params == {"number": s.number}
    assert keys(fx) == ["staff.purge_retrying"]
    assert s.state is State.PURGING  # not closed: the purge goes on
    w.feed(PurgeFinished(s.id, "verified"))
    assert w.feed(PurgeStalled(s.id)) == []  # too late to matter: nothing said


def test_purge_timer_after_purge_after() -> None:
    w = World(policy(purge_after=timedelta(seconds=45)))
    w.on_duty(ANNA, BJORN)
    s = w.arrive(C1)
    lapsed = w.offer_to(s, ANNA)
    w.fire(TimerKind.OFFER_TIMEOUT, s, offer=lapsed.id)
    w.accept(s, BJORN)
    w.chatter_says(s, "!slutt")
    assert w.timer(TimerKind.PURGE, s).due == w.now + timedelta(seconds=45)
    fx = w.fire(TimerKind.PURGE, s)
    assert s.all_rooms() == [s.chatter_room, s.volunteer_room, lapsed.room]  # all of them
    assert fx == [Purge(s.id, tuple(s.all_rooms()), (C1, ANNA, BJORN), dm=dm_room(C1))]
    assert s.state is State.PURGING
    assert w.h.timers == {}


@pytest.mark.parametrize("body", ["!slett", "!delete"])
def test_quick_exit_purges_at_once(body: str) -> None:
    w = World()
    s = w.active(C1)
    fx = w.chatter_says(s, body)
    assert s.state is State.PURGING
    assert s.outcome is Outcome.DELETED
    assert of(fx, Purge) == [Purge(s.id, tuple(s.all_rooms()), (C1, ANNA), dm=dm_room(C1))]
    assert set(s.all_rooms()) == {s.chatter_room, s.volunteer_room}
    assert says_to(fx, chatter_ref(s)) == []  # no goodbye: they want out now
    assert said(fx, "end.volunteer.deleted").to == volunteer_ref(s)
    assert isinstance(fx[-1], Purge)
    assert w.h.timers == {}


def test_quick_exit_after_the_end_purges_at_once() -> None:
    w = World()
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    fx = w.chatter_says(s, "!slett")
    assert [type(e) for e in fx] == [Purge]
    assert s.state is State.PURGING
    assert w.chatter_says(s, "!slett") == []  # already purging


def test_purge_finished_closes_and_forgets_keeping_anonymous_stats() -> None:
    w = World(policy(ask_rating=True))
    w.on_duty(ANNA)
    s = w.arrive(C1)
    w.advance(4 * MIN)
    w.accept(s, ANNA)
    w.advance(25 * MIN)
    w.chatter_says(s, "takk")
    w.volunteer_says(s, "!tema angst skole")
    w.chatter_says(s, "!slutt")
    w.chatter_says(s, "5")
    w.fire(TimerKind.PURGE, s)
    w.feed(PurgeFinished(s.id, "verified"))
    assert s.state is State.CLOSED
    assert s.id not in w.h.sessions
    assert w.changes.deleted_sessions == {s.id}
    assert s.id not in w.changes.sessions
    assert s.id not in w.store.sessions
    assert not any(t.session_id == s.id for t in w.h.timers.values())
    assert s.chatter_room
    assert w.h.session_for_room(s.chatter_room) is None
    [record] = w.changes.stats
    assert record.outcome == "completed"
    assert record.source == "direct"
    assert (record.wait_seconds, record.duration_seconds) == (240, 25 * 60)
    assert (record.tags, record.rating, record.requeues) == (("angst", "skole"), 5, 0)
    assert record.purge_result == "verified"
    assert_anonymous(record)


def test_a_failed_purge_is_counted_and_alerts_supervisors_with_the_number_only() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    fx = w.feed(PurgeFinished(s.id, "failed:room_still_present"))
    alert = said(fx, "staff.purge_failed")
    assert alert.to == STAFF_ROOM
    assert alert.text.params == {"number": s.number}
    assert s.state is State.CLOSED
    assert s.id not in w.h.sessions
    [record] = w.changes.stats
    assert record.purge_result == "failed:room_still_present"
    assert_anonymous(record)


def test_a_verified_purge_says_nothing() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    for result in ("verified", "verified_without_admin"):
        assert w.feed(PurgeFinished(s.id, result)) == []


def assert_anonymous(record: Any) -> None:
    for name, value in dataclasses.asdict(record).items():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                assert "@" not in item, (name, item)
                assert "!" not in item, (name, item)
                assert "example.org" not in item, (name, item)


def test_stats_day_is_the_local_date() -> None:
    # 23:30 UTC on Monday is 00:30 on Tuesday in Oslo.
    w = World(now=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    s = w.arrive(C1)
    end_and_purge(w, s)
    assert [r.day for r in w.changes.stats] == [date(2026, 3, 3)]
    hours = Hours(always_open=False, weekly=mondays(Interval(time(14), time(23))))
    w = World(policy(hours=hours), now=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    w.dm(C1)
    assert [r.day for r in w.changes.stats] == [date(2026, 3, 3)]


def test_stats_hour_is_the_local_hour_of_arrival() -> None:
    # 23:30 UTC on Monday is 00:30 on Tuesday in Oslo; the record says hour 0.
    w = World(now=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    s = w.arrive(C1)
    w.advance(2 * 60 * MIN)
    end_and_purge(w, s)
    assert [r.hour for r in w.changes.stats] == [0]
    hours = Hours(always_open=False, weekly=mondays(Interval(time(14), time(23))))
    w = World(policy(hours=hours), now=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    w.dm(C1)
    assert [r.hour for r in w.changes.stats] == [0]


def test_stats_keep_the_estimate_told_on_arrival_not_a_later_update() -> None:
    w = World()
    w.on_duty(ANNA)
    first = w.active(C1)
    s = w.arrive(C2)
    told = s.announced_estimate
    assert told is not None
    assert s.told_estimate == told
    assert Session.from_dict(s.to_dict()).told_estimate == told
    s.announced_estimate = told + 30  # as a later queue update would
    w.chatter_says(first, "!slutt")
    w.accept(s, ANNA)
    end_and_purge(w, s)
    assert [r.told_wait_minutes for r in w.changes.stats] == [told]


def test_nobody_on_duty_means_no_estimate_told() -> None:
    w = World()
    s = w.arrive(C1)
    assert s.told_estimate is None
    end_and_purge(w, s)
    assert [r.told_wait_minutes for r in w.changes.stats] == [None]


def test_instant_accept_keeps_a_zero_wait() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(C1)
    w.accept(s, ANNA)  # same instant
    assert s.first_wait == timedelta(0)
    assert Session.from_dict(s.to_dict()).first_wait == timedelta(0)
    end_and_purge(w, s)
    assert [r.wait_seconds for r in w.changes.stats] == [0]


@pytest.mark.parametrize(
    ("args", "reply", "tags"),
    [
        ("angst", "tag.saved", ["angst"]),
        ("angst skole angst", "tag.saved", ["angst", "skole"]),
        ("angst krig", "tag.unknown", []),
        ("", "usage", []),
    ],
)
def test_tags_are_validated_against_topics(args: str, reply: str, tags: list[str]) -> None:
    w = World()
    s = w.active(C1)
    w.chatter_says(s, "!slutt")  # tagging is done after the end
    fx = w.volunteer_says(s, f"!tema {args}".strip())
    assert says_to(fx, volunteer_ref(s)) == [reply]
    assert s.tags == tags
    if reply == "tag.unknown":
        assert said(fx, reply).text.params == {"unknown": ["krig"], "topics": list(TOPICS)}


@pytest.mark.parametrize(
    ("body", "rating"),
    [("1", 1), (" 5 ", 5), ("12", None), ("345", None), ("6", None), ("0", None), ("bra", None)],
)
def test_rating(body: str, rating: int | None) -> None:
    w = World(policy(ask_rating=True))
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    fx = w.chatter_says(s, body)
    assert s.rating == rating
    assert keys(fx) == (["rating.thanks"] if rating else [])
    assert of(fx, Relay) == []  # nothing reaches the volunteer after the end
    if rating:
        w.chatter_says(s, "2")
        assert s.rating == rating  # once


def test_no_rating_unless_asked() -> None:
    w = World()
    s = w.active(C1)
    fx = w.chatter_says(s, "!slutt")
    assert "rating.ask" not in keys(fx)
    w.chatter_says(s, "4")
    assert s.rating is None


# ======================================================================================
# staff and volunteer commands


@pytest.mark.parametrize("on", ["!på", "!pa", "!on", "!PÅ"])
def test_on_duty(on: str) -> None:
    w = World()
    s = w.arrive(C1)
    fx = w.staff(ANNA, on)
    assert w.h.duty[ANNA].on_duty
    assert w.h.duty[ANNA].duty_since == w.now
    assert said(fx, "duty.on").to == STAFF_ROOM
    assert said(fx, "duty.on").text.params == {"alias": "Anna", "waiting": 1}
    assert [c.invite for c in of(fx, CreateRoom)] == [ANNA]
    assert s.state is State.OFFERED
    assert ANNA in w.changes.volunteers


@pytest.mark.parametrize("off", ["!av", "!off"])
def test_off_duty_withdraws_pending_offers(off: str) -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s1 = w.active(C1)  # Anna's
    s2 = w.arrive(C2)  # offered to Bjørn
    offer = w.offer_to(s2, BJORN)
    fx = w.staff(BJORN, off)
    assert not w.h.duty[BJORN].on_duty
    assert of(fx, Withdraw) == [Withdraw(RoomRef(s2.id, Role.VOLUNTEER, offer.id), BJORN)]
    assert w.h.duty[BJORN].lapses == 0
    assert s2.state is State.WAITING
    assert s1.state is State.ACTIVE
    assert said(fx, "duty.off").text.params == {"alias": "Bjørn", "active": 0}
    fx = w.staff(ANNA, off)
    assert said(fx, "duty.off").text.params == {"alias": "Anna", "active": 1}
    assert s1.state is State.ACTIVE  # going off duty does not end a conversation
    # ...but she is asked, in that conversation's room, whether to end or hand it back.
    ask = said(fx, "duty.off_ask")
    assert ask.to == volunteer_ref(s1)
    assert ask.text.params == {"number": s1.number}
    assert "duty.off_ask" not in says_to(fx, chatter_ref(s1))


def test_status_gives_counts_only() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    w.active(C1)
    w.arrive(C2)  # offered to Bjørn
    w.advance(4 * MIN)
    w.arrive(C3)  # waiting
    for fx, to in [(w.staff(KARI, "!status"), STAFF_ROOM), (w.dm(KARI, "!status"), dm_room(KARI))]:
        status = said(fx, "status")
        assert status.to == to
        assert status.text.params == {
            "waiting": 2,
            "longest_wait_minutes": 4,
            "on_duty": 2,
            "active": 1,
            "offers": 1,
            "ending": 0,
        }


def test_commands_from_non_volunteers_are_refused() -> None:
    w = World()
    fx = w.staff(KARI, "!på")  # a supervisor, not a volunteer: on duty for alerts only
    assert keys(fx) == ["duty.supervisor_on"]
    assert w.h.status(w.now)["on_duty"] == 0
    assert w.staff(C1, "!på") == []  # not staff at all: the bot does not answer
    assert w.staff(C1, "!status") == []


def test_staff_help_is_generated_from_the_table() -> None:
    w = World()
    fx = w.staff(ANNA, "!hjelp")
    lines = said(fx, "help").text.params["lines"]
    assert lines == commands.help_lines(Audience.STAFF, "nb")
    assert [key for _, key in lines] == [
        f"help.{spec.name}"
        for spec in commands.TABLE
        if Audience.STAFF in spec.audience and not spec.supervisors_only and not spec.admins_only
    ]
    s = w.active(C1)
    fx = w.volunteer_says(s, "!help")
    assert said(fx, "help").text.params["lines"] == commands.help_lines(Audience.VOLUNTEER, "nb")
    fx = w.chatter_says(s, "!hjelp")
    assert said(fx, "help").text.params["lines"] == commands.help_lines(Audience.CHATTER, "nb")
    assert said(fx, "help").to == chatter_ref(s)


def test_staff_usage_and_wrong_place() -> None:
    w = World()
    fx = w.staff(ANNA, "!på nå")
    assert said(fx, "usage").text.params == {"usage": "!på"}
    assert w.staff(ANNA, "!slutt") == []  # a conversation command in the staff room
    assert w.staff(ANNA, "hei alle sammen") == []  # talk among staff is theirs


def test_volunteer_canned_reply_and_alert() -> None:
    w = World()
    s = w.active(C1)
    w.advance(9 * MIN)
    w.chatter_says(s, "hei")
    fx = w.volunteer_says(s, "!svar taushet")
    assert fx == [Say(chatter_ref(s), said(fx, "canned.taushet").text, "nb", voice=True)]
    fx = w.volunteer_says(s, "!say ukjent")
    assert said(fx, "canned.unknown").text.params == {"names": ["taushet"]}
    fx = w.volunteer_says(s, "!hjelp-veileder")
    alert = said(fx, "staff.alert")
    assert alert.to == STAFF_ROOM
    assert alert.text.params == {"number": s.number, "alias": "Anna", "minutes": 9}
    assert said(fx, "alert.sent").to == volunteer_ref(s)
    assert says_to(fx, chatter_ref(s)) == []


def test_chatter_switches_language() -> None:
    w = World()
    s = w.arrive(C1)
    fx = w.chatter_says(s, "!språk en")
    assert s.language == "en"
    assert said(fx, "language.set").language == "en"
    fx = w.chatter_says(s, "!language de")
    assert said(fx, "language.unknown").text.params == {"available": ["nb", "en"]}
    assert s.language == "en"


def test_volunteer_commands_after_the_end() -> None:
    w = World()
    s = w.active(C1)
    w.chatter_says(s, "!slutt")
    for body in ["!forleng", "!tid", "!tilbake", "!slutt"]:
        assert keys(w.volunteer_says(s, body)) == ["not_active"]
    fx = w.volunteer_says(s, "er du der?")
    assert keys(fx) == ["not_delivered_ended"]
    assert of(fx, Relay) == []


# ======================================================================================
# changes and persistence


def test_take_changes_reports_what_a_step_touched() -> None:
    w = World()
    w.staff(ANNA, "!på")
    c = w.changes
    assert set(c.volunteers) == {ANNA}
    assert not c.sessions
    assert not c.timers_set

    w.dm(C1)
    s = w.session_of(C1)
    c = w.changes
    assert set(c.sessions) == {s.id}
    assert set(c.timers_set) == {
        timer_key(TimerKind.QUEUE_MAX_WAIT, s.id),
        timer_key(TimerKind.WAIT_REMINDER, s.id),
    }
    assert c.counters is not None
    assert c.counters.next_session_id == s.id + 1
    assert c.counters.day == "2026-03-02"
    assert list(c.counters.day_counts.values()) == [1]
    assert C1 not in str(c.counters)  # the cap is kept by keyed hash, not ID

    w.join_chatter(s)
    offer = w.offer_to(s, ANNA)
    c = w.changes
    assert c.counters is not None
    assert c.counters.next_offer_id == offer.id + 1
    assert c.counters.last_offered == ANNA
    assert timer_key(TimerKind.OFFER_TIMEOUT, s.id, offer=offer.id) in c.timers_set

    w.accept(s, ANNA)
    c = w.changes
    assert set(c.sessions) == {s.id}
    assert set(c.volunteers) == {ANNA}
    assert {
        timer_key(TimerKind.OFFER_TIMEOUT, s.id, offer=offer.id),
        timer_key(TimerKind.QUEUE_MAX_WAIT, s.id),
        timer_key(TimerKind.WAIT_REMINDER, s.id),
    } == c.timers_cleared
    assert {t.kind for t in c.timers_set.values()} == {
        TimerKind.WARN,
        TimerKind.MAX_DURATION,
        TimerKind.IDLE_WARN,
        TimerKind.IDLE_END,
        TimerKind.VOLUNTEER_SILENCE,
    }
    assert not (set(c.timers_set) & c.timers_cleared)

    w.advance(10 * MIN)
    w.chatter_says(s, "!slutt")
    counters = w.changes.counters
    assert counters is not None
    assert counters.recent_durations == [600.0]
    assert w.h.take_changes().empty()  # taken once


def test_timer_set_then_cleared_in_one_step_is_only_cleared() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.active(C1)
    fx = w.chatter_says(s, "!slett")  # PURGE is set by the end and cleared by the purge
    assert of(fx, Purge)
    assert timer_key(TimerKind.PURGE, s.id) in w.changes.timers_cleared
    assert not w.changes.timers_set


def scenario(w: World) -> list[Session]:
    """Conversations in every open and closing state, with extensions, tags, held text."""
    w.on_duty(ANNA, CARL)
    active = w.active(C1)
    w.volunteer_says(active, "!extend 5")
    w.volunteer_says(active, "!tema angst")
    en = w.arrive(C2)
    w.chatter_says(en, "!language en")  # too late to route by it: Carl's anyway (cap 2)
    w.advance(MIN)
    waiting = w.arrive(C3, "hei")
    w.chatter_says(waiting, "er det noen der?")
    ending = w.arrive(chatter(4))
    w.chatter_says(ending, "!slutt")
    return [active, en, waiting, ending]


def test_state_survives_a_round_trip_through_storage() -> None:
    w = World(policy(consent_required=False))
    scenario(w)
    before = w.snapshot()
    w.restart()
    assert w.snapshot() == before
    assert w.h.counters.next_session_id == 5
    assert w.h.counters.last_offered is not None
    # and it carries on where it was: ids continue, rooms are known
    s = w.arrive(chatter(9))
    assert s.id == 5
    for sid, d in before["sessions"].items():
        for room in Session.from_dict(d).all_rooms():
            hit = w.h.session_for_room(room)
            assert hit is not None
            assert hit[0].id == sid


def test_storage_sees_every_change_at_every_step() -> None:
    """After each input, a Helpline rebuilt from storage equals the live one."""
    w = World(policy(strategy=Strategy.BROADCAST, ask_rating=True))
    w.on_duty(ANNA, BJORN)
    s1 = w.arrive(C1, "hei")
    s2 = w.arrive(C2)

    def check_storage() -> None:
        live_h, live = w.h, w.snapshot()
        w.restart()
        assert w.snapshot() == live
        w.h = live_h

    check_storage()
    steps: list[Callable[[], object]] = [
        lambda: w.accept(s1, BJORN),
        lambda: w.chatter_says(s1, "hallo"),
        lambda: w.staff(CARL, "!on"),
        lambda: w.fire(TimerKind.OFFER_TIMEOUT, s2, offer=s2.pending_offers()[0].id),
        lambda: w.volunteer_says(s1, "!extend"),
        lambda: w.feed(Left(RoomID(str(s1.volunteer_room)), BJORN)),
        lambda: w.fire(TimerKind.WAIT_REMINDER, s2),
        lambda: w.chatter_says(s2, "!slutt"),
        lambda: w.chatter_says(s2, "3"),
        lambda: w.fire(TimerKind.PURGE, s2),
        lambda: w.feed(PurgeFinished(s2.id, "verified_without_admin")),
        lambda: w.staff(ANNA, "!av"),
    ]
    for step in steps:
        w.advance(MIN)
        step()
        check_storage()


def test_session_round_trip_is_lossless() -> None:
    at = datetime(2026, 3, 2, 12, 0, 0, 123457, tzinfo=UTC)
    s = Session(
        id=SessionID(3),
        number=4821,
        chatter=C1,
        language="en",
        source=Source.LOBBY,
        source_room=None,
        created_at=at,
        state=State.ACTIVE,
        chatter_room=RoomID("!c:example.org"),
        chatter_joined=True,
        priority=1,
        queued_at=at,
        accepted_at=at + MIN,
        ended_at=None,
        last_chatter_activity=at + 2 * MIN,
        volunteer=ANNA,
        volunteer_room=RoomID("!v:example.org"),
        offers=[
            Offer(OfferID(1), BJORN, at, RoomID("!b:example.org"), OfferState.DECLINED),
            Offer(OfferID(2), ANNA, at, RoomID("!v:example.org"), OfferState.ACCEPTED),
            Offer(OfferID(3), CARL, at, None, OfferState.WITHDRAWN),
        ],
        retired_rooms=[RoomID("!old:example.org")],
        extended=timedelta(minutes=15),
        outcome=Outcome.COMPLETED,
        tags=["angst"],
        rating=4,
        announced_position=2,
        announced_estimate=15,
        first_wait=timedelta(0),
        requeues=1,
    )
    assert Session.from_dict(s.to_dict()) == s
    v = VolunteerState(ANNA, True, at, at + MIN, 1)
    assert VolunteerState.from_dict(v.to_dict()) == v
    t = Timer(TimerKind.WARN, SessionID(3), at, before=timedelta(seconds=600))
    assert Timer.from_dict(t.to_dict()) == t


def test_a_timer_holds_only_what_its_kind_needs() -> None:
    at = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    lapse = Timer(TimerKind.OFFER_TIMEOUT, SessionID(3), at, offer=OfferID(9))
    assert lapse.key == "offer_timeout:3:9"
    assert Timer.from_dict(lapse.to_dict()) == lapse
    with pytest.raises(ValueError, match="is not for an offer"):
        Timer(TimerKind.PURGE, SessionID(3), at, offer=OfferID(9))
    with pytest.raises(ValueError, match="is not a warning"):
        Timer(TimerKind.OFFER_TIMEOUT, SessionID(3), at, before=timedelta(minutes=2))


@pytest.mark.parametrize(
    ("on_duty", "told"),
    [
        # Anna's conversation has just begun: a typical one (30 min) per place in line
        ([ANNA], [(1, 30), (2, 60), (3, 90), (4, 120)]),
        ([], [(1, None), (2, None), (3, None)]),  # no estimate: only the last places are news
    ],
)
def test_queue_positions_are_announced_when_they_improve(
    on_duty: list[UserID], told: list[tuple[int, int | None]]
) -> None:
    w = World()
    if on_duty:
        w.active(C1, on_duty[0])
    others = [w.arrive(chatter(n)) for n in range(2, 7)]
    assert [s.announced_position for s in others] == [1, 2, 3, 4, 5]
    fx = w.chatter_says(others[0], "!slutt")  # the first in line gives up
    updates = [e for e in of(fx, Say) if e.text.key == "queue.update"]
    assert [e.to for e in updates] == [chatter_ref(s) for s in others[1 : 1 + len(told)]]
    assert [(e.text.params["position"], e.text.params["minutes"]) for e in updates] == told
    assert [s.announced_position for s in others[1:]] == [1, 2, 3, 4]


def test_a_zero_waiting_reminder_means_no_reminders() -> None:
    """`routing.waiting_reminder: 0` is documented as off. Armed at now + 0 it fired and
    re-armed itself at once, for ever: the kill -9 soak saw 826,258 'still waiting'
    notices pile up in the outbox in 25 minutes."""
    w = World(policy(waiting_reminder=timedelta(0)))
    s = w.arrive(C1)
    assert timer_key(TimerKind.WAIT_REMINDER, s.id) not in w.h.timers


def test_the_volunteers_room_hears_of_a_chatter_only_when_nobody_can_take_them() -> None:
    """An arrival offered at once needs no alert; one nobody can take does (and the
    reminders go on while they wait)."""
    w = World()
    w.on_duty(ANNA)
    w.dm(C1)
    fx = w.join_chatter(w.session_of(C1))
    assert "staff.waiting" not in keys(fx)
    assert w.pending_to(w.session_of(C1)) == [ANNA]

    w.dm(C2)  # Anna is busy with the offer: nobody else is there
    fx = w.join_chatter(w.session_of(C2))
    assert said(fx, "staff.waiting").to == STAFF_ROOM
