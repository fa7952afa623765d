"""Generated camera frames: QR codes, an entrance's textured scene, a person holding a code up,
sensor noise, and distortions.

Used by the simulated camera, the tests and the benchmarks. Sizes are ``(width, height)`` like
camera resolutions; frames are ``height x width`` uint8 grayscale arrays. Rendering needs only
numpy and segno; the distortions import OpenCV when called.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]

QUIET_ZONE_MODULES = 4
DARK = 0
LIGHT = 255


def render_qr_frame(
    payload: bytes,
    *,
    size: tuple[int, int] = (640, 480),
    module_px: int = 6,
    background: int = 200,
    center: tuple[int, int] | None = None,
) -> Frame:
    """Render ``payload`` as a QR code (error correction M, 4-module quiet zone) in a grey frame.

    :param payload: bytes to encode (byte mode, no character-set conversion).
    :param size: frame ``(width, height)`` in pixels.
    :param module_px: side of one QR module in pixels.
    :param background: grey level of the frame around the code.
    :param center: ``(x, y)`` pixel position of the code's centre; the frame centre by default.
    :raises ValueError: if the code does not fit inside the frame at that position.
    """
    width, height = size
    frame = np.full((height, width), background, dtype=np.uint8)
    at = center if center is not None else (width // 2, height // 2)
    return paste(frame, qr_symbol(payload, module_px), at)


def qr_symbol(payload: bytes, module_px: int) -> Frame:
    """``payload`` as a square QR code (error correction M, 4-module quiet zone), black on white.

    :param module_px: side of one QR module in pixels.
    """
    import segno

    if module_px < 1:
        raise ValueError(f"module_px must be at least 1, got {module_px}")
    code = segno.make(payload, error="m", micro=False, boost_error=False)
    modules = np.pad(np.asarray(code.matrix, dtype=np.uint8), QUIET_ZONE_MODULES)
    symbol = np.where(modules == 1, DARK, LIGHT).astype(np.uint8)
    return symbol.repeat(module_px, axis=0).repeat(module_px, axis=1)


def qr_modules(payload: bytes) -> int:
    """Side of ``payload``'s QR code in modules, quiet zone included."""
    import segno

    code = segno.make(payload, error="m", micro=False, boost_error=False)
    return int(code.symbol_size(border=QUIET_ZONE_MODULES)[0])


def paste(frame: Frame, patch: Frame, center: tuple[int, int]) -> Frame:
    """A copy of ``frame`` with ``patch`` centred at ``(x, y)``; ValueError if it does not fit."""
    height, width = frame.shape
    patch_height, patch_width = patch.shape
    left, top = center[0] - patch_width // 2, center[1] - patch_height // 2
    if left < 0 or top < 0 or left + patch_width > width or top + patch_height > height:
        raise ValueError(
            f"a {patch_width}x{patch_height} px code centred at {center} "
            f"does not fit in a {width}x{height} frame"
        )
    result = frame.copy()
    result[top : top + patch_height, left : left + patch_width] = patch
    return result


