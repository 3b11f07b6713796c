"""Blocking: a supervisor keeps someone from opening conversations, for a time or for good.

Rules:
- Only supervisors (`Policy.is_supervisor`) block (`!block N [24h|7d|permanent]`) and lift a
  block (`!unblock N`), in the volunteers' room, a DM with the bot or a conversation's
  volunteer room; anyone else is told that these are the supervisors' commands.
- N is the number volunteers see ("Chatter #N"). The bot knows who N is only while the
  conversation exists (until its purge), so a block is set in that time; afterwards N names
  nobody, by design.
- A block keeps the keyed hash of the Matrix ID (`chatter_hash`), never the ID; with it its
  end, N (so that `!unblock N` finds it; no new conversation gets that number meanwhile) and
  the last day the person was told. All of it goes when the block ends; a block that ran
  out goes with the first input after its end (`Bookkeeping._expire_blocks`).
- A block does not end the conversation it was set on: the volunteer is told, and ends it
  (or not) with their own `!end`. Ending someone's conversation is the volunteer's call in
  the room where they can see it; the block only keeps the next one from starting.
- A blocked person who writes (a DM or a lobby) gets no conversation, and the emergency
  numbers at most once a local day: a crisis line never answers with silence. In a lobby,
  which others read, the text does not say that the writer is blocked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bot.core import commands
from bot.core.book import Bookkeeping
from bot.core.commands import FOREVER, Command
from bot.core.events import Target
from bot.core.ids import RoomID, UserID
from bot.core.model import OPEN_STATES, Block, Session, Source, State
from bot.core.pseudonyms import chatter_hash

DEFAULT_SPAN = timedelta(hours=24)


class BlockRules(Bookkeeping):
    def _supervisor_command(self, sender: UserID, where: Target, c: Command, now: datetime) -> bool:
        """Carry out `c` if it is a supervisors' command (True), refusing anyone else; False
        for every other command, which the caller handles."""
        spec = next(s for s in commands.TABLE if s.name == c.name)
        if not spec.supervisors_only:
            return False
        if not self.policy.is_supervisor(sender):
            self._say(where, "supervisors_only", self._staff_language(sender))
        elif c.name == "block":
            self._block(where, c, now)
        elif c.name == "unblock":
            self._unblock(where, c)
        return True

    def _block(self, where: Target, c: Command, now: datetime) -> None:
        lang = self._staff_language()
        assert c.number is not None
        s = self._numbered(c.number)
        if s is None:
            self._say(where, "block.unknown", lang, number=c.number)
            return
        key = chatter_hash(self.policy.block_key, s.chatter)
        span = c.span if c.span is not None else DEFAULT_SPAN
        until = None if span is FOREVER else now + span
        old = self.blocks.get(key)
        day = self._local_day(now)
        self._touch_block(Block(key, day, until, s.number, old.told_day if old else None))
        self._changes.blocks_set.append(day)
        if until is None:
            self._say(where, "block.done_permanent", lang, number=s.number)
        else:
            self._say(where, "block.done", lang, number=s.number, until=self._local_time(until))
        vref = self._volunteer_ref(s)
        if s.state in OPEN_STATES and vref is not None and vref != where:
            self._say(vref, "block.volunteer", lang, number=s.number)

    def _unblock(self, where: Target, c: Command) -> None:
        lang = self._staff_language()
        found = next((b for b in self.blocks.values() if b.number == c.number), None)
        if found is None:
            self._say(where, "unblock.unknown", lang, number=c.number)
            return
        self._lift_block(found)
        self._say(where, "unblock.done", lang, number=c.number)

    def _numbered(self, number: int) -> Session | None:
        """The conversation volunteers know as Chatter #`number`, while the bot knows who
        that is (until it is purged)."""
        return next(
            (
                s
                for s in self.sessions.values()
                if s.number == number and s.state is not State.CLOSED
            ),
            None,
        )

    def _numbers_in_use(self) -> set[int]:
        """Numbers a new conversation may not take: the open ones', and the blocks' (an
        `!unblock N` must never name someone else)."""
        used = {s.number for s in self.sessions.values()}
        return used | {b.number for b in self.blocks.values() if b.number is not None}

    def _blocked_writes(self, user: UserID, room: RoomID, source: Source, now: datetime) -> bool:
        """Whether `user` is blocked (then nothing opens). The first time on a local day they
        are told where to turn, in the DM or, without saying why, in the lobby."""
        b = self.blocks.get(chatter_hash(self.policy.block_key, user))
        if b is None or not b.lasts(now):
            return False
        day = self._local_day(now)
        if b.told_day != day:
            self._touch_block(replace(b, told_day=day))
            key = "blocked.lobby" if source is Source.LOBBY else "blocked.direct"
            self._say(room, key, self.policy.default_language)
        return True
