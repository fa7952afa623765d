"""The decision pipeline alone, without threads: a scan in, a logged decision, then the gate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from kiosk.decide.decision import Outcome, Reason
from kiosk.decide.pipeline import DecisionRecord, Pipeline
from kiosk.events import Part
from kiosk.gate import Signal
from kiosk.hardware import Hardware, build_hardware
from kiosk.run.health import PartState
from kiosk.run.metrics import KioskMetrics
from kiosk.run.parts import Monitor
from kiosk.run.runtime import build_entrance
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.qr import Scan
from kiosk.sensors.simulation import Person, Scene
from kiosk.store.eventlog import EventLog, read_events
from tests.support import SALT, make_config

RELAY, FEEDBACK = 17, 6


class Door:
    """A pipeline on simulated hardware with a real log; records what the log held each time
    the relay energised."""

    def __init__(self, tmp_path: Path, **log: Any) -> None:
        self.config = make_config(tmp_path)
        self.factory = MockFactory()
        self.factory.pin(RELAY, pin_class=MockConnectedPin, input_pin=self.factory.pin(FEEDBACK))
        self.scene = Scene()
        self.hardware: Hardware = build_hardware(
            self.config, simulate=True, scene=self.scene, pin_factory=self.factory
        )
        self.log = EventLog(self.config.log_path, boot_id="b", **log)
        entrance = build_entrance(self.config, SALT.encode())
        metrics = KioskMetrics()
        self.monitor = Monitor(self.log, metrics, entrance.learn_event, thermometer=PartState())
        self.pipeline = Pipeline(
            self.config,
            self.hardware,
            entrance,
            self.monitor,
            metrics,
            fever_threshold_c=lambda: 38.0,
        )
        self.hardware.gate.watch_admissions(self.pipeline.on_passage, self.pipeline.on_grant_unused)
        self.logged_when_energised: list[list[dict[str, Any]]] = []
        self._feedback = DigitalInputDevice(
            FEEDBACK, pull_up=None, active_state=False, pin_factory=self.factory
        )
        self._feedback.when_activated = lambda: self.logged_when_energised.append(
            [event.data for event in read_events(self.config.log_path, type="decision")]
        )

    def scan(self, person: Person) -> DecisionRecord:
        assert person.payload is not None
        self.scene.step_up(person)
        record = self.pipeline.handle_scan(Scan(person.payload, too_large=False, seen_at=0.0))
        assert record is not None
        return record

    def close(self) -> None:
        self._feedback.close()
        self.hardware.close()
        self.log.close()


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    door = Door(tmp_path)
    yield door
    door.close()


def test_a_grant_is_logged_before_the_relay_energises(door: Door) -> None:
    record = door.scan(Person("staff", b"S-0001", sim.person(36.6), "grant"))
    assert (record.decision.outcome, record.signal) == (Outcome.GRANT, Signal.GRANTED)
    assert record.event is not None
    assert record.started_at <= record.logged_at <= record.gate_moved_at
    assert door.logged_when_energised == [[record.event.data]]
    assert record.event.data["temperature"]["celsius"] == 36.6
    assert door.monitor.health(door.hardware.gate.state(), None, True).today["granted"] == 1


def test_a_fever_is_denied_with_the_alarm_and_the_relay_never_moves(door: Door) -> None:
    record = door.scan(Person("staff", b"S-0002", sim.person(38.6), "deny"))
    assert (record.decision.reason, record.signal) == (Reason.FEVER, Signal.FEVER)
    assert record.event is not None and record.event.data["reason"] == "fever"
    assert door.logged_when_energised == []


def test_lockdown_refuses_a_valid_pass_and_the_relay_never_moves(door: Door) -> None:
    door.hardware.gate.set_lockdown(True)
    record = door.scan(Person("staff", b"S-0001", sim.person(36.6), "deny"))
    assert (record.decision.outcome, record.decision.reason) == (Outcome.DENY, Reason.LOCKDOWN)
    assert record.event is not None and record.event.data["reason"] == "lockdown"
    assert door.logged_when_energised == []


def test_a_decision_that_cannot_be_logged_refers_to_the_guard(tmp_path: Path) -> None:
    door = Door(tmp_path, reserve_bytes=2**62)  # no disk has this much free: appends fail
    try:
        record = door.scan(Person("staff", b"S-0001", sim.person(36.6), "refer"))
        assert not door.monitor.ok(Part.LOG)
    finally:
        door.close()
    assert (record.decision.outcome, record.decision.reason) == (
        Outcome.REFER,
        Reason.LOG_UNAVAILABLE,
    )
    assert (record.event, record.signal) == (None, Signal.REFER)
    assert door.logged_when_energised == []
