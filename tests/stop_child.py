"""A simulated kiosk process for the stop tests: run until SIGTERM, a part hung if asked.

Usage: python -m tests.stop_child DIR HANG DEADLINE_S, HANG one of:

- ``none``: nothing hangs; one person is granted, then it waits for SIGTERM;
- ``thermometer``: the gate is held open (emergency open) and the thermometer's read never
  returns, so the decision loop hangs measuring the first person.

Every change of the relay output is appended to DIR/relay as ``1`` (energised) or ``0``
(os.write on an O_APPEND file, as it happens); DIR/granted appears after the grant and
DIR/hung when the thermometer read has started hanging.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from kiosk.run.engine import DecisionRecord
from kiosk.run.logs import setup_logging
from kiosk.run.runtime import open_kiosk
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.mlx90614 import Reading
from kiosk.sensors.simulation import Person, Scene
from tests.support import make_config

FEEDBACK_PIN = 6


class HangingThermometer:
    """A thermometer whose read never returns (a wedged bus)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def read(self) -> Reading:
        (self._directory / "hung").touch()
        threading.Event().wait()
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Nothing to release."""


def main(directory: Path, hang: str, deadline_s: float) -> None:
    """Run until SIGTERM (or until the stop deadline ends the process)."""
    setup_logging("test-1")
    config = make_config(directory, gate={"pulse_ms": 50})
    factory = MockFactory()
    factory.pin(
        config.gate.relay_pin, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK_PIN)
    )
    feedback = DigitalInputDevice(
        FEEDBACK_PIN, pull_up=None, active_state=config.gate.relay_active_high, pin_factory=factory
    )
    relay = os.open(directory / "relay", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    feedback.when_activated = lambda: os.write(relay, b"1\n")
    feedback.when_deactivated = lambda: os.write(relay, b"0\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scene = Scene()
    with open_kiosk(config, simulate=True, scene=scene, pin_factory=factory) as kiosk:
        if hang == "thermometer":
            kiosk.hardware.thermometer = HangingThermometer(directory)
            kiosk.gate.emergency_open(True)

        def granted(record: DecisionRecord) -> None:
            if record.decision.opens_gate:
                (directory / "granted").touch()

        kiosk.add_observer(granted)
        scene.step_up(Person("staff", b"S-0001", sim.person(36.6), "grant"))
        kiosk.run(stop, stop_deadline_s=deadline_s)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
