"""The chaos suite's processes: the kiosk child (``chaos.py --kiosk-child``: a real kiosk on
simulated hardware with people passing, its relay pulses and decisions noted in side files)
and the processes the suite kills with -9 and starts again."""

from __future__ import annotations

import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SITE, KIOSK, NEIGHBOUR = "lab", "k1", "k2"
CENTRAL_ID = "central-chaos"
SALT = "chaos-salt-0123456789abcdef"
PEOPLE = 10_000  # badges P-000000 … on the allowlist; X-… badges are on no list
REFUSED_SHARE = 0.2
BROKER_START_S = 30.0  # mosquitto reloading its persistence on a loaded machine


class ChaosError(RuntimeError):
    """The suite could not run a step (a process that never came up); the text says which."""


# --- the kiosk child -------------------------------------------------------------------------


def relay_recorder(config: Any, directory: Path, in_front: list[str]) -> Any:
    """A mock pin factory whose relay output is wired to an input that notes every pulse in
    ``directory/pulses``: the time, who stood in front, the newest logged decision's seq."""
    from benchlib import FEEDBACK_PIN
    from gpiozero import DigitalInputDevice
    from gpiozero.pins.mock import MockConnectedPin, MockFactory

    from kiosk.events import EventType
    from kiosk.store.eventlog import read_events

    factory = MockFactory()
    relay = config.gate.relay_pin
    factory.pin(relay, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK_PIN))
    feedback = DigitalInputDevice(
        FEEDBACK_PIN, pull_up=None, active_state=config.gate.relay_active_high, pin_factory=factory
    )
    pulses = os.open(directory / "pulses", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def on_energised() -> None:
        try:
            newest = read_events(config.log_path, 1, type=EventType.DECISION)
            seq = newest[0].seq if newest else 0
        except Exception:  # the log unreadable: the pulse still counts, against no event
            seq = -1
        os.write(pulses, f"{time.time():.3f} {in_front[0]} {seq}\n".encode())

    feedback.when_activated = on_energised
    factory.feedback = feedback  # kept alive with the factory
    return factory


def kiosk_child(config_path: str, side: str, seed: str) -> None:
    """A kiosk on simulated hardware with people passing until killed (or paused)."""
    from kiosk.config import load_config
    from kiosk.run.engine import DecisionRecord
    from kiosk.run.logs import setup_logging
    from kiosk.run.runtime import open_kiosk
    from kiosk.sensors import simulated_mlx90614 as sim
    from kiosk.sensors.simulation import Person, Scene

    config = load_config(Path(config_path))
    setup_logging(config.kiosk.id)
    directory = Path(side)
    in_front = ["valid"]
    factory = relay_recorder(config, directory, in_front)
    decisions = os.open(directory / "decisions", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    rng = random.Random(seed)
    valid, refused = rng.randrange(PEOPLE), rng.randrange(10**6)
    scene = Scene()
    records: queue.Queue[DecisionRecord] = queue.Queue()
    pause = directory / "pause"
    with open_kiosk(config, simulate=True, scene=scene, pin_factory=factory) as kiosk:
        kiosk.add_observer(records.put)
        stop = threading.Event()
        threading.Thread(target=kiosk.run, args=(stop,), daemon=True).start()
        while True:
            if pause.exists():  # between two people: nobody is in front, the relay is at rest
                (directory / "paused").touch()
                stop.wait(0.05)
                continue
            kind = "refused" if rng.random() < REFUSED_SHARE else "valid"
            code = f"P-{valid % PEOPLE:06d}" if kind == "valid" else f"X-{refused:06d}"
            valid, refused = valid + (kind == "valid"), refused + (kind == "refused")
            in_front[0] = kind
            scene.step_up(Person(kind, code.encode(), sim.nobody(), kind))
            try:
                record = records.get(timeout=30)
            except queue.Empty:
                continue
            seq = record.event.seq if record.event else 0
            line = f"{time.time():.3f} {kind} {record.decision.outcome.value} {seq}\n"
            os.write(decisions, line.encode())
            deadline = time.monotonic() + 10
            while kiosk.gate.state().relay_energised and time.monotonic() < deadline:
                stop.wait(0.005)  # the person walks through


# --- processes -------------------------------------------------------------------------------


class Child:
    """A process that can be killed with -9 and started again; output goes to ``log``."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.command, self.log, self.env = command, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (it must not be running)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, stdout=out, stderr=out, env=self.env
            )

    def alive(self) -> bool:
        """Whether it runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> bool:
        """SIGKILL; True if it was running."""
        if not self.alive():
            return False
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        """The end of its output."""
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""


def lines(path: Path) -> list[list[str]]:
    """The complete lines of an append-only side file, split into fields."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    return [line.split() for line in text[: text.rfind("\n") + 1].splitlines() if line]


class KioskChild(Child):
    """The kiosk process with its side files (pulses, decisions, pause)."""

    def __init__(self, config: Path, side: Path, seed: int, env: dict[str, str]) -> None:
        self.side, self.seed, self.starts = side, seed, 0
        super().__init__([], side / "kiosk.log", env)
        self.config = config

    def start(self) -> None:
        self.starts += 1
        self.command = [sys.executable, str(BENCH / "chaos.py"), "--kiosk-child"]
        self.command += [str(self.config), str(self.side), f"{self.seed}-{self.starts}"]
        super().start()

    def decisions(self) -> list[list[str]]:
        """``[time, kind, outcome, seq]`` per decision, every incarnation."""
        return lines(self.side / "decisions")

    def wait_deciding(self, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait for ``count`` more decisions; False if it exits or the time runs out."""
        target = len(self.decisions()) + count
        deadline = time.monotonic() + timeout
        while len(self.decisions()) < target:
            if not self.alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def ensure_running(self, attempts: int = 3) -> int:
        """Start it until it decides; returns the failed starts. ChaosError after ``attempts``."""
        failures = 0
        while True:
            if not self.alive():
                self.start()
            if self.wait_deciding(timeout=60):
                return failures
            failures += 1
            self.kill()
            if failures >= attempts:
                raise ChaosError(f"the kiosk does not start:\n{self.tail()}")
