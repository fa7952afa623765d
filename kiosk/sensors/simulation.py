"""Simulated people at the entrance: what the camera sees and the thermometer feels.

A :class:`Scene` is the stand-in for the physical world in front of the kiosk. The simulated
camera (:class:`SceneCamera`) shows the code or the image it holds up, and otherwise the frames
of a recorded source (an image folder or a video file) or an empty entrance; the simulated
MLX90614 gets the current person's temperature profile, or fails while the scene says so. The
demo and the benchmarks step people up one after another; ``kiosk sim`` does it by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.frames import Frame, FrameSource, GeneratedFrameSource, open_frame_source

Profile = Callable[[float], sim.SensorState]
MAX_IMAGE_BYTES = 16 * 2**20  # an image file held up to the simulated camera


@dataclass(frozen=True)
class Person:
    """Someone in the queue: a label for the demo's output, the code they show, their body."""

    label: str
    payload: bytes | None
    profile: Profile
    expect: str  # the outcome the script expects, e.g. "grant"
    image: Frame | None = None  # shown to the camera instead of a rendered code


class Scene:
    """The world in front of the kiosk; thread-safe."""

    def __init__(self, ambient_c: float = 24.0) -> None:
        self._lock = threading.Lock()
        self._person: Person | None = None
        self._thermometer_failed = False
        self.ambient_c = ambient_c
        self.sensor: sim.SimulatedMLX90614 | None = None

    def attach(self, sensor: sim.SimulatedMLX90614) -> None:
        """Give the scene the simulated thermometer whose profile it drives."""
        self.sensor = sensor
        self._update_sensor()

    def payload(self) -> bytes | None:
        """The code currently held up to the camera, or None."""
        with self._lock:
            return None if self._person is None else self._person.payload

    def image(self) -> Frame | None:
        """The image currently held up to the camera, or None."""
        with self._lock:
            return None if self._person is None else self._person.image

    @property
    def person(self) -> Person | None:
        """Who stands in front of the kiosk, or None."""
        with self._lock:
            return self._person

    @property
    def thermometer_failed(self) -> bool:
        """Whether the simulated thermometer fails every read (:meth:`fail_thermometer`)."""
        with self._lock:
            return self._thermometer_failed

    def step_up(self, person: Person) -> None:
        """A person steps up: shows their code and stands in front of the sensor."""
        with self._lock:
            self._person = person
        self._update_sensor()

    def leave(self) -> None:
        """The person walks on; nobody is in front of the kiosk."""
        with self._lock:
            self._person = None
        self._update_sensor()

    def fail_thermometer(self, failed: bool) -> None:
        """Make every read of the thermometer fail (a dead sensor), or work again."""
        with self._lock:
            self._thermometer_failed = failed
        self._update_sensor()

    def _update_sensor(self) -> None:
        with self._lock:
            if self._thermometer_failed:
                profile = sim.dead()
            elif self._person is None:
                profile = sim.nobody(self.ambient_c)
            else:
                profile = self._person.profile
        if self.sensor is not None:
            self.sensor.set_profile(profile)


class SceneCamera:
    """The simulated camera: the scene's code or image while one is held up, else the frames
    of ``recorded`` (an image folder or a video file), else an empty entrance.

    Frames come at the rate of ``generated`` (the generated camera, which counts them),
    whichever shows them.
    """

    def __init__(self, scene: Scene, recorded: FrameSource | None = None) -> None:
        self._scene = scene
        self._recorded = recorded
        self._code: bytes | None = None
        self.generated = GeneratedFrameSource(self._shown_code)
        self.name = "generated" if recorded is None else f"generated+{recorded.name}"

    def _shown_code(self) -> bytes | None:
        self._code = self._scene.payload()
        return self._code

    def start(self) -> None:
        """Start the generated frames and open the recorded source (CameraError if it cannot)."""
        self.generated.start()
        if self._recorded is not None:
            self._recorded.start()

    def read(self) -> Frame | None:
        """The next frame: the image held up, the code held up, or the recorded source's."""
        image = self._scene.image()
        frame = self.generated.read()
        if image is not None:
            return image
        if self._code is None and self._recorded is not None:
            return self._recorded.read()
        return frame

    def close(self) -> None:
        """Stop the generated frames and release the recorded source."""
        self.generated.close()
        if self._recorded is not None:
            self._recorded.close()


def recorded_source(spec: str) -> FrameSource | None:
    """The source a simulated kiosk reads besides its scene: ``spec``'s image folder or video
    file; None for a camera (picamera2, ``opencv:<index>``, ``opencv:/dev/…``), which a
    simulated kiosk never opens."""
    kind, _, argument = spec.partition(":")
    if kind == "folder" or (
        kind == "opencv" and not argument.isdigit() and not argument.startswith("/dev/")
    ):
        return open_frame_source(spec)
    return None


def read_image(path: Path) -> Frame:
    """``path`` as a grayscale frame to hold up to the simulated camera; ValueError if the
    file is larger than ``MAX_IMAGE_BYTES`` or cannot be read as an image."""
    import cv2
    import numpy as np

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    if size > MAX_IMAGE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_IMAGE_BYTES // 2**20} MiB")
    read = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if read is None:
        raise ValueError(f"{path}: not an image the kiosk can read")
    frame: Frame = np.asarray(read, dtype=np.uint8)
    frame.setflags(write=False)
    return frame


DEMO_ALLOWLIST = """\
# id,kind,valid_until
S-0001,staff,
S-0002,staff,
S-0003,staff,2021-06-30
S-0004,staff,
S-0005,staff,
S-0006,staff,
V-7F3A,visitor,2099-12-31T18:00:00
V-1234,visitor,2099-12-31T18:00:00
"""


def demo_queue() -> list[Person]:
    """The demo's scripted queue: one of each situation the kiosk must handle."""
    return [
        Person("staff S-0001", b"S-0001", sim.person(36.6), "grant"),
        Person("staff S-0002, noisy reading", b"S-0002", sim.noisy_then_settles(36.8), "grant"),
        Person("visitor V-7F3A, fever", b"V-7F3A", sim.person(38.4), "deny"),
        Person("unknown code", b"X-9999", sim.person(36.5), "deny"),
        Person("staff S-0003, expired pass", b"S-0003", sim.person(36.7), "deny"),
        Person("a web link, not a badge", b"https://example.com/?q=1", sim.person(36.6), "deny"),
        Person(
            "staff S-0004, hot forehead once", b"S-0004", sim.fever_not_confirmed(36.9), "grant"
        ),
        Person("staff S-0005, broken thermometer", b"S-0005", sim.dead(), "refer"),
        Person("visitor V-1234, stays away from the sensor", b"V-1234", sim.nobody(), "deny"),
        Person("staff S-0006", b"S-0006", sim.person(36.4), "grant"),
    ]
