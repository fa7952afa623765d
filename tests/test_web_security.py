"""The status page's defences through Flask's test client: sessions that really end, no
redirect off the site, CSRF on every POST, and query parameters that answer 400, never 500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from kiosk.store.eventlog import EventLog
from kiosk.web import WebSettings, create_app
from kiosk.web.sessions import MAX_SESSIONS, SESSION_LIFETIME_S, Sessions
from kiosk.web.status import KioskStatus
from tests.web_fakes import (
    BEARER,
    OPERATOR,
    PASSWORD,
    PASSWORD_HASH,
    REMOTE,
    SECRET,
    TOKEN,
    Clock,
    FakeOperator,
    csrf,
    healthy_state,
    login,
)

COOKIE = "kiosk_session"
IDLE_S = 600.0


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A second browser holding a copy of ``cookie`` (as a thief would)."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie)
    return other


def stolen(client: FlaskClient) -> str:
    found = client.get_cookie(COOKIE)
    assert found is not None
    return found.value


def assert_locked_out(app: Flask, cookie: str, token: str, actions: FakeOperator) -> None:
    """The copied cookie reads nothing and releases no relay, even with its CSRF token."""
    thief = replay(app, cookie)
    assert thief.get("/api/v1/status").status_code == 401
    assert thief.get("/").status_code == 302
    relay = thief.post("/actions/test-relay", data={"csrf_token": token})
    assert relay.status_code == 302 and relay.location.startswith("/login")
    assert actions.calls == []


# --- sessions ---------------------------------------------------------------------------


def test_logout_ends_the_session_for_every_copy_of_the_cookie(
    make_app: Any, actions: FakeOperator
) -> None:
    app = make_app()
    browser = app.test_client()
    assert login(browser).status_code == 302
    token = csrf(browser)
    cookie = stolen(browser)
    assert replay(app, cookie).get("/api/v1/status").status_code == 200

    assert browser.post("/logout", data={"csrf_token": token}).location == "/login"
    assert browser.get("/").status_code == 302
    assert_locked_out(app, cookie, token, actions)


def test_a_new_password_ends_every_session_at_once(
    make_app: Any, actions: FakeOperator, tmp_path: Path
) -> None:
    password_file = tmp_path / "web-password"
    password_file.write_text(PASSWORD_HASH + "\n", encoding="utf-8")
    app = make_app(password_hash="", password_file=password_file)
    browser = app.test_client()
    assert login(browser).status_code == 302
    token = csrf(browser)
    cookie = stolen(browser)

    new_password = "a different passphrase"
    new_hash = generate_password_hash(new_password, method="pbkdf2:sha256:1000")
    password_file.write_text(new_hash + "\n", encoding="utf-8")  # kiosk web set-password
    assert_locked_out(app, cookie, token, actions)
    assert browser.get("/").status_code == 302
    assert login(app.test_client(), PASSWORD).status_code == 401
    assert login(app.test_client(), new_password).status_code == 302


def test_a_removed_password_file_turns_the_dashboard_off(make_app: Any, tmp_path: Path) -> None:
    password_file = tmp_path / "web-password"
    password_file.write_text(PASSWORD_HASH, encoding="utf-8")
    app = make_app(password_hash="", password_file=password_file)
    browser = app.test_client()
    assert login(browser).status_code == 302
    password_file.unlink()
    assert browser.get("/").status_code == 503
    assert browser.get("/api/v1/status").status_code == 401


@pytest.mark.parametrize(
    ("polled", "refused"), [("/api/v1/status", 401), ("/display/last.json", 403)]
)
def test_an_idle_session_ends_and_polling_does_not_keep_it_open(
    make_app: Any, clock: Clock, polled: str, refused: int
) -> None:
    browser = make_app(session_idle_s=IDLE_S).test_client()
    assert login(browser, **REMOTE).status_code == 302
    clock.now += IDLE_S - 1
    assert browser.get("/", environ_base=REMOTE).status_code == 200  # the operator: still open
    for _ in range(4):  # an open tab polls by itself; nobody is there
        clock.now += IDLE_S / 4 - 1
        assert browser.get(polled, environ_base=REMOTE).status_code == 200
    clock.now += 4
    assert browser.get(polled, environ_base=REMOTE).status_code == refused
    assert browser.get("/", environ_base=REMOTE).status_code == 302


def test_at_most_32_sessions_are_held_the_least_recently_used_ending_first(clock: Clock) -> None:
    sessions = Sessions(IDLE_S, clock)
    first, second = sessions.open(PASSWORD_HASH), sessions.open(PASSWORD_HASH)
    clock.now += 1
    assert sessions.check(first, PASSWORD_HASH, touch=True)
    for _ in range(MAX_SESSIONS - 1):
        sessions.open(PASSWORD_HASH)
    assert sessions.check(first, PASSWORD_HASH, touch=False)
    assert not sessions.check(second, PASSWORD_HASH, touch=False)


def test_a_session_in_constant_use_still_ends_after_its_lifetime(
    make_app: Any, clock: Clock
) -> None:
    browser = make_app(session_idle_s=IDLE_S).test_client()
    assert login(browser).status_code == 302
    started = clock.now
    while clock.now - started < SESSION_LIFETIME_S - IDLE_S:
        clock.now += IDLE_S - 1
        assert browser.get("/").status_code == 200
    clock.now = started + SESSION_LIFETIME_S
    assert browser.get("/").status_code == 302


def test_logging_in_again_starts_a_new_session(make_app: Any) -> None:
    app = make_app()
    browser = app.test_client()
    assert login(browser).status_code == 302
    first = stolen(browser)
    assert login(browser).status_code == 302
    assert stolen(browser) != first
    assert replay(app, first).get("/api/v1/status").status_code == 401


def test_a_forged_session_id_is_not_a_session(make_app: Any) -> None:
    browser = make_app().test_client()
    with browser.session_transaction() as session:
        session["sid"] = "guessed"
        session["operator"] = "anything the old cookie held"
    assert browser.get("/api/v1/status").status_code == 401


def test_the_bearer_token_is_not_a_session(client: FlaskClient) -> None:
    assert client.get("/api/v1/status", headers=BEARER).json == healthy_state()
    assert client.get("/").status_code == 302


# --- redirect after login -------------------------------------------------------------

EVIL_NEXT = [
    "//evil.example",
    "///evil.example",
    "/%2F/evil.example",
    "%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%0D/evil.example",
    "%09//evil.example",
    "%20//evil.example",
    "/\\evil.example",
    "/%5Cevil.example",
    "\\\\evil.example",
    "%5C%5Cevil.example",
    "/%255Cevil.example",
    "http://evil.example",
    "HTTPS://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "%6Aavascript:alert(1)",
    "jAvAsCrIpT%3Aalert(1)",
    "data:text/html,hi",
    "evil.example",
    "/x%0D%0ASet-Cookie:%20kiosk_session=x",
    "/x%0D%0A%0D%0A<script>",
    "/%00/evil.example",
    "/%E2%80%8B/evil.example",
    "/%C3%A9",
    "/#//evil.example",
    "/" + "a" * 600,
]
GOOD_NEXT = ["/", "/?type=decision", "/?before=71&outcome=deny", "/chart/hourly.svg"]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_login_goes_to_the_dashboard_instead_of_another_site(
    client: FlaskClient, target: str
) -> None:
    form = client.get(f"/login?next={target}").text
    assert "evil" not in form and "script" not in form
    token = csrf(client, "/login")
    response = client.post(
        f"/login?next={target}",
        data={"operator": OPERATOR, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.location == "/"


@pytest.mark.parametrize("target", GOOD_NEXT)
def test_login_returns_to_a_page_of_the_site(client: FlaskClient, target: str) -> None:
    token = csrf(client, "/login")
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"operator": OPERATOR, "password": PASSWORD, "csrf_token": token},
    )
    assert response.location == target
    assert urlsplit(response.location).netloc == ""


# --- CSRF is the default ----------------------------------------------------------------


@pytest.fixture
def app_with_a_new_form(make_app: Any) -> tuple[Flask, list[str]]:
    """The app with a POST view added later that never mentions CSRF."""
    app = make_app()
    done: list[str] = []

    @app.route("/added-later", methods=["POST", "PUT", "DELETE"])
    def added_later() -> str:
        done.append("ran")
        return "done"

    return app, done


def test_a_new_post_view_is_refused_without_the_token(
    app_with_a_new_form: tuple[Flask, list[str]],
) -> None:
    app, done = app_with_a_new_form
    browser = app.test_client()
    assert login(browser).status_code == 302
    for method in ("POST", "PUT", "DELETE"):
        refused = browser.open("/added-later", method=method, data={"x": "1"})
        assert refused.status_code == 400
        assert "did not come from this page" in refused.text
    forged = browser.post("/added-later", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert done == []

    token = csrf(browser)
    assert browser.post("/added-later", data={"csrf_token": token}).text == "done"
    assert browser.post("/added-later", headers={"X-CSRF-Token": token}).text == "done"
    assert done == ["ran", "ran"]


def test_a_token_from_another_session_is_refused(
    app_with_a_new_form: tuple[Flask, list[str]],
) -> None:
    app, done = app_with_a_new_form
    other = app.test_client()
    token = csrf(other, "/login")
    browser = app.test_client()
    login(browser)
    assert browser.post("/added-later", data={"csrf_token": token}).status_code == 400
    assert done == []


def test_unknown_routes_and_methods_keep_their_own_errors(client: FlaskClient) -> None:
    assert client.post("/nothing").status_code == 404
    assert client.post("/api/v1/status", headers=BEARER).status_code == 405


# --- query parameters ---------------------------------------------------------------------


class View:
    """What KioskStatus reads from a kiosk besides the log."""

    fever_threshold_c = 37.5

    def state(self) -> dict[str, Any]:
        return healthy_state()

    def last_decision(self) -> dict[str, Any] | None:
        return None


@pytest.fixture
def real_log(tmp_path: Path, clock: Clock) -> FlaskClient:
    """An operator's browser on an app that reads a real SQLite event log."""
    path = tmp_path / "events.db"
    with EventLog(path, boot_id="boot-1") as log:
        for number in range(60):
            outcome = "deny" if number % 3 == 0 else "grant"
            log.append("decision", {"outcome": outcome, "reason": "ok", "subject": "s-1"})
    settings = WebSettings(password_hash=PASSWORD_HASH, secret_key=SECRET, api_token=TOKEN)
    app = create_app(KioskStatus(View(), path), FakeOperator(), settings, clock=clock)
    browser = app.test_client()
    assert login(browser).status_code == 302
    return browser


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/api/v1/events?before=99999999999999999999999", "before must be a whole number"),
        ("/api/v1/events?before=9223372036854775808", "before must be 1 to 9223372036854775807"),
        ("/api/v1/events?after=9223372036854775808", "after must be 0 to 9223372036854775807"),
        ("/api/v1/hourly?day=9999-12-31", "day must be from 1970-01-01 to 9998-12-31"),
        ("/api/v1/hourly?day=0001-01-01", "day must be from 1970-01-01 to 9998-12-31"),
        ("/?before=9223372036854775808", "before must be 1 to 9223372036854775807"),
        ("/chart/hourly.svg?day=9999-12-31", "day must be from 1970-01-01 to 9998-12-31"),
        ("/chart/hourly.svg?day=0001-01-01", "day must be from 1970-01-01 to 9998-12-31"),
    ],
)
def test_out_of_range_parameters_are_400_with_the_reason(
    real_log: FlaskClient, query: str, message: str
) -> None:
    response = real_log.get(query)
    assert response.status_code == 400
    assert message in response.text


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/events?before=9223372036854775807&after=0&limit=500",
        "/api/v1/events?after=9223372036854775807",
        "/api/v1/hourly?day=1970-01-01",
        "/api/v1/hourly?day=9998-12-31",
        "/chart/hourly.svg?day=9998-12-31",
        "/?before=9223372036854775807",
    ],
)
def test_the_extreme_allowed_values_answer(real_log: FlaskClient, query: str) -> None:
    assert real_log.get(query).status_code == 200


