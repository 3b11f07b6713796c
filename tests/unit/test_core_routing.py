"""Routing: who is available, who gets the offer, queue order, wait estimates.

The pure functions are fed hand-built duty states and sessions; a few tests check that
the machine follows them (`World`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.core import routing
from bot.core.events import CreateRoom
from bot.core.ids import OfferID, SessionID, UserID
from bot.core.model import (
    Offer,
    OfferState,
    Session,
    Source,
    State,
    Strategy,
    VolunteerProfile,
    VolunteerState,
)
from tests.unit.core_helpers import ANNA, BJORN, CARL, PROFILES, T0, World, chatter, of, policy

MIN = timedelta(minutes=1)
NAMES = {ANNA: "anna", BJORN: "bjorn", CARL: "carl"}
IDS = {v: k for k, v in NAMES.items()}


def session(
    n: int,
    state: State = State.WAITING,
    *,
    language: str = "nb",
    volunteer: UserID | None = None,
    pending: tuple[UserID, ...] = (),
    priority: int = 0,
    queued: int = 0,
) -> Session:
    """Conversation `n`; `queued` is minutes after T0."""
    s = Session(
        id=SessionID(n),
        number=1000 + n,
        chatter=chatter(n),
        language=language,
        source=Source.DIRECT,
        source_room=None,
        created_at=T0,
        state=state,
        volunteer=volunteer,
        priority=priority,
        queued_at=T0 + queued * MIN,
    )
    if volunteer is not None:
        s.offers.append(Offer(OfferID(100 + n), volunteer, T0, None, OfferState.ACCEPTED))
    for i, v in enumerate(pending):
        s.offers.append(Offer(OfferID(200 + 10 * n + i), v, T0))
    return s


def duty(
    *on: str, since: dict[str, int] | None = None, assigned: dict[str, int] | None = None
) -> dict[UserID, VolunteerState]:
    """Duty states by short name; `since` and `assigned` are minutes after T0."""
    since, assigned = since or {}, assigned or {}
    out = {}
    for name, uid in IDS.items():
        out[uid] = VolunteerState(
            uid,
            on_duty=name in on,
            duty_since=T0 + since.get(name, 0) * MIN if name in on else None,
            last_assigned_at=T0 + assigned[name] * MIN if name in assigned else None,
        )
    return out


def chosen(
    strategy: Strategy,
    states: dict[UserID, VolunteerState],
    busy: list[Session] | None = None,
    *,
    language: str = "nb",
    last: str | None = None,
    fallback: bool = True,
) -> list[str]:
    pol = policy(strategy=strategy, language_fallback=fallback)
    sessions = [*(busy or []), session(99, language=language)]
    candidates = routing.available(pol, states, sessions)
    picked = routing.choose(
        pol, sessions[-1], candidates, states, sessions, IDS[last] if last else None
    )
    return [NAMES[p.user_id] for p in picked]


# -- availability ------------------------------------------------------------------------


def replace_offers(s: Session, state: OfferState) -> Session:
    for o in s.offers:
        o.state = state
    return s


@pytest.mark.parametrize(
    ("on", "busy", "available"),
    [
        (["anna", "bjorn", "carl"], [], ["anna", "bjorn", "carl"]),
        (["anna", "carl"], [], ["anna", "carl"]),  # off duty: not available
        ([], [], []),
        # at her cap of one
        (["anna", "bjorn"], [session(1, State.ACTIVE, volunteer=ANNA)], ["bjorn"]),
        # Carl takes two at a time
        (["carl"], [session(1, State.ACTIVE, volunteer=CARL)], ["carl"]),
        (
            ["carl"],
            [session(1, State.ACTIVE, volunteer=CARL), session(2, State.ACTIVE, volunteer=CARL)],
            [],
        ),
        # holding an unanswered offer: not available, even below the cap
        (["anna", "carl"], [session(1, State.OFFERED, pending=(CARL,))], ["anna"]),
        # an ended conversation no longer counts
        (["anna"], [session(1, State.ENDING, volunteer=ANNA)], ["anna"]),
        # withdrawn and declined offers do not count
        (
            ["anna"],
            [replace_offers(session(1, State.WAITING, pending=(ANNA,)), OfferState.DECLINED)],
            ["anna"],
        ),
    ],
)
def test_available(on: list[str], busy: list[Session], available: list[str]) -> None:
    got = routing.available(policy(), duty(*on), busy)
    assert [NAMES[p.user_id] for p in got] == available


def test_available_excludes_those_already_tried() -> None:
    got = routing.available(policy(), duty("anna", "bjorn"), [], exclude=frozenset({ANNA}))
    assert [p.user_id for p in got] == [BJORN]


def test_load_counts_active_conversations_and_pending_offers() -> None:
    sessions = [
        session(1, State.ACTIVE, volunteer=CARL),
        session(2, State.OFFERED, pending=(CARL, ANNA)),
        session(3, State.ENDING, volunteer=CARL),
    ]
    assert routing.load(CARL, sessions) == (1, 1)
    assert routing.load(ANNA, sessions) == (0, 1)
    assert routing.load(BJORN, sessions) == (0, 0)


# -- strategies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "busy", "winner"),
    [
        # nobody assigned yet: who came on duty first
        (duty("anna", "bjorn", since={"anna": 5, "bjorn": 1}), [], "bjorn"),
        # the one whose last conversation was assigned longest ago
        (duty("anna", "bjorn", assigned={"anna": 30, "bjorn": 10}), [], "bjorn"),
        (duty("anna", "bjorn", since={"bjorn": 20}, assigned={"anna": 30}), [], "bjorn"),
        # a tie goes to the configured order
        (duty("anna", "bjorn"), [], "anna"),
        # busy at the cap: skipped however idle
        (
            duty("anna", "bjorn", assigned={"anna": 1, "bjorn": 50}),
            [session(1, State.ACTIVE, volunteer=ANNA)],
            "bjorn",
        ),
    ],
)
def test_longest_idle(
    states: dict[UserID, VolunteerState], busy: list[Session], winner: str
) -> None:
    assert chosen(Strategy.LONGEST_IDLE, states, busy) == [winner]


@pytest.mark.parametrize(
    ("states", "busy", "winner"),
    [
        # fewer current conversations first, even if more recently assigned
        (
            duty("anna", "carl", assigned={"anna": 50, "carl": 1}),
            [session(1, State.ACTIVE, volunteer=CARL)],
            "anna",
        ),
        # equal load: the longest idle
        (duty("anna", "carl", assigned={"anna": 50, "carl": 1}), [], "carl"),
        # equal load and idle: configured order
        (duty("anna", "carl"), [], "anna"),
    ],
)
def test_least_busy(states: dict[UserID, VolunteerState], busy: list[Session], winner: str) -> None:
    assert chosen(Strategy.LEAST_BUSY, states, busy, language="en") == [winner]


@pytest.mark.parametrize(
    ("on", "last", "winner"),
    [
        (["anna", "bjorn", "carl"], None, "anna"),
        (["anna", "bjorn", "carl"], "anna", "bjorn"),
        (["anna", "bjorn", "carl"], "bjorn", "carl"),
        (["anna", "bjorn", "carl"], "carl", "anna"),  # wraps
        (["anna", "carl"], "anna", "carl"),  # skips who is off duty
        (["anna"], "anna", "anna"),  # the only one
    ],
)
def test_round_robin(on: list[str], last: str | None, winner: str) -> None:
    # Sami: nobody speaks it, so with the fallback all three are candidates
    assert chosen(Strategy.ROUND_ROBIN, duty(*on), language="se", last=last) == [winner]


@pytest.mark.parametrize(
    ("on", "language", "offered"),
    [
        (["anna", "bjorn", "carl"], "nb", ["anna", "bjorn"]),
        (["anna", "bjorn", "carl"], "en", ["anna", "carl"]),
        (["bjorn"], "en", ["bjorn"]),  # fallback: somebody rather than nobody
        ([], "nb", []),
    ],
)
def test_broadcast(on: list[str], language: str, offered: list[str]) -> None:
    assert chosen(Strategy.BROADCAST, duty(*on), language=language) == offered


# -- language ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize(
    ("on", "language", "fallback", "offered"),
    [
        # a speaker comes first, however long the other has been idle
        (["bjorn", "carl"], "en", True, ["carl"]),
        (["bjorn", "carl"], "nb", True, ["bjorn"]),
        # no speaker on duty: fallback on -> someone; off -> nobody
        (["bjorn"], "en", True, ["bjorn"]),
        (["bjorn"], "en", False, []),
        (["carl"], "nb", False, []),
        # a language nobody speaks
        (["anna", "bjorn"], "se", False, []),
    ],
)
def test_language_match_first(
    strategy: Strategy, on: list[str], language: str, fallback: bool, offered: list[str]
) -> None:
    states = duty(*on, since={"bjorn": 0, "carl": 30})
    got = chosen(strategy, states, language=language, fallback=fallback)
    assert got == offered


def test_busy_speaker_falls_back_to_another_language() -> None:
    busy = [session(1, State.ACTIVE, volunteer=ANNA)]
    assert chosen(Strategy.LONGEST_IDLE, duty("anna", "carl"), busy, fallback=True) == ["carl"]
    assert chosen(Strategy.LONGEST_IDLE, duty("anna", "carl"), busy, fallback=False) == []


# -- the queue ---------------------------------------------------------------------------


def test_queue_order_priority_first_then_first_come() -> None:
    sessions = [
        session(1, queued=5),
        session(2, State.ACTIVE, volunteer=ANNA),
        session(3, State.OFFERED, queued=1, pending=(BJORN,)),
        session(4, priority=1, queued=9),  # requeued after their volunteer left
        session(5, State.ENDING),
        session(6, State.CONSENT),
        session(7, queued=5),  # same time as 1: the older id first
        session(8, priority=1, queued=2),
    ]
    assert [s.id for s in routing.queue_order(sessions)] == [8, 4, 3, 1, 7]


# -- estimates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "active", "position", "recent", "minutes"),
    [
        ([], 0, 1, [], None),  # nobody on duty: no estimate to give
        (["anna"], 0, 1, [], 2),  # a free place: about the offer time (90 s)
        (["anna", "carl"], 1, 2, [], 2),  # three places, one busy: two free
        # all busy, since when unknown: half a typical (30 min) conversation on average
        (["anna", "carl"], 3, 1, [], 15),
        (["anna"], 1, 1, [], 15),
        (["anna"], 1, 2, [], 45),  # the first one ahead then talks for a whole one
        (["anna"], 1, 3, [], 75),
        (["anna", "carl"], 3, 4, [], 45),  # three places: the 4th waits a round more
        (["anna"], 1, 1, [600.0, 1200.0, 3000.0], 10),  # median 20 min: 10, rounded up
        (["anna"], 1, 1, [120.0, 180.0], 5),  # never under five minutes when busy
        (["anna"], 1, 2, [1260.0], 35),  # 10.5 + 21 = 31.5 -> 35
    ],
)
def test_estimate_minutes(
    on: list[str], active: int, position: int, recent: list[float], minutes: int | None
) -> None:
    holders = [ANNA, CARL, CARL]
    busy = [session(i, State.ACTIVE, volunteer=holders[i]) for i in range(active)]
    got = routing.estimate_minutes(position, policy(), duty(*on), busy, recent, T0)
    assert got == minutes


def test_estimate_uses_the_volunteers_caps() -> None:
    solo = policy(volunteers=(VolunteerProfile(CARL, "Carl", ("en",), max_sessions=3),))
    busy = [session(i, State.ACTIVE, volunteer=CARL) for i in range(3)]
    states = duty("carl")
    assert routing.estimate_minutes(3, solo, states, busy, [], T0) == 15
    assert routing.estimate_minutes(4, solo, states, busy, [], T0) == 45


def _talking(n: int, minutes: float, *, extended: float = 0) -> Session:
    """Anna's conversation `n`, accepted `minutes` before T0."""
    s = session(n, State.ACTIVE, volunteer=ANNA)
    s.accepted_at = T0 - timedelta(minutes=minutes)
    s.extended = timedelta(minutes=extended)
    return s


