"""What each command does: the chatter's, the volunteer's in a conversation, and the
staff's in the volunteers' room or a DM.

How a body is parsed into a command is `bot.core.commands` (the table, the usage lines,
`!help`); here is what happens once it is one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.core import commands, routing, texts
from bot.core.admin import AdminRules
from bot.core.blocking import BlockRules
from bot.core.book import whole_minutes
from bot.core.commands import Audience, Command, Usage
from bot.core.events import (
    Message,
    RoomRef,
    Say,
    Text,
)
from bot.core.ids import UserID
from bot.core.model import (
    OPEN_STATES,
    Outcome,
    Role,
    Session,
    State,
    TimerKind,
    VolunteerProfile,
    VolunteerState,
)
from bot.core.supervision import SupervisionRules


class CommandRules(SupervisionRules, AdminRules, BlockRules):
    def _chatter_command(self, s: Session, c: Command, now: datetime) -> None:
        ref, lang = self._chatter_ref(s), s.language
        if c.name == "help":
            self._say(ref, "help", lang, lines=commands.help_lines(Audience.CHATTER, lang))
        elif c.name == "language":
            wanted = c.args[0].lower()
            if wanted not in self.policy.languages:
                self._say(ref, "language.unknown", lang, available=list(self.policy.languages))
            else:
                s.language = wanted
                self._touch(s)
                self._say(ref, "language.set", wanted)
        elif c.name == "yes":
            if s.state is State.CONSENT:
                self._clear_timer(TimerKind.QUEUE_MAX_WAIT, s)
                self._enqueue(s, now)
        elif c.name == "end":
            if s.state is State.ACTIVE:
                self._end(s, Outcome.COMPLETED, now, by=Role.CHATTER)
            elif s.state in OPEN_STATES:
                self._end(s, Outcome.LEFT_WAITING, now, by=Role.CHATTER)
        elif c.name == "delete":
            if s.state in OPEN_STATES:
                self._end(s, Outcome.DELETED, now, by=Role.CHATTER, quiet_chatter=True)
            if s.state is State.ENDING:
                self._start_purge(s)

    def _volunteer_command(self, s: Session, vref: RoomRef, c: Command, now: datetime) -> None:
        lang = self._staff_language(s.volunteer)
        active = s.state is State.ACTIVE
        if s.volunteer is not None and self._care_command(s.volunteer, vref, c, now):
            return
        if c.name == "help":
            lines = commands.help_lines(
                Audience.VOLUNTEER, lang, supervisor=self._is_supervisor(s.volunteer)
            )
            self._say(vref, "help", lang, lines=lines)
        elif c.name == "status":
            self._say(vref, "status", lang, **self.status(now))
        elif c.name == "tag":
            self._tag(s, vref, c)
        elif not active:
            self._say(vref, "not_active", lang)
        elif c.name == "end":
            self._end(s, Outcome.COMPLETED, now, by=Role.VOLUNTEER)
        elif c.name == "time":
            self._time(s, vref, now)
        elif c.name == "extend":
            self._extend(s, vref, c, now)
        elif c.name == "say":
            self._canned(s, vref, c)
        elif c.name == "handback":
            self._requeue(s, now, volunteer_left=False)

    def _tag(self, s: Session, vref: RoomRef, c: Command) -> None:
        lang = self._staff_language()
        unknown = [t for t in c.args if t not in self.policy.topics]
        if unknown:
            self._say(vref, "tag.unknown", lang, unknown=unknown, topics=list(self.policy.topics))
            return
        before = list(s.tags)
        for t in c.args:
            if t not in s.tags:
                s.tags.append(t)
        self._touch(s)
        self._say(vref, "tag.saved", lang, tags=list(s.tags))
        self._offer_debrief(s, vref, before)

    def _time(self, s: Session, vref: RoomRef, now: datetime) -> None:
        deadline = s.deadline(self.policy.max_duration)
        assert deadline is not None
        assert s.accepted_at is not None
        self._say(
            vref,
            "time",
            self._staff_language(),
            elapsed=whole_minutes(now - s.accepted_at),
            left=whole_minutes(deadline - now),
            extension_left=whole_minutes(self.policy.max_extension - s.extended),
        )

    def _canned(self, s: Session, vref: RoomRef, c: Command) -> None:
        """A canned reply, sent as the volunteer's words (`voice`), in the chatter's language."""
        name = c.args[0].lower()
        if name not in self.policy.canned:
            names = list(self.policy.canned)
            self._say(vref, "canned.unknown", self._staff_language(), names=names)
        else:
            text = Text(texts.canned_key(name))
            self._emit(Say(self._chatter_ref(s), text, s.language, voice=True))
            self._volunteer_answered(s)

    def _extend(self, s: Session, vref: RoomRef, c: Command, now: datetime) -> None:
        lang = self._staff_language()
        wanted = timedelta(minutes=c.minutes) if c.minutes else self.policy.default_extension
        room = self.policy.max_extension - s.extended
        if room <= timedelta(0):
            self._say(vref, "extend.none_left", lang)
            return
        granted = min(wanted, room)
        s.extended += granted
        self._touch(s)
        self._arm_duration(s, now)
        deadline = s.deadline(self.policy.max_duration)
        assert deadline is not None
        self._say(
            vref,
            "extend.done",
            lang,
            minutes=whole_minutes(granted),
            left=whole_minutes(deadline - now),
        )
        self._say(
            self._chatter_ref(s), "extend.chatter", s.language, minutes=whole_minutes(granted)
        )

    def _staff_message(self, m: Message, now: datetime, direct: bool = False) -> None:
        lang = self._staff_language(m.sender)
        parsed = commands.parse(m.body, Audience.STAFF)
        if isinstance(parsed, Usage):
            if not parsed.wrong_place:
                self._say(m.room, "usage", lang, usage=commands.usage_line(parsed.spec, lang))
            return
        if parsed is None:
            if direct:
                self._say(m.room, "staff.dm_hint", lang)
            return
        if self._supervision_staff_command(m, parsed, now):
            return
        if self._supervisor_command(m.sender, m.room, parsed, now):
            return
        if self._admin_command(m.sender, m.room, parsed, now):
            return
        if self._care_command(m.sender, m.room, parsed, now):
            return
        if parsed.name == "help":
            lines = commands.help_lines(
                Audience.STAFF,
                lang,
                supervisor=self.policy.is_supervisor(m.sender),
                admin=self.policy.is_admin(m.sender),
            )
            self._say(m.room, "help", lang, lines=lines)
        elif parsed.name == "status":
            self._say(m.room, "status", lang, **self.status(now))
        elif parsed.name == "on":
            self._on_duty(m, now)
        elif parsed.name == "off":
            self._off_duty(m, now)

    def _is_supervisor(self, user: UserID | None) -> bool:
        return user is not None and self.policy.is_supervisor(user)

    def _volunteer(self, m: Message) -> tuple[VolunteerProfile, VolunteerState] | None:
        """The sender's profile and duty, or None (and they are told) for a supervisor
        or anyone else who is not a volunteer."""
        profile = self.policy.profile(m.sender)
        if profile is None:
            self._say(m.room, "duty.not_volunteer", self._staff_language(m.sender))
            return None
        return profile, self.duty[m.sender]

    def _on_duty(self, m: Message, now: datetime) -> None:
        lang = self._staff_language(m.sender)
        found = self._volunteer(m)
        if found is None:
            return
        profile, v = found
        if not v.on_duty:
            v.on_duty, v.duty_since, v.lapses = True, now, 0
            self._shift_begins(v)
        self._say(
            m.room,
            "duty.on",
            lang,
            alias=profile.alias,
            waiting=len(routing.queue_order(self.sessions.values())),
        )
        self._dispatch(now)

    def _off_duty(self, m: Message, now: datetime) -> None:
        lang = self._staff_language(m.sender)
        found = self._volunteer(m)
        if found is None:
            return
        profile, v = found
        v.on_duty = False
        self._touch_duty(v)
        for s in list(self.sessions.values()):
            for o in s.pending_offers():
                if o.volunteer == m.sender:
                    self._withdraw(s, o, now)
        active, _ = routing.load(m.sender, self.sessions.values())
        self._say(m.room, "duty.off", lang, alias=profile.alias, active=active)
        # Going off duty ends nothing by itself: ask, in each conversation, whether
        # to end it or hand it back (the chatter would go first in the queue).
        for s in self.sessions.values():
            if s.state is State.ACTIVE and s.volunteer == m.sender:
                vref = self._volunteer_ref(s)
                if vref is not None:
                    self._say(vref, "duty.off_ask", lang, number=s.number)
        self._dispatch(now)
