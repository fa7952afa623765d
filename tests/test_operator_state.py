"""Operator state survives restarts: lockdown and the fever threshold are saved before an
action returns and restored before the first decision; an unusable file fails secure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.decide.decision import Reason
from kiosk.hardware import build_hardware
from kiosk.mqtt.protocol import Command, encode_command
from kiosk.operator.actions import Action, ActionError
from kiosk.operator.commands import CommandError, CommandProcessor
from kiosk.operator.state import (
    FILE_NAME,
    OperatorState,
    OperatorStateError,
    OperatorStateStore,
    parse,
)
from kiosk.run.engine import Kiosk
from kiosk.run.runtime import build_entrance
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person, Scene
from kiosk.store.eventlog import EventLog
from tests.support import SALT, kill_9_when, make_config, operate, running

RELAY = 17  # active-low: driven low = energised


def relay_energised_ever(factory: MockFactory) -> bool:
    return any(state.state is False for state in factory.pin(RELAY).states[1:])


@pytest.mark.slow
def test_lockdown_survives_kill_9_and_nobody_is_granted_after(tmp_path: Path) -> None:
    kill_9_when("tests.lockdown_child", tmp_path, (tmp_path / "locked").exists)

    config = make_config(tmp_path, thermometer={"enabled": False})
    factory = MockFactory()
    with running(config, pin_factory=factory) as door:
        assert door.kiosk.state()["gate"]["lockdown"] is True
        reasons = []
        for code in (b"S-0001", b"S-0002", b"S-0004"):
            door.scene.step_up(Person("staff", code, sim.nobody(), "deny"))
            reasons.append(door.next_decision().decision.reason)
    assert reasons == [Reason.LOCKDOWN] * 3
    assert not relay_energised_ever(factory)


def open_kiosk_on(config: Any, store: OperatorStateStore | None = None) -> Kiosk:
    hardware = build_hardware(config, simulate=True, scene=Scene())
    log = EventLog(config.log_path, boot_id="b")
    kiosk = Kiosk(
        config, hardware, log, build_entrance(config, SALT.encode()), operator_state=store
    )
    return kiosk


def close(kiosk: Kiosk) -> None:
    kiosk.hardware.close()
    kiosk.event_log.close()


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", json.dumps({"v": 1, "lockdown": "no"}).encode(), b"\xff\xfe"],
    ids=["garbage", "empty", "wrong types", "not utf-8"],
)
def test_an_unusable_state_file_starts_in_lockdown_and_says_why(
    tmp_path: Path, content: bytes
) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    (tmp_path / FILE_NAME).write_bytes(content)
    kiosk = open_kiosk_on(config)
    try:
        state = kiosk.state()
        health = kiosk.event_log.recent(5, type="health")
        assert state["gate"]["lockdown"] is True
        assert state["operator_state"]["ok"] is False
        assert "lockdown on until an operator ends it" in state["operator_state"]["detail"]
        assert "operator_state" in kiosk.health().degraded
        assert [e.data["part"] for e in health] == ["operator_state"]
        assert operate(kiosk, Action.LOCKDOWN, on=False).ok  # an operator looked and ends it
        assert kiosk.state()["operator_state"] == {"ok": True, "detail": "ok"}
    finally:
        close(kiosk)
    assert OperatorStateStore(tmp_path).load() == OperatorState(lockdown=False)


def test_a_state_file_that_cannot_be_read_fails_secure(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).mkdir()  # EISDIR: unreadable, not absent
    kiosk = open_kiosk_on(make_config(tmp_path, thermometer={"enabled": False}))
    try:
        assert kiosk.gate.state().lockdown
    finally:
        close(kiosk)


def test_the_fever_threshold_is_restored_unless_the_config_changed(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"fever_threshold_c": 37.8})
    kiosk = open_kiosk_on(config)
    try:
        assert operate(kiosk, Action.SET_FEVER_THRESHOLD, celsius=38.2).ok
        assert operate(kiosk, Action.EMERGENCY_OPEN, on=True).ok
    finally:
        close(kiosk)
    saved = OperatorStateStore(tmp_path).load()
    assert saved == OperatorState(False, True, 38.2, 37.8)

    again = open_kiosk_on(config)
    try:
        assert again.fever_threshold_c == 38.2
        assert not again.gate.state().emergency_open  # never restored: nobody is watching
    finally:
        close(again)
    changed = make_config(tmp_path, thermometer={"fever_threshold_c": 37.6})
    newer = open_kiosk_on(changed)
    try:
        assert newer.fever_threshold_c == 37.6  # the administrator's newer decision wins
    finally:
        close(newer)


def test_a_lockdown_that_cannot_be_saved_is_in_force_and_reported(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    kiosk = open_kiosk_on(config, OperatorStateStore(tmp_path / "missing"))
    try:
        on = operate(kiosk, Action.LOCKDOWN, on=True)
        assert on.error == ActionError.FAILED
        assert "lockdown is on, but a restart would end" in on.message
        assert kiosk.gate.state().lockdown  # fail secure: closed though not durable
        assert not kiosk.health().ok("operator_state")
        off = operate(kiosk, Action.LOCKDOWN, on=False)
        assert off.error == ActionError.FAILED and "still on: ending it failed" in off.message
        assert kiosk.gate.state().lockdown  # not ended: a restart would contradict it
        assert operate(kiosk, Action.SET_FEVER_THRESHOLD, celsius=38.0).error == ActionError.FAILED
        assert kiosk.fever_threshold_c == config.thermometer.fever_threshold_c
    finally:
        close(kiosk)


def test_a_command_whose_state_cannot_be_saved_is_reported_failed(tmp_path: Path) -> None:
    config = make_config(tmp_path, thermometer={"enabled": False})
    kiosk = open_kiosk_on(config, OperatorStateStore(tmp_path / "missing"))
    processor = CommandProcessor(
        kiosk,
        kiosk_id="test-1",
        key=None,
        allow_emergency_open=False,
        now_ms=lambda: 1_000_000,
    )
    try:
        outcome = processor.handle(
            encode_command(Command("c-1", "lockdown", {"on": True}, 999_000, 1_060_000, None))
        )
    finally:
        close(kiosk)
    assert outcome.error is CommandError.FAILED
    assert "lockdown is on, but a restart would end it" in outcome.message


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"v": 2}, "keys"),
        (
            {
                "v": 2,
                "lockdown": True,
                "emergency_open": False,
                "fever_threshold_c": None,
                "config_fever_c": None,
            },
            "version",
        ),
        (
            {
                "v": 1,
                "lockdown": True,
                "emergency_open": False,
                "fever_threshold_c": 45.0,
                "config_fever_c": None,
            },
            "outside",
        ),
    ],
)
def test_parse_refuses_what_it_cannot_trust(document: dict[str, Any], why: str) -> None:
    with pytest.raises(OperatorStateError, match=why):
        parse(json.dumps(document).encode())


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = OperatorStateStore(tmp_path)
    assert store.load() is None
    store.save(OperatorState(lockdown=True))
    store.save(OperatorState(lockdown=True, fever_threshold_c=38.0, config_fever_c=37.5))
    assert store.load() == OperatorState(True, False, 38.0, 37.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]
