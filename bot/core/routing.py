"""Routing: who gets the next offer, and queue estimates.

A volunteer is *available* when on duty, below their own cap of concurrent conversations
(pending offers count towards the cap), and not holding an unanswered offer. Among the
available, those who speak the chatter's language come first; the others are used only
when `language_fallback` is on and no speaker is available.

Strategies pick among the candidates:
- longest_idle: the one whose last conversation was assigned longest ago (or who came on
  duty longest ago); fair in the sense that matters to volunteers.
- least_busy: fewest current conversations; ties go to the longest idle.
- round_robin: configured order, starting after the last volunteer who got an offer.
- broadcast: every candidate gets an offer; the first to accept wins.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from bot.core.ids import UserID
from bot.core.model import (
    OfferState,
    Policy,
    Session,
    State,
    Strategy,
    VolunteerProfile,
    VolunteerState,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load(user: UserID, sessions: Iterable[Session]) -> tuple[int, int]:
    """(active conversations, pending offers) held by `user`."""
    active = pending = 0
    for s in sessions:
        if s.state is State.ACTIVE and s.volunteer == user:
            active += 1
        for o in s.offers:
            if o.volunteer == user and o.state is OfferState.PENDING:
                pending += 1
    return active, pending


def available(
    policy: Policy,
    duty: Mapping[UserID, VolunteerState],
    sessions: Sequence[Session],
    exclude: frozenset[UserID] = frozenset(),
) -> list[VolunteerProfile]:
    out = []
    for profile in policy.volunteers:
        state = duty.get(profile.user_id)
        if state is None or not state.on_duty or profile.user_id in exclude:
            continue
        active, pending = load(profile.user_id, sessions)
        if pending == 0 and active < profile.max_sessions:
            out.append(profile)
    return out


def choose(
    policy: Policy,
    session: Session,
    candidates: Sequence[VolunteerProfile],
    duty: Mapping[UserID, VolunteerState],
    sessions: Sequence[Session],
    last_offered: UserID | None,
) -> list[VolunteerProfile]:
    """The volunteers who get an offer for `session` now (empty: nobody suitable)."""
    speakers = [v for v in candidates if session.language in v.languages]
    pool = speakers or (list(candidates) if policy.language_fallback else [])
    if not pool:
        return []
    strategy = policy.strategy
    if strategy is Strategy.BROADCAST:
        return pool

    def idle_since(v: VolunteerProfile) -> datetime:
        st = duty[v.user_id]
        return st.last_assigned_at or st.duty_since or _EPOCH

    if strategy is Strategy.LONGEST_IDLE:
        return [min(pool, key=lambda v: (idle_since(v), _order(policy, v)))]
    if strategy is Strategy.LEAST_BUSY:
        return [
            min(
                pool,
                key=lambda v: (load(v.user_id, sessions)[0], idle_since(v), _order(policy, v)),
            )
        ]
    # round robin: the first in configured order after the last one offered
    order = [v.user_id for v in policy.volunteers]
    start = order.index(last_offered) + 1 if last_offered in order else 0
    rotated = order[start:] + order[:start]
    by_id = {v.user_id: v for v in pool}
    return [next(by_id[u] for u in rotated if u in by_id)]


def _order(policy: Policy, v: VolunteerProfile) -> int:
    return next(i for i, p in enumerate(policy.volunteers) if p.user_id == v.user_id)


def queue_order(sessions: Iterable[Session]) -> list[Session]:
    """Waiting conversations in serving order: requeued first, then first come first served."""
    waiting = [s for s in sessions if s.state in (State.WAITING, State.OFFERED)]
    return sorted(waiting, key=lambda s: (-s.priority, s.queued_at or s.created_at, s.id))


def estimate_minutes(
    position: int,
    policy: Policy,
    duty: Mapping[UserID, VolunteerState],
    sessions: Sequence[Session],
    recent_durations: Sequence[float],
    now: datetime,
) -> int | None:
    """An honest wait estimate in whole minutes for the chatter at `position` (1-based).

    None when nobody is on duty: then there is no estimate to give, and the chatter is
    told so. Otherwise each place on duty (a volunteer's `max_sessions`) is free now or
    when its conversation is likely to end (`_time_left`: a conversation at 50 of its 60
    minutes frees its volunteer within 10); the chatters ahead take the places in the
    order they free up, each for a typical conversation, and this chatter the next one.
    Typical = the median of recent conversations, or half the maximum duration before
    there is data. A place free now: about the offer time; else rounded up to 5 minutes.
    """
    on_duty = [p for p in policy.volunteers if duty.get(p.user_id, _OFF).on_duty]
    if not on_duty:
        return None
    if recent_durations:
        typical = sorted(recent_durations)[len(recent_durations) // 2]
    else:
        typical = policy.max_duration.total_seconds() / 2
    frees: list[float] = []  # seconds from now until each place is free
    for p in on_duty:
        held = [s for s in sessions if s.state is State.ACTIVE and s.volunteer == p.user_id]
        lefts = sorted(_time_left(s, policy, typical, now) for s in held)[: p.max_sessions]
        frees += lefts + [0.0] * (p.max_sessions - len(lefts))
    heapq.heapify(frees)
    for _ in range(max(0, position - 1)):
        heapq.heappush(frees, heapq.heappop(frees) + typical)  # taken by someone ahead
    wait = frees[0]
    if wait <= 0:
        return max(1, math.ceil(policy.offer_timeout / timedelta(minutes=1)))
    return max(5, 5 * math.ceil(wait / 60 / 5))


MIN_LEFT = 5 * 60.0
"""Seconds a conversation already past the typical length is still expected to take
(they are often wrapping up); never more than its time limit leaves."""


def _time_left(s: Session, policy: Policy, typical: float, now: datetime) -> float:
    """Seconds until this active conversation likely ends: the rest of a typical one,
    never past its deadline (its limit and any extension given)."""
    deadline = s.deadline(policy.max_duration)
    if s.accepted_at is None or deadline is None:
        return typical / 2  # no start known: on average half-way through
    elapsed = (now - s.accepted_at).total_seconds()
    by_rule = max(0.0, (deadline - now).total_seconds())
    return min(max(typical - elapsed, MIN_LEFT), by_rule)


_OFF = VolunteerState(user_id=UserID(""))