@pytest.mark.parametrize(
    ("elapsed", "extended", "recent", "minutes"),
    [
        # a typical conversation is 60 minutes, the limit 60
        (0, 0, [3600.0], 60),  # just begun: a whole one
        (20, 0, [3600.0], 40),
        (50, 0, [3600.0], 10),  # at 50 of 60: frees its volunteer within 10
        (58, 0, [3600.0], 5),  # (never under five minutes when busy)
        (50, 20, [3600.0], 10),  # extended, but typical says about 10 more
        # a typical conversation is 20 minutes
        (10, 0, [1200.0], 10),
        (30, 0, [1200.0], 5),  # past the typical: about wrapping up
        (59, 0, [1200.0], 5),  # and never past the limit
        # no data yet: half the limit is typical
        (25, 0, [], 5),
        (5, 0, [], 25),
    ],
)
def test_the_estimate_counts_how_long_conversations_have_run(
    elapsed: float, extended: float, recent: list[float], minutes: int
) -> None:
    busy = [_talking(1, elapsed, extended=extended)]
    solo = policy(volunteers=PROFILES[:1])
    assert routing.estimate_minutes(1, solo, duty("anna"), busy, recent, T0) == minutes


def test_the_estimate_waits_for_the_place_that_frees_first() -> None:
    # Anna takes two; one conversation began just now, the other is at 50 of 60 minutes.
    two = policy(volunteers=(VolunteerProfile(ANNA, "Anna", ("nb",), max_sessions=2),))
    busy = [_talking(1, 0), _talking(2, 50)]
    states = duty("anna")
    assert routing.estimate_minutes(1, two, states, busy, [3600.0], T0) == 10
    # The next in line: the first freed place is taken (10 + 60), the other frees at 60.
    assert routing.estimate_minutes(2, two, states, busy, [3600.0], T0) == 60
    assert routing.estimate_minutes(3, two, states, busy, [3600.0], T0) == 70


