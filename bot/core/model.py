"""The conversation's data: sessions, offers, volunteers' duty state, timers, policy.

Everything here is plain data. A `Session` is mutated only by the helpline's rules
(`bot.core.machine` and the modules it is made of); every other module reads it.
`to_dict`/`from_dict` give storage a lossless JSON form so that the whole state survives
a restart; they are the only place that knows the field list.
Times are timezone-aware UTC datetimes, passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.core.counters import Counters
from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID, server_of
from bot.core.media import MediaLimits


class State(enum.Enum):
    """Where a conversation is. The legal moves between these live in `machine.TRANSITIONS`."""

    CONSENT = "consent"  # waiting for the chatter to accept the configured consent text
    WAITING = "waiting"  # in the queue, no offer out
    OFFERED = "offered"  # one or more offers out to volunteers
    ACTIVE = "active"  # a volunteer accepted; messages are relayed
    ENDING = "ending"  # ended; closing messages sent, tags and rating accepted until purge
    PURGING = "purging"  # the purge pipeline runs
    CLOSED = "closed"  # purged; only anonymous statistics remain


OPEN_STATES = frozenset({State.CONSENT, State.WAITING, State.OFFERED, State.ACTIVE})
QUEUED_STATES = frozenset({State.WAITING, State.OFFERED})


class Source(enum.Enum):
    """Where a conversation came from, kept with it and in the statistics: the kind of
    room its first message was written in (`events.Origin`), of the two that open one."""

    DIRECT = "direct"  # a direct message to the bot
    LOBBY = "lobby"  # a message in a configured public lobby room
    WEB = "web"  # a throw-away account the bot made for the web chat (`events.WebChatter`)


class Role(enum.Enum):
    CHATTER = "chatter"
    VOLUNTEER = "volunteer"


class Outcome(enum.Enum):
    """How a conversation ended. Kept in the anonymous statistics."""

    COMPLETED = "completed"  # ended by the chatter or the volunteer with !end
    CHATTER_LEFT = "chatter_left"
    TIMED_OUT = "timed_out"  # max duration reached
    CHATTER_IDLE = "chatter_idle"
    DELETED = "deleted"  # the chatter's quick exit (!slett)
    LEFT_WAITING = "left_waiting"  # the chatter left or ended before a volunteer came
    QUEUE_TIMEOUT = "queue_timeout"
    QUEUE_FULL = "queue_full"
    CLOSED_HOURS = "closed_hours"
    NO_CONSENT = "no_consent"
    ROOM_FAILED = "room_failed"  # the bot could not create the chatter's room
    ROOM_LOST = "room_lost"  # the bot was removed from the chatter's room


class OfferState(enum.Enum):
    PENDING = "pending"  # invite sent (or being created), not answered
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"  # lapsed, or another volunteer won a broadcast, or the session ended
    DECLINED = "declined"  # the volunteer rejected the invite
    RETIRED = "retired"  # accepted, then the volunteer left or handed the conversation back


@dataclass
class Offer:
    id: OfferID
    volunteer: UserID
    at: datetime
    room: RoomID | None = None
    state: OfferState = OfferState.PENDING


@dataclass
class HeldMessage:
    """A chatter's message written before a volunteer joined, delivered on accept."""

    event_id: EventID
    body: str


class SeatState(enum.Enum):
    """A supervisor's place in a volunteer's room (`Session.seats`)."""

    INVITED = "invited"  # invited by the bot (`!join`, or offered with an `!alert`)
    JOINED = "joined"  # in the room: reads what is relayed there, writes to the volunteer only
    GONE = "gone"  # left, removed or never came: kept so the purge kicks them too


@dataclass
class Seat:
    user: UserID
    state: SeatState = SeatState.INVITED


