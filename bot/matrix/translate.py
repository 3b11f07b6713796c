"""nio events -> core inputs: pure functions, no I/O.

Everything read here was written by someone else, possibly a stranger crafting events by
hand to break the bot. Rules:

- `translate` returns an input or None (skip) and never raises, whatever the event holds:
  every field it reads is type-checked first (nio's schemas check some fields of some
  event types, and none inside `m.relates_to` or `m.new_content`).
- IDs are validated here, not where they are used: a string of printable ASCII of at most
  255 characters with the right sigil (`$` event, `!` room, `@localpart:server` user).
  An event whose sender or ID is not valid is skipped as malformed; a bad ID would
  otherwise travel into the database and the outbox and fail there.
- Text is made valid Unicode: a lone surrogate (JSON can carry "\\ud800") becomes U+FFFD,
  since SQLite and the homeserver refuse to encode it. Nothing else is changed: the core
  refuses long messages itself, with a text the sender reads.
- In a room the bot knows is encrypted, a message-like event (m.room.message, m.sticker)
  that was not decrypted is never acted on: it carries no proof of the device that wrote
  it, so a stolen access token could otherwise bypass the staff device check. Membership
  events, redactions and typing are unencrypted in every room and pass.
- Only `body` is read from messages: `formatted_body` is never passed on, so nothing a
  participant writes is ever interpreted as HTML.

`read` says why an event was skipped (`Skip`); `translate` is the same without the
reason. `SkipCounts` counts the reasons worth watching, for the metrics.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Any

from nio import (
    RedactionEvent,
    RoomEncryptedMedia,
    RoomMemberEvent,
    RoomMessage,
    RoomMessageEmote,
    RoomMessageFormatted,
    RoomMessageMedia,
    RoomMessageNotice,
    RoomMessageText,
)

from bot.core.events import (
    Edit,
    Input,
    Joined,
    Kind,
    Left,
    Message,
    Origin,
    Receipt,
    Redaction,
)
from bot.core.ids import EventID, RoomID, UserID
from bot.core.media import Attachment

MAX_ID_LENGTH = 255
MAX_URL_LENGTH = 2048
MAX_KEY_LENGTH = 128  # a base64 AES key, IV or SHA-256 is 22 to 44 characters
MAX_SIZE = 1 << 53  # the largest integer canonical JSON carries

_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_SURROGATE = re.compile("[\ud800-\udfff]")
_MEDIA = ("m.image", "m.file", "m.audio", "m.video")
_MESSAGE_TYPES = ("m.room.message", "m.sticker")


class Skip(enum.Enum):
    """Why an event became no input."""

    IGNORED = "ignored"  # well-formed, and nothing the core acts on (notices, profile changes)
    MALFORMED = "malformed"  # a field of the wrong type, an invalid ID
    PLAINTEXT_IN_ENCRYPTED = "plaintext_in_encrypted"  # a message not encrypted, where it must be
    ERROR = "error"  # translating it raised (a bug): the event alone is skipped


COUNTED = (Skip.MALFORMED, Skip.PLAINTEXT_IN_ENCRYPTED, Skip.ERROR)
"""The reasons counted for the metrics: a small fixed set, each worth a look if it grows."""


class SkipCounts:
    """Events skipped since start, by reason (`COUNTED` only)."""

    def __init__(self) -> None:
        self._counts = dict.fromkeys(COUNTED, 0)

    def add(self, reason: Skip) -> None:
        if reason in self._counts:
            self._counts[reason] += 1

    def __getitem__(self, reason: Skip) -> int:
        return self._counts.get(reason, 0)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """(reason label, count) for every counted reason, zeros included."""
        return ((reason.value, n) for reason, n in self._counts.items())


# --------------------------------------------------------------------------------------
# fields


def _id(value: Any, sigil: str) -> str | None:
    if (
        isinstance(value, str)
        and 1 < len(value) <= MAX_ID_LENGTH
        and value[0] == sigil
        and _PRINTABLE.fullmatch(value) is not None
    ):
        return value
    return None


def event_id(value: Any) -> EventID | None:
    """`value` if it is a plausible event ID (`$` and opaque printable ASCII), else None."""
    valid = _id(value, "$")
    return EventID(valid) if valid is not None else None


def room_id(value: Any) -> RoomID | None:
    """`value` if it is a plausible room ID (`!`; since room version 12 without a server
    part), else None."""
    valid = _id(value, "!")
    return RoomID(valid) if valid is not None else None


def user_id(value: Any) -> UserID | None:
    """`value` if it is a plausible user ID (`@localpart:server`), else None."""
    valid = _id(value, "@")
    if valid is None:
        return None
    localpart, colon, server = valid[1:].partition(":")
    return UserID(valid) if localpart and colon and server else None


def clean_text(value: str) -> str:
    """`value` as valid Unicode: each lone surrogate becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def media_url(value: Any) -> str | None:
    """An `mxc://` URL the purge can delete, or None."""
    if (
        isinstance(value, str)
        and value.startswith("mxc://")
        and len(value) <= MAX_URL_LENGTH
        and _PRINTABLE.fullmatch(value) is not None
    ):
        return value
    return None