PARAMETERS = {
    "/api/v1/events": ("limit", "before", "after", "type", "outcome"),
    "/api/v1/hourly": ("day",),
    "/": ("before", "type", "outcome"),
    "/chart/hourly.svg": ("day",),
    "/login": ("next",),
}
FUZZ = [
    "-1", "0", "1", "500", "501", "-9223372036854775808", "-9223372036854775809",
    "9223372036854775807", "9223372036854775808", "99999999999999999999999", "9" * 5000,
    "１２", "٣", "1_000", " 5", "5 ", "+5", "0x10", "1e3", "nan", "inf", "", "%00", "\x00",
    "'; DROP TABLE events;--", "ä", "decision", "deny", "1970-01-01", "9998-12-31",
    "9999-12-31", "0001-01-01", "2024-02-30", "2024-13-01", "１９７０-01-01", "2024-1-1",
    "+002024-01-01", "a" * 10000, "%", "%ZZ", "/\\x",
]  # fmt: skip
#: Sent as they are: bytes that are not UTF-8 once decoded.
RAW = ["%ED%A0%80", "%FF%FE", "%C0%AF", "%00"]


@pytest.mark.parametrize("path", list(PARAMETERS))
def test_every_parameter_of_every_view_answers_200_or_400(real_log: FlaskClient, path: str) -> None:
    for name in PARAMETERS[path]:
        sent = [{name: value} for value in FUZZ] + [f"{name}={raw}" for raw in RAW]
        for query in sent:
            response = real_log.get(path, query_string=query)
            assert response.status_code in (200, 400), (query, response.status_code)
            if response.status_code == 400:
                assert name in response.text, query
                assert "a" * 100 not in response.text  # a refused value is cut short
            assert "Traceback" not in response.text
