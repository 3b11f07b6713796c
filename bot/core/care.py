"""Care for volunteers: their own shift on request, and a debrief after a heavy conversation.

Rules:
- `!min-vakt` / `!my-shift` (a volunteer, in the volunteers' room, a DM or a conversation
  room): since when they are on duty and for how long, how many conversations they have
  taken this shift and how many are open now. Counts and times only, never a word or a
  number of a conversation; off duty, the count of their last shift. A shift begins when
  they go on duty (`!på`): the count starts again there.
- A conversation tagged (`!tema`) with a topic listed in `supervision.debrief_topics`: when
  it has ended and carries such a topic (tagged before the end, or after it, until the
  purge), the volunteer is offered a debrief in their room, and the volunteers' room (the
  supervisors) hears that this volunteer's conversation may need one, by alias only: no
  session number, no topic, so that nothing there points at a chatter. Once per
  conversation: a second such topic adds nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from bot.core.book import Bookkeeping, whole_minutes
from bot.core.commands import Command
from bot.core.events import RoomRef, Target
from bot.core.ids import UserID
from bot.core.model import OPEN_STATES, Session, State, VolunteerState


class CareRules(Bookkeeping):
    def _care_command(self, sender: UserID, where: Target, c: Command, now: datetime) -> bool:
        """Carry out `c` if it is `!my-shift` (True); False for every other command."""
        if c.name != "my_shift":
            return False
        lang = self._staff_language(sender)
        profile = self.policy.profile(sender)
        if profile is None:
            self._say(where, "duty.not_volunteer", lang)
            return True
        v = self.duty.setdefault(sender, VolunteerState(sender))
        if not v.on_duty or v.duty_since is None:
            self._say(where, "shift.off", lang, conversations=v.shift_conversations)
            return True
        open_now = sum(
            1 for s in self.sessions.values() if s.volunteer == sender and s.state is State.ACTIVE
        )
        self._say(
            where,
            "shift.on",
            lang,
            since=self._local_time(v.duty_since)[-5:],
            minutes=whole_minutes(now - v.duty_since),
            conversations=v.shift_conversations,
            open=open_now,
        )
        return True

    def _shift_begins(self, v: VolunteerState) -> None:
        v.shift_conversations = 0
        self._touch_duty(v)

    def _shift_took(self, v: VolunteerState) -> None:
        """The volunteer accepted a conversation: it counts in their shift."""
        v.shift_conversations += 1
        self._touch_duty(v)

    def _offer_debrief(self, s: Session, vref: RoomRef | None, before: Collection[str]) -> None:
        """After the end of `s`, or a tag added since: suggest a debrief once, when a topic
        of `supervision.debrief_topics` is on it now and was not in `before`."""
        heavy = set(self.policy.debrief_topics)
        if s.state in OPEN_STATES or vref is None or s.volunteer is None:
            return
        if not heavy & set(s.tags) or heavy & set(before):
            return
        self._say(vref, "debrief.volunteer", self._staff_language(s.volunteer))
        self._say_staff("staff.debrief", alias=self._alias(s.volunteer))
