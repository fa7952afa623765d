"""Operator actions on a real kiosk (simulated hardware, a real log): one path for the status
page and MQTT commands, each request durable as a ``command`` event before it acts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from kiosk.config import KioskConfig
from kiosk.decide.decision import Outcome
from kiosk.hardware import build_hardware
from kiosk.mqtt.protocol import Command, encode_command
from kiosk.operator.actions import Action, ActionError, ActionOutcome, Source, request
from kiosk.operator.commands import CommandError, CommandProcessor
from kiosk.run.engine import Kiosk
from kiosk.run.runtime import build_entrance, load_allowlist
from kiosk.sensors.qr import Scan
from kiosk.sensors.simulation import Scene
from kiosk.store.eventlog import EventLog, read_events
from tests.support import SALT, make_config, wait_until

RELAY, FEEDBACK = 17, 6
NOW = 1_700_000_000_000


def open_kiosk(
    config: KioskConfig,
    factory: MockFactory,
    resender: Callable[[int], None] | None = None,
    **log: Any,
) -> Kiosk:
    hardware = build_hardware(config, simulate=True, scene=Scene(), pin_factory=factory)
    return Kiosk(
        config,
        hardware,
        EventLog(config.log_path, boot_id="b", **log),
        build_entrance(config, SALT.encode()),
        allowlist_loader=lambda: load_allowlist(config),
        resender=resender,
    )


@pytest.fixture
def config(tmp_path: Path) -> KioskConfig:
    return make_config(tmp_path, thermometer={"enabled": False})


@pytest.fixture
def factory() -> MockFactory:
    factory = MockFactory()
    factory.pin(RELAY, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK))
    return factory


@pytest.fixture
def kiosk(config: KioskConfig, factory: MockFactory) -> Iterator[Kiosk]:
    kiosk = open_kiosk(config, factory)
    yield kiosk
    kiosk.hardware.close()
    kiosk.event_log.close()


def web(action: Action, args: dict[str, Any] | None = None, request_id: str = "web-1") -> Any:
    return request(
        action, args or {}, operator="guard-anh", source=Source.WEB, request_id=request_id
    )


def commands_logged(config: KioskConfig) -> list[dict[str, Any]]:
    return [event.data for event in read_events(config.log_path, type="command")]


def relay_energised_ever(factory: MockFactory) -> bool:
    return any(state.state is False for state in factory.pin(RELAY).states[1:])  # active-low


def test_the_relay_test_is_logged_before_the_relay_moves_from_the_page_and_over_mqtt(
    config: KioskConfig, factory: MockFactory, kiosk: Kiosk
) -> None:
    """At the instant the relay energises, the request is already durable in the log."""
    feedback = DigitalInputDevice(FEEDBACK, pull_up=None, active_state=False, pin_factory=factory)
    logged_when_energised: list[list[dict[str, Any]]] = []
    feedback.when_activated = lambda: logged_when_energised.append(commands_logged(config))
    processor = CommandProcessor(
        kiosk, kiosk_id="test-1", key=None, allow_emergency_open=True, now_ms=lambda: NOW
    )
    try:
        from_page = kiosk.perform(web(Action.TEST_RELAY))
        wait_until(lambda: not kiosk.gate.state().relay_energised)  # the pulse is over
        over_mqtt = processor.handle(
            encode_command(Command("cmd-1", "test_relay", {}, NOW, NOW + 30_000))
        )
    finally:
        feedback.close()
    assert (from_page, over_mqtt.ok) == (ActionOutcome("relay released once"), True)
    page_event = {"id": "web-1", "command": "test_relay", "args": {}, "operator": "guard-anh"}
    mqtt_event = {"id": "cmd-1", "command": "test_relay", "args": {}}  # as docs/mqtt.md says
    assert logged_when_energised == [[page_event], [page_event, mqtt_event]]


def test_the_relay_test_is_refused_in_lockdown_and_still_logged(
    config: KioskConfig, factory: MockFactory, kiosk: Kiosk
) -> None:
    assert kiosk.perform(web(Action.LOCKDOWN, {"on": True}, "web-1")).ok
    outcome = kiosk.perform(web(Action.TEST_RELAY, request_id="web-2"))
    assert (outcome.error, outcome.message) == (
        ActionError.NOT_ALLOWED,
        "relay not released: lockdown is on",
    )
    assert [c["command"] for c in commands_logged(config)] == ["lockdown", "test_relay"]
    assert not relay_energised_ever(factory)


def test_a_request_that_cannot_be_logged_is_not_carried_out(
    config: KioskConfig, factory: MockFactory
) -> None:
    kiosk = open_kiosk(config, factory, reserve_bytes=2**62)  # no disk has this much free
    try:
        outcome = kiosk.perform(web(Action.TEST_RELAY))
        locked = kiosk.perform(web(Action.LOCKDOWN, {"on": True}))
        assert not kiosk.health().ok("log")
    finally:
        kiosk.hardware.close()
        kiosk.event_log.close()
    assert outcome.error == locked.error == ActionError.LOG_UNAVAILABLE
    assert "disk full" in outcome.message
    assert not relay_energised_ever(factory)
    assert not kiosk.gate.state().lockdown


@pytest.mark.parametrize(
    ("action", "args", "message", "data"),
    [
        (Action.LOCKDOWN, {"on": True}, "lockdown on", {"lockdown": True}),
        (Action.EMERGENCY_OPEN, {"on": True}, "emergency open on", {"emergency_open": True}),
        (Action.RELOAD_ALLOWLIST, {}, "allowlist reloaded: 8 badges", {"badges": 8}),
        (
            Action.SET_FEVER_THRESHOLD,
            {"celsius": 38},
            "fever threshold set to 38 °C",
            {"fever_threshold_c": 38.0},
        ),
    ],
)
def test_each_action_is_logged_then_carried_out(
    config: KioskConfig,
    kiosk: Kiosk,
    action: Action,
    args: dict[str, Any],
    message: str,
    data: dict[str, Any],
) -> None:
    outcome = kiosk.perform(web(action, args))
    assert outcome == ActionOutcome(message, data=data)
    [logged] = commands_logged(config)
    assert logged == {"id": "web-1", "command": action.value, "args": args, "operator": "guard-anh"}
    state = kiosk.state()
    assert state["gate"]["lockdown"] is (action is Action.LOCKDOWN)
    assert state["gate"]["emergency_open"] is (action is Action.EMERGENCY_OPEN)
    assert kiosk.fever_threshold_c == (38.0 if action is Action.SET_FEVER_THRESHOLD else 37.5)


def test_resend_goes_to_the_sync_and_fails_without_one(
    config: KioskConfig, factory: MockFactory
) -> None:
    asked: list[int] = []
    outcomes = []
    for resender in (None, asked.append):  # MQTT off, then on: the sync's resend handed in
        kiosk = open_kiosk(config, factory, resender)
        try:
            outcomes.append(kiosk.perform(web(Action.RESEND, {"from_seq": 7}, f"web-{resender}")))
        finally:
            kiosk.hardware.close()
            kiosk.event_log.close()
    off, on = outcomes
    assert off.error is ActionError.FAILED
    assert (on.ok, on.data, asked) == (True, {"from_seq": 7}, [7])


def test_a_bad_allowlist_file_fails_and_keeps_the_old_list(
    config: KioskConfig, kiosk: Kiosk
) -> None:
    assert config.credentials.allowlist
    Path(config.credentials.allowlist).write_text("id,kind,valid_until\nA1,alien,\n")
    outcome = kiosk.perform(web(Action.RELOAD_ALLOWLIST))
    assert outcome.error is ActionError.FAILED
    assert "allowlist.csv:2" in outcome.message
    assert [c["command"] for c in commands_logged(config)] == ["reload_allowlist"]
    record = kiosk.handle_scan(Scan(b"S-0001", too_large=False, seen_at=0.0))
    assert record is not None and record.decision.outcome is Outcome.GRANT  # the old list


def test_an_action_that_raises_unexpectedly_is_answered_as_failed(
    config: KioskConfig, kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(on: bool) -> None:
        raise RuntimeError("GPIO busy")

    monkeypatch.setattr(kiosk.gate, "set_lockdown", broken)
    processor = CommandProcessor(
        kiosk, kiosk_id="test-1", key=None, allow_emergency_open=False, now_ms=lambda: NOW
    )
    outcome = processor.handle(
        encode_command(Command("cmd-1", "lockdown", {"on": True}, NOW, NOW + 30_000))
    )
    assert (outcome.error, outcome.message) == (
        CommandError.FAILED,
        "lockdown failed: RuntimeError",
    )
    assert commands_logged(config) == [{"id": "cmd-1", "command": "lockdown", "args": {"on": True}}]
