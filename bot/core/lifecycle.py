"""A conversation's life: the legal moves, and every step that makes one.

`waiting -> offered -> active -> ending -> purging -> closed` (and `consent` before
waiting when the chatter must accept terms first). `TRANSITIONS` is the whole table; a
step checks its move with `check` before it changes anything, so an illegal move raises
`IllegalTransition` and leaves the state as it was. Every change of `Session.state` is
here: queueing, offering, accepting, handing back, ending, purging, closing. The rules
that read inputs (`intake`, `relay`, `command_rules`, `membership`, `timers`) decide
which of these steps to take.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.core import routing, texts
from bot.core.book import RECENT, whole_minutes
from bot.core.care import CareRules
from bot.core.events import (
    CreateRoom,
    Purge,
    PurgeFinished,
    PurgeStalled,
    RedactRoom,
    Relay,
    Retire,
    RoomRef,
    SetPersona,
    Withdraw,
)
from bot.core.ids import OfferID, RoomID, SessionID, UserID
from bot.core.model import (
    Offer,
    OfferState,
    Outcome,
    Role,
    SeatState,
    Session,
    Source,
    State,
    StatsRecord,
    TimerKind,
)
from bot.core.pseudonyms import scrub

TRANSITIONS: dict[State, frozenset[State]] = {
    State.CONSENT: frozenset({State.WAITING, State.ENDING}),
    State.WAITING: frozenset({State.OFFERED, State.ENDING}),
    State.OFFERED: frozenset({State.WAITING, State.ACTIVE, State.ENDING}),
    # ACTIVE -> WAITING: requeued after the volunteer left or handed the chatter back
    State.ACTIVE: frozenset({State.WAITING, State.ENDING}),
    State.ENDING: frozenset({State.PURGING}),
    State.PURGING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, session_id: SessionID, current: State, wanted: State) -> None:
        super().__init__(
            f"session {session_id}: cannot go from {current.value} to {wanted.value}"
            f" (allowed: {', '.join(sorted(s.value for s in TRANSITIONS[current])) or 'none'})"
        )
        self.session_id = session_id
        self.current = current
        self.wanted = wanted


def check(session: Session, to: State) -> None:
    if to not in TRANSITIONS[session.state]:
        raise IllegalTransition(session.id, session.state, to)


class Lifecycle(CareRules):
    def _move(self, s: Session, to: State) -> None:
        check(s, to)
        s.state = to
        self._touch(s)

    def _enqueue(self, s: Session, now: datetime) -> None:
        if s.state is not State.WAITING:  # after consent; a new conversation starts waiting
            self._move(s, State.WAITING)
        if s.queued_at is None:
            s.queued_at = now
        self._set_timer(TimerKind.QUEUE_MAX_WAIT, s, now + self.policy.queue_max_wait)
        self._arm_reminder(s, now)
        if s.chatter_joined:
            self._welcome(s, now)
        self._dispatch(now)
        self._tell_staff_if_unserved(s)

    def _tell_staff_if_unserved(self, s: Session) -> None:
        """The volunteers' room hears of a chatter who is there and could not be offered
        to anyone at once; one who was offered needs no alert (and on a busy evening,
        a notice per arrival to every volunteer is noise, and load on the homeserver).
        The reminders (`waiting_reminder`) go on while they wait."""
        if s.chatter_joined and s.state is State.WAITING:
            self._say_staff("staff.waiting", number=s.number, language=s.language)

    def _welcome(self, s: Session, now: datetime) -> None:
        position = self._position(s)
        estimate = routing.estimate_minutes(
            position,
            self.policy,
            self.duty,
            list(self.sessions.values()),
            self.counters.recent_durations,
            now,
        )
        s.announced_position, s.announced_estimate = position, estimate
        if s.told_estimate is None:
            s.told_estimate = estimate
        self._touch(s)
        self._say(
            self._chatter_ref(s),
            "welcome" if estimate is not None else "welcome.nobody_on_duty",
            s.language,
            position=position,
            minutes=estimate,
        )

    def _position(self, s: Session) -> int:
        order = routing.queue_order(self.sessions.values())
        return next((i for i, q in enumerate(order, 1) if q.id == s.id), 0)

    def _dispatch(self, now: datetime) -> None:
        """Offer waiting conversations to available volunteers, in queue order."""
        sessions = list(self.sessions.values())
        for s in routing.queue_order(sessions):
            if s.state is not State.WAITING or not s.chatter_joined or s.chatter_room is None:
                continue
            tried = frozenset(
                o.volunteer
                for o in s.offers
                if o.state in (OfferState.WITHDRAWN, OfferState.DECLINED, OfferState.RETIRED)
            )
            # Never straight back to a volunteer who left or handed this conversation back.
            retired = frozenset(o.volunteer for o in s.offers if o.state is OfferState.RETIRED)
            candidates = routing.available(self.policy, self.duty, sessions, exclude=tried)
            if not candidates:
                # Everyone suitable has had a go: start over rather than leave them waiting.
                candidates = routing.available(self.policy, self.duty, sessions, exclude=retired)
            chosen = routing.choose(
                self.policy, s, candidates, self.duty, sessions, self.counters.last_offered
            )
            for profile in chosen:
                self._offer(s, profile.user_id, now)
        self._announce_positions(now)

    def _offer(self, s: Session, volunteer: UserID, now: datetime) -> None:
        if s.state is State.WAITING:
            self._move(s, State.OFFERED)
        offer = Offer(OfferID(self.counters.next_offer_id), volunteer, now)
        self.counters.next_offer_id += 1
        s.offers.append(offer)
        self._touch(s)
        self.counters.last_offered = volunteer
        self._counted()
        ref = RoomRef(s.id, Role.VOLUNTEER, offer.id)
        federate = self.policy.is_remote(volunteer)
        self._emit(CreateRoom(ref, volunteer, self._pseudonym(s), federate))
        self._set_timer(TimerKind.OFFER_TIMEOUT, s, now + self.policy.offer_timeout, offer=offer.id)

    def _withdraw(self, s: Session, o: Offer, now: datetime, lapsed: bool = False) -> None:
        o.state = OfferState.WITHDRAWN
        self._touch(s)
        self._clear_timer(TimerKind.OFFER_TIMEOUT, s, offer=o.id)
        self._emit(Withdraw(RoomRef(s.id, Role.VOLUNTEER, o.id), o.volunteer))
        if lapsed:
            v = self.duty.get(o.volunteer)
            if v is not None:
                v.lapses += 1
                self._touch_duty(v)
                if v.lapses >= self.policy.lapses_before_off_duty and v.on_duty:
                    v.on_duty = False
                    self._say_staff(
                        "staff.lapsed_off_duty", alias=self._alias(o.volunteer), lapses=v.lapses
                    )
        if o.id == s.transfer_offer:
            self._transfer_lost(s, o)
        if s.state is State.OFFERED and not s.pending_offers():
            self._move(s, State.WAITING)

    def _transfer_lost(self, s: Session, o: Offer) -> None:
        """The volunteer a conversation was being transferred to did not take it (let the
        offer lapse, declined, went off duty): the one who asked keeps the chatter."""
        s.transfer_offer = None
        self._touch(s)
        vref = self._volunteer_ref(s)
        if s.state is State.ACTIVE and vref is not None:
            alias = self._alias(o.volunteer)
            self._say(vref, "transfer.lost", self._staff_language(), alias=alias, number=s.number)

    def _accept(self, s: Session, o: Offer, now: datetime) -> None:
        check(s, State.ACTIVE)
        o.state = OfferState.ACCEPTED
        self._clear_timer(TimerKind.OFFER_TIMEOUT, s, offer=o.id)
        # ACTIVE first: withdrawing the last other offer must not send the session back
        # to WAITING (broadcast: the others lose).
        self._move(s, State.ACTIVE)
        for other in s.pending_offers():
            self._withdraw(s, other, now)
        s.volunteer, s.volunteer_room, s.accepted_at = o.volunteer, o.room, now
        s.extended = timedelta(0)
        if s.first_wait is None:
            s.first_wait = now - (s.queued_at or s.created_at)
        s.last_chatter_activity = now
        self._touch(s)
        v = self.duty[o.volunteer]
        v.last_assigned_at, v.lapses = now, 0
        self._shift_took(v)
        self._clear_timers(s, TimerKind.QUEUE_MAX_WAIT, TimerKind.WAIT_REMINDER)
        self._arm_duration(s, now)
        self._arm_idle(s, now)
        vref = RoomRef(s.id, Role.VOLUNTEER, o.id)
        self._say(
            vref,
            "accepted.volunteer",
            self._staff_language(),
            number=s.number,
            language=s.language,
            waited=whole_minutes(now - (s.queued_at or s.created_at)),
            minutes=whole_minutes(self.policy.max_duration),
            requeued=s.requeues > 0,
        )
        if s.unverified_device:
            self._say(vref, "unverified.device", self._staff_language(), number=s.number)
        alias = self._alias(o.volunteer)
        self._emit(SetPersona(self._chatter_ref(s), alias))
        self._say(self._chatter_ref(s), "accepted.chatter", s.language, alias=alias)
        if s.note is not None:
            # The handover note: for this volunteer's eyes only, and only once.
            self._say(vref, "note.handover", self._staff_language(), note=s.note)
            s.note = None
        for held in s.held:
            self._emit(Relay(vref, scrub(held.body, self._replacements(s)), held.event_id))
        if s.held and self.policy.volunteer_silence > timedelta(0):
            s.unanswered_since = now  # the chatter's words wait for an answer
            self._set_timer(TimerKind.VOLUNTEER_SILENCE, s, now + self.policy.volunteer_silence)
        s.held = []
        self._dispatch(now)

    def _requeue(self, s: Session, now: datetime, volunteer_left: bool) -> None:
        """The volunteer left or handed back: the chatter goes first in the queue."""
        check(s, State.WAITING)
        # A transfer not yet taken is off: the queue decides who comes next.
        s.transfer_offer = None
        for o in s.pending_offers():
            self._withdraw(s, o, now)
        vref = self._volunteer_ref(s)
        if vref is not None and not volunteer_left:
            self._say(vref, "handback.done", self._staff_language(), number=s.number)
        self._retire_volunteer_room(s)
        s.priority, s.requeues = 1, s.requeues + 1
        self._clear_timers(s)
        self._touch(s)
        self._say(self._chatter_ref(s), "requeued", s.language)
        self._move(s, State.WAITING)
        self._set_timer(TimerKind.QUEUE_MAX_WAIT, s, now + self.policy.queue_max_wait)
        self._arm_reminder(s, now)
        self._say_staff("staff.requeued", number=s.number, language=s.language)
        self._dispatch(now)

    def _retire_volunteer_room(self, s: Session) -> None:
        """The volunteer (and any supervisor at their side) out of their room of this
        conversation, which is no longer used (hand-back, leaving, transfer): it goes with
        the conversation's purge."""
        vref, volunteer = self._volunteer_ref(s), s.volunteer
        if vref is not None and volunteer is not None:
            # Redact before the kick: a client removed from a room never receives the
            # redactions that make it drop what it cached (the chatter's words).
            self._emit(RedactRoom(vref))
            self._emit(Retire(vref, volunteer))
            for seat in s.present_seats():
                self._emit(Retire(vref, seat.user))
        for seat in s.present_seats():
            seat.state = SeatState.GONE
        if s.volunteer_room:
            s.retired_rooms.append(s.volunteer_room)
        for o in s.offers:
            if o.state is OfferState.ACCEPTED:
                o.state = OfferState.RETIRED
        s.volunteer, s.volunteer_room, s.accepted_at = None, None, None
        s.unanswered_since, s.silence_told = None, 0
        self._touch(s)

    def _announce_positions(self, now: datetime) -> None:
        sessions = list(self.sessions.values())
        for i, s in enumerate(routing.queue_order(sessions), 1):
            if not s.chatter_joined or s.announced_position is None:
                continue
            if i >= s.announced_position:
                continue
            estimate = routing.estimate_minutes(
                i, self.policy, self.duty, sessions, self.counters.recent_durations, now
            )
            changed = (
                estimate is not None
                and s.announced_estimate is not None
                and abs(estimate - s.announced_estimate) >= 5
            )
            if i <= 3 or changed:
                self._say(
                    self._chatter_ref(s), "queue.update", s.language, position=i, minutes=estimate
                )
                s.announced_estimate = estimate
            s.announced_position = i
            self._touch(s)

    def _volunteer_gone(self, s: Session, offer: Offer, now: datetime) -> None:
        if offer.state is OfferState.PENDING:
            offer.state = OfferState.DECLINED
            self._clear_timer(TimerKind.OFFER_TIMEOUT, s, offer=offer.id)
            self._touch(s)
            self._emit(Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), offer.volunteer))
            if offer.id == s.transfer_offer:
                self._transfer_lost(s, offer)
            if s.state is State.OFFERED and not s.pending_offers():
                self._move(s, State.WAITING)
            self._dispatch(now)
        elif offer.state is OfferState.ACCEPTED and s.state is State.ACTIVE:
            self._requeue(s, now, volunteer_left=True)

    def _end(
        self,
        s: Session,
        outcome: Outcome,
        now: datetime,
        by: Role | None,
        quiet_chatter: bool = False,
    ) -> None:
        check(s, State.ENDING)
        was_active = s.state is State.ACTIVE
        vref = self._volunteer_ref(s)
        s.transfer_offer = None  # the end says it all: no word of a transfer called off
        for o in s.pending_offers():
            self._withdraw(s, o, now)
        self._clear_timers(s)
        self._move(s, State.ENDING)
        s.outcome = outcome
        s.ended_at = now
        self._touch(s)
        self._rate.pop(s.id, None)
        if s.accepted_at is not None and was_active:
            self.counters.recent_durations = [
                *self.counters.recent_durations,
                (now - s.accepted_at).total_seconds(),
            ][-RECENT:]
            self._counted()
        if not quiet_chatter and s.chatter_joined:
            self._say(self._chatter_ref(s), texts.end_chatter_key(outcome), s.language)
            if self.policy.ask_rating and was_active:
                self._say(self._chatter_ref(s), "rating.ask", s.language)
        if was_active and vref is not None:
            self._say(
                vref,
                texts.end_volunteer_key(outcome),
                self._staff_language(),
                number=s.number,
                topics=list(self.policy.topics),
                by=by.value if by else "",
            )
            self._offer_debrief(s, vref, ())
        self._set_timer(TimerKind.PURGE, s, now + self.policy.purge_after)
        self._dispatch(now)

    def _start_purge(self, s: Session) -> None:
        check(s, State.PURGING)  # before the timers go: a refused move changes nothing
        self._clear_timers(s)
        self._move(s, State.PURGING)
        staff = [*(o.volunteer for o in s.offers), *(seat.user for seat in s.seats)]
        participants = tuple(dict.fromkeys([s.chatter, *staff]).keys())
        erase = s.chatter if s.source is Source.WEB else None
        dm = self._dm_to_purge(s)
        federated = any(self.policy.is_remote(p) for p in participants)
        rooms = tuple(s.all_rooms())
        self._emit(Purge(s.id, rooms, participants, dm=dm, erase=erase, federated=federated))

    def _dm_to_purge(self, s: Session) -> RoomID | None:
        """The DM the conversation came from, unless a conversation of the same DM that is
        not purging yet still needs it (the chatter wrote there again): that one's purge
        takes it. Its words went with the conversation's end text, which was carried out
        before the purge (effects of a conversation run in order)."""
        dm = s.source_room
        if dm is None:
            return None
        for other in self.sessions.values():
            if (
                other.id != s.id
                and other.source_room == dm
                and other.state not in (State.PURGING, State.CLOSED)
            ):
                return None
        return dm

    def _on_purge_stalled(self, e: PurgeStalled) -> None:
        s = self.sessions.get(e.session_id)
        if s is not None and s.state is State.PURGING:
            # Not a failure: the purge goes on by itself; the supervisors must know that
            # the conversation is still on the server until it succeeds.
            self._say_staff("staff.purge_retrying", number=s.number)

    def _on_purged(self, e: PurgeFinished, now: datetime) -> None:
        s = self.sessions.get(e.session_id)
        if s is None or s.state is not State.PURGING:
            return
        self._move(s, State.CLOSED)
        duration = (
            int((s.ended_at - s.accepted_at).total_seconds())
            if s.ended_at and s.accepted_at
            else None
        )
        self._changes.stats.append(
            StatsRecord(
                day=self._local_day(s.created_at),
                language=s.language,
                source=s.source.value,
                outcome=(s.outcome or Outcome.COMPLETED).value,
                wait_seconds=(
                    int(s.first_wait.total_seconds()) if s.first_wait is not None else None
                ),
                duration_seconds=duration,
                requeues=s.requeues,
                tags=tuple(s.tags),
                rating=s.rating,
                purge_result=e.result,
                hour=self._local_hour(s.created_at),
                told_wait_minutes=s.told_estimate,
            )
        )
        if e.result.startswith("failed"):
            # Supervisors must know that something may be left on the server; the number
            # is all they need to ask an admin, and all they may see.
            self._say_staff("staff.purge_failed", number=s.number)
        self._forget(s)

    def _forget(self, s: Session) -> None:
        for room in s.all_rooms():
            self._rooms.pop(room, None)
        self._clear_timers(s)
        self.sessions.pop(s.id, None)
        self._changes.sessions.pop(s.id, None)
        self._changes.deleted_sessions.add(s.id)
