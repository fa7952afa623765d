"""An image's size from its header (kiosk.sensors.imagesize) and decode_image_file's pixel bound,
on files OpenCV itself encodes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.sensors.imagesize import TOO_MANY_PIXELS, image_size
from kiosk.sensors.qr import decode_image_file, make_decoder


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds one row of them."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)


@pytest.mark.parametrize("extension", [".png", ".jpg", ".webp", ".bmp"])
def test_the_size_is_read_from_the_header_of_each_format(extension: str) -> None:
    ok, encoded = cv2.imencode(extension, np.zeros((37, 53), dtype=np.uint8))
    assert ok
    assert image_size(encoded.tobytes()) == (53, 37)


def test_an_unknown_or_cut_header_has_no_size() -> None:
    assert image_size(b"not an image") is None
    assert image_size(b"\xff\xd8\xff\xe0\x00") is None
    assert image_size(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00") is None


def test_an_image_over_the_bound_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(25_000, 25_000))
    decoder = make_decoder("zxing-cpp")
    result = decode_image_file(bomb, decoder, max_pixels=20_000_000)
    assert result["codes"] == [] and TOO_MANY_PIXELS in result["error"]
    assert "25000x25000" in result["error"]
    small = tmp_path / "small.png"
    small.write_bytes(cv2.imencode(".png", np.full((40, 40), 255, dtype=np.uint8))[1].tobytes())
    assert decode_image_file(small, decoder, max_pixels=1600)["error"] is None
    assert TOO_MANY_PIXELS in decode_image_file(small, decoder, max_pixels=1599)["error"]


def test_a_format_without_a_known_size_is_refused_under_a_bound(tmp_path: Path) -> None:
    image = tmp_path / "a.tiff"
    image.write_bytes(cv2.imencode(".tiff", np.zeros((8, 8), dtype=np.uint8))[1].tobytes())
    decoder = make_decoder("zxing-cpp")
    assert decode_image_file(image, decoder)["error"] is None
    assert "not a PNG, JPEG" in decode_image_file(image, decoder, max_pixels=10**6)["error"]
