"""Supervision: a supervisor at the volunteer's side, a volunteer's call for help, and a
volunteer who has gone silent.

Rules:
- A supervisor joins the *volunteer's* room of one conversation, never the chatter's:
  `!join N` in the volunteers' room or a DM (the bot invites them), or one tap on the
  invite an `!alert` sends them. From their join they read what is relayed there; what they
  write reaches the volunteer and nobody else (`RelayRules._supervisor_message` relays
  nothing). The volunteer is told who joined; the chatter only with
  `supervision.tell_chatter` ("a supervisor is helping the volunteer").
- `!leave` removes the supervisor; so does the volunteer's room being retired (hand-back,
  transfer, the volunteer leaving), after its redaction. At the end of the conversation
  they stay until the purge, which redacts the room and then kicks everyone who was ever
  seated (`Purge.participants`), as it does the volunteers.
- `!alert` mentions the supervisors on duty (`m.mentions.user_ids`, so that their apps
  notify them), or every supervisor when none is on duty: a call for help is never
  addressed to nobody. Each is invited to the volunteer's room; the first to join takes
  it and the other invitations are withdrawn. A supervisor who is not a volunteer goes on
  and off duty with `!on` / `!off`, for alerts only (they get no conversations).
- Silence: when the chatter has written and the volunteer has not answered (a relayed
  message or a canned reply) for `limits.volunteer_silence`, the volunteer is nudged; after
  twice that, the supervisors are alerted with the session number, mentioned as for
  `!alert`. One timer per conversation that moves itself when it fires early (the
  volunteer answered, and the chatter wrote again since), so a message costs no timer
  write. `volunteer_silence: 0` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bot.core import commands, texts
from bot.core.book import whole_minutes
from bot.core.commands import Audience, Command
from bot.core.events import Invite, Message, Retire, RoomRef, Say, Target, Text
from bot.core.ids import RoomID, UserID
from bot.core.model import (
    Offer,
    OfferState,
    Seat,
    SeatState,
    Session,
    State,
    TimerKind,
    VolunteerState,
    timer_key,
)
from bot.core.transfer import TransferRules


class SupervisionRules(TransferRules):
    # -- commands -------------------------------------------------------------------------

    def _supervision_staff_command(self, m: Message, c: Command, now: datetime) -> bool:
        """The volunteers' room or a DM: `!join N`, and a supervisor's own duty. True when
        handled here; the caller handles every other command."""
        if c.name == "join":
            if not self.policy.is_supervisor(m.sender):
                self._say(m.room, "supervisors_only", self._staff_language())
            else:
                assert c.number is not None
                self._join(m.sender, m.room, c.number)
            return True
        if c.name in ("on", "off") and self._supervises_only(m.sender):
            self._supervisor_duty(m.sender, m.room, c.name == "on", now)
            return True
        return False

    def _supervision_room_command(
        self, s: Session, sender: UserID, vref: RoomRef, c: Command, now: datetime
    ) -> bool:
        """A volunteer's room of a conversation: a supervisor's `!leave`, and the
        volunteer's `!alert`, `!transfer` and `!note`. True when handled here."""
        lang = self._staff_language()
        if c.name == "help" and sender != s.volunteer:
            # A supervisor at the volunteer's side: what they may do in this room.
            lines = [
                (commands.usage_line(spec, lang), f"help.{spec.name}")
                for spec in commands.TABLE
                if spec.supervisors_only and Audience.VOLUNTEER in spec.audience
            ]
            self._say(vref, "help", lang, lines=lines)
            return True
        if c.name == "leave":
            seat = s.seat(sender)
            if not self.policy.is_supervisor(sender):
                self._say(vref, "supervisors_only", lang)
            elif seat is not None and seat.state is not SeatState.GONE:
                self._unseat(s, seat, vref)
            return True
        if sender != s.volunteer or c.name not in ("alert", "transfer", "note"):
            return False
        if s.state is not State.ACTIVE:
            self._say(vref, "not_active", lang)
        elif c.name == "alert":
            self._alert(s, vref, now)
        elif c.name == "transfer":
            self._transfer(s, vref, c, now)
        else:
            self._note(s, vref, c)
        return True

    def _supervises_only(self, user: UserID) -> bool:
        return self.policy.is_supervisor(user) and self.policy.profile(user) is None

    def _supervisor_duty(self, user: UserID, room: RoomID, on: bool, now: datetime) -> None:
        v = self.duty.get(user)
        if v is None and on:
            v = self.duty[user] = VolunteerState(user)
        if v is not None and v.on_duty != on:
            v.on_duty, v.duty_since = on, (now if on else None)
            self._touch_duty(v)
        self._say(
            room, "duty.supervisor_on" if on else "duty.supervisor_off", self._staff_language()
        )

    def _on_duty_supervisors(self, s: Session) -> tuple[UserID, ...]:
        """Whom an alert about `s` mentions: the supervisors on duty, or all of them when
        none is; never the conversation's own volunteer."""
        everyone = sorted(u for u in self.policy.supervisors if u != s.volunteer)
        on = [u for u in everyone if (d := self.duty.get(u)) is not None and d.on_duty]
        return tuple(on or everyone)

    # -- joining and leaving -------------------------------------------------------------------

    def _join(self, supervisor: UserID, where: RoomID, number: int) -> None:
        lang = self._staff_language()
        s = next(
            (x for x in self.sessions.values() if x.number == number and x.state is State.ACTIVE),
            None,
        )
        vref = self._volunteer_ref(s) if s is not None else None
        if s is None or vref is None:
            self._say(where, "join.unknown", lang, number=number)
            return
        if s.volunteer == supervisor:
            self._say(where, "join.own", lang, number=number)
            return
        seat = s.seat(supervisor)
        if seat is not None and seat.state is SeatState.JOINED:
            self._say(where, "join.already", lang, number=number)
            return
        self._invite(s, vref, supervisor)
        self._say(where, "join.invited", lang, number=number)

    def _invite(self, s: Session, vref: RoomRef, supervisor: UserID) -> None:
        seat = s.seat(supervisor)
        if seat is None:
            s.seats.append(Seat(supervisor))
        else:
            seat.state = SeatState.INVITED
        self._touch(s)
        self._emit(Invite(vref, supervisor))

    def _seat_joined(self, s: Session, offer: Offer, user: UserID) -> bool:
        """A supervisor invited to the volunteer's room came in. True if `user` was one."""
        seat = s.seat(user)
        if seat is None or seat.state is not SeatState.INVITED:
            return False
        vref = self._volunteer_ref(s)
        if offer.state is not OfferState.ACCEPTED or vref is None or s.state is not State.ACTIVE:
            return True  # a retired room, or the end came first: the purge removes them
        seat.state = SeatState.JOINED
        self._touch(s)
        self._say(vref, "supervision.joined", self._staff_language(), name=self._staff_name(user))
        if self.policy.tell_chatter:
            self._say(self._chatter_ref(s), "supervision.chatter", s.language)
        for other in s.seats:
            if other.state is SeatState.INVITED:
                # One supervisor is enough; fewer readers is better. `!join` brings another.
                other.state = SeatState.GONE
                self._emit(Retire(vref, other.user))
        return True

    def _seat_left(self, s: Session, user: UserID) -> bool:
        """A supervisor left the volunteer's room, or declined its invite. True if `user`
        was one."""
        seat = s.seat(user)
        if seat is None:
            return False
        was_in = seat.state is SeatState.JOINED
        seat.state = SeatState.GONE
        self._touch(s)
        vref = self._volunteer_ref(s)
        if was_in and s.state is State.ACTIVE and vref is not None:
            self._say(vref, "supervision.left", self._staff_language(), name=self._staff_name(user))
        return True

    def _unseat(self, s: Session, seat: Seat, vref: RoomRef) -> None:
        was_in = seat.state is SeatState.JOINED
        seat.state = SeatState.GONE
        self._touch(s)
        self._emit(Retire(vref, seat.user))
        if was_in:
            name = self._staff_name(seat.user)
            self._say(vref, "supervision.left", self._staff_language(), name=name)

    def _staff_name(self, user: UserID) -> str:
        """How staff are named to staff: a volunteer's alias; a supervisor's ID, as the
        config lists them (they have no alias)."""
        profile = self.policy.profile(user)
        return profile.alias if profile else user

    # -- calling for help ----------------------------------------------------------------------

    def _alert(self, s: Session, vref: RoomRef, now: datetime) -> None:
        supervisors = self._on_duty_supervisors(s)
        self._say_mentioning(
            supervisors,
            "staff.alert",
            number=s.number,
            alias=self._alias(s.volunteer),
            minutes=whole_minutes(now - (s.accepted_at or now)),
        )
        for u in supervisors:
            seat = s.seat(u)
            if seat is None or seat.state is SeatState.GONE:
                self._invite(s, vref, u)
        self._say(vref, "alert.sent", self._staff_language())

    def _say_mentioning(self, users: Iterable[UserID], key: str, **params: Any) -> None:
        """A text in the volunteers' room that notifies `users` (no ID in its words)."""
        room: Target | None = self.policy.staff_room
        if room is None:
            return
        texts.check(key, params)
        text = Text(key, params)
        self._emit(Say(room, text, self._staff_language(), mentions=tuple(users)))

    # -- a volunteer who has gone silent -------------------------------------------------------

    def _chatter_waits(self, s: Session, now: datetime) -> None:
        """The chatter's words were relayed to the volunteer: from now they wait for an
        answer, unless they already did."""
        if s.unanswered_since is not None or self.policy.volunteer_silence <= timedelta(0):
            return
        s.unanswered_since, s.silence_told = now, 0
        self._touch(s)
        if timer_key(TimerKind.VOLUNTEER_SILENCE, s.id) not in self.timers:
            self._set_timer(TimerKind.VOLUNTEER_SILENCE, s, now + self.policy.volunteer_silence)

    def _volunteer_answered(self, s: Session) -> None:
        if s.unanswered_since is not None:
            s.unanswered_since, s.silence_told = None, 0
            self._touch(s)

    def _silence_timer(self, s: Session, now: datetime) -> None:
        """The silence timer came due: nudge, alert, or move to the next due moment."""
        since = s.unanswered_since
        if s.state is not State.ACTIVE or since is None:
            return  # answered: the chatter's next words arm it again
        silence = self.policy.volunteer_silence
        nudge, alert = since + silence, since + 2 * silence
        vref = self._volunteer_ref(s)
        if now < nudge:
            self._set_timer(TimerKind.VOLUNTEER_SILENCE, s, nudge)
        elif s.silence_told == 0:
            s.silence_told = 1
            self._touch(s)
            if vref is not None:
                minutes = whole_minutes(now - since)
                self._say(vref, "silence.nudge", self._staff_language(), minutes=minutes)
            self._set_timer(TimerKind.VOLUNTEER_SILENCE, s, alert)
        elif now < alert:
            self._set_timer(TimerKind.VOLUNTEER_SILENCE, s, alert)
        elif s.silence_told == 1:
            s.silence_told = 2
            self._touch(s)
            self._say_mentioning(
                self._on_duty_supervisors(s),
                "staff.silence",
                number=s.number,
                alias=self._alias(s.volunteer),
                minutes=whole_minutes(now - since),
            )
