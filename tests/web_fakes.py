"""Stand-ins for the kiosk and fixtures for the web app's tests (a plugin: tests/conftest.py)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from werkzeug.security import generate_password_hash

from kiosk.operator.actions import Action, ActionError, ActionOutcome, ActionRequest
from kiosk.web import WebSettings, create_app

PASSWORD = "correct horse battery"
OPERATOR = "guard-anh"  # a login name
# A cheap hash keeps the tests fast; hash_password() itself (scrypt) is tested once.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
SECRET = b"0123456789abcdef0123456789abcdef"
TOKEN = "api-token-1234"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
REMOTE = {"REMOTE_ADDR": "10.0.0.5"}


def healthy_state() -> dict[str, Any]:
    """A state document of a kiosk whose parts all work."""
    return {
        "kiosk": "gate-7",
        "site": "hq",
        "version": "0.1.0",
        "mode": "gate",
        "camera": {"ok": True, "detail": "ok", "fps": 14.8},
        "thermometer": {"ok": True, "detail": "ok", "ambient_c": 24.1, "object_c": 25.3},
        "gate": {
            "relay_energised": False,
            "lockdown": False,
            "emergency_open": False,
            "fire_alarm": False,
        },
        "log": {
            "ok": True,
            "rows": 130,
            "unconfirmed": 17,
            "oldest_unconfirmed_age_s": 42.5,
            "near_capacity": False,
        },
        "clock_synced": True,
        "today": {"granted": 91, "denied": 8, "referred": 2, "fevers": 1},
        "last_temperature_c": 36.6,
        "mqtt": {"connected": False, "in_flight": 0, "last_receipt_ms": None},
    }


def event(seq: int) -> dict[str, Any]:
    """Event ``seq``: every tenth a health event, else a decision (every third a denial)."""
    if seq % 10 == 0:
        return {
            "seq": seq,
            "ts_ms": 1_700_000_000_000 + seq * 1000,
            "type": "health",
            "data": {"part": "camera", "ok": True, "detail": "ok"},
        }
    outcome = "deny" if seq % 3 == 0 else "grant"
    return {
        "seq": seq,
        "ts_ms": 1_700_000_000_000 + seq * 1000,
        "type": "decision",
        "data": {
            "outcome": outcome,
            "reason": "unknown_credential" if outcome == "deny" else "ok",
            "subject": f"s-{seq:020x}",
            "credential": {"status": "valid", "pass_id": f"PASSID{seq:04d}"},
            "temperature": {"status": "normal", "celsius": 36.5},
        },
    }


class FakeStatus:
    """Stands for the kiosk's read-only status: 120 logged events, a healthy state."""

    def __init__(self) -> None:
        self.document = healthy_state()
        self.log = [event(seq) for seq in range(120, 0, -1)]
        self.last: dict[str, Any] | None = None
        self.broken = False
        self.hourly_days: list[date] = []

    def state(self) -> dict[str, Any]:
        if self.broken:
            raise OSError("kiosk gone")
        return self.document

    def events(
        self,
        *,
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        type: str | None,
        outcome: str | None,
    ) -> list[dict[str, Any]]:
        found = [
            e
            for e in self.log
            if (before_seq is None or e["seq"] < before_seq)
            and (after_seq is None or e["seq"] > after_seq)
            and (type is None or e["type"] == type)
            and (outcome is None or e["data"].get("outcome") == outcome)
        ]
        return found[:limit]

    def hourly(self, day: date) -> list[dict[str, Any]]:
        self.hourly_days.append(day)
        return [
            {"hour": h, "granted": 10 if h == 8 else 0, "denied": 0, "referred": 0, "fevers": 0}
            for h in range(24)
        ]

    def last_decision(self) -> dict[str, Any] | None:
        return self.last

    def fever_threshold_c(self) -> float:
        return 37.5


class FakeOperator:
    """Stands for the kiosk's operator: records each request (action, args) with its login
    name, and can change the status it stands beside as the kiosk would (``status``)."""

    def __init__(self, status: FakeStatus | None = None) -> None:
        self.calls: list[tuple[Action, dict[str, Any]]] = []
        self.operators: list[str] = []
        self.requests: list[ActionRequest] = []
        self.fail = False
        self.status = status

    def perform(self, request: ActionRequest) -> ActionOutcome:
        if self.fail:
            return ActionOutcome("event log is full", ActionError.LOG_UNAVAILABLE)
        self.requests.append(request)
        self.calls.append((request.action, dict(request.args)))
        self.operators.append(request.operator)
        if self.status is not None and request.action is Action.EMERGENCY_OPEN:
            self.status.document["gate"]["emergency_open"] = request.args["on"]
        if self.status is not None and request.action is Action.LOCKDOWN:
            self.status.document["gate"]["lockdown"] = request.args["on"]
        return ActionOutcome(f"{request.action} done")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def status() -> FakeStatus:
    return FakeStatus()


@pytest.fixture
def actions(status: FakeStatus) -> FakeOperator:
    return FakeOperator(status)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_app(
    status: FakeStatus, actions: FakeOperator, clock: Clock, registry: CollectorRegistry
) -> Any:
    def make(**overrides: Any) -> Flask:
        settings = WebSettings(
            **{
                "password_hash": PASSWORD_HASH,
                "secret_key": SECRET,
                "api_token": TOKEN,
                "language": "en",  # the tests read English unless they choose Vietnamese
            }
            | overrides
        )
        return create_app(status, actions, settings, registry=registry, clock=clock)

    return make


@pytest.fixture
def client(make_app: Any) -> FlaskClient:
    return make_app().test_client()


def body(response: Any) -> Any:
    """A response's JSON body (failing the test when there is none)."""
    assert response.is_json, response.text
    return response.json


def csrf(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token from a form on ``path``."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, f"no form on {path}"
    return found.group(1)


def login(client: FlaskClient, password: str = PASSWORD, **environ: str) -> Any:
    token = csrf(client, "/login")
    return client.post(
        "/login",
        data={"operator": OPERATOR, "password": password, "csrf_token": token},
        environ_base=environ,
    )


@pytest.fixture
def operator(client: FlaskClient) -> FlaskClient:
    """A client logged in as the operator."""
    assert login(client).status_code == 302
    return client


#: (path, form, the request the kiosk gets, the catalogue key of what the page says after it)
ACTIONS = [
    ("/actions/test-relay", {}, (Action.TEST_RELAY, {}), "dash.done.test_relay"),
    (
        "/actions/emergency-open",
        {"on": "1", "confirm": "1"},
        (Action.EMERGENCY_OPEN, {"on": True}),
        "dash.done.emergency_open_on",
    ),
    (
        "/actions/emergency-open",
        {"on": "0"},
        (Action.EMERGENCY_OPEN, {"on": False}),
        "dash.done.emergency_open_off",
    ),
    (
        "/actions/lockdown",
        {"on": "1", "confirm": "1"},
        (Action.LOCKDOWN, {"on": True}),
        "dash.done.lockdown_on",
    ),
    ("/actions/lockdown", {"on": "0"}, (Action.LOCKDOWN, {"on": False}), "dash.done.lockdown_off"),
    (
        "/actions/fever-threshold",
        {"celsius": "37.8"},
        (Action.SET_FEVER_THRESHOLD, {"celsius": 37.8}),
        "dash.done.fever_threshold",
    ),
]
