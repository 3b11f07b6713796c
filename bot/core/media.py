"""Media a participant sends: what may be passed on, decided from the bytes, not the label.

Pure, like the rest of the core. The Matrix side downloads and decrypts an attachment and
asks `inspect` whether its bytes may go to the other side; the core asks `precheck` about
what the message declares, to refuse at once what would be refused after the download.

Rules:
- A type is what the bytes are (`sniff`: their magic numbers), never what the sender's
  `mimetype` or file name claim: a file labelled image/png that is a PDF is a PDF. Only
  types the sniffer knows can be allowed (`KNOWN`), so the allow-list cannot name a type
  that would pass on a label alone.
- What the other side receives says nothing the bytes do not: a neutral file name
  (`image.png`), the type, the size and, for a picture, its width and height.
- `precheck` trusts the declared size and type only to refuse; a file that declares
  nothing, or declares the right thing, is still checked by `inspect` after download.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Kind:
    """A type the bot can recognise from its bytes: the neutral file name's extension, the
    message type it goes out as, and the short name a participant reads."""

    extension: str
    msgtype: str
    label: str


KNOWN: Mapping[str, Kind] = MappingProxyType(
    {
        "image/jpeg": Kind("jpg", "m.image", "JPEG"),
        "image/png": Kind("png", "m.image", "PNG"),
        "image/webp": Kind("webp", "m.image", "WebP"),
        "image/gif": Kind("gif", "m.image", "GIF"),
        "application/pdf": Kind("pdf", "m.file", "PDF"),
    }
)
"""Every type `sniff` recognises, and so every type the allow-list may hold."""


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """`privacy.media`: the largest file passed on, and the types passed on."""

    max_bytes: int = 10 * MiB
    types: frozenset[str] = frozenset({"image/jpeg", "image/png", "image/webp"})

    def labels(self) -> str:
        """The allowed types as a participant reads them: "JPEG, PNG, WebP"."""
        return ", ".join(KNOWN[t].label for t in KNOWN if t in self.types)

    def limit_mb(self) -> float:
        """The size limit in MB (MiB), to two significant digits: 10.0, 0.5, 0.00095."""
        return float(f"{self.max_bytes / MiB:.2g}")


class MediaProblem(enum.Enum):
    """Why an attachment was not passed on; each has its text to the sender."""

    TOO_BIG = "too_big"
    TYPE = "type"  # not an encrypted file of an allowed type
    BROKEN = "broken"  # could not be fetched or decrypted (gone, or its hash is wrong)


@dataclass(frozen=True, slots=True)
class Attachment:
    """An encrypted attachment as a message carried it (its `file`, an EncryptedFile):
    enough to fetch and decrypt it, and what the sender declared about it.

    `key` is the JWK's `k`, `iv` and `sha256` the unpadded base64 of the spec."""

    url: str
    key: str
    iv: str
    sha256: str
    msgtype: str  # as declared: m.image, m.file, m.audio, m.video
    mimetype: str | None = None  # as declared (info.mimetype)
    size: int | None = None  # as declared (info.size)


@dataclass(frozen=True, slots=True)
class Checked:
    """Bytes that may be passed on, and what the other side is told about them."""

    mimetype: str
    size: int
    width: int | None = None
    height: int | None = None

    @property
    def kind(self) -> Kind:
        return KNOWN[self.mimetype]

    @property
    def filename(self) -> str:
        base = "image" if self.kind.msgtype == "m.image" else "file"
        return f"{base}.{self.kind.extension}"

    def info(self) -> dict[str, int | str]:
        """The event's `info`: type, size and a picture's dimensions; nothing else."""
        out: dict[str, int | str] = {"mimetype": self.mimetype, "size": self.size}
        if self.width is not None and self.height is not None:
            out["w"], out["h"] = self.width, self.height
        return out


def precheck(attachment: Attachment, limits: MediaLimits) -> MediaProblem | None:
    """A refusal from what the message declares, before anything is downloaded; None
    when the declarations allow it (the bytes decide later)."""
    if attachment.size is not None and attachment.size > limits.max_bytes:
        return MediaProblem.TOO_BIG
    if attachment.mimetype is not None and attachment.mimetype.lower() not in limits.types:
        return MediaProblem.TYPE
    if not any(KNOWN[t].msgtype == attachment.msgtype for t in limits.types):
        return MediaProblem.TYPE  # a voice message or a video, when only pictures pass
    return None


