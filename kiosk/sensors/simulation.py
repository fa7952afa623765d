"""Simulated people at the entrance: what the camera sees and the thermometer feels.

A :class:`Scene` is the stand-in for the physical world in front of the kiosk.
The simulated frame source asks it which code is held up; the simulated
MLX90614 gets the current person's temperature profile. The demo and the
benchmarks step people up one after another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.sensors import simulated_mlx90614 as sim

Profile = Callable[[float], sim.SensorState]


@dataclass(frozen=True)
class Person:
    """Someone in the queue: a label for the demo's output, the code they show, their body."""

    label: str
    payload: bytes | None
    profile: Profile
    expect: str  # the outcome the script expects, e.g. "grant"


class Scene:
    """The world in front of the kiosk; thread-safe."""

    def __init__(self, ambient_c: float = 24.0) -> None:
        self._lock = threading.Lock()
        self._payload: bytes | None = None
        self._ambient_c = ambient_c
        self.sensor: sim.SimulatedMLX90614 | None = None

    def attach(self, sensor: sim.SimulatedMLX90614) -> None:
        """Give the scene the simulated thermometer whose profile it drives."""
        self.sensor = sensor
        sensor.set_profile(sim.nobody(self._ambient_c))

    def payload(self) -> bytes | None:
        """The code currently held up to the camera, or None."""
        with self._lock:
            return self._payload

    def step_up(self, person: Person) -> None:
        """A person steps up: shows their code and stands in front of the sensor."""
        if self.sensor is not None:
            self.sensor.set_profile(person.profile)
        with self._lock:
            self._payload = person.payload

    def leave(self) -> None:
        """The person walks on; nobody is in front of the kiosk."""
        with self._lock:
            self._payload = None
        if self.sensor is not None:
            self.sensor.set_profile(sim.nobody(self._ambient_c))


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