def person_holding_code(background: Frame, payload: bytes, *, module_px: int) -> Frame:
    """``background`` with a person in front of the camera holding up a phone that shows the code.

    Head and shoulders fill the lower middle of the frame; the phone (a dark bezel around a
    white screen) is held in front of the chest, a little off centre, with its code at
    ``module_px`` pixels per module.
    """
    height, width = background.shape
    ys, xs = np.ogrid[0:height, 0:width]
    frame = background.copy()
    shoulders = ((xs - width / 2) / (0.42 * width)) ** 2 + ((ys - height) / (0.55 * height)) ** 2
    frame[shoulders <= 1] = 55  # dark clothes
    head = ((xs - width / 2) / (0.13 * width)) ** 2 + ((ys - 0.3 * height) / (0.2 * height)) ** 2
    frame[head <= 1] = 165  # a face
    symbol = qr_symbol(payload, module_px)
    bezel = 3 * module_px
    phone = np.full((symbol.shape[0] + 4 * bezel, symbol.shape[1] + 2 * bezel), 25, np.uint8)
    phone[2 * bezel : -2 * bezel, bezel:-bezel] = symbol
    center_x = width // 2 + min(width // 10, (width - phone.shape[1]) // 2)
    return paste(frame, phone, (center_x, max(height // 2, phone.shape[0] // 2)))


def sensor_noise(size: tuple[int, int], sigma: float, seed: int) -> npt.NDArray[np.int16]:
    """Gaussian sensor noise of ``sigma`` grey levels for a frame of ``size``, to :func:`noisy`."""
    width, height = size
    rng = np.random.default_rng(seed)
    return np.rint(rng.normal(0, sigma, (height, width))).astype(np.int16)


def noisy(frame: Frame, noise: npt.NDArray[np.int16]) -> Frame:
    """``frame`` with ``noise`` (from :func:`sensor_noise`) added, clipped to 0..255."""
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def blank_frame(size: tuple[int, int] = (640, 480), *, seed: int | None = None) -> Frame:
    """A frame with no code: flat grey, or, with ``seed``, a random textured scene with noise.

    The textured scene has a brightness gradient, random rectangles, stripes and sensor noise,
    which is what a decoder sees when nobody holds a badge up.
    """
    width, height = size
    if seed is None:
        return np.full((height, width), 128, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    gradient = (xs * math.cos(angle) + ys * math.sin(angle)) / max(width, height)
    scene = 90 + 80 * gradient
    for _ in range(int(rng.integers(3, 12))):
        x0, x1 = np.sort(rng.integers(0, width, 2))
        y0, y1 = np.sort(rng.integers(0, height, 2))
        scene[y0:y1, x0:x1] = rng.uniform(0, 255)
    stripe_period = rng.uniform(4, 40)
    stripe_angle = rng.uniform(0, math.pi)
    phase = (xs * math.cos(stripe_angle) + ys * math.sin(stripe_angle)) / stripe_period
    scene += rng.uniform(0, 60) * np.sign(np.sin(2 * math.pi * phase))
    scene += rng.normal(0, rng.uniform(2, 15), scene.shape)
    return _to_uint8(scene)


def rotate(frame: Frame, degrees: float) -> Frame:
    """Rotate the frame content by ``degrees`` (counter-clockwise) about its centre, same size."""
    import cv2

    height, width = frame.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return _as_frame(
        cv2.warpAffine(
            frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    )


def tilt(frame: Frame, degrees: float) -> Frame:
    """Show the frame as if its plane were turned ``degrees`` about the vertical axis (perspective).

    The camera is modelled as a pinhole with a focal length equal to the frame width, so one side
    of the code shrinks and the other grows, as a badge held at an angle looks.
    """
    import cv2

    height, width = frame.shape
    focal = float(width)
    center_x, center_y = width / 2, height / 2
    sin_t, cos_t = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))

    def project(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - center_x, y - center_y
        depth = focal + dx * sin_t
        return center_x + focal * dx * cos_t / depth, center_y + focal * dy / depth

    corners = [(0.0, 0.0), (width - 1.0, 0.0), (width - 1.0, height - 1.0), (0.0, height - 1.0)]
    source = np.array(corners, dtype=np.float32)
    target = np.array([project(x, y) for x, y in corners], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(source, target)
    return _as_frame(
        cv2.warpPerspective(
            frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    )


def blur(frame: Frame, ksize: int) -> Frame:
    """Gaussian blur with an odd ``ksize`` x ``ksize`` kernel (out of focus, motion-free)."""
    import cv2

    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"ksize must be a positive odd number, got {ksize}")
    return _as_frame(cv2.GaussianBlur(frame, (ksize, ksize), 0))


def add_noise(frame: Frame, sigma: float, seed: int | None = None) -> Frame:
    """Add Gaussian sensor noise with standard deviation ``sigma`` grey levels."""
    rng = np.random.default_rng(seed)
    return _to_uint8(frame.astype(np.float32) + rng.normal(0, sigma, frame.shape))


def scale_brightness(frame: Frame, factor: float) -> Frame:
    """Multiply every pixel by ``factor`` (below 1: under-exposed, above 1: saturating)."""
    return _to_uint8(frame.astype(np.float32) * factor)


def reduce_contrast(frame: Frame, factor: float) -> Frame:
    """Pull every pixel towards mid-grey: ``factor`` 1 keeps the frame, 0 makes it flat grey.

    Models a washed-out code (glare, faded print, a phone screen at low brightness).
    """
    return _to_uint8(128 + (frame.astype(np.float32) - 128) * factor)


def _to_uint8(values: npt.NDArray[Any]) -> Frame:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _as_frame(values: Any) -> Frame:
    return np.asarray(values, dtype=np.uint8)
