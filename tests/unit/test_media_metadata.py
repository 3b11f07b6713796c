"""What a relayed picture says besides its pixels is taken out before the bot's copy is
made: EXIF (where and when a photo was taken, the phone), XMP, comments, text chunks. The
pixels and what a viewer needs to show them (JFIF, the colour profile) stay, byte for
byte."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.media import sniff, without_metadata
from bot.devtools.images import _chunk, png, png_pixels

GPS = b"Exif\x00\x00MM\x00*GPSLatitude 59.9139 N GPSLongitude 10.7522 E"


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(*extra: bytes) -> bytes:
    jfif = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    icc = segment(0xE2, b"ICC_PROFILE\x00\x01\x01profile")
    dqt = segment(0xDB, b"\x00" + bytes(range(64)))
    sof = segment(0xC0, b"\x08\x00\x03\x00\x04\x01\x01\x11\x00")
    sos = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    scan = b"\x12\x34\xff\x00\x56\xff\xd9"
    return b"\xff\xd8" + jfif + b"".join(extra) + icc + dqt + sof + sos + scan


def test_a_jpegs_exif_xmp_iptc_and_comments_go_and_everything_else_stays() -> None:
    clean = jpeg()
    dirty = jpeg(
        segment(0xE1, GPS),
        segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>Ola Nordmann</x:xmpmeta>"),
        segment(0xED, b"Photoshop 3.0\x008BIM IPTC byline"),
        segment(0xFE, b"taken at home"),
    )
    out = without_metadata(dirty, "image/jpeg")
    assert out == clean
    for secret in (b"GPSLatitude", b"Ola Nordmann", b"IPTC", b"taken at home"):
        assert secret not in out


def test_a_pngs_text_exif_and_time_chunks_go_and_the_pixels_stay() -> None:
    picture = png(5, 4, seed=7, text="Ola, Storgata 1")
    ihdr_end = 8 + 25
    dirty = (
        picture[:ihdr_end]
        + _chunk(b"eXIf", GPS[6:])
        + _chunk(b"tIME", b"\x07\xea\x0c\x04\x12\x00\x00")
        + _chunk(b"iTXt", b"Author\x00\x00\x00\x00\x00Ola")
        + picture[ihdr_end:]
    )
    out = without_metadata(dirty, "image/png")
    assert out == png(5, 4, seed=7)
    assert png_pixels(out) == png_pixels(picture)


def webp(*extra: bytes, flags: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0]) + b"\x03\x00\x00\x02\x00\x00"
    image = b"VP8L" + struct.pack("<I", 5) + b"\x2f\x03\x00\x00\x00" + b"\x00"  # padded
    body = vp8x + image + b"".join(extra)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def test_a_webps_exif_and_xmp_chunks_go_and_its_flags_say_so() -> None:
    exif = b"EXIF" + struct.pack("<I", len(GPS)) + GPS
    xmp = b"XMP " + struct.pack("<I", 4) + b"Ola!"
    out = without_metadata(webp(exif, xmp, flags=0x0C), "image/webp")
    assert out == webp(flags=0x00)
    assert sniff(out) == "image/webp"
    (size,) = struct.unpack("<I", out[4:8])
    assert size == len(out) - 8


def test_gif_and_pdf_are_passed_as_they_are() -> None:
    for data, kind in (
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"%PDF-1.7\n", "application/pdf"),
    ):
        assert without_metadata(data, kind) == data


HEADS = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBP",
}


@given(st.binary(max_size=300), st.sampled_from(sorted(HEADS)), st.sampled_from(sorted(HEADS)))
def test_any_bytes_give_bytes_never_longer_and_never_raise(
    data: bytes, head: str, kind: str
) -> None:
    dirty = HEADS[head] + data
    out = without_metadata(dirty, kind)
    assert isinstance(out, bytes)
    assert len(out) <= len(dirty)


@pytest.mark.parametrize("kind", ["image/jpeg", "image/png", "image/webp"])
def test_a_clean_picture_comes_back_unchanged(kind: str) -> None:
    clean = {"image/jpeg": jpeg(), "image/png": png(3, 3), "image/webp": webp(flags=0)}[kind]
    assert without_metadata(clean, kind) == clean