def test_a_volunteer_off_duty_frees_no_place() -> None:
    busy = [_talking(1, 50)]
    assert routing.estimate_minutes(1, policy(), duty("bjorn"), busy, [3600.0], T0) == 2
    assert routing.estimate_minutes(1, policy(), duty(), busy, [3600.0], T0) is None


# -- the machine follows the table -------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "first", "second"),
    [
        (Strategy.LONGEST_IDLE, [ANNA], [BJORN]),
        (Strategy.LEAST_BUSY, [ANNA], [BJORN]),
        (Strategy.ROUND_ROBIN, [ANNA], [BJORN]),
        (Strategy.BROADCAST, [ANNA, BJORN], [BJORN]),
    ],
)
def test_machine_routes_by_strategy(
    strategy: Strategy, first: list[UserID], second: list[UserID]
) -> None:
    w = World(policy(strategy=strategy, volunteers=PROFILES[:2]))
    w.on_duty(ANNA, BJORN)
    fx = w.dm(chatter(1))
    s1 = w.session_of(chatter(1))
    fx = w.join_chatter(s1)
    assert [c.invite for c in of(fx, CreateRoom)] == first
    w.accept(s1, ANNA)
    s2 = w.arrive(chatter(2))
    assert w.pending_to(s2) == second


def test_round_robin_continues_after_a_restart() -> None:
    w = World(policy(strategy=Strategy.ROUND_ROBIN))
    w.on_duty(ANNA, BJORN, CARL)
    s1 = w.arrive(chatter(1), "hi")
    assert w.pending_to(s1) == [ANNA]
    w.chatter_says(s1, "!slutt")
    w.restart()
    s2 = w.arrive(chatter(2))
    assert w.pending_to(s2) == [BJORN]


