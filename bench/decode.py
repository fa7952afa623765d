"""Benchmark the QR decoders on generated camera frames.

Measures, for every available backend in one run:

* decode time per frame (median and p95, ms) at 640x480 and 1280x720, with and without a code;
* read rate per condition (plain, rotated, tilted, blurred, noisy, low-contrast), 30 frames each;
* false reads on frames without a code.

Prints a table, then as the last line one JSON object with every figure and the machine.
Run: ``.venv/bin/python bench/decode.py [--frames N]``.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import statistics
import string
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from benchlib import machine_info

from kiosk.sensors.qr import DECODER_NAMES, DecoderUnavailableError, QRDecoder, make_decoder
from kiosk.sensors.synthetic import (
    Frame,
    add_noise,
    blank_frame,
    blur,
    reduce_contrast,
    render_qr_frame,
    rotate,
    tilt,
)

RESOLUTIONS = ((640, 480), (1280, 720))
READ_RATE_SIZE = (640, 480)
FRAMES_PER_CONDITION = 30
FALSE_READ_FRAMES = 100
UNIQUE_TIMING_FRAMES = 20
TOKEN_ALPHABET = (string.ascii_letters + string.digits + "-_:=").encode()

GOALS_MS = {
    "640x480 code p95": 5.0,
    "640x480 empty median": 1.5,
    "1280x720 code p95": 15.0,
}
GOAL_READS = ("plain", "rotated", "tilted")

Distortion = Callable[[Frame, np.random.Generator], Frame]

CONDITIONS: dict[str, Distortion] = {
    "plain": lambda frame, rng: frame,
    "rotated": lambda frame, rng: rotate(frame, rng.uniform(0, 360)),
    "tilted": lambda frame, rng: tilt(frame, rng.choice([-1, 1]) * rng.uniform(25, 50)),
    "blurred": lambda frame, rng: blur(frame, int(rng.choice([7, 9, 11]))),
    "noisy": lambda frame, rng: add_noise(
        frame, rng.uniform(25, 40), seed=int(rng.integers(10**9))
    ),
    "low-contrast": lambda frame, rng: reduce_contrast(frame, rng.uniform(0.08, 0.15)),
}


def badge_payload(rng: np.random.Generator) -> bytes:
    """A random ASCII token of 40-120 bytes, the size of a signed badge."""
    length = int(rng.integers(40, 121))
    return bytes(rng.choice(list(TOKEN_ALPHABET), size=length).astype(np.uint8))


def camera_softness(frame: Frame, rng: np.random.Generator) -> Frame:
    """What every real frame has: slight optical blur and sensor noise."""
    return add_noise(blur(frame, 3), 3, seed=int(rng.integers(10**9)))


def code_frame(
    rng: np.random.Generator, size: tuple[int, int], distortion: Distortion
) -> tuple[bytes, Frame]:
    """A badge at a random distance (module size) near the middle of the frame, distorted."""
    payload = badge_payload(rng)
    width, height = size
    module_px = int(rng.integers(3, 7)) * max(1, height // 480)
    center = (width // 2 + int(rng.integers(-40, 41)), height // 2 + int(rng.integers(-30, 31)))
    frame = render_qr_frame(payload, size=size, module_px=module_px, center=center)
    return payload, camera_softness(distortion(frame, rng), rng)


def empty_frame(rng: np.random.Generator, size: tuple[int, int]) -> Frame:
    return camera_softness(blank_frame(size, seed=int(rng.integers(10**9))), rng)


def time_decodes(decoder: QRDecoder, frames: list[Frame], count: int) -> dict[str, float]:
    """Median and p95 of ``count`` decodes cycling through ``frames``, in milliseconds."""
    for frame in frames[:3]:
        decoder.decode(frame)
    durations = []
    for index in range(count):
        frame = frames[index % len(frames)]
        started = time.perf_counter()
        decoder.decode(frame)
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {
        "median_ms": round(statistics.median(durations), 3),
        "p95_ms": round(durations[min(len(durations) - 1, int(0.95 * len(durations)))], 3),
    }


def machine_and_libraries() -> dict[str, Any]:
    libraries = {
        name: package_version(name)
        for name in ("zxing-cpp", "pyzbar", "opencv-python-headless", "numpy", "segno")
    }
    return machine_info() | {"libraries": libraries | {"libzbar": libzbar_version()}}


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def libzbar_version() -> str | None:
    try:
        from pyzbar import wrapper
    except ImportError:
        return None
    major, minor = ctypes.c_uint(), ctypes.c_uint()
    wrapper.zbar_version(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def available_decoders() -> dict[str, QRDecoder]:
    decoders = {}
    for name in DECODER_NAMES:
        try:
            decoders[name] = make_decoder(name)
        except DecoderUnavailableError as error:
            print(f"skipping {name}: {error}")
    return decoders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="decodes timed per figure")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the generated frames")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    decoders = available_decoders()
    if not decoders:
        print("no QR decoder available")
        return 1

    timing_sets: dict[str, list[Frame]] = {}
    for width, height in RESOLUTIONS:
        size = (width, height)
        timing_sets[f"{width}x{height} code"] = [
            code_frame(rng, size, CONDITIONS["plain"])[1] for _ in range(UNIQUE_TIMING_FRAMES)
        ]
        timing_sets[f"{width}x{height} empty"] = [
            empty_frame(rng, size) for _ in range(UNIQUE_TIMING_FRAMES)
        ]
    condition_sets = {
        condition: [
            code_frame(rng, READ_RATE_SIZE, distortion) for _ in range(FRAMES_PER_CONDITION)
        ]
        for condition, distortion in CONDITIONS.items()
    }
    no_code_frames = [empty_frame(rng, READ_RATE_SIZE) for _ in range(FALSE_READ_FRAMES)]

    results: dict[str, Any] = {}
    for name, decoder in decoders.items():
        timing = {
            label: time_decodes(decoder, frames, args.frames)
            for label, frames in timing_sets.items()
        }
        reads = {
            condition: sum(decoder.decode(frame) == [payload] for payload, frame in frames)
            for condition, frames in condition_sets.items()
        }
        wrong_reads = sum(
            any(decoded != payload for decoded in decoder.decode(frame))
            for frames in condition_sets.values()
            for payload, frame in frames
        )
        false_reads = sum(bool(decoder.decode(frame)) for frame in no_code_frames)
        results[name] = {
            "timing": timing,
            "reads": reads,
            "wrong_payloads": wrong_reads,
            "false_reads": false_reads,
        }

    recommended = recommend(results)
    print_table(results, args.frames)
    goals = check_goals(results[recommended])
    print(f"\nrecommended default backend: {recommended}")
    for goal, met in goals.items():
        print(f"  goal {goal}: {'met' if met else 'MISSED'}")
    print(
        json.dumps(
            {
                "frames_timed": args.frames,
                "frames_per_condition": FRAMES_PER_CONDITION,
                "no_code_frames": FALSE_READ_FRAMES,
                "seed": args.seed,
                "results": results,
                "recommended": recommended,
                "goals": goals,
                "machine": machine_and_libraries(),
            },
            sort_keys=True,
        )
    )
    return 0


def recommend(results: dict[str, Any]) -> str:
    """The backend with the most reads and no false reads, then the fastest 640x480 p95."""

    def rank(name: str) -> tuple[int, int, float]:
        figures = results[name]
        return (
            figures["false_reads"] + figures["wrong_payloads"],
            -sum(figures["reads"].values()),
            figures["timing"]["640x480 code"]["p95_ms"],
        )

    return min(results, key=rank)


def check_goals(figures: dict[str, Any]) -> dict[str, bool]:
    timing = figures["timing"]
    goals = {
        "640x480 code p95 <= 5 ms": timing["640x480 code"]["p95_ms"]
        <= GOALS_MS["640x480 code p95"],
        "640x480 empty median <= 1.5 ms": timing["640x480 empty"]["median_ms"]
        <= GOALS_MS["640x480 empty median"],
        "1280x720 code p95 <= 15 ms": timing["1280x720 code"]["p95_ms"]
        <= GOALS_MS["1280x720 code p95"],
    }
    for condition in GOAL_READS:
        goals[f"{condition} reads >= 29/30"] = figures["reads"][condition] >= 29
    goals["no false read"] = figures["false_reads"] == 0
    return goals


def print_table(results: dict[str, Any], frames_timed: int) -> None:
    names = list(results)
    column = max(18, *(len(name) + 4 for name in names))
    header = f"{'':28}" + "".join(f"{name:>{column}}" for name in names)
    print(f"decode time, ms (median / p95 over {frames_timed} decodes)")
    print(header)
    for label in next(iter(results.values()))["timing"]:
        cells = (
            f"{results[n]['timing'][label]['median_ms']:.2f} / "
            f"{results[n]['timing'][label]['p95_ms']:.2f}"
            for n in names
        )
        print(f"{label:28}" + "".join(f"{cell:>{column}}" for cell in cells))
    print(
        f"\nread rate at {READ_RATE_SIZE[0]}x{READ_RATE_SIZE[1]}, "
        f"{FRAMES_PER_CONDITION} frames per condition"
    )
    print(header)
    for condition in CONDITIONS:
        cells = (f"{results[n]['reads'][condition]}/{FRAMES_PER_CONDITION}" for n in names)
        print(f"{condition:28}" + "".join(f"{cell:>{column}}" for cell in cells))
    wrong = (str(results[n]["wrong_payloads"]) for n in names)
    print(f"{'wrong payloads':28}" + "".join(f"{cell:>{column}}" for cell in wrong))
    false = (f"{results[n]['false_reads']}/{FALSE_READ_FRAMES}" for n in names)
    print(f"{'false reads, no code':28}" + "".join(f"{cell:>{column}}" for cell in false))


if __name__ == "__main__":
    sys.exit(main())
