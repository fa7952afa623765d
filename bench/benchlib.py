"""Shared by the benchmarks: machine description, percentiles, a timed simulated kiosk."""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpiozero import DigitalInputDevice

from kiosk.config import KioskConfig, parse_config
from kiosk.hardware import ShortHistoryConnectedPin, simulated_pin_factory
from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.run.runtime import open_kiosk
from kiosk.sensors.simulation import Person, Scene

FEEDBACK_PIN = 6  # a free pin wired (in the mock) to the relay output


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "processor": platform.processor() or _cpu_model_name(),
        "uname": " ".join(platform.uname()),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def percentiles(values: list[float], digits: int = 3) -> dict[str, float]:
    """Median, p95 and p99 of ``values``."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(statistics.median(values), digits),
        "p95": round(cuts[94], digits),
        "p99": round(cuts[98], digits),
        "max": round(max(values), digits),
    }


class TimedKiosk:
    """A kiosk on simulated hardware whose relay output is wired back to an input pin,
    so the instant the relay energises is recorded by gpiozero itself."""

    def __init__(self, kiosk: Kiosk, scene: Scene, energised: queue.Queue[float]) -> None:
        self.kiosk, self.scene, self.energised = kiosk, scene, energised
        self.decisions: queue.Queue[DecisionRecord] = queue.Queue()
        kiosk.add_observer(self.decisions.put)

    def admit(self, person: Person) -> tuple[DecisionRecord, float]:
        """Step ``person`` up; return the decision and when the relay energised (monotonic)."""
        self.scene.step_up(person)
        record = self.decisions.get(timeout=30)
        energised_at = self.energised.get(timeout=5)
        while self.kiosk.gate.state().relay_energised:  # the person walks through
            time.sleep(0.002)
        self.scene.leave()
        return record, energised_at


def bench_config(directory: Path, **sections: dict[str, Any]) -> KioskConfig:
    """A kiosk config in ``directory`` with every badge P-000000..P-099999 on its allowlist;
    ``sections`` override keys."""
    allowlist = directory / "allowlist.csv"
    allowlist.write_text("".join(f"P-{n:06d},staff,\n" for n in range(100_000)))
    raw: dict[str, dict[str, Any]] = {
        "kiosk": {"id": "bench-1", "site": "bench", "state_dir": str(directory)},
        "credentials": {"allowlist": str(allowlist), "subject_salt": "bench-salt-0123456789"},
        "web": {"enabled": False},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw, source="<bench>")


@contextlib.contextmanager
def running_kiosk(config: KioskConfig, scene: Scene, pin_factory: Any = None) -> Iterator[Kiosk]:
    """Open a kiosk on simulated hardware and run it in a thread until the block ends."""
    with open_kiosk(config, simulate=True, scene=scene, pin_factory=pin_factory) as kiosk:
        stop = threading.Event()
        runner = threading.Thread(target=kiosk.run, args=(stop,), daemon=True)
        runner.start()
        try:
            yield kiosk
        finally:
            stop.set()
            runner.join(timeout=10)


@contextlib.contextmanager
def timed_kiosk(**sections: dict[str, Any]) -> Iterator[TimedKiosk]:
    """Run a simulated kiosk (see :func:`bench_config`) whose relay is wired to an input."""
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as scratch:
        config = bench_config(Path(scratch), **sections)
        factory = simulated_pin_factory()
        factory.pin(
            config.gate.relay_pin,
            pin_class=ShortHistoryConnectedPin,
            input_pin=factory.pin(FEEDBACK_PIN),
        )
        feedback = DigitalInputDevice(
            FEEDBACK_PIN,
            pull_up=None,
            active_state=config.gate.relay_active_high,
            pin_factory=factory,
        )
        energised: queue.Queue[float] = queue.Queue()
        feedback.when_activated = lambda: energised.put(time.monotonic())
        scene = Scene()
        try:
            with running_kiosk(config, scene, factory) as kiosk:
                yield TimedKiosk(kiosk, scene, energised)
        finally:
            feedback.close()


def badge(n: int) -> bytes:
    """The n-th benchmark badge code."""
    return f"P-{n % 100_000:06d}".encode()
