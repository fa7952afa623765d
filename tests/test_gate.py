"""Gate tests on gpiozero's MockFactory, injected explicitly into every Gate."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
from gpiozero import Device, GPIODeviceClosed
from gpiozero.pins.mock import MockFactory, MockPin

from kiosk import gate as gate_module
from kiosk.gate import (
    Gate,
    GatePassage,
    GatePins,
    GateState,
    GateTiming,
    PassageCause,
    Signal,
    force_relay_safe,
)
from tests.support import holds_for, wait_until

RELAY, GREEN, WARNING, BUZZER, PASSAGE, FIRE = 17, 27, 22, 23, 5, 6

PINS = GatePins(
    relay=RELAY,
    relay_active_high=False,
    green_light=GREEN,
    warning_light=WARNING,
    buzzer=BUZZER,
    passage_sensor=PASSAGE,
    passage_active_low=True,
    fire_alarm=FIRE,
    fire_alarm_active_low=True,
)
PULSE = GateTiming("pulse", pulse_s=0.2, signal_s=0.3)
HOLD = GateTiming("hold", hold_timeout_s=5.0, signal_s=0.3)
OFF, ON = True, False  # physical level of the active-low relay in PINS


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """A fresh MockFactory for the Gate; the global factory is a trap that must stay unused."""
    saved = Device.pin_factory
    trap = MockFactory()
    Device.pin_factory = trap
    fresh = MockFactory()
    try:
        yield fresh
        assert not trap.pins, "a device fell back to the global pin factory"
    finally:
        fresh.reset()
        trap.reset()
        Device.pin_factory = saved


class PanelDrivenPin(MockPin):
    """An input driven by external hardware stronger than the internal pull."""

    def _set_pull(self, value: str) -> None:
        self._pull = value


def states(pin: MockPin) -> list[bool]:
    return [s.state for s in pin.states]


def lasted(intervals: list[float], expected: list[float], late: float = 1.0) -> bool:
    """Each interval about as long as expected: never much shorter, and longer by at most
    ``late``, which a loaded machine's scheduler can add but a wrong duration would exceed."""
    return len(intervals) == len(expected) and all(
        want - 0.05 <= got <= want + late for got, want in zip(intervals, expected, strict=True)
    )


@pytest.mark.parametrize("active_high", [True, False])
def test_relay_off_at_construction(factory: MockFactory, active_high: bool) -> None:
    pins = replace(PINS, relay_active_high=active_high)
    with Gate(pins, PULSE, pin_factory=factory) as gate:
        relay = factory.pin(RELAY)
        assert relay.function == "output"
        assert relay.state is (not active_high)  # the de-energised level
        # The first entry is the floating input before gpiozero claimed the pin.
        assert states(relay) == ([False] if active_high else [False, True])
        assert gate.state() == GateState(False, False, False, False, 0)


def test_pulse_energises_relay_for_pulse_s(factory: MockFactory) -> None:
    with Gate(PINS, PULSE, pin_factory=factory) as gate:
        relay = factory.pin(RELAY)
        relay.clear_states()
        assert gate.open_for_person()
        assert gate.state().relay_energised
        wait_until(lambda: len(relay.states) == 3)
        assert states(relay) == [OFF, ON, OFF]
        assert lasted([relay.states[2].timestamp], [0.2])
        assert not gate.state().relay_energised


def test_hold_ends_at_passage(factory: MockFactory) -> None:
    passages: list[None] = []
    with Gate(PINS, HOLD, pin_factory=factory, on_passage=lambda: passages.append(None)) as gate:
        relay, sensor = factory.pin(RELAY), factory.pin(PASSAGE)
        relay.clear_states()
        assert gate.open_for_person()
        sensor.drive_low()  # beam broken; mock callbacks run synchronously
        assert states(relay) == [OFF, ON, OFF]
        assert relay.states[2].timestamp < HOLD.hold_timeout_s / 2  # the passage ended it
        assert passages == [None]
        assert gate.state().passages == 1


def test_hold_times_out_without_passage(factory: MockFactory) -> None:
    with Gate(PINS, replace(HOLD, hold_timeout_s=0.2), pin_factory=factory) as gate:
        relay = factory.pin(RELAY)
        relay.clear_states()
        assert gate.open_for_person()
        wait_until(lambda: len(relay.states) == 3)
        assert states(relay) == [OFF, ON, OFF]
        assert lasted([relay.states[2].timestamp], [0.2])


