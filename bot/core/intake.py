"""Intake: a first message in a DM or a lobby, or a web chat account, and whether it
opens a conversation.

Who may open one (the allowed servers, the block list of `bot.core.blocking`, a cap per
day), what a refusal says and where, and the conversation's first state: `consent` when
terms must be accepted first, else the queue (or straight to `ending`, when closed or
full, to say why in a room of its own).
"""

from __future__ import annotations

from datetime import datetime

from bot.core import commands, routing
from bot.core.blocking import BlockRules
from bot.core.commands import Audience
from bot.core.events import (
    CreateRoom,
    Kind,
    Message,
    WebChatter,
)
from bot.core.hours import is_open
from bot.core.ids import RoomID, SessionID, UserID
from bot.core.lifecycle import Lifecycle
from bot.core.model import (
    OPEN_STATES,
    HeldMessage,
    Outcome,
    PlaintextDirect,
    Session,
    Source,
    State,
    StatsRecord,
    TimerKind,
)
from bot.core.pseudonyms import chatter_hash


class IntakeRules(Lifecycle, BlockRules):
    def _intake(self, m: Message, source: Source, now: datetime) -> None:
        if not self.policy.allows(m.sender):
            self._tell_other_server(m.room)
            return
        if self._blocked_writes(m.sender, m.room, source, now):
            return
        key = chatter_hash(self.policy.block_key, m.sender)
        lang = self.policy.default_language
        if self._turned_away(m, source, key, now):
            return
        plaintext = source is Source.DIRECT and not m.encrypted
        counters = self.counters
        rejection = self._rejection(now)
        if rejection is not None and source is Source.DIRECT:
            # The DM itself is private: answer there, no room needed.
            self._say_rejection(m.room, rejection, lang, now)
            self._stats_for_rejection(rejection, source, lang, now)
            return
        # Counted only now: a refusal in the DM is not a conversation.
        counters.day_counts[key] = counters.day_counts.get(key, 0) + 1
        self._counted()

        s = self._open(m.sender, source, m.room, lang, rejection, now)
        self._hold_first_words(s, m)
        if source is Source.DIRECT:
            self._say(m.room, "intake.invited_plaintext" if plaintext else "intake.invited", lang)
        self._first_state(s, rejection, now)

    def _tell_other_server(self, room: RoomID) -> None:
        """Someone on a server `intake.allowed_servers` does not list wrote: no
        conversation, but once per room the line says whom it serves and, with the web
        chat on, where they can write without an account. Never silence."""
        if room in self._told_other_server:
            return
        self._told_other_server.add(room)
        servers = ", ".join(sorted(self.policy.allowed_servers))
        lang = self.policy.default_language
        if self.policy.web_chat_url:
            self._say(
                room, "intake.other_server_web", lang, server=servers, url=self.policy.web_chat_url
            )
        else:
            self._say(room, "intake.other_server", lang, server=servers)

    def _web_intake(self, w: WebChatter, now: datetime) -> None:
        """A throw-away web account: the page is waiting for the invite. No DM to answer
        in, so every refusal is said in the conversation room (as for a lobby), and a
        blocked account gets nothing (the web chat erases it after its idle time). No
        daily cap: each account is new, so counting it would say nothing."""
        if not self.policy.allows(w.user):
            return
        if chatter_hash(self.policy.block_key, w.user) in self.blocked:
            return
        if any(s.chatter == w.user and s.state in OPEN_STATES for s in self.sessions.values()):
            return  # the same input twice (a replay): the conversation is open already
        lang = w.language if w.language in self.policy.languages else None
        lang = lang or self.policy.default_language
        rejection = self._rejection(now)
        s = self._open(w.user, Source.WEB, None, lang, rejection, now)
        self._first_state(s, rejection, now)

    # -- queries (they change nothing): what the web chat asks before it makes an account

    def intake_refusal(self, now: datetime) -> Outcome | None:
        """Why a new conversation would be refused now (closed, queue full), or None."""
        return self._rejection(now)

    def is_blocked(self, user: UserID) -> bool:
        return chatter_hash(self.policy.block_key, user) in self.blocked

    def has_conversation(self, user: UserID) -> bool:
        """Whether `user` is the chatter of a conversation the bot still holds."""
        return any(s.chatter == user for s in self.sessions.values())

    def _rejection(self, now: datetime) -> Outcome | None:
        if not is_open(self.policy.hours, now):
            return Outcome.CLOSED_HOURS
        if len(routing.queue_order(self.sessions.values())) >= self.policy.queue_max_length:
            return Outcome.QUEUE_FULL
        return None

    def _open(
        self,
        chatter: UserID,
        source: Source,
        room: RoomID | None,
        lang: str,
        rejection: Outcome | None,
        now: datetime,
    ) -> Session:
        """A new conversation and its room, invited to at once."""
        # A conversation starts where it belongs: there is no move into CONSENT.
        first = (
            State.CONSENT if self.policy.consent_required and rejection is None else State.WAITING
        )
        s = self._new_session(chatter, source, room, lang, now, first)
        s.outcome = rejection
        federate = self.policy.is_remote(chatter)
        self._emit(CreateRoom(self._chatter_ref(s), chatter, self.policy.bot_name, federate))
        return s

    def _first_state(self, s: Session, rejection: Outcome | None, now: datetime) -> None:
        if rejection is not None:
            s.ended_at = now
            self._move(s, State.ENDING)
            # Time to accept the invite and read why; then it goes.
            self._set_timer(TimerKind.PURGE, s, now + self.policy.queue_max_wait)
        elif s.state is State.CONSENT:
            self._set_timer(TimerKind.QUEUE_MAX_WAIT, s, now + self.policy.queue_max_wait)
        else:
            self._enqueue(s, now)

    def _turned_away(self, m: Message, source: Source, key: str, now: datetime) -> bool:
        """Whether this chatter gets no new conversation now, whatever the hours and the
        queue: they have one open, wrote in the clear where that is refused, or reached
        the cap for the day. Told why where they wrote (in a DM; a lobby is public)."""
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
            return True
        plaintext = source is Source.DIRECT and not m.encrypted
        if plaintext and self.policy.plaintext_direct is PlaintextDirect.REFUSE:
            self._say(m.room, "intake.plaintext_refused", lang)
            return True
        self._roll_day(now)
        if self.counters.day_counts.get(key, 0) >= self.policy.sessions_per_day:
            if source is Source.DIRECT:
                self._say(m.room, "intake.daily_cap", lang)
            return True
        return False

    def _hold_first_words(self, s: Session, m: Message) -> None:
        """The first words of a chat that is not encrypted are held and relayed like any
        others: they are on the server in the clear already, and asking someone to say
        again what was hard to say at all is unkind. Only what comes later, in the new
        encrypted room, is private; the answer in the DM says so."""
        if (
            m.kind is Kind.TEXT
            and m.body.strip()
            and commands.parse(m.body, Audience.CHATTER) is None
            and not commands.is_command_like(m.body)
        ):
            s.held.append(HeldMessage(m.event_id, m.body[: self.policy.message_max_chars]))

    def _new_session(
        self,
        chatter: UserID,
        source: Source,
        room: RoomID | None,
        lang: str,
        now: datetime,
        state: State,
    ) -> Session:
        used = self._numbers_in_use()
        number = self._rng.randint(1000, 9999)
        while number in used:
            number = self._rng.randint(1000, 9999)
        sid = SessionID(self.counters.next_session_id)
        self.counters.next_session_id += 1
        self._counted()
        s = Session(
            id=sid,
            number=number,
            chatter=chatter,
            language=lang,
            source=source,
            source_room=room if source is Source.DIRECT and room is not None else None,
            created_at=now,
            state=state,
        )
        self.sessions[sid] = s
        self._touch(s)
        return s

    def _roll_day(self, now: datetime) -> None:
        day = self._local_day(now).isoformat()
        if day != self.counters.day:
            self.counters.day = day
            self.counters.day_counts = {}
            self._counted()

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
                hour=self._local_hour(now),
            )
        )
