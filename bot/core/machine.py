"""The helpline as a state machine. Everything that affects a conversation lives here.

Rules:
- `Helpline.handle(input, now)` is the only way in. It returns the effects to carry out,
  in order; `take_changes()` then returns what must be stored, in one transaction, before
  any effect runs. The current time is always an argument.
- A conversation moves only along `TRANSITIONS`. An illegal move raises
  `IllegalTransition` before anything is changed.
- Inputs that no longer apply (a timer for a conversation that has moved on, a join to a
  withdrawn offer, an event in an unknown room) are ignored: they are normal in a
  distributed system, not errors.
- Nothing a participant writes reaches the other side except through `Relay`, after
  `scrub`; nothing a participant writes goes anywhere else (not the volunteers' room, not
  the statistics).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections import deque
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.core import commands, routing
from bot.core.commands import Audience, Command, Usage
from bot.core.events import (
    ChatterUnverified,
    CreateRoom,
    Edit,
    Effect,
    IdentityChanged,
    Input,
    Joined,
    Kind,
    Left,
    Message,
    Origin,
    Purge,
    PurgeFinished,
    PurgeStalled,
    RecordMedia,
    Redact,
    Redaction,
    RedactRoom,
    Relay,
    RelayEdit,
    RelayRedaction,
    Removed,
    Retire,
    RoomCreated,
    RoomFailed,
    RoomRef,
    Say,
    SetPersona,
    SetTyping,
    Target,
    Text,
    TimerFired,
    Typing,
    Unreadable,
    Withdraw,
)
from bot.core.hours import is_open
from bot.core.ids import OfferID, RoomID, SessionID, UserID
from bot.core.model import (
    OPEN_STATES,
    QUEUED_STATES,
    Changes,
    HeldMessage,
    Offer,
    OfferState,
    Outcome,
    PlaintextDirect,
    Policy,
    Role,
    Session,
    Source,
    State,
    StatsRecord,
    Timer,
    TimerKind,
    VolunteerState,
    timer_key,
)

S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.CONSENT: frozenset({S.WAITING, S.ENDING}),
    S.WAITING: frozenset({S.OFFERED, S.ENDING}),
    S.OFFERED: frozenset({S.WAITING, S.ACTIVE, S.ENDING}),
    S.ACTIVE: frozenset({S.WAITING, S.ENDING}),  # WAITING: requeued after the volunteer left
    S.ENDING: frozenset({S.PURGING}),
    S.PURGING: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}

_RATINGS = ("1", "2", "3", "4", "5")
MAX_HELD = 50  # messages kept for the volunteer while a chatter waits
RECENT = 20  # conversations whose durations feed the wait estimate


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


def chatter_hash(key: bytes, user: UserID) -> str:
    """A keyed hash of a Matrix ID: lets the bot recognise a chatter without keeping the ID."""
    return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()


_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n", re.MULTILINE)
_MATRIX_TO = re.compile(r"https?://matrix\.to/#/[^\s)>\]]+", re.IGNORECASE)


def scrub(body: str, replacements: dict[str, str]) -> str:
    """Make a participant's text safe to show to the other side.

    Drops the reply fallback (it quotes a sender by Matrix ID), and replaces every known
    participant's Matrix ID, and every matrix.to link, with the pseudonym shown instead.
    """
    text = _REPLY_FALLBACK.sub("", body, count=1)
    for real, shown in replacements.items():
        if real:
            text = text.replace(real, shown)
    return _MATRIX_TO.sub("[lenke fjernet / link removed]", text)


class Helpline:
    def __init__(
        self,
        policy: Policy,
        rng: random.Random,
        *,
        sessions: Iterable[Session] = (),
        volunteers: Iterable[VolunteerState] = (),
        timers: Iterable[Timer] = (),
        meta: dict[str, Any] | None = None,
        blocked: Iterable[str] = (),
    ) -> None:
        self.policy = policy
        self._rng = rng
        self.sessions: dict[SessionID, Session] = {s.id: s for s in sessions}
        self.duty: dict[UserID, VolunteerState] = {v.user_id: v for v in volunteers}
        for profile in policy.volunteers:
            self.duty.setdefault(profile.user_id, VolunteerState(profile.user_id))
        self.timers: dict[str, Timer] = {t.key: t for t in timers}
        meta = dict(meta or {})
        self._next_session = int(meta.get("next_session_id", 1))
        self._next_offer = int(meta.get("next_offer_id", 1))
        last = meta.get("last_offered")
        self._last_offered: UserID | None = UserID(last) if last else None
        self._recent_durations: list[float] = list(meta.get("recent_durations", []))
        self._day_counts: dict[str, int] = dict(meta.get("day_counts", {}))
        self._day: str = str(meta.get("day", ""))
        self.blocked: set[str] = set(blocked)
        self._rooms: dict[RoomID, tuple[SessionID, OfferID | None]] = {}
        for s in self.sessions.values():
            self._index(s)
        self._rate: dict[SessionID, deque[datetime]] = {}
        self._changes = Changes()
        self._fx: list[Effect] = []

    # ----------------------------------------------------------------------------------
    # the way in

    def handle(self, event: Input, now: datetime) -> list[Effect]:
        self._fx = []
        match event:
            case Message():
                self._on_message(event, now)
            case Edit():
                self._on_edit(event)
            case Redaction():
                self._on_redaction(event)
            case Typing():
                self._on_typing(event)
            case Joined():
                self._on_joined(event, now)
            case Left():
                self._on_left(event, now)
            case Removed():
                self._on_removed(event, now)
            case RoomCreated():
                self._on_room_created(event, now)
            case RoomFailed():
                self._on_room_failed(event, now)
            case TimerFired():
                self._on_timer(event, now)
            case PurgeFinished():
                self._on_purged(event, now)
            case PurgeStalled():
                self._on_purge_stalled(event)
            case Unreadable():
                self._on_unreadable(event)
            case IdentityChanged():
                self._on_identity_changed(event)
            case ChatterUnverified():
                self._on_chatter_unverified(event)
        fx, self._fx = self._fx, []
        return fx

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
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
            "on_duty": sum(1 for v in self.duty.values() if v.on_duty),
            "active": sum(1 for s in self.sessions.values() if s.state is State.ACTIVE),
            "offers": sum(len(s.pending_offers()) for s in self.sessions.values()),
            "ending": sum(
                1 for s in self.sessions.values() if s.state in (State.ENDING, State.PURGING)
            ),
        }

    # ----------------------------------------------------------------------------------
    # bookkeeping

    def _emit(self, *effects: Effect) -> None:
        self._fx.extend(effects)

    def _say(self, to: Target, key: str, lang: str, /, **params: Any) -> None:
        self._emit(Say(to, Text(key, params), lang))

    def _touch(self, s: Session) -> None:
        self._changes.sessions[s.id] = s

    def _touch_duty(self, v: VolunteerState) -> None:
        self._changes.volunteers[v.user_id] = v

    def _meta(self, key: str, value: Any) -> None:
        self._changes.meta[key] = value

    def _move(self, s: Session, to: State) -> None:
        check(s, to)
        s.state = to
        self._touch(s)

    def _index(self, s: Session) -> None:
        if s.chatter_room:
            self._rooms[s.chatter_room] = (s.id, None)
        for o in s.offers:
            if o.room:
                self._rooms[o.room] = (s.id, o.id)

    def _set_timer(self, kind: TimerKind, s: Session, due: datetime, ref: str = "") -> None:
        t = Timer(kind, s.id, due, ref)
        self.timers[t.key] = t
        self._changes.timers_set[t.key] = t
        self._changes.timers_cleared.discard(t.key)

    def _arm_reminder(self, s: Session, now: datetime) -> None:
        """The volunteers' "still waiting" reminder; `waiting_reminder: 0` turns it off
        (armed at `now + 0`, it would fire and re-arm itself for ever)."""
        if self.policy.waiting_reminder > timedelta(0):
            self._set_timer(TimerKind.WAIT_REMINDER, s, now + self.policy.waiting_reminder)

    def _clear_timer(self, kind: TimerKind, s: Session, ref: str = "") -> None:
        self._clear_key(timer_key(kind, s.id, ref))

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
        profile = self.policy.profile(user) if user else None
        return profile.alias if profile else "?"

    def _pseudonym(self, s: Session) -> str:
        return f"Chatter #{s.number}"

    def _staff_language(self) -> str:
        return self.policy.default_language

    def _say_staff(self, key: str, **params: Any) -> None:
        if self.policy.staff_room:
            self._say(self.policy.staff_room, key, self._staff_language(), **params)

    # ----------------------------------------------------------------------------------
    # messages

    def _on_message(self, m: Message, now: datetime) -> None:
        hit = self.session_for_room(m.room)
        if hit is not None:
            session, offer = hit
            if offer is None:
                if m.sender == session.chatter:
                    self._chatter_message(session, m, now)
            elif m.sender == offer.volunteer:
                self._volunteer_message(session, offer, m, now)
            return
        if m.origin is Origin.STAFF:
            if self.policy.is_staff(m.sender):
                self._staff_message(m, now)
        elif m.origin is Origin.DIRECT:
            if self.policy.is_staff(m.sender) and not m.encrypted:
                # Staff commands need a device their owner has verified; a message in the
                # clear proves none (a stolen access token can send it). Told as for an
                # unverified device, which also says whom to tell if it was not them.
                self._say(m.room, "untrusted.own", self._staff_language())
            elif self.policy.is_staff(m.sender):
                self._staff_message(m, now, direct=True)
            elif self.policy.direct_messages:
                self._intake(m, Source.DIRECT, now)
        elif m.origin is Origin.LOBBY and not self.policy.is_staff(m.sender):
            # Others in the lobby must not read it, whatever happens next.
            self._emit(Redact(m.room, m.event_id))
            self._intake(m, Source.LOBBY, now)

    def _on_unreadable(self, u: Unreadable) -> None:
        """A message the bot never got the key for: whoever wrote it is asked to send it
        again, and in a conversation the volunteer learns that the chatter said something
        that did not arrive. No content exists to pass on, so none can leak."""
        hit = self.session_for_room(u.room)
        staff_lang = self._staff_language()
        if u.untrusted:
            if self.policy.is_staff(u.sender):
                self._say(u.room, "untrusted.own", staff_lang)
            return
        if hit is not None:
            s, offer = hit
            if offer is None:
                if u.sender != s.chatter or s.state not in OPEN_STATES:
                    return
                self._say(self._chatter_ref(s), "unreadable.chatter", s.language)
                vref = self._volunteer_ref(s)
                if s.state is State.ACTIVE and vref is not None:
                    self._say(vref, "unreadable.volunteer", staff_lang, number=s.number)
            elif u.sender == offer.volunteer and offer.state is OfferState.ACCEPTED:
                self._say(RoomRef(s.id, Role.VOLUNTEER, offer.id), "unreadable.own", staff_lang)
            return
        if self.policy.is_staff(u.sender):
            if u.origin in (Origin.STAFF, Origin.DIRECT):
                self._say(u.room, "unreadable.own", staff_lang)
        elif u.origin is Origin.DIRECT and self.policy.direct_messages:
            key = chatter_hash(self.policy.block_key, u.sender)
            if self.policy.allows(u.sender) and key not in self.blocked:
                self._say(u.room, "unreadable.chatter", self.policy.default_language)
        elif u.origin is Origin.LOBBY:
            # Unread by the bot, perhaps not by others in the lobby: it goes, as any other.
            self._emit(Redact(u.room, u.event_id))

    def _on_identity_changed(self, e: IdentityChanged) -> None:
        """A staff member's new cross-signing identity is reported, never accepted here:
        the adapter gives their devices no keys until an admin resets the pin."""
        if not self.policy.is_staff(e.user):
            return
        profile = self.policy.profile(e.user)
        # Supervisors have no alias; their ID comes from the config, not from a chatter.
        self._say_staff("staff.identity_changed", name=profile.alias if profile else e.user)

    def _on_chatter_unverified(self, e: ChatterUnverified) -> None:
        """Told once per conversation: now if a volunteer is there, else when one comes."""
        hit = self.session_for_room(e.room)
        if hit is None or hit[1] is not None:
            return
        s = hit[0]
        if e.user != s.chatter or s.unverified_device or s.state not in OPEN_STATES:
            return
        s.unverified_device = True
        self._touch(s)
        vref = self._volunteer_ref(s)
        if s.state is State.ACTIVE and vref is not None:
            self._say(vref, "unverified.device", self._staff_language(), number=s.number)

    def _intake(self, m: Message, source: Source, now: datetime) -> None:
        if not self.policy.allows(m.sender):
            return
        key = chatter_hash(self.policy.block_key, m.sender)
        if key in self.blocked:
            return
        lang = self.policy.default_language
        existing = next(
            (s for s in self.sessions.values() if s.chatter == m.sender and s.state in OPEN_STATES),
            None,
        )
        if existing is not None:
            # Never a second conversation; point them to the one they have.
            if existing.chatter_joined:
                self._say(self._chatter_ref(existing), "intake.already_open", existing.language)
            elif source is Source.DIRECT:
                self._say(m.room, "intake.already_invited", existing.language)
            return
        plaintext = source is Source.DIRECT and not m.encrypted
        if plaintext and self.policy.plaintext_direct is PlaintextDirect.REFUSE:
            self._say(m.room, "intake.plaintext_refused", lang)
            return
        self._roll_day(now)
        if self._day_counts.get(key, 0) >= self.policy.sessions_per_day:
            if source is Source.DIRECT:
                self._say(m.room, "intake.daily_cap", lang)
            return
        rejection: Outcome | None = None
        if not is_open(self.policy.hours, now):
            rejection = Outcome.CLOSED_HOURS
        elif len(routing.queue_order(self.sessions.values())) >= self.policy.queue_max_length:
            rejection = Outcome.QUEUE_FULL
        if rejection is not None and source is Source.DIRECT:
            # The DM itself is private: answer there, no room needed.
            self._say(m.room, f"reject.{rejection.value}", lang)
            self._stats_for_rejection(rejection, source, lang, now)
            return
        # Counted only now: a refusal in the DM is not a conversation.
        self._day_counts[key] = self._day_counts.get(key, 0) + 1
        self._meta("day_counts", dict(self._day_counts))

        # A conversation starts where it belongs: there is no move into CONSENT.
        first = (
            State.CONSENT if self.policy.consent_required and rejection is None else State.WAITING
        )
        s = self._new_session(m.sender, source, m.room, lang, now, first)
        # The first words of a chat that is not encrypted are held and relayed like any
        # others: they are on the server in the clear already, and asking someone to say
        # again what was hard to say at all is unkind. Only what comes later, in the new
        # encrypted room, is private; the answer in the DM says so.
        if (
            m.kind is Kind.TEXT
            and m.body.strip()
            and commands.parse(m.body, Audience.CHATTER) is None
            and not commands.is_command_like(m.body)
        ):
            s.held.append(HeldMessage(m.event_id, m.body[: self.policy.message_max_chars]))
        self._emit(CreateRoom(self._chatter_ref(s), m.sender, self.policy.bot_name))
        if source is Source.DIRECT:
            self._say(m.room, "intake.invited_plaintext" if plaintext else "intake.invited", lang)
        if rejection is not None:
            s.outcome = rejection
            s.ended_at = now
            self._move(s, State.ENDING)
            # Time to accept the invite and read why; then it goes.
            self._set_timer(TimerKind.PURGE, s, now + self.policy.queue_max_wait)
        elif s.state is State.CONSENT:
            self._set_timer(TimerKind.QUEUE_MAX_WAIT, s, now + self.policy.queue_max_wait)
        else:
            self._enqueue(s, now)

    def _new_session(
        self,
        chatter: UserID,
        source: Source,
        room: RoomID,
        lang: str,
        now: datetime,
        state: State,
    ) -> Session:
        used = {s.number for s in self.sessions.values()}
        number = self._rng.randint(1000, 9999)
        while number in used:
            number = self._rng.randint(1000, 9999)
        sid = SessionID(self._next_session)
        self._next_session += 1
        self._meta("next_session_id", self._next_session)
        s = Session(
            id=sid,
            number=number,
            chatter=chatter,
            language=lang,
            source=source,
            source_room=room if source is Source.DIRECT else None,
            created_at=now,
            state=state,
        )
        self.sessions[sid] = s
        self._touch(s)
        return s

    def _local_day(self, at: datetime) -> date:
        """The helpline's calendar day: a cap per day and the statistics count Oslo days."""
        return at.astimezone(ZoneInfo(self.policy.hours.timezone)).date()

    def _roll_day(self, now: datetime) -> None:
        day = self._local_day(now).isoformat()
        if day != self._day:
            self._day = day
            self._day_counts = {}
            self._meta("day", day)
            self._meta("day_counts", {})

    def _chatter_message(self, s: Session, m: Message, now: datetime) -> None:
        lang = s.language
        ref = self._chatter_ref(s)
        if m.media_url:
            # Refused or not, the file is on the server now: it goes with the purge.
            self._emit(RecordMedia(s.id, m.media_url, m.sender))
        parsed = commands.parse(m.body, Audience.CHATTER) if m.kind is Kind.TEXT else None
        if isinstance(parsed, Usage):
            self._say(ref, "usage", lang, usage=commands.usage_line(parsed.spec, lang))
            return
        if isinstance(parsed, Command):
            self._chatter_command(s, parsed, now)
            return
        if s.state is State.ENDING:
            if self.policy.ask_rating and s.rating is None and m.body.strip() in _RATINGS:
                s.rating = int(m.body.strip())
                self._touch(s)
                self._say(ref, "rating.thanks", lang)
            return
        if s.state not in OPEN_STATES:
            return
        if m.kind is Kind.MEDIA or m.kind is Kind.OTHER:
            if m.kind is Kind.MEDIA and self.policy.relay_media:
                pass  # relaying media is a later feature; refused until then
            self._say(ref, "media_refused", lang)
            return
        if len(m.body) > self.policy.message_max_chars:
            self._say(
                ref, "too_long", lang, length=len(m.body), limit=self.policy.message_max_chars
            )
            return
        if not self._within_rate(s, now):
            self._say(ref, "rate_limited", lang)
            return
        s.last_chatter_activity = now
        self._touch(s)
        if s.state is State.ACTIVE:
            # The idle timers stay where they are and move themselves when they fire
            # (see _idle_due): one timer write per idle period, not two per message. Only
            # a warning already given is armed again, for the next idle period.
            if timer_key(TimerKind.IDLE_WARN, s.id) not in self.timers:
                self._arm_idle(s, now)
            vref = self._volunteer_ref(s)
            if vref is not None:
                body = scrub(m.body, self._replacements(s))
                self._emit(Relay(vref, body, m.event_id, emote=m.kind is Kind.EMOTE))
        elif len(s.held) < MAX_HELD:
            if not s.held:
                self._say(ref, "held", lang)
            s.held.append(HeldMessage(m.event_id, m.body))
        else:
            self._say(ref, "held_full", lang)

    def _within_rate(self, s: Session, now: datetime) -> bool:
        window = self._rate.setdefault(s.id, deque())
        while window and now - window[0] > timedelta(minutes=1):
            window.popleft()
        if len(window) >= self.policy.messages_per_minute:
            return False
        window.append(now)
        return True

    def _replacements(self, s: Session) -> dict[str, str]:
        out: dict[str, str] = {s.chatter: self._pseudonym(s)}
        if s.volunteer:
            out[s.volunteer] = self._alias(s.volunteer)
        for o in s.offers:
            out.setdefault(o.volunteer, self._alias(o.volunteer))
        return out

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

    # ----------------------------------------------------------------------------------
    # volunteers

    def _volunteer_message(self, s: Session, offer: Offer, m: Message, now: datetime) -> None:
        if m.media_url:
            self._emit(RecordMedia(s.id, m.media_url, m.sender))  # a room of this conversation
        if offer.state is not OfferState.ACCEPTED:
            return
        vref = RoomRef(s.id, Role.VOLUNTEER, offer.id)
        lang = self._staff_language()
        parsed = commands.parse(m.body, Audience.VOLUNTEER) if m.kind is Kind.TEXT else None
        if isinstance(parsed, Usage):
            self._say(vref, "usage", lang, usage=commands.usage_line(parsed.spec, lang))
            return
        if isinstance(parsed, Command):
            self._volunteer_command(s, vref, parsed, now)
            return
        if m.kind is Kind.TEXT and commands.is_command_like(m.body):
            # A mistyped command must not reach the chatter.
            self._say(vref, "unknown_command", lang)
            return
        if s.state is not State.ACTIVE or s.volunteer_room != m.room:
            self._say(vref, "not_delivered_ended", lang)
            return
        if m.kind is Kind.MEDIA or m.kind is Kind.OTHER:
            self._say(vref, "media_refused", lang)
            return
        if len(m.body) > self.policy.message_max_chars:
            self._say(
                vref, "too_long", lang, length=len(m.body), limit=self.policy.message_max_chars
            )
            return
        body = scrub(m.body, self._replacements(s))
        self._emit(Relay(self._chatter_ref(s), body, m.event_id, emote=m.kind is Kind.EMOTE))

    def _volunteer_command(self, s: Session, vref: RoomRef, c: Command, now: datetime) -> None:
        lang = self._staff_language()
        active = s.state is State.ACTIVE
        if c.name == "help":
            self._say(vref, "help", lang, lines=commands.help_lines(Audience.VOLUNTEER, lang))
        elif c.name == "status":
            self._say(vref, "status", lang, **self.status(now))
        elif c.name == "tag":
            unknown = [t for t in c.args if t not in self.policy.topics]
            if unknown:
                self._say(
                    vref, "tag.unknown", lang, unknown=unknown, topics=list(self.policy.topics)
                )
                return
            for t in c.args:
                if t not in s.tags:
                    s.tags.append(t)
            self._touch(s)
            self._say(vref, "tag.saved", lang, tags=list(s.tags))
        elif not active:
            self._say(vref, "not_active", lang)
        elif c.name == "end":
            self._end(s, Outcome.COMPLETED, now, by=Role.VOLUNTEER)
        elif c.name == "time":
            deadline = s.deadline(self.policy.max_duration)
            assert deadline is not None and s.accepted_at is not None
            self._say(
                vref,
                "time",
                lang,
                elapsed=_minutes(now - s.accepted_at),
                left=_minutes(deadline - now),
                extension_left=_minutes(self.policy.max_extension - s.extended),
            )
        elif c.name == "extend":
            self._extend(s, vref, c, now)
        elif c.name == "say":
            name = c.args[0].lower()
            if name not in self.policy.canned:
                self._say(vref, "canned.unknown", lang, names=list(self.policy.canned))
            else:
                self._emit(
                    Say(self._chatter_ref(s), Text(f"canned.{name}"), s.language, voice=True)
                )
        elif c.name == "handback":
            self._requeue(s, now, volunteer_left=False)
        elif c.name == "alert":
            self._say_staff(
                "staff.alert",
                number=s.number,
                alias=self._alias(s.volunteer),
                minutes=_minutes(now - (s.accepted_at or now)),
            )
            self._say(vref, "alert.sent", lang)

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
            vref, "extend.done", lang, minutes=_minutes(granted), left=_minutes(deadline - now)
        )
        self._say(self._chatter_ref(s), "extend.chatter", s.language, minutes=_minutes(granted))

    def _staff_message(self, m: Message, now: datetime, direct: bool = False) -> None:
        lang = self._staff_language()
        parsed = commands.parse(m.body, Audience.STAFF)
        if isinstance(parsed, Usage):
            if not parsed.wrong_place:
                self._say(m.room, "usage", lang, usage=commands.usage_line(parsed.spec, lang))
            return
        if parsed is None:
            if direct:
                self._say(m.room, "staff.dm_hint", lang)
            return
        if parsed.name == "help":
            self._say(m.room, "help", lang, lines=commands.help_lines(Audience.STAFF, lang))
        elif parsed.name == "status":
            self._say(m.room, "status", lang, **self.status(now))
        elif parsed.name in ("on", "off"):
            profile = self.policy.profile(m.sender)
            if profile is None:
                self._say(m.room, "duty.not_volunteer", lang)
                return
            v = self.duty[m.sender]
            if parsed.name == "on":
                if not v.on_duty:
                    v.on_duty, v.duty_since, v.lapses = True, now, 0
                    self._touch_duty(v)
                self._say(
                    m.room,
                    "duty.on",
                    lang,
                    alias=profile.alias,
                    waiting=len(routing.queue_order(self.sessions.values())),
                )
                self._dispatch(now)
            else:
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

    # ----------------------------------------------------------------------------------
    # the queue and offers

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
            self._recent_durations,
        )
        s.announced_position, s.announced_estimate = position, estimate
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
                self.policy, s, candidates, self.duty, sessions, self._last_offered
            )
            for profile in chosen:
                self._offer(s, profile.user_id, now)
        self._announce_positions(now)

    def _offer(self, s: Session, volunteer: UserID, now: datetime) -> None:
        if s.state is State.WAITING:
            self._move(s, State.OFFERED)
        offer = Offer(OfferID(self._next_offer), volunteer, now)
        self._next_offer += 1
        self._meta("next_offer_id", self._next_offer)
        s.offers.append(offer)
        self._touch(s)
        self._last_offered = volunteer
        self._meta("last_offered", volunteer)
        self._emit(
            CreateRoom(RoomRef(s.id, Role.VOLUNTEER, offer.id), volunteer, self._pseudonym(s))
        )
        self._set_timer(TimerKind.OFFER_TIMEOUT, s, now + self.policy.offer_timeout, str(offer.id))

    def _withdraw(self, s: Session, o: Offer, now: datetime, lapsed: bool = False) -> None:
        o.state = OfferState.WITHDRAWN
        self._touch(s)
        self._clear_timer(TimerKind.OFFER_TIMEOUT, s, str(o.id))
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
        if s.state is State.OFFERED and not s.pending_offers():
            self._move(s, State.WAITING)

    def _accept(self, s: Session, o: Offer, now: datetime) -> None:
        check(s, State.ACTIVE)
        o.state = OfferState.ACCEPTED
        self._clear_timer(TimerKind.OFFER_TIMEOUT, s, str(o.id))
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
        self._touch_duty(v)
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
            waited=_minutes(now - (s.queued_at or s.created_at)),
            minutes=_minutes(self.policy.max_duration),
            requeued=s.requeues > 0,
        )
        if s.unverified_device:
            self._say(vref, "unverified.device", self._staff_language(), number=s.number)
        alias = self._alias(o.volunteer)
        self._emit(SetPersona(self._chatter_ref(s), alias))
        self._say(self._chatter_ref(s), "accepted.chatter", s.language, alias=alias)
        for held in s.held:
            self._emit(Relay(vref, scrub(held.body, self._replacements(s)), held.event_id))
        s.held = []
        self._dispatch(now)

    def _requeue(self, s: Session, now: datetime, volunteer_left: bool) -> None:
        """The volunteer left or handed back: the chatter goes first in the queue."""
        check(s, State.WAITING)
        vref, volunteer = self._volunteer_ref(s), s.volunteer
        if vref is not None and volunteer is not None:
            if not volunteer_left:
                self._say(vref, "handback.done", self._staff_language(), number=s.number)
            # Redact before the kick: a client removed from a room never receives the
            # redactions that make it drop what it cached (the chatter's words).
            self._emit(RedactRoom(vref))
            self._emit(Retire(vref, volunteer))
        if s.volunteer_room:
            s.retired_rooms.append(s.volunteer_room)
        for o in s.offers:
            if o.state is OfferState.ACCEPTED:
                o.state = OfferState.RETIRED
        s.volunteer, s.volunteer_room, s.accepted_at = None, None, None
        s.priority, s.requeues = 1, s.requeues + 1
        self._clear_timers(s)
        self._touch(s)
        self._say(self._chatter_ref(s), "requeued", s.language)
        self._move(s, State.WAITING)
        self._set_timer(TimerKind.QUEUE_MAX_WAIT, s, now + self.policy.queue_max_wait)
        self._arm_reminder(s, now)
        self._say_staff("staff.requeued", number=s.number, language=s.language)
        self._dispatch(now)

    def _announce_positions(self, now: datetime) -> None:
        sessions = list(self.sessions.values())
        for i, s in enumerate(routing.queue_order(sessions), 1):
            if not s.chatter_joined or s.announced_position is None:
                continue
            if i >= s.announced_position:
                continue
            estimate = routing.estimate_minutes(
                i, self.policy, self.duty, sessions, self._recent_durations
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

    # ----------------------------------------------------------------------------------
    # rooms and membership

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
                self._say(self._chatter_ref(s), f"reject.{s.outcome.value}", s.language)
                self._set_timer(
                    TimerKind.PURGE, s, now + max(self.policy.purge_after, timedelta(minutes=2))
                )
            return
        if (
            e.user == offer.volunteer
            and offer.state is OfferState.PENDING
            and s.state is State.OFFERED
        ):
            self._accept(s, offer, now)

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

    def _volunteer_gone(self, s: Session, offer: Offer, now: datetime) -> None:
        if offer.state is OfferState.PENDING:
            offer.state = OfferState.DECLINED
            self._clear_timer(TimerKind.OFFER_TIMEOUT, s, str(offer.id))
            self._touch(s)
            self._emit(Withdraw(RoomRef(s.id, Role.VOLUNTEER, offer.id), offer.volunteer))
            if s.state is State.OFFERED and not s.pending_offers():
                self._move(s, State.WAITING)
            self._dispatch(now)
        elif offer.state is OfferState.ACCEPTED and s.state is State.ACTIVE:
            self._requeue(s, now, volunteer_left=True)

    def _on_edit(self, e: Edit) -> None:
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if len(e.body) > self.policy.message_max_chars:
            return
        if offer is None and e.sender == s.chatter:
            if s.state is State.ACTIVE and (vref := self._volunteer_ref(s)):
                self._emit(RelayEdit(vref, scrub(e.body, self._replacements(s)), e.original))
            else:
                for h in s.held:
                    if h.event_id == e.original:
                        h.body = e.body
                        self._touch(s)
        elif (
            offer is not None
            and e.sender == offer.volunteer
            and s.state is State.ACTIVE
            and offer.state is OfferState.ACCEPTED
        ):
            self._emit(
                RelayEdit(self._chatter_ref(s), scrub(e.body, self._replacements(s)), e.original)
            )

    def _on_redaction(self, e: Redaction) -> None:
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if offer is None and e.sender == s.chatter:
            before = len(s.held)
            s.held = [h for h in s.held if h.event_id != e.redacts]
            if len(s.held) != before:
                self._touch(s)
            elif (vref := self._volunteer_ref(s)) is not None:
                self._emit(RelayRedaction(vref, e.redacts))
        elif (
            offer is not None and e.sender == offer.volunteer and offer.state is OfferState.ACCEPTED
        ):
            self._emit(RelayRedaction(self._chatter_ref(s), e.redacts))

    def _on_typing(self, e: Typing) -> None:
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if s.state is not State.ACTIVE:
            return
        if offer is None and e.user == s.chatter:
            if (vref := self._volunteer_ref(s)) is not None:
                self._emit(SetTyping(vref, e.typing))
        elif offer is not None and e.user == offer.volunteer and offer.state is OfferState.ACCEPTED:
            self._emit(SetTyping(self._chatter_ref(s), e.typing))

    # ----------------------------------------------------------------------------------
    # time

    def _arm_duration(self, s: Session, now: datetime) -> None:
        deadline = s.deadline(self.policy.max_duration)
        assert deadline is not None
        self._clear_timers(s, TimerKind.WARN, TimerKind.MAX_DURATION)
        for before in self.policy.warn_before:
            due = deadline - before
            if due > now:
                self._set_timer(TimerKind.WARN, s, due, str(int(before.total_seconds())))
        self._set_timer(TimerKind.MAX_DURATION, s, deadline)

    def _arm_idle(self, s: Session, now: datetime) -> None:
        idle = self.policy.chatter_idle
        warn = idle - self.policy.idle_warning_before
        self._clear_timers(s, TimerKind.IDLE_WARN)
        if warn > timedelta(0):
            self._set_timer(TimerKind.IDLE_WARN, s, now + warn)
        self._set_timer(TimerKind.IDLE_END, s, now + idle)

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
            offer = s.offer(OfferID(int(timer.ref)))
            if offer is not None and offer.state is OfferState.PENDING:
                self._withdraw(s, offer, now, lapsed=True)
                self._dispatch(now)
        elif kind is TimerKind.WARN and s.state is State.ACTIVE:
            minutes = _minutes(timedelta(seconds=int(timer.ref)))
            self._say(self._chatter_ref(s), "warn.chatter", lang, minutes=minutes)
            if (vref := self._volunteer_ref(s)) is not None:
                left = _minutes(self.policy.max_extension - s.extended)
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
            minutes = _minutes(self.policy.idle_warning_before)
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
                minutes=_minutes(now - (s.queued_at or s.created_at)),
            )
            self._arm_reminder(s, now)
        elif kind is TimerKind.PURGE and s.state is State.ENDING:
            self._start_purge(s)

    # ----------------------------------------------------------------------------------
    # ending and purging

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
        for o in s.pending_offers():
            self._withdraw(s, o, now)
        self._clear_timers(s)
        self._move(s, State.ENDING)
        s.outcome = outcome
        s.ended_at = now
        self._touch(s)
        self._rate.pop(s.id, None)
        if s.accepted_at is not None and was_active:
            self._recent_durations = [
                *self._recent_durations,
                (now - s.accepted_at).total_seconds(),
            ][-RECENT:]
            self._meta("recent_durations", self._recent_durations)
        if not quiet_chatter and s.chatter_joined:
            self._say(self._chatter_ref(s), f"end.chatter.{outcome.value}", s.language)
            if self.policy.ask_rating and was_active:
                self._say(self._chatter_ref(s), "rating.ask", s.language)
        if was_active and vref is not None:
            self._say(
                vref,
                f"end.volunteer.{outcome.value}",
                self._staff_language(),
                number=s.number,
                topics=list(self.policy.topics),
                by=by.value if by else "",
            )
        self._set_timer(TimerKind.PURGE, s, now + self.policy.purge_after)
        self._dispatch(now)

    def _start_purge(self, s: Session) -> None:
        check(s, State.PURGING)  # before the timers go: a refused move changes nothing
        self._clear_timers(s)
        self._move(s, State.PURGING)
        participants = tuple(dict.fromkeys([s.chatter, *(o.volunteer for o in s.offers)]).keys())
        self._emit(Purge(s.id, tuple(s.all_rooms()), participants, dm=self._dm_to_purge(s)))

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

    def _stats_for_rejection(
        self, outcome: Outcome, source: Source, lang: str, now: datetime
    ) -> None:
        self._changes.stats.append(
            StatsRecord(
                day=self._local_day(now),
                language=lang,
                source=source.value,
                outcome=outcome.value,
                wait_seconds=None,
                duration_seconds=None,
                requeues=0,
                tags=(),
                rating=None,
                purge_result="nothing_to_purge",
            )
        )


def _minutes(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() / 60))
