"""What the page's adapters take from a real kiosk (engine, SQLite log, gpiozero's MockFactory):
the goodbye at an exit, people inside in the state and /metrics, the operator in the log."""

from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory

from kiosk.run.statuspage import KioskActions, LastDecision
from tests.test_passback import Clock, config_for, kiosk_on, scan


def test_the_display_says_goodbye_to_someone_leaving(tmp_path: Path) -> None:
    clock = Clock()
    config = config_for(tmp_path, kiosk={"direction": "toggle"})
    with kiosk_on(config, MockFactory(), clock) as kiosk:
        last = LastDecision(kiosk)
        scan(kiosk)
        entering = last()
        clock.advance(30)
        scan(kiosk)
        leaving = last()
    assert entering is not None and entering["message_en"] == "Welcome, please enter"
    assert leaving is not None and leaving["outcome"] == "grant"
    assert (leaving["message_vi"], leaving["message_en"]) == (
        "Tạm biệt, hẹn gặp lại",
        "Goodbye, see you again",
    )


def test_people_inside_are_in_the_state_and_the_metrics(tmp_path: Path) -> None:
    clock = Clock()
    config = config_for(tmp_path, kiosk={"direction": "toggle", "area": "lobby"})
    with kiosk_on(config, MockFactory(), clock) as kiosk:

        def inside() -> tuple[object, float | None]:
            metric = kiosk.metrics.registry.get_sample_value(
                "kiosk_people_inside", {"area": "lobby"}
            )
            return kiosk.state()["occupancy"], metric

        before = inside()
        scan(kiosk)
        after_entry = inside()
        clock.advance(30)
        scan(kiosk)
        after_exit = inside()
    assert before == ({"area": "lobby", "inside": 0}, 0.0)
    assert after_entry == ({"area": "lobby", "inside": 1}, 1.0)
    assert after_exit == ({"area": "lobby", "inside": 0}, 0.0)


def test_a_checkin_kiosk_counts_nobody_inside(tmp_path: Path) -> None:
    config = config_for(tmp_path, kiosk={"mode": "checkin", "meeting": "weekly"})
    with kiosk_on(config, MockFactory()) as kiosk:
        assert kiosk.state()["occupancy"] is None
        assert (
            kiosk.metrics.registry.get_sample_value("kiosk_people_inside", {"area": "main"}) is None
        )


def test_a_dashboard_action_is_logged_with_the_operators_login(tmp_path: Path) -> None:
    with kiosk_on(config_for(tmp_path), MockFactory()) as kiosk:
        KioskActions(kiosk).set_lockdown(True, "guard-anh")
        [command] = kiosk.event_log.recent(5, type="command")
        assert kiosk.state()["gate"]["lockdown"] is True
    assert command.data["operator"] == "guard-anh"
    assert command.data["command"] == "lockdown" and command.data["args"] == {"on": True}
    assert command.data["id"].startswith("web-")
