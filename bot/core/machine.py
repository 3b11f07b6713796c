"""The helpline as a state machine: the one way in, and where each rule lives.

Everything that affects a conversation is in this package, in one class put together
here from the modules that each hold one part of it:

- `bot.core.lifecycle`: the legal moves (`TRANSITIONS`) and every step that makes one
  (queue, offer, accept, hand back, end, purge, close);
- `bot.core.intake`: a first message in a DM or a lobby, or a web chat account, and whether
  it opens a conversation;
- `bot.core.relay`: a participant's words, edits, redactions and typing, and what the bot
  could not read or may not trust;
- `bot.core.command_rules`: what each command does (chatter, volunteer, staff);
- `bot.core.blocking`: a supervisor's block on a chatter, and what a blocked person gets;
- `bot.core.transfer`: a volunteer's `!transfer` to another, and the handover note;
- `bot.core.supervision`: a supervisor at the volunteer's side (`!join`, `!alert`), and a
  volunteer who has gone silent;
- `bot.core.membership`: rooms made or not, joins, leaves, the bot removed from a room;
- `bot.core.timers`: what each deadline does when it comes due;
- `bot.core.book`: the state and the bookkeeping every rule shares (effects, changes,
  timers set and cleared).

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

from datetime import datetime

from bot.core.events import (
    ChatterUnverified,
    Edit,
    Effect,
    IdentityChanged,
    Input,
    Joined,
    Left,
    MediaRefused,
    Message,
    Origin,
    PolicyChanged,
    PurgeFinished,
    PurgeStalled,
    Receipt,
    Redact,
    Redaction,
    ReloadRefused,
    Removed,
    RoomCreated,
    RoomFailed,
    TimerFired,
    Typing,
    Unreadable,
    WebChatter,
)
from bot.core.intake import IntakeRules
from bot.core.lifecycle import TRANSITIONS, IllegalTransition, check
from bot.core.membership import MembershipRules
from bot.core.model import Source
from bot.core.pseudonyms import chatter_hash, scrub
from bot.core.relay import RelayRules
from bot.core.timers import TimerRules

__all__ = ["TRANSITIONS", "Helpline", "IllegalTransition", "chatter_hash", "check", "scrub"]


class Helpline(IntakeRules, RelayRules, MembershipRules, TimerRules):
    """The helpline: every rule, behind the one way in (`handle`). A message in a room
    that is not a conversation's goes to intake or to the staff's commands from here."""

    def handle(self, event: Input, now: datetime) -> list[Effect]:
        self._effects = []
        self._expire_blocks(now)
        match event:
            case Message():
                self._on_message(event, now)
            case Edit():
                self._on_edit(event)
            case Redaction():
                self._on_redaction(event)
            case Typing():
                self._on_typing(event)
            case Receipt():
                self._on_receipt(event)
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
                self._on_unreadable(event, now)
            case IdentityChanged():
                self._on_identity_changed(event)
            case ChatterUnverified():
                self._on_chatter_unverified(event)
            case WebChatter():
                self._web_intake(event, now)
            case MediaRefused():
                self._on_media_refused(event)
            case PolicyChanged():
                self._on_policy_changed(event, now)
            case ReloadRefused():
                self._on_reload_refused(event)
        fx, self._effects = self._effects, []
        return fx

    def _on_message(self, m: Message, now: datetime) -> None:
        hit = self.session_for_room(m.room)
        if hit is not None:
            session, offer = hit
            if offer is None:
                if m.sender == session.chatter:
                    self._chatter_message(session, m, now)
            elif m.sender == offer.volunteer:
                self._volunteer_message(session, offer, m, now)
            elif self.policy.is_supervisor(m.sender):
                self._supervisor_message(session, offer, m, now)
            return
        if m.origin is Origin.STAFF:
            if self.policy.is_staff(m.sender):
                self._staff_message(m, now)
        elif m.origin is Origin.DIRECT:
            if self.policy.is_staff(m.sender) and not m.encrypted:
                # Staff commands need a device their owner has verified; a message in the
                # clear proves none (a stolen access token can send it). Told as for an
                # unverified device, which also says whom to tell if it was not them.
                self._say(m.room, "untrusted.own", self._staff_language(m.sender))
            elif self.policy.is_staff(m.sender):
                self._staff_message(m, now, direct=True)
            elif self.policy.direct_messages:
                self._intake(m, Source.DIRECT, now)
        elif m.origin is Origin.LOBBY and not self.policy.is_staff(m.sender):
            # Others in the lobby must not read it, whatever happens next.
            self._emit(Redact(m.room, m.event_id))
            self._intake(m, Source.LOBBY, now)
