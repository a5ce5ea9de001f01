"""Tiny encoder for solid-colour RGB PNG images (real, decodable files for app outputs)."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Return the bytes of a `width` x `height` PNG filled with one colour."""
    row = b"\x00" + bytes(rgb) * width
    raw = row * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def parse_color(value: str) -> tuple[int, int, int]:
    """Parse `#rrggbb` into an RGB triple."""
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