@dataclass
class Session:
    id: SessionID
    number: int  # the pseudonym: the volunteer sees "Chatter #<number>"
    chatter: UserID
    language: str
    source: Source
    source_room: RoomID | None
    created_at: datetime
    state: State = State.WAITING
    chatter_room: RoomID | None = None
    chatter_joined: bool = False
    priority: int = 0  # 1 for a chatter requeued after their volunteer left
    queued_at: datetime | None = None
    accepted_at: datetime | None = None
    ended_at: datetime | None = None
    last_chatter_activity: datetime | None = None
    volunteer: UserID | None = None
    volunteer_room: RoomID | None = None
    offers: list[Offer] = field(default_factory=list)
    retired_rooms: list[RoomID] = field(default_factory=list)  # earlier volunteers' rooms
    extended: timedelta = timedelta(0)
    outcome: Outcome | None = None
    tags: list[str] = field(default_factory=list)
    rating: int | None = None
    held: list[HeldMessage] = field(default_factory=list)
    announced_position: int | None = None
    announced_estimate: int | None = None  # minutes, as last told to the chatter
    # Minutes, as told on arrival: the promise the report holds against the actual wait.
    told_estimate: int | None = None
    first_wait: timedelta | None = None  # from the first queueing to the first accept
    requeues: int = 0
    unverified_device: bool = False  # the chatter reads on devices nobody cross-signed
    # The volunteer's handover note (`!note`): conversation content, shown only to the next
    # volunteer, never to the chatter; dropped once shown, and with the conversation.
    note: str | None = None
    transfer_offer: OfferID | None = None  # the offer of a `!transfer` not yet accepted
    seats: list[Seat] = field(default_factory=list)  # supervisors at the volunteer's side
    # Since when the chatter's words wait for the volunteer's answer (None: answered), and
    # what was done about it: 1 the volunteer nudged, 2 the supervisors alerted.
    unanswered_since: datetime | None = None
    silence_told: int = 0

    # -- derived -------------------------------------------------------------------------

    def pending_offers(self) -> list[Offer]:
        return [o for o in self.offers if o.state is OfferState.PENDING]

    def offer(self, offer_id: OfferID) -> Offer | None:
        return next((o for o in self.offers if o.id == offer_id), None)

    def seat(self, user: UserID) -> Seat | None:
        return next((x for x in self.seats if x.user == user), None)

    def present_seats(self) -> list[Seat]:
        """Supervisors invited to or in the volunteer's room now."""
        return [x for x in self.seats if x.state is not SeatState.GONE]

    def deadline(self, max_duration: timedelta) -> datetime | None:
        if self.accepted_at is None:
            return None
        return self.accepted_at + max_duration + self.extended

    def all_rooms(self) -> list[RoomID]:
        """Every room this conversation touched, for the purge."""
        rooms: list[RoomID] = []
        for room in [self.chatter_room, self.volunteer_room, *self.retired_rooms]:
            if room is not None and room not in rooms:
                rooms.append(room)
        for offer in self.offers:
            if offer.room is not None and offer.room not in rooms:
                rooms.append(offer.room)
        return rooms

    # -- persistence form ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "chatter": self.chatter,
            "language": self.language,
            "source": self.source.value,
            "source_room": self.source_room,
            "created_at": _t(self.created_at),
            "state": self.state.value,
            "chatter_room": self.chatter_room,
            "chatter_joined": self.chatter_joined,
            "priority": self.priority,
            "queued_at": _t(self.queued_at),
            "accepted_at": _t(self.accepted_at),
            "ended_at": _t(self.ended_at),
            "last_chatter_activity": _t(self.last_chatter_activity),
            "volunteer": self.volunteer,
            "volunteer_room": self.volunteer_room,
            "offers": [
                {
                    "id": o.id,
                    "volunteer": o.volunteer,
                    "at": _t(o.at),
                    "room": o.room,
                    "state": o.state.value,
                }
                for o in self.offers
            ],
            "retired_rooms": list(self.retired_rooms),
            "extended": self.extended.total_seconds(),
            "outcome": self.outcome.value if self.outcome else None,
            "tags": list(self.tags),
            "rating": self.rating,
            "held": [{"event_id": h.event_id, "body": h.body} for h in self.held],
            "announced_position": self.announced_position,
            "announced_estimate": self.announced_estimate,
            "told_estimate": self.told_estimate,
            "first_wait": (
                self.first_wait.total_seconds() if self.first_wait is not None else None
            ),
            "requeues": self.requeues,
            "unverified_device": self.unverified_device,
            "note": self.note,
            "transfer_offer": self.transfer_offer,
            "seats": [{"user": x.user, "state": x.state.value} for x in self.seats],
            "unanswered_since": _t(self.unanswered_since),
            "silence_told": self.silence_told,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Session:
        return cls(
            id=SessionID(d["id"]),
            number=d["number"],
            chatter=UserID(d["chatter"]),
            language=d["language"],
            source=Source(d["source"]),
            source_room=RoomID(d["source_room"]) if d["source_room"] else None,
            created_at=_dt_req(d["created_at"]),
            state=State(d["state"]),
            chatter_room=RoomID(d["chatter_room"]) if d["chatter_room"] else None,
            chatter_joined=d["chatter_joined"],
            priority=d["priority"],
            queued_at=_dt(d["queued_at"]),
            accepted_at=_dt(d["accepted_at"]),
            ended_at=_dt(d["ended_at"]),
            last_chatter_activity=_dt(d["last_chatter_activity"]),
            volunteer=UserID(d["volunteer"]) if d["volunteer"] else None,
            volunteer_room=RoomID(d["volunteer_room"]) if d["volunteer_room"] else None,
            offers=[
                Offer(
                    id=OfferID(o["id"]),
                    volunteer=UserID(o["volunteer"]),
                    at=_dt_req(o["at"]),
                    room=RoomID(o["room"]) if o["room"] else None,
                    state=OfferState(o["state"]),
                )
                for o in d["offers"]
            ],
            retired_rooms=[RoomID(r) for r in d["retired_rooms"]],
            extended=timedelta(seconds=d["extended"]),
            outcome=Outcome(d["outcome"]) if d["outcome"] else None,
            tags=list(d["tags"]),
            rating=d["rating"],
            held=[HeldMessage(EventID(h["event_id"]), h["body"]) for h in d["held"]],
            announced_position=d["announced_position"],
            announced_estimate=d["announced_estimate"],
            told_estimate=d.get("told_estimate"),  # absent before 2026-12
            first_wait=timedelta(seconds=d["first_wait"]) if d["first_wait"] is not None else None,
            requeues=d["requeues"],
            unverified_device=d.get("unverified_device", False),  # absent before 2026-12
            # The rest are absent before supervision (2026-12).
            note=d.get("note"),
            transfer_offer=OfferID(d["transfer_offer"]) if d.get("transfer_offer") else None,
            seats=[Seat(UserID(x["user"]), SeatState(x["state"])) for x in d.get("seats", [])],
            unanswered_since=_dt(d.get("unanswered_since")),
            silence_told=d.get("silence_told", 0),
        )