def inspect(data: bytes, limits: MediaLimits) -> Checked | MediaProblem:
    """Whether these (decrypted) bytes may be passed on, and what to say about them."""
    if len(data) > limits.max_bytes:
        return MediaProblem.TOO_BIG
    mimetype = sniff(data)
    if mimetype is None or mimetype not in limits.types:
        return MediaProblem.TYPE
    size = dimensions(data, mimetype)
    width, height = size if size is not None else (None, None)
    return Checked(mimetype, len(data), width, height)


# --------------------------------------------------------------------------------------
# the bytes


def sniff(data: bytes) -> str | None:
    """The type the bytes are, by their signature; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def dimensions(data: bytes, mimetype: str) -> tuple[int, int] | None:
    """A picture's width and height from its header; None if it cannot be read there."""
    try:
        if mimetype == "image/png":
            return _png_size(data)
        if mimetype == "image/gif":
            width, height = struct.unpack("<HH", data[6:10])
            return _plausible(width, height)
        if mimetype == "image/webp":
            return _webp_size(data)
        if mimetype == "image/jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError):
        return None
    return None


def _plausible(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if 0 < width <= 1 << 16 and 0 < height <= 1 << 16 else None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return _plausible(width, height)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _plausible(width, height)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _plausible(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return _plausible((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return None


# Start-of-frame markers: SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return _plausible(width, height)
        i += 2 + length
    return None


# --------------------------------------------------------------------------------------
# what a picture says besides its pixels

# JPEG segments kept: JFIF (APP0), the ICC colour profile (APP2) and Adobe's colour
# transform (APP14); every other APPn (EXIF and XMP in APP1, Photoshop's IPTC in APP13,
# makers' own) and comments (COM) are dropped.
_JPEG_KEEP_APP = frozenset({0xE0, 0xE2, 0xEE})
# PNG chunks dropped: text (tEXt, zTXt, iTXt), EXIF (eXIf) and the time it was made (tIME).
_PNG_DROP = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})
# WebP chunks dropped, and the VP8X flags that announce them.
_WEBP_DROP = frozenset({b"EXIF", b"XMP "})
_WEBP_EXIF_XMP_FLAGS = 0x08 | 0x04


def without_metadata(data: bytes, mimetype: str) -> bytes:
    """The picture with what a camera or an app writes beside the pixels taken out: where
    and when it was taken (EXIF GPS and dates), the device, the author, comments. What a
    chatter sends must not say where they live. Bytes it cannot read are returned as
    they are (the type check has passed: they are still a picture of that type); GIF and
    PDF are returned as they are (README, "What the media relay removes")."""
    try:
        if mimetype == "image/jpeg":
            return _jpeg_without_metadata(data)
        if mimetype == "image/png":
            return _png_without_metadata(data)
        if mimetype == "image/webp":
            return _webp_without_metadata(data)
    except (struct.error, IndexError):
        return data
    return data


def _jpeg_without_metadata(data: bytes) -> bytes:
    out = bytearray(data[:2])  # SOI
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return data  # not what a JPEG looks like here: leave it
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the image data follows, kept as it is
            out += data[i:]
            return bytes(out)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            out += data[i : i + 2]
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        segment = data[i : i + 2 + length]
        if len(segment) < 2 + length:
            return data
        metadata = (0xE0 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP) or marker == 0xFE
        if not metadata:
            out += segment
        i += 2 + length
    return data


def _png_without_metadata(data: bytes) -> bytes:
    out = bytearray(data[:8])
    i = 8
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > len(data):
            return data
        if kind not in _PNG_DROP:
            out += data[i:end]
        i = end
        if kind == b"IEND":
            return bytes(out)
    return data


def _webp_without_metadata(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return data
    chunks = bytearray()
    i = 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        (length,) = struct.unpack("<I", data[i + 4 : i + 8])
        end = i + 8 + length + (length & 1)  # chunks are padded to an even size
        if end > len(data) + (length & 1):
            return data
        chunk = bytearray(data[i : min(end, len(data))])
        if kind == b"VP8X" and len(chunk) > 8:
            chunk[8] &= ~_WEBP_EXIF_XMP_FLAGS & 0xFF
        if kind not in _WEBP_DROP:
            chunks += chunk
        i = end
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks)
