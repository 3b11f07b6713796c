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
from bot.core.lifecycle import Lifecycle
from bot.core.model import (
    QUEUED_STATES,
    OfferState,
    Outcome,
    Session,
    State,
    TimerKind,
)


class TimerRules(Lifecycle):
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
        lang = s.language
        kind = timer.kind
        if kind is TimerKind.OFFER_TIMEOUT:
            offer = s.offer(timer.offer) if timer.offer is not None else None
            if offer is not None and offer.state is OfferState.PENDING:
                self._withdraw(s, offer, now, lapsed=True)
                self._dispatch(now)
        elif kind is TimerKind.WARN and s.state is State.ACTIVE and timer.before is not None:
            minutes = whole_minutes(timer.before)
            self._say(self._chatter_ref(s), "warn.chatter", lang, minutes=minutes)
            if (vref := self._volunteer_ref(s)) is not None:
                left = whole_minutes(self.policy.max_extension - s.extended)
                self._say(
                    vref,
                    "warn.volunteer",
                    self._staff_language(),
                    minutes=minutes,
                    extension_left=left,
                )
        elif kind is TimerKind.MAX_DURATION and s.state is State.ACTIVE:
            self._end(s, Outcome.TIMED_OUT, now, by=None)
        elif kind is TimerKind.IDLE_WARN and s.state is State.ACTIVE:
            warn_due, _ = self._idle_due(s)
            if now < warn_due:  # the chatter wrote since this was set
                self._set_timer(TimerKind.IDLE_WARN, s, warn_due)
                return
            minutes = whole_minutes(self.policy.idle_warning_before)
            self._say(self._chatter_ref(s), "idle.warning", lang, minutes=minutes)
            if (vref := self._volunteer_ref(s)) is not None:
                self._say(vref, "idle.volunteer", self._staff_language(), minutes=minutes)
        elif kind is TimerKind.IDLE_END and s.state is State.ACTIVE:
            _, end_due = self._idle_due(s)
            if now < end_due:  # the chatter wrote since this was set
                self._set_timer(TimerKind.IDLE_END, s, end_due)
                return
            self._end(s, Outcome.CHATTER_IDLE, now, by=None)
        elif kind is TimerKind.QUEUE_MAX_WAIT and s.state in (
            State.WAITING,
            State.OFFERED,
            State.CONSENT,
        ):
            outcome = Outcome.NO_CONSENT if s.state is State.CONSENT else Outcome.QUEUE_TIMEOUT
            self._end(s, outcome, now, by=None)
        elif kind is TimerKind.WAIT_REMINDER and s.state in QUEUED_STATES:
            self._say_staff(
                "staff.still_waiting",
                number=s.number,
                language=s.language,
                minutes=whole_minutes(now - (s.queued_at or s.created_at)),
            )
            self._arm_reminder(s, now)
        elif kind is TimerKind.PURGE and s.state is State.ENDING:
            self._start_purge(s)