def test_pulse_mode_passage_does_not_end_pulse(factory: MockFactory) -> None:
    with Gate(PINS, replace(PULSE, pulse_s=5.0), pin_factory=factory) as gate:
        assert gate.open_for_person()
        factory.pin(PASSAGE).drive_low()
        assert gate.state() == GateState(True, False, False, False, 1)


def test_lockdown_refuses_and_keeps_relay_off(factory: MockFactory) -> None:
    with Gate(PINS, replace(PULSE, pulse_s=5.0), pin_factory=factory) as gate:
        relay = factory.pin(RELAY)
        relay.clear_states()
        assert gate.open_for_person()
        gate.set_lockdown(True)  # ends the running admission at once
        assert not gate.open_for_person()
        gate.emergency_open(True)  # lockdown wins over emergency open
        assert states(relay) == [OFF, ON, OFF]
        assert gate.state() == GateState(False, True, True, False, 0)
        gate.emergency_open(False)
        gate.set_lockdown(False)
        assert gate.open_for_person()
        assert states(relay) == [OFF, ON, OFF, ON]


@pytest.mark.parametrize("active_low", [True, False])
def test_fire_alarm_energises_relay_even_in_lockdown(
    factory: MockFactory, active_low: bool
) -> None:
    events: list[bool] = []
    pins = replace(PINS, fire_alarm_active_low=active_low)
    with Gate(pins, PULSE, pin_factory=factory, on_fire_alarm=events.append) as gate:
        relay, fire = factory.pin(RELAY), factory.pin(FIRE)
        alarm, clear = fire.drive_low, fire.drive_high
        if not active_low:
            alarm, clear = clear, alarm
        gate.set_lockdown(True)
        relay.clear_states()
        alarm()
        assert gate.state() == GateState(True, True, False, True, 0)
        assert not gate.open_for_person()  # still refused: lockdown
        clear()
        assert states(relay) == [OFF, ON, OFF]
        assert events == [True, False]
        assert not gate.state().fire_alarm


def test_fire_alarm_clearing_returns_to_emergency_open(factory: MockFactory) -> None:
    with Gate(PINS, PULSE, pin_factory=factory) as gate:
        relay, fire = factory.pin(RELAY), factory.pin(FIRE)
        gate.emergency_open(True)
        fire.drive_low()
        fire.drive_high()
        assert relay.state is ON
        gate.emergency_open(False)
        assert states(relay) == [False, OFF, ON, OFF]


def test_fire_alarm_active_at_start_energises_relay(factory: MockFactory) -> None:
    events: list[bool] = []
    factory.pin(FIRE, pin_class=PanelDrivenPin).drive_low()  # the panel holds the line low
    with Gate(PINS, PULSE, pin_factory=factory, on_fire_alarm=events.append) as gate:
        assert gate.state().fire_alarm
        assert factory.pin(RELAY).state is ON
        assert events == []  # changes only; the initial state is in state()


def test_emergency_open_holds_until_turned_off(factory: MockFactory) -> None:
    with Gate(PINS, PULSE, pin_factory=factory) as gate:
        relay = factory.pin(RELAY)
        relay.clear_states()
        gate.emergency_open(True)
        assert gate.open_for_person()
        assert holds_for(lambda: gate.state().relay_energised, 0.4)  # past the 0.2 s pulse
        assert gate.state() == GateState(True, False, True, False, 0)
        gate.emergency_open(False)
        assert states(relay) == [OFF, ON, OFF]


SIGNAL_CASES = [
    # signal, buzzer history, green history, warning history
    (Signal.GRANTED, [False, True, False], [False, True, False], [False]),
    (Signal.DENIED, [False] + [True, False] * 2, [False], [False, True, False]),
    (Signal.REFER, [False] + [True, False] * 3, [False], [False, True, False]),
    (Signal.FEVER, [False] + [True, False] * 3, [False], [False] + [True, False] * 2),
]


