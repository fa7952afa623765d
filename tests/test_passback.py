"""Anti-passback and tailgating through the engine, on gpiozero's MockFactory: relay activations
are counted on the relay pin itself."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk import gate as gate_module
from kiosk.config import KioskConfig
from kiosk.decide.decision import Outcome, Reason
from kiosk.events import alert_for
from kiosk.hardware import build_hardware
from kiosk.mqtt.protocol import WireEvent
from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.run.runtime import build_entrance
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.qr import Scan
from kiosk.sensors.simulation import Person, Scene
from kiosk.store.eventlog import EventLog
from tests.support import SALT, make_config, running, wait_until

RELAY, PASSAGE = 17, 24  # the config's default pins; the relay is active-low


class Clock:
    """The kiosk's and its log's wall clock, moved by the test; it starts at 08:00 local time
    today, so that no test crosses midnight (when the area's day starts afresh)."""

    def __init__(self) -> None:
        self.now = datetime.now().astimezone().replace(hour=8, minute=0, second=0, microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@contextlib.contextmanager
def kiosk_on(
    config: KioskConfig, factory: MockFactory, clock: Clock | None = None
) -> Iterator[Kiosk]:
    """A kiosk on simulated hardware with ``factory``'s pins, driven by the test's scans."""
    hardware = build_hardware(config, simulate=True, scene=Scene(), pin_factory=factory)
    wall_clock = clock or (lambda: datetime.now(UTC))
    try:
        with EventLog(
            config.log_path,
            boot_id="b",
            now_ms=lambda: int(wall_clock().timestamp() * 1000),
        ) as log:
            yield Kiosk(
                config,
                hardware,
                log,
                build_entrance(config, SALT.encode()),
                wall_clock=wall_clock,
            )
    finally:
        hardware.close()


def activations(factory: MockFactory) -> int:
    """How many times the relay was energised (driven low)."""
    levels = [state.state for state in factory.pin(RELAY).states]
    return sum(1 for before, after in itertools.pairwise(levels) if before and not after)


def scan(kiosk: Kiosk, *, settle: bool = True) -> DecisionRecord | None:
    """Decide for one scan; wait for the relay to be released again (so each release shows)."""
    record = kiosk.handle_scan(Scan(b"S-0001", too_large=False, seen_at=0.0))
    if settle:
        wait_until(lambda: not kiosk.gate.state().relay_energised)
    return record


def config_for(tmp_path: Path, **sections: dict[str, Any]) -> KioskConfig:
    rules = {"anti_passback": True, "passback_grace_s": 10.0}
    return make_config(
        tmp_path,
        thermometer={"enabled": False},
        rules=rules | sections.pop("rules", {}),
        gate={"pulse_ms": 50} | sections.pop("gate", {}),
        **sections,
    )


def test_a_pass_scanned_every_5_s_opens_the_gate_once(tmp_path: Path) -> None:
    """The attack that worked: each re-scan within the grace re-opened and restarted it."""
    clock = Clock()
    factory = MockFactory()
    with kiosk_on(config_for(tmp_path), factory, clock) as kiosk:
        outcomes = []
        for _ in range(5):  # 0, 5, 10, 15, 20 s
            record = scan(kiosk)
            outcomes.append(None if record is None else record.decision.reason)
            clock.advance(5)
        decisions = kiosk.event_log.recent(10, type="decision")
        repeats = kiosk.metrics.registry.get_sample_value("kiosk_repeat_reads_total")
    assert outcomes == [Reason.OK, None, None, Reason.ALREADY_INSIDE, Reason.ALREADY_INSIDE]
    assert [e.data["outcome"] for e in decisions] == ["grant", "deny", "deny"]
    assert activations(factory) == 1
    assert repeats == 2


def test_toggle_kiosk_a_re_read_is_not_taken_for_the_way_out(tmp_path: Path) -> None:
    clock = Clock()
    factory = MockFactory()
    config = config_for(tmp_path, kiosk={"direction": "toggle"})
    with kiosk_on(config, factory, clock) as kiosk:
        first = scan(kiosk)
        clock.advance(3)
        assert scan(kiosk) is None  # would have been an exit grant: a second relay release
        clock.advance(30)
        out = scan(kiosk)
        clock.advance(30)
        back = scan(kiosk)
    assert first is not None and first.decision.outcome is Outcome.GRANT
    assert out is not None and out.event is not None and out.event.data["direction"] == "exit"
    assert back is not None and back.decision.outcome is Outcome.GRANT
    assert activations(factory) == 3


def test_hold_mode_a_grant_nobody_used_does_not_count_as_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]  # the gate's clock: a grant expires only when the test moves it on
    monkeypatch.setattr(gate_module, "monotonic", lambda: now[0])
    factory = MockFactory()
    config = config_for(
        tmp_path,
        rules={"passback_grace_s": 0.0},
        gate={"relay_mode": "hold", "hold_timeout_s": 1.0},
    )
    with kiosk_on(config, factory) as kiosk:
        first = scan(kiosk, settle=False)
        assert first is not None and first.event is not None
        now[0] += 2.0  # nobody came: the hold times out (its timer wakes within 1 s)
        wait_until(lambda: bool(kiosk.event_log.recent(1, type="grant_unused")))
        (unused,) = kiosk.event_log.recent(1, type="grant_unused")
        again = scan(kiosk, settle=False)  # they never went in: not "already inside"
        assert again is not None and again.event is not None
        factory.pin(PASSAGE).drive_low()  # this time they go through
        third = scan(kiosk)
        passages = [e.data for e in kiosk.event_log.recent(5, type="passage")]
    assert unused.data == {
        "grant": first.event.event_id,
        "subject": first.event.data["subject"],
        "direction": "entry",
        "area": "main",
    }
    assert again.decision.outcome is Outcome.GRANT
    assert passages == [{"by": "grant", "grant": again.event.event_id}]
    assert third is not None and third.decision.reason is Reason.ALREADY_INSIDE
    assert activations(factory) == 2


def test_a_passage_nobody_was_granted_is_logged_counted_and_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(gate_module, "monotonic", lambda: now[0])
    factory = MockFactory()
    config = config_for(tmp_path, rules={"anti_passback": False})
    sensor = factory.pin(PASSAGE)

    def walk_through() -> None:
        now[0] += 1.0  # past the sensor's debounce
        sensor.drive_low()
        now[0] += 1.0
        sensor.drive_high()

    with kiosk_on(config, factory) as kiosk:
        walk_through()  # nobody scanned: a tailgater
        granted = scan(kiosk)
        walk_through()  # the person granted
        walk_through()  # and someone on their heels
        events = kiosk.event_log.recent(10, type="passage")
        today = kiosk.health().today
        state_today = kiosk.state()["today"]
        metrics = kiosk.metrics.registry
        by_none = metrics.get_sample_value("kiosk_passages_total", {"by": "none"})
        by_grant = metrics.get_sample_value("kiosk_passages_total", {"by": "grant"})
    assert granted is not None and granted.event is not None
    assert [e.data for e in events] == [
        {"by": "none", "grant": None},
        {"by": "grant", "grant": granted.event.event_id},
        {"by": "none", "grant": None},
    ]
    assert today["tailgating"] == state_today["tailgating"] == 2
    assert (by_none, by_grant) == (2, 1)
    wire = [WireEvent(e.event_id, e.seq, "b", e.ts_ms, True, e.type, e.data) for e in events]
    alerts = [alert_for(event) for event in wire]
    assert [alert and alert[0] for alert in alerts] == ["tailgating", None, "tailgating"]


def test_tailgating_and_withdrawn_grants_are_known_again_after_a_restart(tmp_path: Path) -> None:
    config = config_for(
        tmp_path,
        rules={"passback_grace_s": 0.0},
        gate={"relay_mode": "hold", "hold_timeout_s": 1.0},
    )
    with running(config) as door:
        door.kiosk.hardware.pin_factory.pin(PASSAGE).drive_low()  # nobody was granted
        door.scene.step_up(Person("staff", b"S-0001", sim.nobody(), "grant"))
        assert door.next_decision().decision.outcome is Outcome.GRANT
        wait_until(lambda: bool(door.kiosk.event_log.recent(1, type="grant_unused")))
    with running(config) as again:
        wait_until(lambda: again.kiosk.health().today["tailgating"] == 1)
        again.scene.step_up(Person("staff", b"S-0001", sim.nobody(), "grant"))
        assert again.next_decision().decision.outcome is Outcome.GRANT  # not already inside


def test_the_configured_re_entry_time_lets_a_pass_that_never_exited_in_again(
    tmp_path: Path,
) -> None:
    clock = Clock()
    config = config_for(tmp_path, rules={"passback_reentry_h": 2.0})
    with kiosk_on(config, MockFactory(), clock) as kiosk:
        first = scan(kiosk)
        clock.advance(2 * 3600 - 60)
        early = scan(kiosk)
        clock.advance(120)
        later = scan(kiosk)
    assert first is not None and first.decision.outcome is Outcome.GRANT
    assert early is not None and early.decision.reason is Reason.ALREADY_INSIDE
    assert later is not None and later.decision.outcome is Outcome.GRANT
