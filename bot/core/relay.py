"""Relay: a participant's words in a conversation room, and what goes to the other side.

Nothing a participant writes reaches the other side except through `Relay` (and its
edits, redactions and typing), after `scrub`; a chatter's words wait (`held`) until a
volunteer accepts. Commands in a conversation room go to `bot.core.command_rules`. Also
here: what the bot could not read (a missing key) or may not trust (an unverified
device), which is said to the writer instead of relayed.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from bot.core import commands
from bot.core.book import MAX_HELD, RATINGS
from bot.core.command_rules import CommandRules
from bot.core.commands import Audience, Command, Usage
from bot.core.events import (
    ChatterUnverified,
    Edit,
    IdentityChanged,
    Kind,
    MediaRefused,
    Message,
    Origin,
    Receipt,
    RecordMedia,
    Redact,
    Redaction,
    Relay,
    RelayEdit,
    RelayMedia,
    RelayReceipt,
    RelayRedaction,
    RoomRef,
    SetTyping,
    Typing,
    Unreadable,
)
from bot.core.media import MediaProblem, precheck
from bot.core.model import (
    OPEN_STATES,
    HeldMessage,
    Offer,
    OfferState,
    Role,
    Session,
    Source,
    State,
    TimerKind,
    timer_key,
)
from bot.core.pseudonyms import scrub

MEDIA_TEXTS = {
    MediaProblem.TOO_BIG: "media.too_big",
    MediaProblem.TYPE: "media.type",
    MediaProblem.BROKEN: "media.broken",
}


class RelayRules(CommandRules):
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
            if self.policy.ask_rating and s.rating is None and m.body.strip() in RATINGS:
                s.rating = int(m.body.strip())
                self._touch(s)
                self._say(ref, "rating.thanks", lang)
            return
        if s.state not in OPEN_STATES:
            return
        if m.kind is Kind.MEDIA or m.kind is Kind.OTHER:
            if self._media_refused(m, ref, lang):
                return
            if not self._within_rate(s, now):
                self._say(ref, "rate_limited", lang)
                return
            vref = self._volunteer_ref(s)
            if s.state is not State.ACTIVE or vref is None:
                # Held words wait as text; a file is not kept for later.
                self._say(ref, "media.not_yet", lang)
                return
            s.last_chatter_activity = now
            self._touch(s)
            if timer_key(TimerKind.IDLE_WARN, s.id) not in self.timers:
                self._arm_idle(s, now)
            assert m.attachment is not None  # _media_refused said so
            self._emit(RelayMedia(vref, m.attachment, m.event_id, ref))
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
                self._chatter_waits(s, now)
        elif len(s.held) < MAX_HELD:
            if not s.held:
                self._say(ref, "held", lang)
            s.held.append(HeldMessage(m.event_id, m.body))
        else:
            self._say(ref, "held_full", lang)

    def _media_refused(self, m: Message, ref: RoomRef, lang: str) -> bool:
        """Whether media (or a location, a poll: anything but words) stops here, the
        writer told why: relaying is off, it is no file the bot can read, or what it
        declares is too big or of a type not passed on. What passes is checked again
        from its bytes when it is downloaded (`MediaRefused`)."""
        if not self.policy.relay_media:
            self._say(ref, "media_refused", lang)
            return True
        limits = self.policy.media
        problem = MediaProblem.TYPE if m.attachment is None else precheck(m.attachment, limits)
        if problem is None:
            return False
        self._tell_media(problem, ref, lang)
        return True

    def _tell_media(self, problem: MediaProblem, ref: RoomRef, lang: str) -> None:
        limits = self.policy.media
        if problem is MediaProblem.TOO_BIG:
            self._say(ref, MEDIA_TEXTS[problem], lang, limit=limits.limit_mb())
        elif problem is MediaProblem.TYPE:
            self._say(ref, MEDIA_TEXTS[problem], lang, types=limits.labels())
        else:
            self._say(ref, MEDIA_TEXTS[problem], lang)

    def _on_media_refused(self, e: MediaRefused) -> None:
        """A relayed attachment whose bytes were refused: its sender learns why, while
        the conversation is still open."""
        s = self.sessions.get(e.back.session_id)
        if s is None or s.state not in OPEN_STATES:
            return
        if e.back.role is Role.CHATTER:
            self._tell_media(e.problem, e.back, s.language)
        else:
            self._tell_media(e.problem, e.back, self._staff_language())

    def _within_rate(self, s: Session, now: datetime) -> bool:
        window = self._rate.setdefault(s.id, deque())
        while window and now - window[0] > timedelta(minutes=1):
            window.popleft()
        if len(window) >= self.policy.messages_per_minute:
            return False
        window.append(now)
        return True

    def _volunteer_message(self, s: Session, offer: Offer, m: Message, now: datetime) -> None:
        if m.media_url:
            self._emit(RecordMedia(s.id, m.media_url, m.sender))  # a room of this conversation
        if offer.state is not OfferState.ACCEPTED:
            return
        vref = RoomRef(s.id, Role.VOLUNTEER, offer.id)
        lang = self._staff_language(offer.volunteer)
        parsed = commands.parse(m.body, Audience.VOLUNTEER) if m.kind is Kind.TEXT else None
        if isinstance(parsed, Usage):
            self._say(vref, "usage", lang, usage=commands.usage_line(parsed.spec, lang))
            return
        if isinstance(parsed, Command):
            if self._supervision_room_command(s, m.sender, vref, parsed, now):
                return
            if not self._supervisor_command(m.sender, vref, parsed, now):
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
            if not self._media_refused(m, vref, lang):
                assert m.attachment is not None  # _media_refused said so
                self._emit(RelayMedia(self._chatter_ref(s), m.attachment, m.event_id, vref))
            return
        if len(m.body) > self.policy.message_max_chars:
            self._say(
                vref, "too_long", lang, length=len(m.body), limit=self.policy.message_max_chars
            )
            return
        body = scrub(m.body, self._replacements(s))
        self._emit(Relay(self._chatter_ref(s), body, m.event_id, emote=m.kind is Kind.EMOTE))
        self._volunteer_answered(s)

    def _supervisor_message(self, s: Session, offer: Offer, m: Message, now: datetime) -> None:
        """A supervisor in a volunteer's room who is not its volunteer: their commands
        (`!block`, `!leave`) are carried out there; nothing they write is relayed: the
        volunteer reads it in the room itself, the chatter never."""
        if m.media_url:
            self._emit(RecordMedia(s.id, m.media_url, m.sender))  # a room of this conversation
        if offer.state is not OfferState.ACCEPTED or m.kind is not Kind.TEXT:
            return
        parsed = commands.parse(m.body, Audience.VOLUNTEER)
        if isinstance(parsed, Command):
            vref = RoomRef(s.id, Role.VOLUNTEER, offer.id)
            if not self._supervision_room_command(s, m.sender, vref, parsed, now):
                self._supervisor_command(m.sender, vref, parsed, now)

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

    def _on_receipt(self, e: Receipt) -> None:
        """Someone read their room up to a relayed copy: the other side sees the bot read
        the original, in the direction(s) `relay_read_receipts` allows. Which original
        that is, storage knows (the relay map); a receipt on anything the bot did not
        relay (its own notices) finds none and is not passed on."""
        hit = self.session_for_room(e.room)
        if hit is None:
            return
        s, offer = hit
        if s.state is not State.ACTIVE:
            return
        wanted = self.policy.relay_read_receipts
        if offer is None and e.user == s.chatter and wanted.to_volunteer:
            if (vref := self._volunteer_ref(s)) is not None:
                self._emit(RelayReceipt(vref, e.event_id))
        elif (
            offer is not None
            and e.user == offer.volunteer
            and offer.state is OfferState.ACCEPTED
            and wanted.to_chatter
        ):
            self._emit(RelayReceipt(self._chatter_ref(s), e.event_id))

    def _on_unreadable(self, u: Unreadable, now: datetime) -> None:
        """A message the bot never got the key for: whoever wrote it is asked to send it
        again, and in a conversation the volunteer learns that the chatter said something
        that did not arrive. No content exists to pass on, so none can leak."""
        hit = self.session_for_room(u.room)
        staff_lang = self._staff_language(u.sender)
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
            if not self.policy.allows(u.sender):
                return
            # Blocked: unread or not, what they get is the emergency numbers (once a day).
            if not self._blocked_writes(u.sender, u.room, Source.DIRECT, now):
                self._say(u.room, "unreadable.chatter", self.policy.default_language)
        elif u.origin is Origin.LOBBY:
            # Unread by the bot, perhaps not by others in the lobby: it goes, as any other.
            self._emit(Redact(u.room, u.event_id))

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

    def _on_identity_changed(self, e: IdentityChanged) -> None:
        """A staff member's new cross-signing identity is reported, never accepted here:
        the adapter gives their devices no keys until an admin resets the pin."""
        if not self.policy.is_staff(e.user):
            return
        profile = self.policy.profile(e.user)
        # Supervisors have no alias; their ID comes from the config, not from a chatter.
        self._say_staff("staff.identity_changed", name=profile.alias if profile else e.user)
