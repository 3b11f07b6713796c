"""What the helpline knows, and how a step records what it did.

`Bookkeeping` holds the state (sessions, volunteers' duty, timers, counters, the block
list) and the helpers every rule uses: `_emit` and `_say` collect the step's effects,
`_touch*` and the timer helpers collect what storage must write (`Changes`). Nothing here
decides anything: the moves of a conversation are in `bot.core.lifecycle`, the rules for
each kind of input in the modules beside it, and `bot.core.machine` puts them together.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, KeysView
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.core import routing, texts
from bot.core.counters import Counters
from bot.core.events import (
    Effect,
    RoomRef,
    Say,
    Target,
    Text,
)
from bot.core.hours import opening
from bot.core.ids import OfferID, RoomID, SessionID, UserID
from bot.core.model import (
    Block,
    Changes,
    Offer,
    OfferState,
    Outcome,
    Policy,
    Role,
    Session,
    State,
    Timer,
    TimerKind,
    VolunteerProfile,
    VolunteerState,
    timer_key,
)

RATINGS = ("1", "2", "3", "4", "5")
MAX_HELD = 50  # messages kept for the volunteer while a chatter waits
RECENT = 20  # conversations whose durations feed the wait estimate


def whole_minutes(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() / 60))


class Bookkeeping:
    """The helpline's state, and the helpers with which a step records what it did."""

    def __init__(
        self,
        policy: Policy,
        rng: random.Random,
        *,
        sessions: Iterable[Session] = (),
        volunteers: Iterable[VolunteerState] = (),
        timers: Iterable[Timer] = (),
        counters: Counters | None = None,
        blocks: Iterable[Block] = (),
    ) -> None:
        self.policy = policy
        self._rng = rng
        self.sessions: dict[SessionID, Session] = {s.id: s for s in sessions}
        self.duty: dict[UserID, VolunteerState] = {v.user_id: v for v in volunteers}
        for profile in policy.volunteers:
            self.duty.setdefault(profile.user_id, VolunteerState(profile.user_id))
        self.timers: dict[str, Timer] = {t.key: t for t in timers}
        self.counters = counters.copy() if counters is not None else Counters()
        self.blocks: dict[str, Block] = {b.hash: b for b in blocks}
        # Volunteers a reload took out of the config, for their aliases while their open
        # conversations go on (`bot.core.admin`).
        self._departed: dict[UserID, VolunteerProfile] = {}
        self._next_expiry = _soonest(self.blocks.values())
        self._rooms: dict[RoomID, tuple[SessionID, OfferID | None]] = {}
        for s in self.sessions.values():
            self._index(s)
        self._rate: dict[SessionID, deque[datetime]] = {}
        # Rooms where someone from a server the line does not serve was told so (once per
        # room while the bot runs: after a restart, once more at most).
        self._told_other_server: set[RoomID] = set()
        self._changes = Changes()
        self._effects: list[Effect] = []

    @property
    def blocked(self) -> KeysView[str]:
        """The keyed hashes of the chatters blocked now (`chatter_hash`), for `in`. A block
        that ran out is gone from here from the first input handled after its end."""
        return self.blocks.keys()

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        if changes.counters is not None:
            changes.counters = changes.counters.copy()  # later steps change the live ones
        return changes

    def session_for_room(self, room: RoomID) -> tuple[Session, Offer | None] | None:
        hit = self._rooms.get(room)
        if hit is None or hit[0] not in self.sessions:
            return None
        session = self.sessions[hit[0]]
        return session, session.offer(hit[1]) if hit[1] is not None else None

    def room_of(self, ref: RoomRef) -> RoomID | None:
        session = self.sessions.get(ref.session_id)
        if session is None:
            return None
        if ref.offer_id is None:
            return session.chatter_room
        offer = session.offer(ref.offer_id)
        return offer.room if offer else None

    def status(self, now: datetime) -> dict[str, int]:
        """Figures for !status and metrics: counts only, never who."""
        queued = routing.queue_order(self.sessions.values())
        longest = max(
            ((now - (s.queued_at or s.created_at)).total_seconds() for s in queued), default=0
        )
        return {
            "waiting": len(queued),
            "longest_wait_minutes": int(longest // 60),
            # Volunteers only: a supervisor on duty takes alerts, not conversations.
            "on_duty": sum(
                1 for v in self.duty.values() if v.on_duty and self.policy.profile(v.user_id)
            ),
            "active": sum(1 for s in self.sessions.values() if s.state is State.ACTIVE),
            "offers": sum(len(s.pending_offers()) for s in self.sessions.values()),
            "ending": sum(
                1 for s in self.sessions.values() if s.state in (State.ENDING, State.PURGING)
            ),
        }

    def _emit(self, *effects: Effect) -> None:
        self._effects.extend(effects)

    def _say(self, to: Target, key: str, lang: str, /, **params: Any) -> None:
        """`key` with `params`, in `lang`; except in a volunteer's conversation room, which
        is always in that volunteer's own language (`VolunteerProfile.language`): one rule
        for every text to them, wherever it is decided."""
        texts.check(key, params)
        if isinstance(to, RoomRef) and to.role is Role.VOLUNTEER:
            lang = self._room_language(to, lang)
        self._emit(Say(to, Text(key, params), lang))

    def _say_rejection(self, to: Target, outcome: Outcome, lang: str, now: datetime) -> None:
        """Why a conversation cannot start; a closed line says when it opens next."""
        if outcome is Outcome.CLOSED_HOURS:
            self._say(to, texts.reject_key(outcome), lang, opens=opening(self.policy.hours, now))
        else:
            self._say(to, texts.reject_key(outcome), lang)

    def _room_language(self, ref: RoomRef, lang: str) -> str:
        s = self.sessions.get(ref.session_id)
        offer = s.offer(ref.offer_id) if s is not None and ref.offer_id is not None else None
        return self._staff_language(offer.volunteer) if offer is not None else lang

    def _touch(self, s: Session) -> None:
        self._changes.sessions[s.id] = s

    def _touch_block(self, b: Block) -> None:
        self.blocks[b.hash] = b
        self._changes.blocks[b.hash] = b
        self._changes.unblocked.discard(b.hash)
        self._next_expiry = _soonest(self.blocks.values())

    def _lift_block(self, b: Block) -> None:
        """The block is over (lifted, or ran out): its hash and its number go."""
        self.blocks.pop(b.hash, None)
        self._changes.blocks.pop(b.hash, None)
        self._changes.unblocked.add(b.hash)
        self._next_expiry = _soonest(self.blocks.values())

    def _expire_blocks(self, now: datetime) -> None:
        """Blocks whose time is up go, with the first input after their end (cheap when
        none is due: one comparison)."""
        if self._next_expiry is None or now < self._next_expiry:
            return
        for b in [b for b in self.blocks.values() if not b.lasts(now)]:
            self._lift_block(b)

    def _touch_duty(self, v: VolunteerState) -> None:
        self._changes.volunteers[v.user_id] = v

    def _counted(self) -> None:
        """The counters changed: storage gets them with this step."""
        self._changes.counters = self.counters

    def _index(self, s: Session) -> None:
        if s.chatter_room:
            self._rooms[s.chatter_room] = (s.id, None)
        for o in s.offers:
            if o.room:
                self._rooms[o.room] = (s.id, o.id)

    def _set_timer(
        self,
        kind: TimerKind,
        s: Session,
        due: datetime,
        *,
        offer: OfferID | None = None,
        before: timedelta | None = None,
    ) -> None:
        t = Timer(kind, s.id, due, offer=offer, before=before)
        self.timers[t.key] = t
        self._changes.timers_set[t.key] = t
        self._changes.timers_cleared.discard(t.key)

    def _arm_reminder(self, s: Session, now: datetime) -> None:
        """The volunteers' "still waiting" reminder; `waiting_reminder: 0` turns it off
        (armed at `now + 0`, it would fire and re-arm itself for ever)."""
        if self.policy.waiting_reminder > timedelta(0):
            self._set_timer(TimerKind.WAIT_REMINDER, s, now + self.policy.waiting_reminder)

    def _arm_duration(self, s: Session, now: datetime) -> None:
        deadline = s.deadline(self.policy.max_duration)
        assert deadline is not None
        self._clear_timers(s, TimerKind.WARN, TimerKind.MAX_DURATION)
        for before in self.policy.warn_before:
            due = deadline - before
            if due > now:
                # Whole seconds, as the stored form keeps it.
                whole = timedelta(seconds=int(before.total_seconds()))
                self._set_timer(TimerKind.WARN, s, due, before=whole)
        self._set_timer(TimerKind.MAX_DURATION, s, deadline)

    def _arm_idle(self, s: Session, now: datetime) -> None:
        idle = self.policy.chatter_idle
        warn = idle - self.policy.idle_warning_before
        self._clear_timers(s, TimerKind.IDLE_WARN)
        if warn > timedelta(0):
            self._set_timer(TimerKind.IDLE_WARN, s, now + warn)
        self._set_timer(TimerKind.IDLE_END, s, now + idle)

    def _clear_timer(self, kind: TimerKind, s: Session, *, offer: OfferID | None = None) -> None:
        self._clear_key(timer_key(kind, s.id, offer=offer))

    def _clear_key(self, key: str) -> None:
        if self.timers.pop(key, None) is not None:
            self._changes.timers_cleared.add(key)
            self._changes.timers_set.pop(key, None)

    def _clear_timers(self, s: Session, *kinds: TimerKind) -> None:
        for key, t in list(self.timers.items()):
            if t.session_id == s.id and (not kinds or t.kind in kinds):
                self._clear_key(key)

    def _chatter_ref(self, s: Session) -> RoomRef:
        return RoomRef(s.id, Role.CHATTER)

    def _volunteer_ref(self, s: Session) -> RoomRef | None:
        offer = next((o for o in s.offers if o.state is OfferState.ACCEPTED), None)
        return RoomRef(s.id, Role.VOLUNTEER, offer.id) if offer else None

    def _alias(self, user: UserID | None) -> str:
        profile = (self.policy.profile(user) or self._departed.get(user)) if user else None
        return profile.alias if profile else "?"

    def _pseudonym(self, s: Session) -> str:
        return f"Chatter #{s.number}"

    def _replacements(self, s: Session) -> dict[str, str]:
        out: dict[str, str] = {s.chatter: self._pseudonym(s)}
        if s.volunteer:
            out[s.volunteer] = self._alias(s.volunteer)
        for o in s.offers:
            out.setdefault(o.volunteer, self._alias(o.volunteer))
        return out

    def _staff_language(self, user: UserID | None = None) -> str:
        """The language for staff: `user`'s own when they are a volunteer who set one, the
        helpline's default otherwise (and in the volunteers' room, which all share)."""
        profile = self.policy.profile(user) if user is not None else None
        if profile is not None and profile.language is not None:
            return profile.language
        return self.policy.default_language

    def _say_staff(self, key: str, **params: Any) -> None:
        if self.policy.staff_room:
            self._say(self.policy.staff_room, key, self._staff_language(), **params)

    def _local_day(self, at: datetime) -> date:
        """The helpline's calendar day: a cap per day and the statistics count Oslo days."""
        return at.astimezone(ZoneInfo(self.policy.hours.timezone)).date()

    def _local_hour(self, at: datetime) -> int:
        """The hour of the helpline's day (0-23), for the statistics' weekday x hour counts."""
        return at.astimezone(ZoneInfo(self.policy.hours.timezone)).hour

    def _local_time(self, at: datetime) -> str:
        """A moment as staff read it, in the helpline's time zone: 2026-03-03 13:00."""
        return at.astimezone(ZoneInfo(self.policy.hours.timezone)).strftime("%Y-%m-%d %H:%M")


def _soonest(blocks: Iterable[Block]) -> datetime | None:
    return min((b.until for b in blocks if b.until is not None), default=None)