@dataclass
class VolunteerState:
    """A configured volunteer's duty state (who they are comes from the config)."""

    user_id: UserID
    on_duty: bool = False
    duty_since: datetime | None = None
    last_assigned_at: datetime | None = None  # for longest_idle fairness
    lapses: int = 0  # consecutive offers left to time out
    shift_conversations: int = 0  # accepted since going on duty (`!my-shift`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "on_duty": self.on_duty,
            "duty_since": _t(self.duty_since),
            "last_assigned_at": _t(self.last_assigned_at),
            "lapses": self.lapses,
            "shift_conversations": self.shift_conversations,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VolunteerState:
        return cls(
            user_id=UserID(d["user_id"]),
            on_duty=d["on_duty"],
            duty_since=_dt(d["duty_since"]),
            last_assigned_at=_dt(d["last_assigned_at"]),
            lapses=d["lapses"],
            shift_conversations=d.get("shift_conversations", 0),  # absent before 2026-12
        )


class TimerKind(enum.Enum):
    OFFER_TIMEOUT = "offer_timeout"  # one per offer: `Timer.offer`
    WARN = "warn"  # one per `warn_before`: `Timer.before`
    MAX_DURATION = "max_duration"
    IDLE_WARN = "idle_warn"
    IDLE_END = "idle_end"
    QUEUE_MAX_WAIT = "queue_max_wait"
    WAIT_REMINDER = "wait_reminder"
    PURGE = "purge"
    # The chatter's words wait for the volunteer's answer: a nudge, then the supervisors.
    VOLUNTEER_SILENCE = "volunteer_silence"


