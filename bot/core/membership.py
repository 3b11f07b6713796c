"""Rooms and membership: a room made or not, someone joining or leaving, the bot
removed from a room.

A volunteer joining the room of a pending offer accepts it; the chatter joining is
welcomed (or told why the conversation cannot start); anyone leaving ends, requeues or
withdraws, as `bot.core.lifecycle` says.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.core.events import (
    Joined,
    Left,
    Removed,
    RoomCreated,
    RoomFailed,
)
from bot.core.model import (
    OPEN_STATES,
    OfferState,
    Outcome,
    Role,
    State,
    TimerKind,
)
from bot.core.supervision import SupervisionRules


class MembershipRules(SupervisionRules):
    def _on_room_created(self, e: RoomCreated, now: datetime) -> None:
        s = self.sessions.get(e.session_id)
        if s is None:
            return
        if e.offer_id is None:
            s.chatter_room = e.room
        else:
            offer = s.offer(e.offer_id)
            if offer is None:
                return
            offer.room = e.room
        self._touch(s)
        self._index(s)

    def _on_room_failed(self, e: RoomFailed, now: datetime) -> None:
        s = self.sessions.get(e.session_id)
        if s is None:
            return
        if e.offer_id is None:
            if s.state in OPEN_STATES:
                self._end(s, Outcome.ROOM_FAILED, now, by=None, quiet_chatter=True)
            if s.source_room is not None:
                self._say(s.source_room, "intake.room_failed", s.language)
        else:
            offer = s.offer(e.offer_id)
            if offer is not None and offer.state is OfferState.PENDING:
                self._withdraw(s, offer, now)
                self._dispatch(now)

    def _on_joined(self, e: Joined, now: datetime) -> None:
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if offer is None:
            if e.user != s.chatter or s.chatter_joined:
                return
            s.chatter_joined = True
            s.last_chatter_activity = now
            self._touch(s)
            if s.state is State.WAITING:
                self._welcome(s, now)
                self._dispatch(now)
                self._tell_staff_if_unserved(s)
            elif s.state is State.CONSENT:
                self._say(self._chatter_ref(s), "consent", s.language)
            elif s.state is State.ENDING and s.outcome in (
                Outcome.CLOSED_HOURS,
                Outcome.QUEUE_FULL,
            ):
                self._say_rejection(self._chatter_ref(s), s.outcome, s.language, now)
                self._set_timer(
                    TimerKind.PURGE, s, now + max(self.policy.purge_after, timedelta(minutes=2))
                )
            return
        if e.user == offer.volunteer and offer.state is OfferState.PENDING:
            if s.state is State.OFFERED:
                self._accept(s, offer, now)
            elif s.state is State.ACTIVE and offer.id == s.transfer_offer:
                self._transfer_accepted(s, offer, now)
        elif e.user != offer.volunteer:
            self._seat_joined(s, offer, e.user)

    def _on_left(self, e: Left, now: datetime) -> None:
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if offer is None:
            if e.user != s.chatter:
                return
            if s.state is State.ACTIVE:
                self._end(s, Outcome.CHATTER_LEFT, now, by=Role.CHATTER, quiet_chatter=True)
            elif s.state in OPEN_STATES:
                self._end(s, Outcome.LEFT_WAITING, now, by=Role.CHATTER, quiet_chatter=True)
            return
        if e.user == offer.volunteer:
            self._volunteer_gone(s, offer, now)
        else:
            self._seat_left(s, e.user)

    def _on_removed(self, e: Removed, now: datetime) -> None:
        """The bot lost its place in a room of a conversation (kicked, banned, a state
        reset). The chatter's room: nobody can be told anything there, so the conversation
        ends, the volunteer is told why, and the chatter hears it in their DM (where they
        can start again). A volunteer's room: as if they had left it."""
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if offer is not None:
            self._volunteer_gone(s, offer, now)
            return
        if s.state not in OPEN_STATES:
            return
        self._end(s, Outcome.ROOM_LOST, now, by=None, quiet_chatter=True)
        if s.source_room is not None:
            self._say(s.source_room, "end.chatter.room_lost", s.language)