def _b64(value: Any) -> str | None:
    """A short (unpadded or padded) base64 string, as keys, IVs and hashes are."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_KEY_LENGTH
        and re.fullmatch(r"[A-Za-z0-9+/_-]+=*", value) is not None
    ):
        return value
    return None


def attachment(content: dict[str, Any]) -> Attachment | None:
    """An encrypted attachment (`file`, an EncryptedFile v2 with an AES-CTR key) as the
    core can ask to relay it, or None if the message carries none that is well formed."""
    msgtype = _str(content.get("msgtype"))
    file = _dict(content.get("file"))
    if msgtype not in _MEDIA or file is None or file.get("v") != "v2":
        return None
    key = _dict(file.get("key")) or {}
    hashes = _dict(file.get("hashes")) or {}
    url = media_url(file.get("url"))
    k, iv, sha256 = _b64(key.get("k")), _b64(file.get("iv")), _b64(hashes.get("sha256"))
    if url is None or k is None or iv is None or sha256 is None:
        return None
    if key.get("alg") != "A256CTR" or key.get("kty") != "oct":
        return None
    info = _dict(content.get("info")) or {}
    mimetype = _str(info.get("mimetype"))
    size = info.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        size = None
    if mimetype is not None and (len(mimetype) > 255 or not mimetype.isascii()):
        mimetype = None
    return Attachment(url, k, iv, sha256, msgtype, mimetype, size)


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------------------
# events


def read_receipts(room: RoomID, receipts: Any, own: str) -> list[Receipt]:
    """The public read receipts (`m.read`) of others among nio's parsed `receipts` (its
    `ReceiptEvent.receipts`). Private ones (`m.read.private`) the server shows nobody
    else, and a receipt in a thread is still a read of that event."""
    out: list[Receipt] = []
    for r in receipts if isinstance(receipts, list) else []:
        if getattr(r, "receipt_type", None) != "m.read":
            continue
        user, read = user_id(getattr(r, "user_id", None)), event_id(getattr(r, "event_id", None))
        if user is not None and read is not None and user != own:
            out.append(Receipt(room, user, read))
    return out


def translate(room: RoomID, event: Any, origin: Origin, *, room_encrypted: bool) -> Input | None:
    """One nio event -> one core input, or None for anything to skip. Never raises.

    `room_encrypted`: the bot knows this room is encrypted (see the module's rules)."""
    out = read(room, event, origin, room_encrypted=room_encrypted)
    return None if isinstance(out, Skip) else out


def read(room: RoomID, event: Any, origin: Origin, *, room_encrypted: bool) -> Input | Skip:
    """`translate`, with the reason for a skip."""
    source = _dict(getattr(event, "source", None)) or {}
    if isinstance(event, RoomMemberEvent):
        return _membership(room, event)
    if isinstance(event, RedactionEvent):
        sender = user_id(getattr(event, "sender", None))
        own = event_id(getattr(event, "event_id", None))
        redacts = event_id(getattr(event, "redacts", None))
        if sender is None or own is None or redacts is None:
            return Skip.MALFORMED
        return Redaction(room, sender, own, redacts)
    if isinstance(event, RoomMessage) or source.get("type") in _MESSAGE_TYPES:
        return _message(room, event, source, origin, room_encrypted)
    return Skip.IGNORED


def _membership(room: RoomID, event: RoomMemberEvent) -> Input | Skip:
    target = user_id(getattr(event, "state_key", None))
    membership = _str(getattr(event, "membership", None))
    before = _str(getattr(event, "prev_membership", None))
    if target is None or membership is None:
        return Skip.MALFORMED
    if membership == "join" and before != "join":
        return Joined(room, target)
    if membership in ("leave", "ban") and before in ("join", "invite"):
        return Left(room, target)
    return Skip.IGNORED


def _message(
    room: RoomID, event: Any, source: dict[str, Any], origin: Origin, room_encrypted: bool
) -> Input | Skip:
    decrypted = getattr(event, "decrypted", False) is True
    if room_encrypted and not decrypted:
        return Skip.PLAINTEXT_IN_ENCRYPTED
    sender = user_id(getattr(event, "sender", None))
    own = event_id(getattr(event, "event_id", None))
    content = _dict(source.get("content"))
    if sender is None or own is None or content is None:
        return Skip.MALFORMED
    relates = content.get("m.relates_to")
    if relates is not None and not isinstance(relates, dict):
        # No client sends this; what it would mean (an edit? a reply?) is anyone's guess.
        return Skip.MALFORMED
    if relates is not None and relates.get("rel_type") == "m.replace":
        new = _dict(content.get("m.new_content"))
        body = _str(new.get("body")) if new is not None else None
        original = event_id(relates.get("event_id"))
        if body is None or original is None:
            return Skip.MALFORMED
        return Edit(room, sender, own, original, clean_text(body))

    def message(
        body: str, kind: Kind, url: str | None = None, file: Attachment | None = None
    ) -> Message:
        return Message(room, sender, own, body, kind, origin, url, file, encrypted=decrypted)

    if isinstance(event, RoomEncryptedMedia):
        # an encrypted attachment's `url` is its file's
        url = media_url(getattr(event, "url", None))
        return message("", Kind.MEDIA, url, attachment(content))
    if isinstance(event, RoomMessageMedia):
        return message("", Kind.MEDIA, media_url(getattr(event, "url", None)))
    if isinstance(event, RoomMessageNotice):
        return Skip.IGNORED  # bots and bridges speak in notices; never relay or act on them
    if isinstance(event, (RoomMessageText, RoomMessageEmote)):
        body = _str(content.get("body"))
        if body is None:
            return Skip.MALFORMED
        kind = Kind.EMOTE if isinstance(event, RoomMessageEmote) else Kind.TEXT
        return message(clean_text(body), kind)
    if isinstance(event, RoomMessageFormatted):
        return Skip.IGNORED
    msgtype = _str(content.get("msgtype"))
    if source.get("type") == "m.sticker":
        return message("", Kind.MEDIA)
    if isinstance(event, RoomMessage):
        return message("", Kind.MEDIA if msgtype in _MEDIA else Kind.OTHER)
    # A message nio's schemas refuse (a BadEvent), e.g. an image with a plain `url` in an
    # encrypted room: never relayed, but the sender must hear why (refused like media).
    if msgtype == "m.notice":
        return Skip.IGNORED
    url = media_url(content.get("url"))
    return message("", Kind.MEDIA if msgtype in _MEDIA else Kind.OTHER, url)
