"""Small real images for tests and the demo, made without an imaging library.

`png` writes a valid PNG (8-bit RGB, no filter, one IDAT chunk) of a given size whose
pixels follow a pattern, so that two images of one size differ; `png_pixels` reads back
one written here, so a test can compare pixels, not only bytes.
"""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width: int = 4, height: int = 3, seed: int = 0, *, text: str | None = None) -> bytes:
    """A `width` x `height` RGB PNG; `text`: a tEXt chunk ("Comment") to carry along."""
    rows = b"".join(
        b"\x00"
        + bytes(
            v
            for x in range(width)
            for v in ((x * 40 + seed) % 256, (y * 60 + seed) % 256, (x * y + seed) % 256)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if text is not None:
        chunks.append(_chunk(b"tEXt", b"Comment\x00" + text.encode("latin-1")))
    chunks += [_chunk(b"IDAT", zlib.compress(rows)), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the raw RGB rows of a PNG written by `png`."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    i, width, height, idat = 8, 0, 0, b""
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind, body = data[i + 4 : i + 8], data[i + 8 : i + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        i += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    rows = b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))
    return width, height, rows
