"""Inputs to the core and the effects it asks for, as plain data.

Inputs are what happened (a message arrived, a timer fired, a room was created); the
Matrix adapter builds them from nio events. Effects are what must happen towards Matrix;
the adapter carries them out in order, each with a transaction ID stored beside it so that
a crash between sending and recording can never send twice.

Effects address a conversation's rooms by `RoomRef`, not by room ID: a room the core asked
for may not exist yet when the effect is queued, and is looked up when the effect runs.
Texts are `Text(key, params)`, rendered in the recipient's language by `bot.messages`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.media import Attachment, MediaProblem
from bot.core.model import Policy, Role

# --------------------------------------------------------------------------------------
# inputs


class Origin(enum.Enum):
    """The kind of room a message was written in, for rooms that are not a conversation's,
    as the adapter knows it from the config. Of these, a DM and a lobby can open a
    conversation: it then keeps where it came from as a `model.Source`."""

    DIRECT = "direct"  # a DM room between someone and the bot
    LOBBY = "lobby"  # a configured public lobby room
    STAFF = "staff"  # the volunteers' room
    OTHER = "other"


class Kind(enum.Enum):
    TEXT = "text"
    EMOTE = "emote"
    NOTICE = "notice"
    MEDIA = "media"  # image, file, audio, video, sticker
    OTHER = "other"  # locations, polls, anything the bot does not relay


@dataclass(frozen=True, slots=True)
class Message:
    room: RoomID
    sender: UserID
    event_id: EventID
    body: str
    kind: Kind = Kind.TEXT
    origin: Origin = Origin.OTHER
    media_url: str | None = None  # mxc:// of any media, recorded for the purge
    # An encrypted attachment that `privacy.relay_media` may pass on (its key, its hash).
    attachment: Attachment | None = None
    # False for a message that came in the clear (nio did not decrypt it): possible only
    # in a room that is not encrypted, such as a DM a chatter opened without encryption.
    encrypted: bool = True


@dataclass(frozen=True, slots=True)
class Edit:
    room: RoomID
    sender: UserID
    event_id: EventID
    original: EventID
    body: str


@dataclass(frozen=True, slots=True)
class Redaction:
    room: RoomID
    sender: UserID
    event_id: EventID
    redacts: EventID


@dataclass(frozen=True, slots=True)
class Typing:
    room: RoomID
    user: UserID
    typing: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """`user` has read `room` up to `event_id` (a public read receipt)."""

    room: RoomID
    user: UserID
    event_id: EventID


@dataclass(frozen=True, slots=True)
class Joined:
    room: RoomID
    user: UserID


@dataclass(frozen=True, slots=True)
class Left:
    """A member left, was kicked, or rejected an invite."""

    room: RoomID
    user: UserID


@dataclass(frozen=True, slots=True)
class Removed:
    """The bot is no longer in this room: someone given the power kicked or banned it, or
    a state reset on the server took its membership. It can neither read nor write there."""

    room: RoomID


@dataclass(frozen=True, slots=True)
class RoomCreated:
    session_id: SessionID
    offer_id: OfferID | None  # None for the chatter's room
    room: RoomID


@dataclass(frozen=True, slots=True)
class RoomFailed:
    session_id: SessionID
    offer_id: OfferID | None


@dataclass(frozen=True, slots=True)
class TimerFired:
    key: str


@dataclass(frozen=True, slots=True)
class PurgeFinished:
    session_id: SessionID
    # "verified", "verified_local_only", "verified_without_admin", "failed: <reason code>"
    result: str


@dataclass(frozen=True, slots=True)
class PurgeStalled:
    """The purge keeps failing for a reason that may pass (the admin API down, 5xx): it
    is retried with a growing delay until it is done, and the supervisors should know
    that the conversation is still on the server meanwhile."""

    session_id: SessionID


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An encrypted event whose key never arrived within the grace period: its sender
    should be asked to send it again. Carries no content, since there is none to read
    (or, `untrusted`, none the bot may act on)."""

    room: RoomID
    sender: UserID
    event_id: EventID
    origin: Origin = Origin.OTHER
    # Read, but written from a device its (staff) owner has not cross-signed: not acted
    # on, as Element would not show it; the writer is told why.
    untrusted: bool = False


