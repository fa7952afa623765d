"""``kiosk doctor``'s frame-loop check: does this machine read and decode the camera's frames as
fast as the camera makes them?

A short measurement: the configured camera (or the simulated one) is read and every frame is
decoded with the configured decoder, as the kiosk's frame loop does, for ``FRAME_LOOP_FRAMES``
frames or ``FRAME_LOOP_S`` seconds. Falling behind the camera's rate means frames are dropped:
a code shown briefly may be missed and every scan waits longer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kiosk.cli.doctor_check import Check, ok
from kiosk.config import KioskConfig
from kiosk.sensors.frames import (
    CameraError,
    FrameSource,
    GeneratedFrameSource,
    camera_rate,
    open_frame_source,
)
from kiosk.sensors.qr import DecoderUnavailableError, QRDecoder, make_decoder

FRAME_LOOP_FRAMES = 20
FRAME_LOOP_S = 2.0
KEEPS_UP = 0.9  # frames read and decoded per second, as a share of the camera's rate
DECODE_SHARE = 0.5  # a decode taking more of the frame time than this leaves no headroom
NAME = "frame loop"


def check_frame_loop(
    config: KioskConfig,
    simulate: bool,
    source: FrameSource | None = None,
    decoder: QRDecoder | None = None,
    *,
    frames: int = FRAME_LOOP_FRAMES,
    seconds: float = FRAME_LOOP_S,
    clock: Callable[[], float] = time.monotonic,
) -> Check:
    """Read and decode ``frames`` frames (at most ``seconds``); warn if that falls behind."""
    try:
        if source is None:
            source = (
                GeneratedFrameSource(lambda: None)
                if simulate
                else open_frame_source(config.camera.source)
            )
        decoder = decoder or make_decoder(config.camera.decoder)
        source.start()
    except (CameraError, DecoderUnavailableError, ValueError) as exc:
        return Check(NAME, "warn", f"not measured: {exc}", _CAMERA_FIX)
    try:
        rate = camera_rate(source)
        if rate is None:
            return ok(NAME, f"{source.name} has no frame rate of its own: nothing to keep up with")
        read, decoding, elapsed = _measure(source, decoder, frames, seconds, clock)
    finally:
        source.close()
    if read < 2:
        return Check(NAME, "warn", f"{source.name}: too few frames to measure", _CAMERA_FIX)
    per_second = (read - 1) / elapsed
    decode_ms = 1000 * decoding / read
    detail = (
        f"{per_second:.1f} of the camera's {rate:g} frames per second read and decoded "
        f"({decoder.name}: {decode_ms:.1f} ms a frame)"
    )
    if per_second < KEEPS_UP * rate:
        return Check(NAME, "warn", f"falls behind: {detail}", _FIX)
    if decode_ms / 1000 > DECODE_SHARE / rate:
        return Check(NAME, "warn", f"no headroom: {detail}", _FIX)
    return ok(NAME, detail)


_CAMERA_FIX = "see the camera check above"
_FIX = (
    "use the zxing-cpp decoder (camera.decoder), a lower camera frame rate, or a faster "
    "machine; bench/pibudget.py measures the whole kiosk"
)


def _measure(
    source: FrameSource,
    decoder: QRDecoder,
    frames: int,
    seconds: float,
    clock: Callable[[], float],
) -> tuple[int, float, float]:
    """Frames read and decoded, seconds spent decoding them, seconds from the first frame read
    to the last. Two frames are read and decoded before, untimed: a camera's first frames and
    a decoder's first call are slow, and the second lines the reads up with the camera's."""
    started = clock()
    for _ in range(2):
        warm_up = source.read()
        if warm_up is not None:
            decoder.decode(warm_up)
    read, decoding, first, last = 0, 0.0, 0.0, 0.0
    while read < frames and clock() - started < seconds:
        frame = source.read()
        if frame is None:  # the end of a file, or a camera with nothing to give
            break
        last = clock()
        if read == 0:
            first = last
        decoder.decode(frame)
        decoding += clock() - last
        read += 1
    return read, decoding, last - first