def test_machine_never_offers_to_a_volunteer_with_an_offer_out() -> None:
    w = World()
    w.on_duty(ANNA)
    s1 = w.arrive(chatter(1))
    s2 = w.arrive(chatter(2))
    assert w.pending_to(s1) == [ANNA]
    assert w.pending_to(s2) == []
    w.accept(s1, ANNA)
    assert s2.state is State.WAITING  # Anna is now at her cap
    w.on_duty(CARL)
    assert w.pending_to(s2) == [CARL]  # nb chatter, fallback to an en speaker


def test_estimate_learns_from_recent_conversations() -> None:
    w = World(policy(volunteers=PROFILES[:1]))
    w.on_duty(ANNA)
    s = w.active(chatter(1))
    w.advance(40 * MIN)
    w.chatter_says(s, "!slutt")
    w.active(chatter(2))
    waiting = w.arrive(chatter(3))
    # The conversation before it took 40 minutes; the one now began just now.
    assert waiting.announced_estimate == 40
    assert waiting.told_estimate == 40
    w.advance(30 * MIN)
    assert (
        routing.estimate_minutes(
            1, w.policy, w.h.duty, list(w.h.sessions.values()), [2400.0], w.now
        )
        == 10
    )
    assert routing.estimate_minutes(1, w.policy, w.h.duty, [], [2400.0], w.now) == 2  # not busy


def test_session_numbers_are_unique_pseudonyms() -> None:
    w = World()
    numbers = {w.arrive(chatter(n)).number for n in range(30)}
    assert len(numbers) == 30
    assert all(1000 <= n <= 9999 for n in numbers)


def test_replace_policy_keeps_profiles() -> None:
    # The helpers build policies by replacing fields; volunteers keep their caps.
    assert replace(policy(), strategy=Strategy.BROADCAST).profile(CARL) == PROFILES[2]
