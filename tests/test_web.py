"""The web app (kiosk.web) through Flask's test client, with small stand-ins for the kiosk."""

from __future__ import annotations

import multiprocessing
import re
import threading
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, Counter

from kiosk.decide import texts
from kiosk.operator.actions import Source
from kiosk.web import WebSettings, check_password, hash_password
from kiosk.web.child import Mirror
from kiosk.web.pipe import StatePush, WebTiming, encode
from tests.support import wait_until
from tests.web_fakes import (
    ACTIONS,
    BEARER,
    OPERATOR,
    PASSWORD,
    REMOTE,
    Clock,
    FakeOperator,
    FakeStatus,
    body,
    csrf,
    healthy_state,
    login,
)

# --- access ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/?before=50", "/chart/hourly.svg"])
def test_dashboard_pages_send_strangers_to_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")


@pytest.mark.parametrize("path", ["/api/v1/status", "/api/v1/events", "/api/v1/hourly"])
def test_api_refuses_strangers_with_401(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.json is not None and response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("path", "form", "call", "message"), ACTIONS)
def test_actions_refuse_strangers(
    client: FlaskClient,
    actions: FakeOperator,
    path: str,
    form: dict[str, str],
    call: Any,
    message: str,
) -> None:
    token = csrf(client, "/login")
    response = client.post(path, data=form | {"csrf_token": token})
    assert response.status_code == 302
    assert response.location.startswith("/login")
    assert actions.calls == []


def test_login_opens_the_dashboard_where_the_operator_was_going(client: FlaskClient) -> None:
    assert client.get("/?type=decision").location == "/login?next=/?type%3Ddecision"
    token = csrf(client, "/login")
    response = client.post(
        "/login?next=/?type%3Ddecision",
        data={"operator": OPERATOR, "password": PASSWORD, "csrf_token": token},
    )
    assert response.location == "/?type=decision"
    page = client.get("/")
    assert page.status_code == 200
    assert "gate-7" in page.text


def test_wrong_password_is_refused(client: FlaskClient) -> None:
    response = login(client, "guess")
    assert response.status_code == 401
    assert "Wrong password." in response.text
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(client: FlaskClient) -> None:
    assert client.post("/login", data={"password": PASSWORD}).status_code == 400
    assert client.get("/").status_code == 302


