"""The engine end to end on simulated hardware: a person → an event row → the relay."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from kiosk.decide.decision import Outcome, Reason
from kiosk.decide.pipeline import measurement_settings
from kiosk.decide.privacy import Pseudonymizer
from kiosk.events import EventType
from kiosk.gate import Signal
from kiosk.hardware import build_hardware
from kiosk.operator.actions import Action, ActionError, ActionRequest, Source
from kiosk.run.engine import Kiosk
from kiosk.run.runtime import build_entrance
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.frames import CameraError
from kiosk.sensors.measurement import is_present
from kiosk.sensors.qr import Scan
from kiosk.sensors.simulation import Person, Scene
from kiosk.store.eventlog import EventLog, LogWriteError, read_events
from tests.support import SALT, make_config, operate, running, wait_until

RELAY, FEEDBACK = 17, 6
LOG_FAILURES = "kiosk_part_failures_total"
STAFF = Person("staff", b"S-0001", sim.person(36.6), "grant")


def relay_levels(factory: MockFactory) -> list[bool]:
    """Levels the relay pin was driven to (the first entry is its level before it was set up).

    The relay is active-low: True (high) is released, False (low) is energised.
    """
    return [state.state for state in factory.pin(RELAY).states][1:]


def test_event_row_exists_when_the_relay_energises(tmp_path: Path) -> None:
    """The decision is durable before the relay moves: checked at the instant it moves."""
    config = make_config(tmp_path)
    factory = MockFactory()
    factory.pin(RELAY, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK))
    feedback = DigitalInputDevice(
        FEEDBACK, pull_up=None, active_state=False, pin_factory=factory
    )  # active-low relay: energised = low
    seen_at_energise: list[list[dict[str, object]]] = []
    feedback.when_activated = lambda: seen_at_energise.append(
        [event.data for event in read_events(config.log_path, type="decision")]
    )
    with running(config, pin_factory=factory) as kiosk:
        kiosk.scene.step_up(STAFF)
        record = kiosk.next_decision()
        wait_until(lambda: not kiosk.kiosk.gate.state().relay_energised)
    feedback.close()
    assert record.decision.outcome is Outcome.GRANT
    assert record.event is not None
    assert len(seen_at_energise) == 1
    assert seen_at_energise[0] == [record.event.data]
    assert seen_at_energise[0][0]["outcome"] == "grant"
    assert relay_levels(factory) == [True, False, True]  # safe, energised, released


def test_grant_event_is_pseudonymous_and_complete(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running(config) as kiosk:
        kiosk.scene.step_up(STAFF)
        record = kiosk.next_decision()
    assert record.event is not None
    data = record.event.data
    assert data["subject"] == Pseudonymizer(SALT.encode()).subject("S-0001")
    assert data["credential"] == {
        "status": "valid",
        "kind": "staff",
        "type": "badge",
        "unsigned": False,
        "pass_id": None,
    }
    assert (data["direction"], data["area"]) == ("entry", "main")
    assert data["temperature"]["status"] == "normal"
    assert data["temperature"]["celsius"] == pytest.approx(36.6, abs=0.1)
    assert (data["mode"], data["outcome"], data["reason"]) == ("gate", "grant", "ok")
    everything = json.dumps([e.to_json_dict() for e in read_events(config.log_path, 100)])
    assert "S-0001" not in everything


def test_fever_keeps_relay_locked_and_shows_alarm(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running(config) as kiosk:
        factory = kiosk.kiosk.hardware.pin_factory
        kiosk.scene.step_up(Person("visitor", b"V-7F3A", sim.person(38.4), "deny"))
        record = kiosk.next_decision()
        warning = factory.pin(config.gate.warning_light_pin)
        wait_until(lambda: warning.state is True)
        assert relay_levels(factory) == [True]  # never energised
    assert (record.decision.reason, record.signal) == (Reason.FEVER, Signal.FEVER)
    assert record.measurement is not None and record.measurement.retested


@pytest.mark.parametrize("celsius", [36.9, 39.1, float("nan")])
def test_the_engine_refuses_a_fever_threshold_out_of_bounds(tmp_path: Path, celsius: float) -> None:
    """Even a request built by hand, past the check that :func:`request` makes."""
    config = make_config(tmp_path)
    with running(config) as kiosk:
        by_hand = ActionRequest(
            Action.SET_FEVER_THRESHOLD, {"celsius": celsius}, "", Source.MQTT, "by-hand"
        )
        outcome = kiosk.kiosk.perform(by_hand)
        assert outcome.error == ActionError.BAD_ARGUMENTS
        assert "'celsius' must be" in outcome.message
        assert kiosk.kiosk.fever_threshold_c == 37.5
        assert operate(kiosk.kiosk, Action.SET_FEVER_THRESHOLD, celsius=38.0).ok
        assert kiosk.kiosk.fever_threshold_c == 38.0
    assert [e.data["args"] for e in read_events(config.log_path, type="command")] == [
        {"celsius": 38.0}
    ]


def test_log_failure_refers_to_guard_and_keeps_gate_shut(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    with running(config) as kiosk:
        fill_the_log(kiosk.kiosk.event_log)
        kiosk.scene.step_up(STAFF)
        record = kiosk.next_decision()
        assert (record.decision.outcome, record.decision.reason) == (
            Outcome.REFER,
            Reason.LOG_UNAVAILABLE,
        )
        assert record.event is None
        assert relay_levels(kiosk.kiosk.hardware.pin_factory) == [True]
        health = kiosk.kiosk.health()
        assert not health.ok("log") and "log" in health.degraded

        conn = kiosk.kiosk.event_log._conn
        assert conn is not None
        conn.execute("PRAGMA max_page_count = 1000000")
        kiosk.scene.leave()
        kiosk.scene.step_up(Person("staff", b"S-0002", sim.nobody(), "grant"))
        record = kiosk.next_decision()
        assert record.decision.outcome is Outcome.GRANT and record.event is not None
        assert kiosk.kiosk.health().ok("log")


def test_a_fire_alarm_the_log_cannot_take_is_reported_as_the_part_log(tmp_path: Path) -> None:
    """Fire-alarm changes go through the kiosk's monitor, as passages do: logged when the log
    works, and a failed write fails the part ``log`` (counted as soon as it fails)."""
    config = make_config(tmp_path, thermometer={"enabled": False})
    fire = config.gate.fire_alarm_pin
    assert fire is not None and config.gate.fire_alarm_active_low
    with running(config) as kiosk:
        registry = kiosk.kiosk.metrics.registry
        alarm = kiosk.kiosk.hardware.pin_factory.pin(fire)
        wait_until(lambda: kiosk.kiosk.loops_alive(5.0))  # past the fire-alarm check at start
        alarm.drive_low()
        wait_until(lambda: bool(read_events(config.log_path, type="fire_alarm")))
        fill_the_log(kiosk.kiosk.event_log)
        alarm.drive_high()
        wait_until(lambda: registry.get_sample_value(LOG_FAILURES, {"part": "log"}) == 1)
        assert not kiosk.kiosk.gate.state().fire_alarm
    assert [e.data for e in read_events(config.log_path, type="fire_alarm")] == [{"active": True}]


def fill_the_log(event_log: EventLog) -> None:
    """Make the running kiosk's log refuse writes: SQLite's own page limit, the real "disk
    full" path."""
    conn = event_log._conn
    assert conn is not None  # the running kiosk's log is open
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    for size in (300, 0):  # then small rows, until not even the smallest event fits
        with pytest.raises(LogWriteError):
            for _ in range(10_000):
                event_log.append("padding", {"pad": "x" * size})


