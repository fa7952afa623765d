"""A simulated kiosk handling an endless stream of people; the crash test kills it with -9.

Usage: python -m tests.crash_child DIR. Each time the relay energises, the seq of
the newest decision event visible in the log at that instant is appended to
DIR/pulses (os.write on an O_APPEND file survives kill -9).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from pathlib import Path

from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from kiosk.run.engine import DecisionRecord
from kiosk.run.runtime import open_kiosk
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person, Scene
from kiosk.store.eventlog import read_events
from tests.support import make_config, wait_until

PEOPLE = 100_000


def main(directory: Path) -> None:
    """Run until killed."""
    allowlist = directory / "people.csv"
    allowlist.write_text("".join(f"P-{n:06d},staff,\n" for n in range(PEOPLE)), encoding="utf-8")
    config = make_config(
        directory,
        thermometer={"enabled": False},
        gate={"pulse_ms": 50},
        credentials={"allowlist": str(allowlist)},
    )
    factory = MockFactory()
    relay = config.gate.relay_pin
    factory.pin(relay, pin_class=MockConnectedPin, input_pin=factory.pin(6))
    feedback = DigitalInputDevice(6, pull_up=None, active_state=False, pin_factory=factory)
    pulses = os.open(directory / "pulses", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def on_energised() -> None:
        newest = read_events(config.log_path, 1, type="decision")
        os.write(pulses, f"{newest[0].seq if newest else 0}\n".encode())

    feedback.when_activated = on_energised
    scene = Scene()
    decisions: queue.Queue[DecisionRecord] = queue.Queue()
    with open_kiosk(config, simulate=True, scene=scene, pin_factory=factory) as kiosk:
        kiosk.add_observer(decisions.put)
        stop = threading.Event()
        threading.Thread(target=kiosk.run, args=(stop,), daemon=True).start()
        start = int.from_bytes(os.urandom(2), "big")
        for n in range(PEOPLE):
            code = f"P-{(start + n) % PEOPLE:06d}".encode()
            scene.step_up(Person("staff", code, sim.nobody(), "grant"))
            decisions.get(timeout=10)
            wait_until(lambda: not kiosk.gate.state().relay_energised)  # they walk through


if __name__ == "__main__":
    main(Path(sys.argv[1]))
