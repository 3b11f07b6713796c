"""Transfer: a volunteer hands their conversation to a named or the next volunteer.

Rules:
- `!transfer [ALIAS]` (in the volunteer's room of an active conversation) offers the
  conversation to the volunteer with that alias, or without one to the next available
  volunteer as routing picks them (language first, the strategy's order; a broadcast
  strategy still makes one offer). Only someone available takes it: on duty, below their
  cap, no unanswered offer. Nobody: the volunteer is told, and keeps the chatter.
- The volunteer keeps the chatter until the offer is accepted: words go on being relayed
  to them, and if the offer lapses, is declined or withdrawn, they are told and keep the
  chatter (`Lifecycle._transfer_lost`). One transfer at a time.
- On accept the old room is retired as for a hand-back (redacted, the volunteer and any
  supervisor removed), the chatter is told who they talk to now, and the new volunteer
  gets a fresh room with none of the history: only the handover note, if one was written.
- `!note TEXT` sets the handover note (a second one replaces it). It is conversation
  content: never relayed to the chatter, never in the volunteers' room, logs or
  statistics; shown once, to the next volunteer who accepts the conversation (after a
  transfer or a hand-back), then dropped; and it goes with the conversation's purge.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.core import routing
from bot.core.commands import Command
from bot.core.events import RoomRef
from bot.core.lifecycle import Lifecycle
from bot.core.model import Offer, Role, Session, State, Strategy, VolunteerProfile


class TransferRules(Lifecycle):
    def _transfer(self, s: Session, vref: RoomRef, c: Command, now: datetime) -> None:
        lang = self._staff_language()
        if s.transfer_offer is not None:
            pending = s.offer(s.transfer_offer)
            alias = self._alias(pending.volunteer if pending else None)
            self._say(vref, "transfer.pending", lang, alias=alias)
            return
        wanted = " ".join(c.args)
        target = self._transfer_target(s, wanted)
        if target is None:
            if wanted:
                self._say(vref, "transfer.unavailable", lang, alias=wanted)
            else:
                self._say(vref, "transfer.nobody", lang, number=s.number)
            return
        self._offer(s, target.user_id, now)
        s.transfer_offer = s.offers[-1].id
        self._touch(s)
        self._say(vref, "transfer.asked", lang, alias=target.alias, number=s.number)

    def _transfer_target(self, s: Session, wanted: str) -> VolunteerProfile | None:
        sessions = list(self.sessions.values())
        assert s.volunteer is not None
        candidates = routing.available(
            self.policy, self.duty, sessions, exclude=frozenset({s.volunteer})
        )
        if wanted:
            name = wanted.casefold()
            return next((v for v in candidates if v.alias.casefold() == name), None)
        policy = self.policy
        if policy.strategy is Strategy.BROADCAST:
            # A transfer goes to one volunteer: the fairest among those who could take it.
            policy = replace(policy, strategy=Strategy.LONGEST_IDLE)
        chosen = routing.choose(
            policy, s, candidates, self.duty, sessions, self.counters.last_offered
        )
        return chosen[0] if chosen else None

    def _transfer_accepted(self, s: Session, offer: Offer, now: datetime) -> None:
        """The volunteer offered a transfer joined its room: they take over."""
        lang = self._staff_language()
        old_ref, old = self._volunteer_ref(s), s.volunteer
        new_alias = self._alias(offer.volunteer)
        if old_ref is not None:
            self._say(old_ref, "transfer.done", lang, alias=new_alias, number=s.number)
        s.transfer_offer = None
        self._retire_volunteer_room(s)
        # Through the queue's states without a stop there: the offer is already out.
        self._move(s, State.WAITING)
        self._move(s, State.OFFERED)
        new_ref = RoomRef(s.id, Role.VOLUNTEER, offer.id)
        self._say(new_ref, "transfer.incoming", lang, alias=self._alias(old), number=s.number)
        self._say(self._chatter_ref(s), "transfer.chatter", s.language)
        self._accept(s, offer, now)

    def _note(self, s: Session, vref: RoomRef, c: Command) -> None:
        lang = self._staff_language()
        text = c.args[0]
        if len(text) > self.policy.message_max_chars:
            self._say(vref, "too_long", lang, length=len(text), limit=self.policy.message_max_chars)
            return
        s.note = text
        self._touch(s)
        self._say(vref, "note.saved", lang)