def test_relay_released_after_an_exception_in_the_engine(tmp_path: Path) -> None:
    config = make_config(tmp_path, gate={"relay_mode": "hold"})
    factory = MockFactory()
    with pytest.raises(RuntimeError, match="boom"), running(config, pin_factory=factory) as kiosk:
        kiosk.kiosk.gate.open_for_person()
        assert kiosk.kiosk.gate.state().relay_energised
        raise RuntimeError("boom")
    assert relay_levels(factory) == [True, False, True]  # released before the pin was closed
    assert factory.pin(RELAY).function == "input"


def test_screen_mode_measures_whoever_steps_up(tmp_path: Path) -> None:
    config = make_config(tmp_path, kiosk={"mode": "screen"})
    with running(config) as kiosk:
        kiosk.scene.step_up(Person("anyone", None, sim.person(36.5), "grant"))
        first = kiosk.next_decision()
        kiosk.scene.leave()
        settings = measurement_settings(config)

        def nobody_in_view() -> bool:
            reading = kiosk.kiosk.health().last_reading
            return reading is not None and not is_present(reading, settings)

        wait_until(nobody_in_view)
        kiosk.scene.step_up(Person("anyone", None, sim.person(38.6), "deny"))
        second = kiosk.next_decision()
    assert (first.decision.outcome, first.credential) == (Outcome.GRANT, None)
    assert first.event is not None and first.event.data["subject"] is None
    assert second.decision.reason is Reason.FEVER


def test_checkin_mode_records_attendance_without_the_relay(tmp_path: Path) -> None:
    config = make_config(tmp_path, kiosk={"mode": "checkin", "meeting": "all-hands"})
    with running(config) as kiosk:
        kiosk.scene.step_up(STAFF)
        record = kiosk.next_decision()
        assert relay_levels(kiosk.kiosk.hardware.pin_factory) == [True]
    assert record.decision.reason is Reason.CHECKED_IN
    assert record.event is not None and record.event.data["meeting"] == "all-hands"
    assert record.measurement is None