@dataclass(frozen=True, slots=True)
class Timer:
    """A deadline as data. Stored before it is armed; re-armed from storage on start.

    A conversation has at most one timer of each kind, except two: an `OFFER_TIMEOUT` per
    offer (`offer`) and a `WARN` per warning before the end (`before`, whole seconds).
    Storage keeps either as the text `ref` (`stored_ref`: the offer ID, the seconds, or
    ""), which is also the last part of the key.
    """

    kind: TimerKind
    session_id: SessionID
    due: datetime
    offer: OfferID | None = None  # OFFER_TIMEOUT: the offer that lapses
    before: timedelta | None = None  # WARN: how long before the end it warns

    def __post_init__(self) -> None:
        if self.offer is not None and self.kind is not TimerKind.OFFER_TIMEOUT:
            raise ValueError(f"a {self.kind.value} timer is not for an offer")
        if self.before is not None and self.kind is not TimerKind.WARN:
            raise ValueError(f"a {self.kind.value} timer is not a warning")

    @property
    def key(self) -> str:
        return timer_key(self.kind, self.session_id, offer=self.offer, before=self.before)

    @property
    def stored_ref(self) -> str:
        return _timer_ref(self.offer, self.before)

    @classmethod
    def from_stored(cls, kind: TimerKind, session_id: SessionID, due: datetime, ref: str) -> Timer:
        """A timer from its stored form, where `ref` is the text `stored_ref` gave."""
        return cls(
            kind,
            session_id,
            due,
            offer=OfferID(int(ref)) if kind is TimerKind.OFFER_TIMEOUT and ref else None,
            before=timedelta(seconds=int(ref)) if kind is TimerKind.WARN and ref else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "session_id": self.session_id,
            "due": _t(self.due),
            "ref": self.stored_ref,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timer:
        return cls.from_stored(
            TimerKind(d["kind"]), SessionID(d["session_id"]), _dt_req(d["due"]), d["ref"]
        )


def timer_key(
    kind: TimerKind,
    session_id: SessionID,
    *,
    offer: OfferID | None = None,
    before: timedelta | None = None,
) -> str:
    return f"{kind.value}:{session_id}:{_timer_ref(offer, before)}"


def _timer_ref(offer: OfferID | None, before: timedelta | None) -> str:
    if offer is not None:
        return str(offer)
    if before is not None:
        return str(int(before.total_seconds()))
    return ""


@dataclass(frozen=True, slots=True)
class VolunteerProfile:
    """A volunteer as configured: what the core needs to route and to show their alias."""

    user_id: UserID
    alias: str
    languages: tuple[str, ...]
    max_sessions: int = 1
    # What the bot says to them is in this language (`volunteers.members[].language`);
    # None: the helpline's default language.
    language: str | None = None


class PlaintextDirect(enum.StrEnum):
    """What a direct chat that is not encrypted gets (`intake.plaintext_direct`)."""

    OPEN = "open"  # the conversation opens (in a new encrypted room), with a warning
    REFUSE = "refuse"  # nothing opens; the answer says how to write with encryption on


class ReadReceipts(enum.StrEnum):
    """Whose read receipts the bot passes on, as its own receipt on the original
    (`privacy.relay_read_receipts`). A chatter's reading is theirs to show: it reaches the
    volunteer only when the helpline says so."""

    OFF = "off"
    VOLUNTEER_TO_CHATTER = "volunteer_to_chatter"  # the chatter sees that their words were read
    BOTH = "both"  # and the volunteer sees the chatter's too

    @property
    def to_chatter(self) -> bool:
        return self is not ReadReceipts.OFF

    @property
    def to_volunteer(self) -> bool:
        return self is ReadReceipts.BOTH


class Strategy(enum.StrEnum):
    LONGEST_IDLE = "longest_idle"
    LEAST_BUSY = "least_busy"
    ROUND_ROBIN = "round_robin"
    BROADCAST = "broadcast"


@dataclass(frozen=True, slots=True)
class Interval:
    """Opening hours within one day; ``end <= start`` means the interval passes midnight."""

    start: time
    end: time

    @property
    def passes_midnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True, slots=True)
