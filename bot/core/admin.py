"""The admins' part: the config read again without a restart, and the full status.

Rules:
- Admins are the config's `admins:`. Their commands (`!reload`, `!status full`) work in the
  volunteers' room and in a DM with the bot; anyone else is told they are the admins'.
- The core reads no file: `!reload` asks the app to read the config again (`Reload`), and
  the answer comes back as an input. A good file is `PolicyChanged` (SIGHUP brings the same
  input, with nobody to tell); a bad one is `ReloadRefused`, with the number of problems
  for the admin (the problems themselves, with their lines, are in the log). A bad file
  changes nothing.
- A new policy applies to what happens next. A conversation keeps its volunteer and the
  timers it has (its length was set when it began); the queue is offered again at once,
  as a new volunteer or new opening hours may change who gets what.
- A volunteer no longer in the config is taken off duty and their offers not yet taken
  are withdrawn (the chatter goes to someone else), but their open conversations go on
  until they end, under the alias they had: a chatter is never dropped because of an
  edit to a file.
- `!status full` names who is on duty by alias, the queue, the longest wait and how many
  conversations each volunteer has; never an ID, never a word of a conversation.
"""

from __future__ import annotations

from datetime import datetime

from bot.core import commands
from bot.core.commands import Command
from bot.core.events import PolicyChanged, Reload, ReloadRefused
from bot.core.ids import RoomID, UserID
from bot.core.lifecycle import Lifecycle
from bot.core.model import OPEN_STATES, State, VolunteerState


class AdminRules(Lifecycle):
    def _admin_command(self, sender: UserID, where: RoomID, c: Command, now: datetime) -> bool:
        """Carry out `c` if it is an admins' command (True), refusing anyone else; False for
        every other command, which the caller handles."""
        spec = next(s for s in commands.TABLE if s.name == c.name)
        if not spec.admins_only:
            return False
        lang = self._staff_language(sender)
        if not self.policy.is_admin(sender):
            self._say(where, "admins_only", lang)
        elif c.name == "reload":
            self._emit(Reload(where, sender))
        elif c.name == "status_full":
            self._say(where, "status.full", lang, **self._full_status(now))
        return True

    def _full_status(self, now: datetime) -> dict[str, object]:
        figures = self.status(now)
        busy: dict[UserID, int] = {}
        for s in self.sessions.values():
            if s.state is State.ACTIVE and s.volunteer is not None:
                busy[s.volunteer] = busy.get(s.volunteer, 0) + 1
        on_duty = [
            f"{p.alias} ({busy.get(p.user_id, 0)})"
            for p in self.policy.volunteers
            if self.duty.get(p.user_id, VolunteerState(p.user_id)).on_duty
        ]
        # Off duty (or gone from the config) with a conversation still open: supervisors
        # must see those too.
        off_duty = [
            f"{self._alias(user)} ({n})"
            for user, n in busy.items()
            if self.policy.profile(user) is None or not self.duty[user].on_duty
        ]
        return {
            "waiting": figures["waiting"],
            "longest_wait_minutes": figures["longest_wait_minutes"],
            "offers": figures["offers"],
            "on_duty_aliases": on_duty,
            "off_duty_aliases": off_duty,
        }

    def _on_policy_changed(self, e: PolicyChanged, now: datetime) -> None:
        old, new = self.policy, e.policy
        kept = {p.user_id for p in new.volunteers}
        gone = [p for p in old.volunteers if p.user_id not in kept]
        added = [p for p in new.volunteers if old.profile(p.user_id) is None]
        self.policy = new
        for p in gone:
            self._departed[p.user_id] = p
        for p in new.volunteers:
            self._departed.pop(p.user_id, None)
            self.duty.setdefault(p.user_id, VolunteerState(p.user_id))
        for p in gone:
            self._retire_volunteer(p.user_id, now)
        if e.to is not None and e.by is not None:
            lang = self._staff_language(e.by)
            self._say(e.to, "reload.done", lang, added=len(added), removed=len(gone))
            if e.restart:
                self._say(e.to, "reload.restart", lang, keys=list(e.restart))
        self._dispatch(now)

    def _retire_volunteer(self, user: UserID, now: datetime) -> None:
        """`user` is no longer a volunteer: off duty, their offers withdrawn; what they have
        open goes on (`Session.volunteer` is not touched)."""
        v = self.duty.get(user)
        if v is not None and v.on_duty:
            v.on_duty = False
            self._touch_duty(v)
        for s in list(self.sessions.values()):
            if s.state not in OPEN_STATES:
                continue
            for o in s.pending_offers():
                if o.volunteer == user:
                    self._withdraw(s, o, now)

    def _on_reload_refused(self, e: ReloadRefused) -> None:
        self._say(e.to, "reload.refused", self._staff_language(e.by), problems=e.problems)