def test_the_same_code_held_up_is_one_decision(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    with running(config) as kiosk:
        kiosk.scene.step_up(STAFF)
        kiosk.next_decision()
        frames = kiosk.kiosk.health().frames_read
        wait_until(lambda: kiosk.kiosk.health().frames_read >= frames + 60)  # 2 s at 30 fps
        assert kiosk.decisions.empty()
        kiosk.scene.step_up(Person("another", b"S-0002", sim.nobody(), "grant"))
        kiosk.next_decision()
    decisions = read_events(config.log_path, 100, type="decision")
    assert [e.data["subject"] for e in decisions] == [
        Pseudonymizer(SALT.encode()).subject(b) for b in ("S-0001", "S-0002")
    ]


class FlakyCamera:
    """A frame source that can be unplugged: no real camera can be lost on a PC."""

    name = "flaky"

    def __init__(self, scene: Scene) -> None:
        self.unplugged = threading.Event()
        from kiosk.sensors.frames import GeneratedFrameSource

        self._inner = GeneratedFrameSource(scene.payload)
        self.starts = 0

    def start(self) -> None:
        if self.unplugged.is_set():
            raise CameraError("flaky: no such device")
        self.starts += 1
        self._inner.start()

    def read(self):  # type: ignore[no-untyped-def]
        if self.unplugged.is_set():
            raise CameraError("flaky: device disconnected")
        return self._inner.read()

    def close(self) -> None:
        self._inner.close()


def test_camera_loss_is_reported_and_recovers(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    scene = Scene()
    hardware = build_hardware(config, simulate=True, scene=scene)
    camera = FlakyCamera(scene)
    hardware.frames.close()
    hardware.frames = camera
    camera.start()
    with EventLog(config.log_path, boot_id="b") as log:
        kiosk = Kiosk(
            config, hardware, log, build_entrance(config, SALT.encode()), camera_retry_s=0.05
        )
        stop = threading.Event()
        thread = threading.Thread(target=kiosk.run, args=(stop,), daemon=True)
        thread.start()
        try:
            camera.unplugged.set()
            wait_until(lambda: not kiosk.health().ok("camera"))
            assert (
                "disconnected" in kiosk.health().parts["camera"].detail
                or "no such device" in kiosk.health().parts["camera"].detail
            )
            scene.step_up(STAFF)
            camera.unplugged.clear()
            wait_until(lambda: kiosk.health().ok("camera"))
            wait_until(lambda: bool(log.recent(10, type="decision")))
        finally:
            stop.set()
            thread.join(timeout=10)
            hardware.close()
        health_events = [e.data for e in log.recent(20, type=EventType.HEALTH.value)]
    assert health_events[:1] == [
        {"part": "camera", "ok": False, "detail": health_events[0]["detail"]}
    ]
    assert {"part": "camera", "ok": True, "detail": "ok"} in health_events
    assert camera.starts >= 2


@pytest.mark.parametrize("synced", [True, False])
def test_decisions_say_whether_the_clock_was_synchronised(tmp_path: Path, synced: bool) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    scene = Scene()
    hardware = build_hardware(config, simulate=True, scene=scene)
    with EventLog(config.log_path, boot_id="b", clock_synced=lambda: synced) as log:
        kiosk = Kiosk(
            config,
            hardware,
            log,
            build_entrance(config, SALT.encode()),
            clock_synced=lambda: synced,
        )
        try:
            record = kiosk.handle_scan(Scan(b"S-0001", too_large=False, seen_at=0.0))
        finally:
            hardware.close()
    assert record is not None and record.event is not None
    assert (record.event.clock_synced, record.event.data["clock_synced"]) == (synced, synced)
    assert kiosk.health().clock_synced is synced


def test_a_crashed_background_loop_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kiosk.run.loops.BACKGROUND_RESTART_S", 0.05)
    runs: list[int] = []

    def flaky_sync(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("paho blew up")
        stop.wait()

    config = make_config(tmp_path, thermometer={"enabled": False})
    scene = Scene()
    hardware = build_hardware(config, simulate=True, scene=scene)
    with EventLog(config.log_path, boot_id="b") as log:
        kiosk = Kiosk(config, hardware, log, build_entrance(config, SALT.encode()))
        kiosk.add_background(flaky_sync)
        stop = threading.Event()
        thread = threading.Thread(target=kiosk.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(runs) == 2)
            scene.step_up(STAFF)  # the kiosk itself kept working
            wait_until(lambda: bool(log.recent(5, type="decision")))
        finally:
            stop.set()
            thread.join(timeout=10)
            hardware.close()


def test_metrics_count_decisions_by_reason_and_time_decoding(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    with running(config) as kiosk:
        kiosk.scene.step_up(STAFF)
        kiosk.next_decision()
        registry = kiosk.kiosk.metrics.registry
        assert (
            registry.get_sample_value("kiosk_decisions_total", {"outcome": "grant", "reason": "ok"})
            == 1
        )
        assert registry.get_sample_value("kiosk_decision_seconds_count") == 1
        assert (registry.get_sample_value("kiosk_decode_seconds_count") or 0) > 0
        assert registry.get_sample_value("kiosk_backlog_events") == len(
            kiosk.kiosk.event_log.pending_json(100)
        )