class Hours:
    """Opening hours, evaluated in `timezone` (an IANA name).

    `weekly` has seven entries, Monday first (`date.weekday()` indexes it). An interval
    belongs to the day it starts on, even when it ends after midnight.
    """

    always_open: bool = True
    timezone: str = "Europe/Oslo"
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7
    closed_dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise ValueError(f"weekly needs one entry per weekday, got {len(self.weekly)}")


@dataclass(frozen=True, slots=True)
class Policy:
    """Every setting the core obeys. Built from the config by `bot.config.policy`."""

    volunteers: tuple[VolunteerProfile, ...]
    bot_name: str = "Alltidhjelp"
    direct_messages: bool = True
    plaintext_direct: PlaintextDirect = PlaintextDirect.OPEN
    allowed_servers: frozenset[str] = frozenset({"*"})
    supervisors: frozenset[UserID] = frozenset()
    admins: frozenset[UserID] = frozenset()  # may reload the config and see `!status full`
    staff_room: RoomID | None = None
    # The web chat's public address, when it is on: how someone from a server the line
    # does not serve can still reach it.
    web_chat_url: str | None = None
    strategy: Strategy = Strategy.LONGEST_IDLE
    offer_timeout: timedelta = timedelta(seconds=90)
    lapses_before_off_duty: int = 2
    language_fallback: bool = True
    waiting_reminder: timedelta = timedelta(minutes=3)
    max_duration: timedelta = timedelta(minutes=60)
    warn_before: tuple[timedelta, ...] = (timedelta(minutes=10), timedelta(minutes=2))
    max_extension: timedelta = timedelta(minutes=30)
    default_extension: timedelta = timedelta(minutes=10)
    chatter_idle: timedelta = timedelta(minutes=15)
    volunteer_silence: timedelta = timedelta(minutes=5)  # nudge after this, alert after twice
    idle_warning_before: timedelta = timedelta(minutes=3)
    queue_max_wait: timedelta = timedelta(minutes=30)
    queue_max_length: int = 50
    message_max_chars: int = 4000
    messages_per_minute: int = 20
    sessions_per_day: int = 5
    purge_after: timedelta = timedelta(seconds=60)
    relay_media: bool = False
    relay_read_receipts: ReadReceipts = ReadReceipts.OFF
    media: MediaLimits = field(default_factory=MediaLimits)  # what relay_media passes on
    consent_required: bool = False
    ask_rating: bool = False
    default_language: str = "nb"
    languages: tuple[str, ...] = ("nb", "en")
    topics: tuple[str, ...] = ()
    debrief_topics: tuple[str, ...] = ()  # a conversation tagged with one: debrief offered
    canned: tuple[str, ...] = ()  # names of canned replies volunteers may send with !say
    hours: Hours = Hours()
    block_key: bytes = b""
    tell_chatter: bool = False  # supervision.tell_chatter: a supervisor joining is told
    # The helpline's own homeserver, where the bot makes its rooms. A room for someone on
    # another server must federate for them to join; None (tests that do not care): none
    # is taken to be elsewhere, and every room stays local.
    server_name: str | None = None

    def profile(self, user: UserID) -> VolunteerProfile | None:
        return next((v for v in self.volunteers if v.user_id == user), None)

    def is_staff(self, user: UserID) -> bool:
        """Volunteers, supervisors and admins: their DMs are commands, never a chatter's."""
        return self.profile(user) is not None or user in self.supervisors or user in self.admins

    def is_admin(self, user: UserID) -> bool:
        return user in self.admins

    def is_supervisor(self, user: UserID) -> bool:
        """Supervisors (`volunteers.supervisors`) may block; a volunteer who is one too may."""
        return user in self.supervisors

    def allows(self, user: UserID) -> bool:
        """Whether `intake.allowed_servers` lets this user reach the line."""
        return server_allowed(self.allowed_servers, server_of(user))

    def is_remote(self, user: UserID) -> bool:
        """Whether `user` is on another homeserver than the helpline's: a room made for
        them must federate."""
        return self.server_name is not None and server_of(user) != self.server_name


