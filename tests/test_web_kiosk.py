"""What the page's adapters take from a real kiosk (engine, SQLite log, gpiozero's MockFactory):
the goodbye at an exit, people inside in the state and /metrics, and the page's actions carried
out by the kiosk over a real pipe (the page's end, its Mirror, runs in this process)."""

from __future__ import annotations

import contextlib
import multiprocessing
import subprocess
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.operator.actions import Action, ActionError, ActionOutcome, Source, request
from kiosk.run.engine import Kiosk
from kiosk.run.statuspage import LastDecision, WebChild, feed_web_process
from kiosk.web.child import Mirror
from kiosk.web.pipe import WebTiming
from tests.support import wait_until
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


class Page:
    """Stands for the page's process (its Mirror runs in this one): running until killed."""

    pid = 0
    returncode = None

    def __init__(self) -> None:
        self.ended = threading.Event()

    def poll(self) -> int | None:
        return -9 if self.ended.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired("page", timeout or 0)
        return -9

    def kill(self) -> None:
        self.ended.set()


@contextlib.contextmanager
def page_of(kiosk: Kiosk) -> Iterator[tuple[Mirror, Connection]]:
    """The kiosk feeding a page's mirror, as ``attach_web`` does; the page's end of the pipe."""
    ours, theirs = multiprocessing.Pipe()
    page, stop = Page(), threading.Event()
    timing = WebTiming(state_every_s=60, metrics_every_s=60, probe_every_s=60)
    feeder = threading.Thread(
        target=feed_web_process,
        args=(WebChild(cast("subprocess.Popen[bytes]", page), ours), stop),
        kwargs={
            "state": kiosk.state,
            "last": lambda: None,
            "registry": kiosk.metrics.registry,
            "operator": kiosk,
            "health_url": "http://127.0.0.1:9/healthz",  # nothing answers: never armed
            "timing": timing,
        },
    )
    mirror = Mirror(theirs, timing, fever_threshold_c=37.5)
    follower = threading.Thread(target=mirror.follow)
    feeder.start()
    follower.start()
    try:
        yield mirror, theirs
    finally:
        page.kill()
        feeder.join(timeout=10)
        follower.join(timeout=10)
    assert not feeder.is_alive() and not follower.is_alive()


def ask(mirror: Mirror, action: Action, **args: object) -> ActionOutcome:
    """What the dashboard does for a button: a request from the operator's login."""
    asked = request(action, args, operator="guard-anh", source=Source.WEB, request_id="web-1")
    return mirror.perform(asked)


def test_the_pages_relay_test_is_logged_then_releases_the_relay(tmp_path: Path) -> None:
    factory, config = MockFactory(), config_for(tmp_path)
    with kiosk_on(config, factory) as kiosk, page_of(kiosk) as (mirror, _):
        relay = factory.pin(config.gate.relay_pin)
        before = len(relay.states)
        assert ask(mirror, Action.TEST_RELAY) == ActionOutcome("relay released once")
        wait_until(lambda: not kiosk.gate.state().relay_energised)
        released_and_back = len(relay.states) - before
        [command] = kiosk.event_log.recent(5, type="command")
    assert released_and_back == 2
    assert command.data == {
        "id": "web-1",
        "command": "test_relay",
        "args": {},
        "operator": "guard-anh",
    }


def test_after_an_action_the_page_already_has_the_kiosks_new_state(tmp_path: Path) -> None:
    with kiosk_on(config_for(tmp_path), MockFactory()) as kiosk, page_of(kiosk) as (mirror, _):
        assert ask(mirror, Action.LOCKDOWN, on=True).ok
        assert mirror.state()["gate"]["lockdown"] is True  # pushed before the outcome
        refused = ask(mirror, Action.TEST_RELAY)
    assert refused.error == ActionError.NOT_ALLOWED
    assert refused.message == "relay not released: lockdown is on"


def test_the_kiosk_skips_what_the_page_sends_that_is_no_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with kiosk_on(config_for(tmp_path), MockFactory()) as kiosk, page_of(kiosk) as (mirror, pipe):
        pipe.send_bytes(b'{"type": "action", "action": "lockdown", "operator": "guard-anh"}')
        pipe.send_bytes(b'{"type": "metrics", "text": ""}')
        assert ask(mirror, Action.EMERGENCY_OPEN, on=False).ok  # the kiosk still answers
        commands = kiosk.event_log.recent(5, type="command")
    assert [c.data["command"] for c in commands] == ["emergency_open"]
    assert "skipped a message from the status page: not a message of the pipe" in caplog.text
    assert "skipped a MetricsPush from the status page" in caplog.text
    assert "guard-anh" not in caplog.text


def test_the_page_cannot_pass_its_requests_off_as_mqtt_commands(tmp_path: Path) -> None:
    """The page serves the network: whatever it says, its requests are the web's, logged with
    the operator who asked."""
    with kiosk_on(config_for(tmp_path), MockFactory()) as kiosk, page_of(kiosk) as (mirror, _):
        asked = request(
            Action.LOCKDOWN, {"on": True}, operator="guard-anh", source=Source.MQTT, request_id="x1"
        )
        assert mirror.perform(asked).ok
        [command] = kiosk.event_log.recent(5, type="command")
    assert command.data["operator"] == "guard-anh"


@pytest.mark.parametrize(
    ("operator", "request_id"),
    [
        ("", "web-1"),
        ("guard anh", "web-1"),
        ("g" * 33, "web-1"),
        ("guard-anh\n", "web-1"),
        ("guard-anh", "web 1\n" + "x" * 5000),
    ],
)
def test_a_request_naming_no_operators_login_is_refused_unlogged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, operator: str, request_id: str
) -> None:
    with kiosk_on(config_for(tmp_path), MockFactory()) as kiosk, page_of(kiosk) as (mirror, _):
        asked = request(
            Action.TEST_RELAY, {}, operator=operator, source=Source.WEB, request_id=request_id
        )
        outcome = mirror.perform(asked)
        commands = kiosk.event_log.recent(5, type="command")
        assert not kiosk.gate.state().relay_energised
    assert outcome.error == ActionError.NOT_ALLOWED
    assert commands == []
    assert "refused a test_relay request from the status page" in caplog.text
    assert (operator or "guard-anh") not in caplog.text