@dataclass(frozen=True, slots=True)
class MediaRefused:
    """An attachment the core asked to relay (`RelayMedia`) turned out, once downloaded,
    not to be one that may be passed on: its sender is told why, in `back`."""

    back: RoomRef
    problem: MediaProblem


@dataclass(frozen=True, slots=True)
class ChatterUnverified:
    """The chatter of the conversation in `room` has no cross-signed device, and the
    bot shares keys with their unsigned ones (`encryption.chatter_devices`): the
    volunteer should know that nobody can confirm who reads on that side."""

    room: RoomID
    user: UserID


@dataclass(frozen=True, slots=True)
class IdentityChanged:
    """A staff member's cross-signing master key is not the pinned one: their devices get
    no keys until an admin accepts the new identity."""

    user: UserID


@dataclass(frozen=True, slots=True)
class WebChatter:
    """The web chat made a throw-away account for someone on the helpline's page: open a
    conversation for it (no DM, no lobby: the bot invites the account straight into the
    conversation room). `language`: the page's, when the line speaks it."""

    user: UserID
    language: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """The config file was read again and found good (`!reload`, or SIGHUP): what happens
    from now on follows `policy`. `to`/`by`: the room and the admin who asked, to be
    told (None for SIGHUP). `restart`: the key paths that changed but take effect only
    with a restart; they are not in `policy`."""

    policy: Policy
    to: RoomID | None = None
    by: UserID | None = None
    restart: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReloadRefused:
    """The config file was read again and has `problems` (in the log, with their lines):
    nothing changed. The admin who asked is told how many."""

    to: RoomID
    by: UserID
    problems: int


Input = (
    Message
    | Edit
    | Redaction
    | Typing
    | Receipt
    | Joined
    | Left
    | Removed
    | RoomCreated
    | RoomFailed
    | TimerFired
    | PurgeFinished
    | PurgeStalled
    | Unreadable
    | IdentityChanged
    | ChatterUnverified
    | WebChatter
    | MediaRefused
    | PolicyChanged
    | ReloadRefused
)

# --------------------------------------------------------------------------------------
# effects


@dataclass(frozen=True, slots=True)
class RoomRef:
    """A conversation's room: the chatter's, or the one made for an offer to a volunteer."""

    session_id: SessionID
    role: Role
    offer_id: OfferID | None = None


Target = RoomRef | RoomID


@dataclass(frozen=True, slots=True)
class Text:
    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateRoom:
    """A fresh private encrypted room between the bot and `invite`, for one conversation.

    `federate`: whether servers other than the helpline's may take part (`m.federate`).
    Only a room for someone on another server does; an effect stored before the field
    existed reads back as False, as every room was made then."""

    ref: RoomRef
    invite: UserID
    persona: str  # the bot's display name in that room: the volunteer's alias or "Chatter #n"
    federate: bool = False


@dataclass(frozen=True, slots=True)
class Say:
    """A text from the bot, rendered in `language`: an m.notice, or with `voice` an m.text
    spoken on the volunteer's behalf (a canned reply)."""

    to: Target
    text: Text
    language: str
    voice: bool = False
    # Staff whose apps should notify them (`m.mentions.user_ids`): the supervisors on an
    # alert. Empty for everything else: nothing the bot sends mentions anyone by default.
    mentions: tuple[UserID, ...] = ()


@dataclass(frozen=True, slots=True)
class SetPersona:
    """The bot's display name in one room: the chatter sees the volunteer's alias."""

    to: RoomRef
    name: str


@dataclass(frozen=True, slots=True)
class Relay:
    """A participant's words, passed to the other side as plain m.text."""

    to: RoomRef
    body: str
    source: EventID
    emote: bool = False


@dataclass(frozen=True, slots=True)
class RelayMedia:
    """A participant's attachment, passed to the other side as a new file: downloaded,
    checked from its bytes (`bot.core.media.inspect`), encrypted with a fresh key and
    uploaded by the bot, sent with a neutral name. If the bytes may not pass, the sender
    is told in `back` (through `MediaRefused`)."""

    to: RoomRef
    attachment: Attachment
    source: EventID
    back: RoomRef


