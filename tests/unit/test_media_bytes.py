"""What may be passed on is decided from the bytes (`bot.core.media`): the type sniffed
from the content, never the label; the size; a picture's dimensions. And the attachment a
message carries is read with the same suspicion as every other field
(`bot.matrix.translate.attachment`), including the bot's own copies."""

from __future__ import annotations

import copy
import struct
from typing import Any

import pytest
from nio import Event
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from bot.core.events import Kind, Message, Origin, Text
from bot.core.ids import RoomID
from bot.core.media import (
    KNOWN,
    Attachment,
    Checked,
    MediaLimits,
    MediaProblem,
    dimensions,
    inspect,
    precheck,
    sniff,
)
from bot.devtools.images import png, png_pixels
from bot.matrix.media import content
from bot.matrix.translate import attachment, translate
from bot.messages import Texts

LIMITS = MediaLimits()

JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\xff\xdb\x00\x04\x00\x00"  # a (truncated) quantisation table: skipped by length
    + b"\xff\xc0\x00\x11\x08"
    + struct.pack(">HH", 480, 640)  # height, width
    + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    + b"\xff\xda\x00\x08"
)
WEBP_LOSSY = (
    b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00"
    + b"\x00\x00\x00\x9d\x01\x2a"
    + struct.pack("<HH", 320, 200)
)
WEBP_EXTENDED = (
    b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
    + (1023).to_bytes(3, "little")
    + (767).to_bytes(3, "little")
)
GIF = b"GIF89a" + struct.pack("<HH", 16, 9) + b"\x00\x00\x00"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


@pytest.mark.parametrize(
    ("data", "mimetype", "size"),
    [
        (png(7, 5), "image/png", (7, 5)),
        (JPEG, "image/jpeg", (640, 480)),
        (WEBP_LOSSY, "image/webp", (320, 200)),
        (WEBP_EXTENDED, "image/webp", (1024, 768)),
        (GIF, "image/gif", (16, 9)),
        (PDF, "application/pdf", None),
    ],
)
def test_the_type_and_a_pictures_size_are_read_from_the_bytes(
    data: bytes, mimetype: str, size: tuple[int, int] | None
) -> None:
    assert sniff(data) == mimetype
    assert dimensions(data, mimetype) == size


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PN", b"hello", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"RIFF1234WAVE"],
)
def test_bytes_of_no_known_type_are_not_a_type(data: bytes) -> None:
    assert sniff(data) is None
    assert inspect(data, LIMITS) is MediaProblem.TYPE


def test_a_truncated_header_gives_no_dimensions_and_never_raises() -> None:
    for data, mimetype in [
        (png()[:20], "image/png"),
        (JPEG[:12], "image/jpeg"),
        (b"GIF89a", "image/gif"),
    ]:
        assert dimensions(data, mimetype) is None


def test_an_allowed_picture_passes_with_what_the_other_side_is_told() -> None:
    data = png(7, 5)
    checked = inspect(data, LIMITS)
    assert checked == Checked("image/png", len(data), 7, 5)
    assert isinstance(checked, Checked)
    assert checked.filename == "image.png"
    assert checked.info() == {"mimetype": "image/png", "size": len(data), "w": 7, "h": 5}


def test_the_label_does_not_decide_the_type() -> None:
    # A PDF sent as "photo.png" with mimetype image/png is a PDF, and PDFs are not allowed.
    declared = Attachment("mxc://hs/x", "k", "iv", "h", "m.image", "image/png", len(PDF))
    assert precheck(declared, LIMITS) is None  # the declaration looks fine ...
    assert inspect(PDF, LIMITS) is MediaProblem.TYPE  # ... the bytes do not


def test_a_gif_passes_only_when_the_list_allows_it() -> None:
    assert inspect(GIF, LIMITS) is MediaProblem.TYPE
    gif = MediaLimits(types=frozenset({"image/gif"}))
    assert isinstance(inspect(GIF, gif), Checked)


def test_a_pdf_when_allowed_goes_out_as_a_file_with_a_neutral_name() -> None:
    checked = inspect(PDF, MediaLimits(types=frozenset({"application/pdf"})))
    assert isinstance(checked, Checked)
    assert (checked.kind.msgtype, checked.filename) == ("m.file", "file.pdf")
    assert checked.info() == {"mimetype": "application/pdf", "size": len(PDF)}


def test_the_size_limit_counts_bytes() -> None:
    data = png(7, 5)
    assert isinstance(inspect(data, MediaLimits(max_bytes=len(data))), Checked)
    assert inspect(data, MediaLimits(max_bytes=len(data) - 1)) is MediaProblem.TOO_BIG


