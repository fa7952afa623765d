"""An image's width and height read from its header, without decoding its pixels.

A photo from an unknown sender is sized here before OpenCV decodes it: a small compressed file
can declare a picture of billions of pixels (a decompression bomb). PNG, JPEG, WebP, GIF and BMP
are understood; anything else has no known size.
"""

from __future__ import annotations

import struct

#: In :func:`size_refusal`'s answer for an image over its ``max_pixels``.
TOO_MANY_PIXELS = "more pixels than allowed"
#: JPEG start-of-frame markers (C4, C8 and CC are other segments).
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of an image file's bytes, or None when the format is
    not one of PNG, JPEG, WebP, GIF and BMP or the header is cut short."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
        if data.startswith(b"BM"):
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
    except struct.error:
        return None
    return None


def size_refusal(data: bytes, max_pixels: int) -> str | None:
    """Why an image of these bytes is not to be decoded under ``max_pixels``, or None."""
    size = image_size(data)
    if size is None:
        return "not a PNG, JPEG, WebP, GIF or BMP image"
    width, height = size
    if width * height > max_pixels:
        return f"{width}x{height} pixels: {TOO_MANY_PIXELS} ({max_pixels})"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None
