"""The demo: a scripted queue of people through a kiosk on simulated hardware.

Each person steps up, shows a code to the (simulated) camera and stands in
front of the (simulated) thermometer; the real engine decides, logs and drives
gpiozero's mock relay pin, which the demo reads back to say what the relay did.
"""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kiosk.config import KioskConfig
from kiosk.gate import Signal
from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.run.runtime import open_kiosk
from kiosk.sensors.simulation import Person, Scene

DECISION_TIMEOUT_S = 15.0
_LIGHTS = {
    Signal.GRANTED: "green light",
    Signal.DENIED: "warning light",
    Signal.REFER: "warning light, beeps",
    Signal.FEVER: "warning light, alarm",
}


class DemoError(RuntimeError):
    """The simulated kiosk did not decide for a person in time."""


@dataclass(frozen=True)
class PersonResult:
    """What happened to one person in the queue."""

    number: int
    person: Person
    record: DecisionRecord
    relay_open_s: float | None  # how long the relay was energised; None: it never moved
    seconds: float  # from stepping up to the gate acting

    def as_json(self) -> dict[str, Any]:
        """One JSON object for ``kiosk demo --json``."""
        decision, event = self.record.decision, self.record.event
        temperature = self.record.measurement
        return {
            "person": self.number,
            "who": self.person.label,
            "expected": self.person.expect,
            "outcome": decision.outcome.value,
            "signal": self.record.signal.value,
            "reason": decision.reason.value,
            "message_en": decision.message_en,
            "message_vi": decision.message_vi,
            "temperature_c": None if temperature is None else temperature.celsius,
            "relay_open_s": self.relay_open_s,
            "seconds": round(self.seconds, 3),
            "event_id": None if event is None else event.event_id,
            "seq": None if event is None else event.seq,
            "subject": None if event is None else event.data.get("subject"),
        }

    def as_line(self) -> str:
        """One human-readable line: who, temperature, outcome, reason, relay, lights."""
        decision, temperature = self.record.decision, self.record.measurement
        temp = "   --   "
        if temperature is not None and temperature.celsius is not None:
            temp = f"{temperature.celsius:5.1f} °C"
        relay = "relay stays locked"
        if self.relay_open_s is not None:
            relay = f"relay released {self.relay_open_s * 1000:.0f} ms"
        flag = "" if decision.outcome.value == self.person.expect else "  (UNEXPECTED)"
        return (
            f"#{self.number:<2} {self.person.label:<42} {temp}  "
            f"{decision.outcome.value.upper():<5} {decision.reason.value:<21} "
            f"{relay:<23} {_LIGHTS[self.record.signal]:<21} {decision.message_en}{flag}"
        )


def run_queue(kiosk: Kiosk, scene: Scene, people: Sequence[Person]) -> Iterator[PersonResult]:
    """Step each person up in turn on a running kiosk and yield what happened to them."""
    records: queue.Queue[DecisionRecord] = queue.Queue()
    kiosk.add_observer(records.put)
    relay = kiosk.hardware.pin_factory.pin(kiosk.config.gate.relay_pin)
    energised = kiosk.config.gate.relay_active_high
    for number, person in enumerate(people, start=1):
        relay.clear_states()
        stepped_up = time.monotonic()
        scene.step_up(person)
        try:
            record = records.get(timeout=DECISION_TIMEOUT_S)
        except queue.Empty:
            message = f"no decision for person {number} within {DECISION_TIMEOUT_S} s"
            raise DemoError(message) from None
        seconds = time.monotonic() - stepped_up
        if record.decision.opens_gate:
            _wait_until(
                lambda: not kiosk.gate.state().relay_energised,
                kiosk.config.gate.pulse_ms / 1000 + 2,
            )
        scene.leave()
        yield PersonResult(number, person, record, _relay_open_s(relay.states, energised), seconds)


def _relay_open_s(states: Iterable[Any], energised_level: bool) -> float | None:
    """Length of the first energised stretch in a MockPin history (timestamps are deltas)."""
    opened = False
    for state in itertools.islice(states, 1, None):
        if state.state == energised_level:
            opened = True
        elif opened:
            return round(state.timestamp, 3)
    return None


def _wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass(frozen=True)
class DemoSummary:
    """Counts and timing over the whole queue."""

    people: int
    outcomes: dict[str, int]
    unexpected: int
    median_seconds: float
    log_path: str

    def as_json(self) -> dict[str, Any]:
        """The summary as a JSON object."""
        return {
            "summary": {
                "people": self.people,
                "outcomes": self.outcomes,
                "unexpected": self.unexpected,
                "median_seconds_per_person": round(self.median_seconds, 3),
                "event_log": self.log_path,
            }
        }


def run_demo(
    config: KioskConfig, people: Sequence[Person], emit: Callable[[PersonResult], None]
) -> DemoSummary:
    """Run a kiosk on simulated hardware through ``people``; call ``emit`` per person."""
    scene = Scene()
    results: list[PersonResult] = []
    with open_kiosk(config, simulate=True, scene=scene) as kiosk:
        stop = threading.Event()
        runner = threading.Thread(
            target=kiosk.run, args=(stop,), name="decision-loop", daemon=True
        )  # a daemon: a kiosk that does not stop within the join below cannot hold the exit
        runner.start()
        try:
            for result in run_queue(kiosk, scene, people):
                results.append(result)
                emit(result)
        finally:
            stop.set()
            runner.join(timeout=10)
    outcomes: dict[str, int] = {}
    for result in results:
        key = result.record.decision.outcome.value
        outcomes[key] = outcomes.get(key, 0) + 1
    unexpected = sum(r.record.decision.outcome.value != r.person.expect for r in results)
    return DemoSummary(
        len(results),
        outcomes,
        unexpected,
        statistics.median(r.seconds for r in results),
        str(config.log_path),
    )