def server_allowed(allowed: Collection[str], server_name: str) -> bool:
    """The one reading of `intake.allowed_servers`: the listed servers, or any with "*"."""
    return "*" in allowed or server_name in allowed


@dataclass(frozen=True, slots=True)
class StatsRecord:
    """One finished conversation, anonymously: no person, no room, no content.

    `day` is the local date only; times are rounded to whole seconds. `hour` is the local
    hour it began (0-23): storage counts it per day and hour apart from the row, so that
    no row tells when its conversation took place. `told_wait_minutes` is the estimate
    the chatter was told on arrival (None when none was told).
    """

    day: date
    language: str
    source: str
    outcome: str
    wait_seconds: int | None
    duration_seconds: int | None
    requeues: int
    tags: tuple[str, ...]
    rating: int | None
    purge_result: str
    hour: int | None = None
    told_wait_minutes: int | None = None


@dataclass
class Block:
    """A chatter a supervisor blocked, known only by the keyed hash of their Matrix ID.

    `number` is the session number the block was set on, so that `!unblock N` can find it
    after the conversation is gone; it goes with the block, and while the block lasts no
    new conversation gets that number. `told_day` is the helpline's local day on which the
    person was last given the emergency numbers (at most once a day).
    """

    hash: str
    since: date  # the local day it was set
    until: datetime | None  # None: permanent
    number: int | None  # None for a block from before numbers were kept
    told_day: date | None = None

    def lasts(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "since": self.since.isoformat(),
            "until": _t(self.until),
            "number": self.number,
            "told_day": self.told_day.isoformat() if self.told_day else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Block:
        return cls(
            hash=d["hash"],
            since=date.fromisoformat(d["since"]),
            until=_dt(d["until"]),
            number=d["number"],
            told_day=date.fromisoformat(d["told_day"]) if d["told_day"] else None,
        )


@dataclass
class Changes:
    """What one step changed, for storage to write in one transaction."""

    sessions: dict[SessionID, Session] = field(default_factory=dict)  # upserts
    deleted_sessions: set[SessionID] = field(default_factory=set)
    volunteers: dict[UserID, VolunteerState] = field(default_factory=dict)
    timers_set: dict[str, Timer] = field(default_factory=dict)
    timers_cleared: set[str] = field(default_factory=set)
    counters: Counters | None = None  # all of them, when the step changed any
    stats: list[StatsRecord] = field(default_factory=list)
    blocks: dict[str, Block] = field(default_factory=dict)  # upserts, by hash
    unblocked: set[str] = field(default_factory=set)  # hashes lifted or expired
    blocks_set: list[date] = field(default_factory=list)  # a local day per block set: stats

    def empty(self) -> bool:
        return not (
            self.sessions
            or self.deleted_sessions
            or self.volunteers
            or self.timers_set
            or self.timers_cleared
            or self.counters is not None
            or self.stats
            or self.blocks
            or self.unblocked
            or self.blocks_set
        )


def _t(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _dt_req(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