def test_the_participants_read_the_limit_and_types_in_plain_words() -> None:
    assert LIMITS.limit_mb() == 10
    assert MediaLimits(max_bytes=1536 * 1024).limit_mb() == 1.5
    texts = Texts({}, default_language="nb", bot_name="Alltidhjelp")
    said = Text("media.too_big", {"limit": 1.5})
    assert "(grensen er 1,5 MB)" in texts.render(said, "nb")
    assert "(the limit is 1.5 MB)" in texts.render(said, "en")
    assert "(the limit is 10 MB)" in texts.render(Text("media.too_big", {"limit": 10.0}), "en")
    assert LIMITS.labels() == "JPEG, PNG, WebP"
    assert set(KNOWN) >= LIMITS.types


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({}, None),
        ({"size": 10 * 1024 * 1024}, None),
        ({"size": 10 * 1024 * 1024 + 1}, MediaProblem.TOO_BIG),
        ({"mimetype": "IMAGE/PNG"}, None),
        ({"mimetype": "image/svg+xml"}, MediaProblem.TYPE),
        ({"msgtype": "m.video"}, MediaProblem.TYPE),
        ({"msgtype": "m.file"}, MediaProblem.TYPE),  # no file type is allowed by default
    ],
)
def test_what_a_message_declares_can_only_refuse(
    declared: dict[str, Any], problem: MediaProblem | None
) -> None:
    base: dict[str, Any] = {"msgtype": "m.image", "mimetype": None, "size": None}
    file = Attachment("mxc://hs/x", "k", "iv", "h", **(base | declared))
    assert precheck(file, LIMITS) is problem


# ---- the attachment a message carries ----------------------------------------------------


def encrypted_image(data: bytes) -> dict[str, Any]:
    """An m.image as Element sends one: the file encrypted, its key in the event."""
    _, keys = encrypt_attachment(data)
    return {
        "msgtype": "m.image",
        "body": "IMG_2024_oslo_home.png",
        "filename": "IMG_2024_oslo_home.png",
        "info": {"mimetype": "image/png", "size": len(data), "w": 7, "h": 5, "xyz.geo": "59.9"},
        "file": {"url": "mxc://hs/orig", **keys},
    }


def decrypted_event(body: dict[str, Any]) -> Any:
    event = Event.parse_decrypted_event(
        copy.deepcopy(
            {
                "type": "m.room.message",
                "sender": "@c:hs",
                "event_id": "$ev",
                "origin_server_ts": 1,
                "content": body,
            }
        )
    )
    event.decrypted = True
    return event


def test_an_encrypted_image_becomes_media_with_its_attachment() -> None:
    body = encrypted_image(png(7, 5))
    out = translate(RoomID("!r:hs"), decrypted_event(body), Origin.OTHER, room_encrypted=True)
    assert isinstance(out, Message)
    assert out.kind is Kind.MEDIA
    assert out.media_url == "mxc://hs/orig"
    assert out.attachment == Attachment(
        "mxc://hs/orig",
        body["file"]["key"]["k"],
        body["file"]["iv"],
        body["file"]["hashes"]["sha256"],
        "m.image",
        "image/png",
        body["info"]["size"],
    )


@pytest.mark.parametrize(
    "spoil",
    [
        lambda f: f.pop("key"),
        lambda f: f.update(v="v1"),
        lambda f: f.update(url="https://example.org/x"),
        lambda f: f["key"].update(alg="A128CBC"),
        lambda f: f["key"].update(k=["not", "a", "string"]),
        lambda f: f["key"].update(k="x" * 500),
        lambda f: f.update(iv=None),
        lambda f: f.update(hashes={"sha1": "abc"}),
        lambda f: f.update(hashes="abc"),
    ],
)
def test_a_malformed_encrypted_file_is_no_attachment(spoil: Any) -> None:
    body = encrypted_image(png())
    spoil(body["file"])
    assert attachment(body) is None


@pytest.mark.parametrize("info", [{"size": -1}, {"size": True}, {"size": "12"}, "x", None])
def test_declarations_of_the_wrong_type_are_left_out(info: Any) -> None:
    body = encrypted_image(png())
    body["info"] = info
    file = attachment(body)
    assert file is not None
    assert (file.size, file.mimetype) == (None, None)


def test_the_bots_copy_carries_a_new_key_a_neutral_name_and_nothing_else() -> None:
    data = png(7, 5)
    original = encrypted_image(data)
    checked = inspect(data, LIMITS)
    assert isinstance(checked, Checked)
    sealed, keys = encrypt_attachment(data)
    sent = content(checked, "mxc://hs/copy", keys)
    assert set(sent) == {"msgtype", "body", "info", "file"}
    assert sent["body"] == "image.png"
    assert sent["info"] == {"mimetype": "image/png", "size": len(data), "w": 7, "h": 5}
    assert sent["file"]["key"]["k"] != original["file"]["key"]["k"]
    # Read back as any receiver would, it is the same picture.
    file = attachment(sent)
    assert file is not None
    clear = decrypt_attachment(sealed, file.key, file.sha256, file.iv)
    assert png_pixels(clear) == png_pixels(data)