@pytest.mark.parametrize(("signal", "buzzer", "green", "warning"), SIGNAL_CASES)
def test_signal_patterns(
    factory: MockFactory,
    signal: Signal,
    buzzer: list[bool],
    green: list[bool],
    warning: list[bool],
) -> None:
    signal_s = 1.0 if signal is Signal.FEVER else 0.3  # fever: two 0.25 s blinks per second
    with Gate(PINS, replace(PULSE, signal_s=signal_s), pin_factory=factory) as gate:
        pins = {name: factory.pin(n) for name, n in [("b", BUZZER), ("g", GREEN), ("w", WARNING)]}
        expected = {"b": buzzer, "g": green, "w": warning}
        relay = factory.pin(RELAY)
        relay.clear_states()
        gate.show(signal)
        wait_until(lambda: all(len(pins[k].states) >= len(v) for k, v in expected.items()))
        assert {k: states(p) for k, p in pins.items()} == expected
        assert states(relay) == [OFF]
        if signal is Signal.FEVER:
            assert lasted(
                [s.timestamp for s in pins["b"].states[1:]], [0, 0.5, 0.25, 0.5, 0.25, 0.5]
            )
            assert lasted([s.timestamp for s in pins["w"].states[2:]], [0.25, 0.25, 0.25])
        else:
            lit = pins["g" if signal is Signal.GRANTED else "w"]
            assert lasted([lit.states[2].timestamp], [signal_s])


def test_new_signal_replaces_the_previous_one(factory: MockFactory) -> None:
    with Gate(PINS, replace(PULSE, signal_s=5.0), pin_factory=factory) as gate:
        gate.show(Signal.GRANTED)
        gate.show(Signal.DENIED)
        assert factory.pin(GREEN).state is False
        assert factory.pin(WARNING).state is True