@dataclass(frozen=True, slots=True)
class RelayEdit:
    to: RoomRef
    body: str
    original: EventID  # the source event whose relayed copy is edited


@dataclass(frozen=True, slots=True)
class RelayRedaction:
    to: RoomRef
    original: EventID


@dataclass(frozen=True, slots=True)
class SetTyping:
    to: RoomRef
    typing: bool


@dataclass(frozen=True, slots=True)
class RelayReceipt:
    """The bot's read receipt in `to`, on the original of `read`: `read` is the relayed
    copy the other side read, in their own room (the relay map knows its original)."""

    to: RoomRef
    read: EventID


@dataclass(frozen=True, slots=True)
class Redact:
    """Redact someone else's event, e.g. a chatter's message in a public lobby."""

    room: RoomID
    event_id: EventID


@dataclass(frozen=True, slots=True)
class RedactRoom:
    """Redact every message event of one conversation room, now: comes before a volunteer
    is removed from it (hand-back, leaving), because a client that is no longer in a room
    never receives the redactions that would make it drop what it cached."""

    ref: RoomRef


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Take back an offer: revoke the invite, leave and forget the offer's room."""

    ref: RoomRef
    volunteer: UserID


@dataclass(frozen=True, slots=True)
class Retire:
    """A volunteer's room that is no longer in use (hand-back, leaving): remove the volunteer
    and stop using it; its content goes with the purge of the conversation."""

    ref: RoomRef
    volunteer: UserID


@dataclass(frozen=True, slots=True)
class Invite:
    """Invite a supervisor into a volunteer's room of a conversation (`!join`, `!alert`)."""

    ref: RoomRef
    user: UserID


@dataclass(frozen=True, slots=True)
class RecordMedia:
    session_id: SessionID
    mxc: str
    sender: UserID | None = None  # who posted it: the purge deletes it only if they uploaded it


@dataclass(frozen=True, slots=True)
class Purge:
    """Run the purge pipeline for every room of the conversation."""

    session_id: SessionID
    rooms: tuple[RoomID, ...]
    participants: tuple[UserID, ...]  # the chatter first, then the volunteers offered it
    # The DM in which the chatter first wrote, when no conversation of theirs that is not
    # yet purging uses it: the bot removes what it can of it and leaves (see purge.py).
    dm: RoomID | None = None
    # A web chatter's throw-away account: deactivated with erase once the rooms are gone.
    erase: UserID | None = None
    # A participant is on another server, which holds its own copy of their room that the
    # helpline cannot delete: the purge checks what the helpline's server will have told
    # it, and says so in its result ("verified_local_only").
    federated: bool = False


@dataclass(frozen=True, slots=True)
class Reload:
    """Read the config file again, for the admin `by` who asked in `to` (`!reload`). Not a
    Matrix request: the app carries it out (`bot.reload`) and answers with `PolicyChanged`
    or `ReloadRefused`."""

    to: RoomID
    by: UserID


Effect = (
    CreateRoom
    | Say
    | SetPersona
    | Relay
    | RelayMedia
    | RelayEdit
    | RelayRedaction
    | SetTyping
    | RelayReceipt
    | Redact
    | RedactRoom
    | Withdraw
    | Retire
    | Invite
    | RecordMedia
    | Purge
    | Reload
)


def session_of(effect: Effect) -> SessionID | None:
    """The conversation an effect belongs to, so deleting the conversation drops it."""
    for attr in ("to", "ref"):
        ref = getattr(effect, attr, None)
        if isinstance(ref, RoomRef):
            return ref.session_id
    sid = getattr(effect, "session_id", None)
    return SessionID(sid) if isinstance(sid, int) else None


def room_of(effect: Effect) -> RoomID | None:
    """The room an effect addresses by ID (a DM, the volunteers' room, a lobby), if any."""
    to = getattr(effect, "to", None)
    if isinstance(to, str):
        return RoomID(to)
    room = getattr(effect, "room", None)
    return RoomID(room) if isinstance(room, str) else None
