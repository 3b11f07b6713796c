"""Timers: what a deadline does when it comes due.

Timers are set by the steps (`Bookkeeping._set_timer`, `_arm_duration`, `_arm_idle`) and
stored before they are armed; one that fires for a conversation that has moved on is
ignored. The idle timers move themselves when the chatter wrote since they were set.
"""

from __future__ import annotations

from datetime import datetime

from bot.core.book import whole_minutes
from bot.core.events import (
    TimerFired,
)
from bot.core.model import (
    QUEUED_STATES,
    OfferState,
    Outcome,
    Session,
    State,
    Timer,
    TimerKind,
)
from bot.core.supervision import SupervisionRules


class TimerRules(SupervisionRules):
    def _idle_due(self, s: Session) -> tuple[datetime, datetime]:
        """(warning, end) counted from the chatter's last message."""
        last = s.last_chatter_activity or s.accepted_at
        assert last is not None
        end = last + self.policy.chatter_idle
        return end - self.policy.idle_warning_before, end

    def _on_timer(self, e: TimerFired, now: datetime) -> None:
        timer = self.timers.get(e.key)
        if timer is None:
            return
        s = self.sessions.get(timer.session_id)
        self._clear_key(e.key)
        if s is None:
            return
        match timer.kind:
            case TimerKind.OFFER_TIMEOUT:
                self._offer_lapsed(s, timer, now)
            case TimerKind.WARN:
                self._time_warning(s, timer)
            case TimerKind.MAX_DURATION:
                if s.state is State.ACTIVE:
                    self._end(s, Outcome.TIMED_OUT, now, by=None)
            case TimerKind.IDLE_WARN:
                self._idle_warning(s, now)
            case TimerKind.IDLE_END:
                self._idle_end(s, now)
            case TimerKind.QUEUE_MAX_WAIT:
                if s.state in (State.WAITING, State.OFFERED, State.CONSENT):
                    consent = s.state is State.CONSENT
                    self._end(
                        s, Outcome.NO_CONSENT if consent else Outcome.QUEUE_TIMEOUT, now, by=None
                    )
            case TimerKind.WAIT_REMINDER:
                self._still_waiting(s, now)
            case TimerKind.PURGE:
                if s.state is State.ENDING:
                    self._start_purge(s)
            case TimerKind.VOLUNTEER_SILENCE:
                self._silence_timer(s, now)

    def _offer_lapsed(self, s: Session, timer: Timer, now: datetime) -> None:
        offer = s.offer(timer.offer) if timer.offer is not None else None
        if offer is not None and offer.state is OfferState.PENDING:
            self._withdraw(s, offer, now, lapsed=True)
            self._dispatch(now)

    def _time_warning(self, s: Session, timer: Timer) -> None:
        if s.state is not State.ACTIVE or timer.before is None:
            return
        minutes = whole_minutes(timer.before)
        self._say(self._chatter_ref(s), "warn.chatter", s.language, minutes=minutes)
        if (vref := self._volunteer_ref(s)) is not None:
            left = whole_minutes(self.policy.max_extension - s.extended)
            self._say(
                vref,
                "warn.volunteer",
                self._staff_language(),
                minutes=minutes,
                extension_left=left,
            )

    def _idle_warning(self, s: Session, now: datetime) -> None:
        if s.state is not State.ACTIVE:
            return
        warn_due, _ = self._idle_due(s)
        if now < warn_due:  # the chatter wrote since this was set
            self._set_timer(TimerKind.IDLE_WARN, s, warn_due)
            return
        minutes = whole_minutes(self.policy.idle_warning_before)
        self._say(self._chatter_ref(s), "idle.warning", s.language, minutes=minutes)
        if (vref := self._volunteer_ref(s)) is not None:
            self._say(vref, "idle.volunteer", self._staff_language(), minutes=minutes)

    def _idle_end(self, s: Session, now: datetime) -> None:
        if s.state is not State.ACTIVE:
            return
        _, end_due = self._idle_due(s)
        if now < end_due:  # the chatter wrote since this was set
            self._set_timer(TimerKind.IDLE_END, s, end_due)
            return
        self._end(s, Outcome.CHATTER_IDLE, now, by=None)

    def _still_waiting(self, s: Session, now: datetime) -> None:
        if s.state not in QUEUED_STATES:
            return
        self._say_staff(
            "staff.still_waiting",
            number=s.number,
            language=s.language,
            minutes=whole_minutes(now - (s.queued_at or s.created_at)),
        )
        self._arm_reminder(s, now)