def test_failed_logins_are_rate_limited_per_address(client: FlaskClient, clock: Clock) -> None:
    for _ in range(5):
        assert login(client, "guess").status_code == 401
    clock.now += 30
    blocked = login(client, PASSWORD)
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"] == "30"
    assert "Too many failed logins" in blocked.text
    assert client.get("/").status_code == 302
    other = login(client, PASSWORD, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 302
    clock.now += 31
    assert login(client, PASSWORD).status_code == 302


@pytest.mark.parametrize("path", ["/", "/login"])
def test_no_password_set_dashboard_explains_how(make_app: Any, path: str) -> None:
    client = make_app(password_hash="").test_client()
    response = client.get(path)
    assert response.status_code == 503
    assert "kiosk web set-password" in response.text
    with client.session_transaction() as session:
        session["csrf"] = "token"
    assert client.post("/login", data={"password": "", "csrf_token": "token"}).status_code == 503


def test_password_hashes_are_salted_and_checked() -> None:
    first, second = hash_password("s3cret pass"), hash_password("s3cret pass")
    assert first.startswith("scrypt:") and first != second
    assert check_password(first, "s3cret pass")
    assert not check_password(first, "s3cret pasS")
    assert not check_password("", "")
    assert not check_password("nonsense$hash", "x")
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


# --- dashboard -------------------------------------------------------------------------


def test_dashboard_shows_identity_health_and_counts(operator: FlaskClient) -> None:
    page = operator.get("/").text
    for text in ("gate-7", "site hq", "gate mode", "version 0.1.0", "14.8", "24.1", "25.3"):
        assert text in page
    assert "disconnected" in page  # MQTT
    assert 'data-k="log.unconfirmed">17<' in page  # backlog
    assert 'data-k="log.oldest_unconfirmed_age_s">42.5<' in page
    assert "synchronised" in page
    assert 'data-k="today.granted">91<' in page
    assert 'data-k="today.fevers">1<' in page
    assert "now 37.5 °C" in page


def test_dashboard_lists_newest_events_with_pseudonymous_ids_only(operator: FlaskClient) -> None:
    page = operator.get("/").text
    seqs = [int(s) for s in re.findall(r"<tr class=\"\w*\"><td>(\d+)</td>", page)]
    assert seqs == list(range(120, 70, -1))
    assert "s-" + format(119, "020x") in page
    assert "PASSID" not in page
    assert 'href="/?before=71"' in page


def test_dashboard_pages_back_and_filters(operator: FlaskClient) -> None:
    older = operator.get("/?before=71").text
    seqs = [int(s) for s in re.findall(r"<tr class=\"\w*\"><td>(\d+)</td>", older)]
    assert seqs == list(range(70, 20, -1))
    assert ">Newest</a>" in older
    denied = operator.get("/?outcome=deny").text
    outcomes = re.findall(r"<td>(granted|denied)</td>", denied)
    assert outcomes and set(outcomes) == {"denied"}


def test_dashboard_refuses_a_bad_filter(operator: FlaskClient) -> None:
    response = operator.get("/?type=nonsense")
    assert response.status_code == 400
    assert "type must be one of" in response.text


def test_hourly_chart_is_an_svg_with_bars(operator: FlaskClient, status: FakeStatus) -> None:
    response = operator.get("/chart/hourly.svg?day=2024-03-05")
    assert response.content_type == "image/svg+xml"
    assert response.text.count("<rect") == 48
    assert "08:00 10" in response.text
    assert status.hourly_days == [date(2024, 3, 5)]


@pytest.mark.parametrize(("path", "form", "call", "message"), ACTIONS)
def test_each_action_calls_the_kiosk_and_confirms(
    operator: FlaskClient,
    actions: FakeOperator,
    path: str,
    form: dict[str, str],
    call: Any,
    message: str,
) -> None:
    response = operator.post(path, data=form | {"csrf_token": csrf(operator)})
    assert response.location == "/"
    assert actions.calls == [call]
    assert actions.operators == [OPERATOR]
    [asked] = actions.requests
    assert asked.source is Source.WEB and asked.request_id.startswith("web-")
    assert texts.text(message, "en") in operator.get("/").text


@pytest.mark.parametrize("token", [None, "forged"])
@pytest.mark.parametrize(("path", "form", "call", "message"), ACTIONS)
def test_actions_without_the_csrf_token_do_nothing(
    operator: FlaskClient,
    actions: FakeOperator,
    token: str | None,
    path: str,
    form: dict[str, str],
    call: Any,
    message: str,
) -> None:
    data = form if token is None else form | {"csrf_token": token}
    response = operator.post(path, data=data)
    assert response.status_code == 400
    assert "did not come from this page" in response.text
    assert actions.calls == []


@pytest.mark.parametrize("celsius", ["36.9", "39.1", "abc", "nan", ""])
def test_fever_threshold_out_of_bounds_is_refused(
    operator: FlaskClient, actions: FakeOperator, celsius: str
) -> None:
    response = operator.post(
        "/actions/fever-threshold", data={"celsius": celsius, "csrf_token": csrf(operator)}
    )
    assert response.status_code == 400
    assert "from 37.0 to 39.0 °C" in response.text
    assert "not changed" in response.text
    assert actions.calls == []


def test_a_failing_action_is_reported(operator: FlaskClient, actions: FakeOperator) -> None:
    actions.fail = True
    form = {"on": "1", "confirm": "1", "csrf_token": csrf(operator)}
    operator.post("/actions/lockdown", data=form)
    assert "Failed: event log is full" in operator.get("/").text


def test_on_off_must_be_explicit(operator: FlaskClient, actions: FakeOperator) -> None:
    response = operator.post("/actions/lockdown", data={"csrf_token": csrf(operator)})
    assert response.status_code == 400
    assert actions.calls == []


# --- API -------------------------------------------------------------------------------


def test_api_status_for_a_logged_in_operator(operator: FlaskClient) -> None:
    response = operator.get("/api/v1/status")
    assert response.json == healthy_state()


def test_api_accepts_the_bearer_token_only(client: FlaskClient) -> None:
    assert client.get("/api/v1/status", headers=BEARER).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/api/v1/status", headers=wrong).status_code == 401


def test_api_without_a_configured_token_refuses_empty_bearer(make_app: Any) -> None:
    client = make_app(api_token="").test_client()
    assert client.get("/api/v1/status", headers={"Authorization": "Bearer "}).status_code == 401


def test_api_events_select_and_page(client: FlaskClient) -> None:
    newest = body(client.get("/api/v1/events?limit=3", headers=BEARER))
    assert [e["seq"] for e in newest] == [120, 119, 118]
    older = body(client.get("/api/v1/events?limit=2&before=118", headers=BEARER))
    assert [e["seq"] for e in older] == [117, 116]
    fresh = body(client.get("/api/v1/events?after=117", headers=BEARER))
    assert [e["seq"] for e in fresh] == [120, 119, 118]
    health = body(client.get("/api/v1/events?type=health&limit=2", headers=BEARER))
    assert [e["seq"] for e in health] == [120, 110]
    denied = body(client.get("/api/v1/events?outcome=deny&limit=500", headers=BEARER))
    assert {e["data"]["outcome"] for e in denied} == {"deny"}


def test_api_hourly(client: FlaskClient, status: FakeStatus) -> None:
    rows = body(client.get("/api/v1/hourly?day=2024-03-05", headers=BEARER))
    assert len(rows) == 24 and rows[8]["granted"] == 10
    assert status.hourly_days == [date(2024, 3, 5)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("events?limit=0", "limit must be 1 to 500"),
        ("events?limit=501", "limit must be 1 to 500"),
        ("events?limit=ten", "limit must be a whole number"),
        ("events?before=0", "before must be 1 to 9223372036854775807, not '0'"),
        ("events?after=-1", "after must be 0 to 9223372036854775807, not '-1'"),
        ("events?type=bogus", "type must be one of"),
        ("events?outcome=maybe", "outcome must be one of"),
        ("hourly?day=2024-13-01", "day must be a date"),
        ("hourly?day=20240301", "day must be a date"),
    ],
)
def test_api_bad_parameters_are_400_json(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/api/v1/{query}", headers=BEARER)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "bad_request"
    assert message in response.json["message"]


def test_api_errors_are_json(client: FlaskClient) -> None:
    missing = client.get("/api/v1/nothing", headers=BEARER)
    assert missing.status_code == 404
    assert body(missing)["error"] == "not_found"
    wrong_method = client.post("/api/v1/status", headers=BEARER)
    assert wrong_method.status_code == 405
    assert body(wrong_method)["error"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]


def test_other_errors_are_short_html_without_traceback(
    operator: FlaskClient, status: FakeStatus
) -> None:
    missing = operator.get("/nothing")
    assert missing.status_code == 404 and missing.content_type.startswith("text/html")
    assert operator.get("/actions/lockdown").status_code == 405
    status.broken = True
    failed = operator.get("/")
    assert failed.status_code == 500
    assert "could not answer" in failed.text
    assert "Traceback" not in failed.text and "kiosk gone" not in failed.text


# --- display ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/display", "/display/last.json"])
def test_display_is_local_only_by_default(client: FlaskClient, path: str) -> None:
    assert client.get(path, environ_base=REMOTE).status_code == 403
    assert client.get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get(path, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_public_display_is_served_to_anyone(make_app: Any) -> None:
    client = make_app(display_public=True).test_client()
    assert client.get("/display", environ_base=REMOTE).status_code == 200


def test_operator_may_preview_the_display_from_afar(client: FlaskClient) -> None:
    login(client, REMOTE_ADDR="10.0.0.5")
    assert client.get("/display", environ_base=REMOTE).status_code == 200


def test_display_shows_instructions_in_both_languages(make_app: Any, status: FakeStatus) -> None:
    status.last = {"seq": 41, "outcome": "grant", "reason": "ok"}
    page = make_app(display_clear_s=3.5).test_client().get("/display").text
    for text in ("Quét mã QR", "Scan your QR code", "Stand in front of the thermometer"):
        assert text in page
    for vi, en in [
        ("Khẩu trang", "Mask"),
        ("Khử khuẩn", "Disinfect"),
        ("Khoảng cách", "Distance"),
        ("Không tụ tập", "No gathering"),
        ("Khai báo y tế", "Health declaration"),
    ]:
        assert vi in page and en in page
    assert 'data-last-seq="41"' in page  # a decision made before the page loaded is not shown
    assert 'data-clear-ms="3500"' in page


def test_display_json_shows_the_outcome_but_nobody(client: FlaskClient, status: FakeStatus) -> None:
    assert client.get("/display/last.json").json == {"decision": None}
    status.last = {
        "seq": 42,
        "ts_ms": 1_700_000_000_000,
        "outcome": "deny",
        "reason": "fever",
        "message_vi": "Sốt: vui lòng gặp bảo vệ",
        "message_en": "Fever: please see the guard",
        "temperature_c": 38.4,
        "subject": "s-0123456789abcdef0123",
        "pass_id": "0a1b2c3d4e5f6071",
    }
    response = client.get("/display/last.json")
    assert response.json == {
        "decision": {
            "seq": 42,
            "outcome": "deny",
            "reason": "fever",
            "message_vi": "Sốt: vui lòng gặp bảo vệ",
            "message_en": "Fever: please see the guard",
            "temperature_c": 38.4,
        }
    }
    assert "s-0123" not in response.text and "0a1b2c" not in response.text


# --- probes and metrics ----------------------------------------------------------------


def test_healthz_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"ok": True, "problems": []}


def test_healthz_names_failed_parts(client: FlaskClient, status: FakeStatus) -> None:
    status.document["thermometer"] |= {"ok": False, "detail": "I2C error"}
    status.document["log"]["ok"] = False
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["problems"] == ["thermometer: I2C error", "log: not working"]


def test_healthz_fails_when_the_kiosk_has_gone_quiet(
    client: FlaskClient, status: FakeStatus
) -> None:
    status.document["stale_s"] = 12
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {"ok": False, "problems": ["kiosk: no state from the kiosk for 12 s"]}


def test_the_web_process_marks_a_state_the_kiosk_has_stopped_renewing() -> None:
    ours, theirs = multiprocessing.Pipe()
    now = [100.0]
    timing = WebTiming(state_every_s=2.0)
    mirror = Mirror(theirs, timing, fever_threshold_c=37.5, clock=lambda: now[0])
    follower = threading.Thread(target=mirror.follow, daemon=True)
    follower.start()
    ours.send_bytes(encode(StatePush({"camera": {"ok": True}})))
    wait_until(lambda: mirror.state() != {})
    now[0] += timing.state_stale_s
    assert mirror.state() == {"camera": {"ok": True}}
    now[0] += 7
    assert mirror.state() == {"camera": {"ok": True}, "stale_s": 17}
    ours.close()
    follower.join(timeout=5)
    assert not follower.is_alive()


def test_healthz_when_the_kiosk_cannot_report(client: FlaskClient, status: FakeStatus) -> None:
    status.broken = True
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {"ok": False, "problems": ["state: OSError"]}


def test_metrics_serve_the_registry(client: FlaskClient, registry: CollectorRegistry) -> None:
    Counter("kiosk_decisions", "Decisions made", ["outcome"], registry=registry).labels(
        "grant"
    ).inc(3)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    assert 'kiosk_decisions_total{outcome="grant"} 3.0' in response.text


# --- headers and cookies ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/login", "/display", "/healthz", "/api/v1/status", "/nothing", "/static/style.css"]
)
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_pages_have_no_inline_script(operator: FlaskClient) -> None:
    for path in ("/", "/display"):
        scripts = re.findall(r"<script([^>]*)>", operator.get(path).text)
        assert scripts and all("src=" in attributes for attributes in scripts)


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(make_app: Any, secure: bool) -> None:
    client = make_app(secure_cookie=secure).test_client()
    cookie = login(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert ("Secure" in cookie) is secure


def test_settings_refuse_a_short_secret_key() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        WebSettings(password_hash="", secret_key=b"short")