def test_passage_debounce(factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(gate_module, "monotonic", lambda: now[0])
    passages: list[None] = []
    with Gate(PINS, PULSE, pin_factory=factory, on_passage=lambda: passages.append(None)) as gate:
        sensor = factory.pin(PASSAGE)
        for _ in range(3):  # chatter at one instant: one passage
            sensor.drive_low()
            sensor.drive_high()
        now[0] = 101.0
        sensor.drive_low()  # quiet for 1 s: counts
        now[0] = 101.5
        sensor.drive_high()  # release bounce ...
        now[0] = 101.6
        sensor.drive_low()  # ... 0.1 s after the last edge: ignored
        now[0] = 102.0
        sensor.drive_high()
        now[0] = 102.4
        sensor.drive_low()  # quiet for 0.4 s: counts
        assert gate.state().passages == 3
        assert len(passages) == 3


def test_close_releases_relay_during_pulse_and_is_idempotent(factory: MockFactory) -> None:
    gate = Gate(PINS, replace(PULSE, pulse_s=5.0), pin_factory=factory)
    relay = factory.pin(RELAY)
    relay.clear_states()
    assert gate.open_for_person()
    gate.close()
    assert states(relay) == [OFF, ON, OFF]
    assert relay.function == "input"
    gate.close()
    assert gate.closed
    assert repr(gate) == "<Gate relay=GPIO17 mode=pulse closed>"
    with pytest.raises(GPIODeviceClosed):
        gate.open_for_person()
    factory.pin(PASSAGE).drive_low()  # no callbacks after close
    assert gate.state().passages == 0


def test_relay_off_after_exception_in_with_block(factory: MockFactory) -> None:
    relay = factory.pin(RELAY)
    with pytest.raises(RuntimeError), Gate(PINS, PULSE, pin_factory=factory) as gate:
        assert gate.open_for_person()
        raise RuntimeError("boom")
    assert states(relay) == [False, OFF, ON, OFF]
    assert relay.state is OFF


def test_explicit_factory_leaves_global_unset(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Device, "pin_factory", None)
    with Gate(PINS, PULSE, pin_factory=factory) as gate:
        gate.open_for_person()
        gate.show(Signal.FEVER)
        factory.pin(PASSAGE).drive_low()
        factory.pin(FIRE).drive_low()
    assert Device.pin_factory is None


def test_force_relay_safe_drives_off_level(factory: MockFactory) -> None:
    relay = factory.pin(RELAY)
    relay.function = "output"
    relay.state = ON  # as a crashed daemon left it
    force_relay_safe(PINS, pin_factory=factory)
    assert relay.state is OFF
    assert relay.function == "input"


def test_callback_exception_is_logged(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("engine bug")

    with Gate(PINS, HOLD, pin_factory=factory, on_passage=broken) as gate:
        assert gate.open_for_person()
        with caplog.at_level(logging.ERROR, logger="kiosk.gate"):
            factory.pin(PASSAGE).drive_low()
        assert not gate.state().relay_energised
        assert "gate callback failed" in caplog.text


def test_repr_and_invalid_config(factory: MockFactory) -> None:
    with Gate(PINS, PULSE, pin_factory=factory) as gate:
        assert repr(gate) == (
            "<Gate relay=GPIO17 mode=pulse energised=False lockdown=False "
            "emergency_open=False fire_alarm=False passages=0>"
        )
    with pytest.raises(ValueError, match="passage sensor"):
        Gate(replace(PINS, passage_sensor=None), HOLD, pin_factory=factory)
    with pytest.raises(ValueError, match="pulse_s"):
        GateTiming("pulse", pulse_s=0)


class Watcher:
    """What the gate reports to the kiosk: passages with their cause, grants unused."""

    def __init__(self, gate: Gate) -> None:
        self.passages: list[GatePassage] = []
        self.unused: list[object] = []
        gate.watch_admissions(self.passages.append, self.unused.append)


def test_each_grant_is_good_for_one_passage(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(gate_module, "monotonic", lambda: now[0])
    with Gate(PINS, replace(PULSE, hold_timeout_s=8.0), pin_factory=factory) as gate:
        seen = Watcher(gate)
        sensor = factory.pin(PASSAGE)

        def through(after_s: float = 1.0) -> None:
            now[0] += after_s
            sensor.drive_low()
            now[0] += 0.5
            sensor.drive_high()

        assert gate.open_for_person("a")
        through()  # a
        through()  # someone on a's heels
        assert gate.open_for_person("b")
        through(after_s=9.0)  # b's grant is over: 9 s later is not b
        gate.emergency_open(True)
        through()
        gate.emergency_open(False)
        factory.pin(FIRE).drive_low()
        through()
        factory.pin(FIRE).drive_high()
        assert gate.open_for_person()  # a relay test from the status page
        through()
    assert seen.passages == [
        GatePassage(PassageCause.GRANT, "a"),
        GatePassage(PassageCause.NONE),
        GatePassage(PassageCause.NONE),
        GatePassage(PassageCause.OPERATOR),
        GatePassage(PassageCause.FIRE_ALARM),
        GatePassage(PassageCause.OPERATOR),
    ]
    assert seen.unused == []  # pulse mode cannot tell a grant nobody used


def test_hold_keeps_the_relay_released_for_each_person_granted(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(gate_module, "monotonic", lambda: now[0])
    with Gate(PINS, HOLD, pin_factory=factory) as gate:
        seen = Watcher(gate)
        relay, sensor = factory.pin(RELAY), factory.pin(PASSAGE)
        relay.clear_states()
        assert gate.open_for_person("a")
        assert gate.open_for_person("b")  # two people scanned one after the other
        sensor.drive_low()
        assert gate.state().relay_energised  # b has not passed yet
        now[0] += 1.0
        sensor.drive_high()
        now[0] += 1.0
        sensor.drive_low()
        assert states(relay) == [OFF, ON, OFF]
    assert [p.grant for p in seen.passages] == ["a", "b"]


def test_hold_reports_a_grant_that_expired_unused(factory: MockFactory) -> None:
    with Gate(PINS, replace(HOLD, hold_timeout_s=0.2), pin_factory=factory) as gate:
        seen = Watcher(gate)
        assert gate.open_for_person("a")
        wait_until(lambda: seen.unused == ["a"])
        assert not gate.state().relay_energised
        assert gate.open_for_person("b")
        gate.set_lockdown(True)  # locked before b went through: b's grant is unused too
        assert seen.unused == ["a", "b"]
        factory.pin(PASSAGE).drive_low()  # forced in lockdown
    assert seen.passages == [GatePassage(PassageCause.NONE)]


def test_the_gates_plain_data_loads_without_gpiozero() -> None:
    """Health and status code may use the gate's state and wiring without the GPIO library."""
    script = (
        "import sys, kiosk.gate_parts.data, kiosk.gate_parts.admissions;"
        " print('gpiozero' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
