"""The fleet dashboard through Flask's test client: users and roles, the kiosk page's security
habits, the fleet, alerts and their acknowledgement, confirmed site commands, roster upload,
the daily list, languages, probes and metrics. tests/test_central_web_ui.py drives it in a
browser against a real broker."""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from kiosk.central import Store, roster, web
from kiosk.central.reports import deliveries
from kiosk.central.reports.deliveries import Delivery
from kiosk.central.rosterfile import MAX_FILE_BYTES, Holder
from kiosk.central.settings import DEFAULT_TIMEZONE, WebSection
from kiosk.central.web import create_central_app
from kiosk.central.web.app import MAX_UPLOAD
from kiosk.central.web.commands import MAX_RUNNING
from kiosk.central.web.context import KEY, CentralWeb, CommandSent
from kiosk.central.web.server import serve
from kiosk.central.web.texts import TEXTS
from kiosk.central.web.users import read_users
from kiosk.cli.main import cli
from tests.broker import free_port
from tests.central_web_support import ADMIN, PASSWORD, SITE, VIEWER, config, fill, write_users
from tests.support import wait_until

pytest_plugins = ("tests.central_fixtures",)

#: "Now" for the dashboard: noon of the site's day, so the events of the half hour before it
#: are all in that day whenever the tests run.
TODAY = datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date()
NOON_MS = int(datetime.combine(TODAY, time(12), ZoneInfo(DEFAULT_TIMEZONE)).timestamp() * 1000)


class Recorder:
    """A publisher that records what it was asked to send and says each was carried out."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = []

    def __call__(
        self, name: str, args: dict[str, Any], targets: Sequence[tuple[str, str]]
    ) -> list[CommandSent]:
        self.sent.append((name, args, list(targets)))
        return [CommandSent(site, kiosk, "done", "ok") for site, kiosk in targets]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_app(tmp_path: Path, store: Store, recorder: Recorder) -> Iterator[Any]:
    fill(store, NOON_MS)
    write_users(tmp_path / "users.toml", **{ADMIN: "admin", VIEWER: "viewer"})

    def make(**options: Any) -> Flask:
        cfg = config(tmp_path, **options)
        return create_central_app(store, cfg, publisher=recorder, now_ms=lambda: NOON_MS)

    yield make


def token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def login(client: FlaskClient, user: str, password: str = PASSWORD) -> Any:
    form = {"user": user, "password": password, "csrf_token": token(client.get("/login").text)}
    return client.post("/login", data=form)


def logged_in(make_app: Any, user: str, **options: Any) -> FlaskClient:
    client = make_app(**options).test_client()
    assert login(client, user).status_code == 302
    return client


def test_without_users_the_dashboard_explains_how_to_make_one(tmp_path: Path, store: Store) -> None:
    client = create_central_app(store, config(tmp_path)).test_client()
    page = client.get("/login")
    assert page.status_code == 503 and "kiosk central web set-password" in page.text
    assert client.get("/").headers["Location"].startswith("/login")
    (tmp_path / "users.toml").write_text('anh = { role = "root", password_hash = "x" }\n')
    assert client.get("/login").status_code == 503  # a wrong file lets nobody in


def test_a_viewer_sees_every_kiosk_with_its_health_and_counts(make_app: Any) -> None:
    page = logged_in(make_app, VIEWER).get("/")
    assert page.status_code == 200
    rows = re.findall(r'<tr class="kiosk (\w+)" data-kiosk="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [(a, k) for a, k, _ in rows] == [
        ("online", f"{SITE}/gate-1"),
        ("online", f"{SITE}/gate-2"),
        ("offline", f"{SITE}/lobby"),
    ]
    lobby = rows[2][2]
    assert "mất kết nối" in lobby and "nhiệt kế" in lobby and "chưa đồng bộ" in lobby
    assert "15 giây trước" in lobby and "ago" not in page.text
    gate = rows[0][2]
    assert "0.1.0" in gate and ">17<" in gate and ">42 giây<" in gate and "91 vào" in gate


def test_the_kiosk_pages_security_headers_and_cookie(make_app: Any) -> None:
    client = make_app().test_client()
    answer = login(client, VIEWER)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"


def test_a_wrong_password_is_refused_and_rate_limited(make_app: Any) -> None:
    client = make_app().test_client()
    assert login(client, ADMIN, "wrong password").status_code == 401
    for _ in range(4):
        login(client, ADMIN, "wrong password")
    refused = login(client, ADMIN)
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def proxied_app(make_app: Any, **web: Any) -> Flask:
    app: Flask = make_app()
    central: CentralWeb = app.extensions[KEY]
    settings = dataclasses.replace(central.config.web, **web)
    cfg = dataclasses.replace(central.config, web=settings)
    return create_central_app(central.store, cfg, now_ms=lambda: NOON_MS)


def proxied_login(client: FlaskClient, address: str, password: str = PASSWORD) -> Any:
    """A login through the TLS proxy (10.0.0.1) from the client at ``address``."""
    forwarded = {"X-Forwarded-For": address, "X-Forwarded-Proto": "https"}
    page = client.get("/login", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    form = {"user": ADMIN, "password": password, "csrf_token": token(page.text)}
    return client.post(
        "/login", data=form, headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    )


def test_behind_a_trusted_proxy_each_client_is_limited_on_its_own_with_a_secure_cookie(
    make_app: Any,
) -> None:
    client = proxied_app(make_app, trusted_proxies=1).test_client()
    for _ in range(5):
        assert proxied_login(client, "203.0.113.7", "wrong password").status_code == 401
    assert proxied_login(client, "203.0.113.7").status_code == 429
    answer = proxied_login(client, "198.51.100.2")
    assert answer.status_code == 302
    assert "Secure" in answer.headers["Set-Cookie"]


def test_without_a_trusted_proxy_a_forwarded_address_is_not_believed(make_app: Any) -> None:
    client = proxied_app(make_app).test_client()
    for _ in range(5):
        proxied_login(client, "203.0.113.7", "wrong password")
    assert proxied_login(client, "198.51.100.2").status_code == 429
    answer = proxied_app(make_app, secure_cookie="yes").test_client()
    assert "Secure" in proxied_login(answer, "198.51.100.2").headers["Set-Cookie"]
    assert "Secure" not in login(make_app().test_client(), VIEWER).headers["Set-Cookie"]


def test_a_post_without_the_csrf_token_is_refused(make_app: Any, recorder: Recorder) -> None:
    client = logged_in(make_app, ADMIN)
    answer = client.post("/commands/lockdown", data={"target": f"{SITE}/gate-1", "on": "1"})
    assert answer.status_code == 400 and recorder.sent == []


def test_a_viewer_cannot_send_a_command(make_app: Any, recorder: Recorder) -> None:
    client = logged_in(make_app, VIEWER)
    csrf = token(client.get("/").text)
    form = {"target": f"{SITE}/gate-1", "on": "1", "confirm": "1", "csrf_token": csrf}
    assert client.post("/commands/lockdown", data=form).status_code == 403
    assert client.get("/commands").status_code == 403 and recorder.sent == []
    assert client.get("/reports/daily?date=2026-01-05&format=csv").status_code == 403


def test_a_site_lockdown_is_sent_only_after_its_confirmation(
    make_app: Any, recorder: Recorder
) -> None:
    client = logged_in(make_app, ADMIN)
    csrf = token(client.get("/commands").text)
    asked = client.post("/commands/lockdown", data={"target": SITE, "on": "1", "csrf_token": csrf})
    assert asked.status_code == 200 and recorder.sent == []
    assert all(f"{SITE}/{kiosk}" in asked.text for kiosk in ("gate-1", "gate-2", "lobby"))
    form = {"target": SITE, "on": "1", "confirm": "1", "csrf_token": token(asked.text)}
    sent = answers(client, client.post("/commands/lockdown", data=form))
    assert sent.count("đã thực hiện") == 3
    targets = [(SITE, "gate-1"), (SITE, "gate-2"), (SITE, "lobby")]
    assert recorder.sent == [("lockdown", {"on": True}, targets)]


def answers(client: FlaskClient, posted: Any) -> str:
    """The page of a command sent in the background, once every kiosk's answer is in."""
    assert posted.status_code == 303
    location = posted.headers["Location"]
    wait_until(lambda: 'id="sent"' in client.get(location).text)
    page: str = client.get(location).text
    return page


def test_a_command_is_sent_in_the_background_and_its_page_reloads_until_answered(
    tmp_path: Path, store: Store
) -> None:
    fill(store, NOON_MS)
    write_users(tmp_path / "users.toml", **{ADMIN: "admin"})
    release = threading.Event()
    started: list[int] = []

    def slow(name: str, args: dict[str, Any], targets: Sequence[tuple[str, str]]) -> Any:
        started.append(len(targets))
        release.wait(30)
        return [CommandSent(site, kiosk, "pending", "") for site, kiosk in targets]

    app = create_central_app(store, config(tmp_path), publisher=slow, now_ms=lambda: NOON_MS)
    client = app.test_client()
    login(client, ADMIN)
    csrf = token(client.get("/commands").text)
    form = {"target": SITE, "on": "1", "confirm": "1", "csrf_token": csrf}
    posted = [client.post("/commands/lockdown", data=form) for _ in range(MAX_RUNNING)]
    assert all(p.status_code == 303 for p in posted)  # answered while the kiosks are asked
    wait_until(lambda: len(started) == MAX_RUNNING)
    assert client.post("/commands/lockdown", data=form).status_code == 503  # bounded
    waiting = client.get(posted[0].headers["Location"])
    assert waiting.status_code == 200 and waiting.headers["Refresh"] == "2"
    assert 'id="sending"' in waiting.text and 'id="sent"' not in waiting.text
    release.set()
    assert answers(client, posted[0]).count('class="delivery pending"') == 3
    assert client.get("/commands/sent/made-up").status_code == 404


def test_one_kiosk_needs_no_confirmation_and_unknown_targets_are_refused(
    make_app: Any, recorder: Recorder
) -> None:
    client = logged_in(make_app, ADMIN)
    csrf = token(client.get("/commands").text)
    form = {"target": f"{SITE}/gate-2", "on": "0", "csrf_token": csrf}
    assert "gate-2" in answers(client, client.post("/commands/lockdown", data=form))
    assert recorder.sent == [("lockdown", {"on": False}, [(SITE, "gate-2")])]
    for target in ("nowhere", f"{SITE}/gate-9", "depot"):
        refused = client.post("/commands/lockdown", data=form | {"target": target, "confirm": "1"})
        assert refused.status_code == 400
    assert len(recorder.sent) == 1


def test_without_a_command_key_nothing_can_be_sent(tmp_path: Path, store: Store) -> None:
    fill(store)
    write_users(tmp_path / "users.toml", **{ADMIN: "admin"})
    client = create_central_app(store, config(tmp_path)).test_client()
    login(client, ADMIN)
    page = client.get("/commands")
    assert "KIOSK_CENTRAL_COMMAND_KEY" in page.text and "disabled" in page.text
    form = {"target": SITE, "on": "1", "confirm": "1", "csrf_token": token(page.text)}
    assert client.post("/commands/lockdown", data=form).status_code == 503


def test_logout_and_a_new_password_end_the_session(make_app: Any, tmp_path: Path) -> None:
    app = make_app()
    client = app.test_client()
    login(client, VIEWER)
    copied = app.test_client()
    copied.set_cookie("central_session", client.get_cookie("central_session").value)  # type: ignore[union-attr]
    assert copied.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": token(client.get("/").text)})
    assert copied.get("/").status_code == 302 and client.get("/").status_code == 302

    login(client, VIEWER)
    assert client.get("/").status_code == 200
    write_users(tmp_path / "users.toml", **{VIEWER: "admin"})  # a new role, a new hash
    assert client.get("/").status_code == 302


def test_the_alerts_feed_and_who_acknowledged_what(make_app: Any, store: Store) -> None:
    failed = Delivery(SITE, TODAY, "failed", 3, NOON_MS - 1000, None, "SMTP refused", None)
    deliveries.record(store, failed)
    client = logged_in(make_app, VIEWER, language="en")
    page = client.get("/alerts").text
    names = re.findall(r'<tr class="alert (\w+)">', page)
    assert names == ["delivery_failed", "quarantined", "lockdown", "tailgating", "fever"]
    assert "3 attempts: SMTP refused" in page
    keys = re.findall(r'name="alert" value="([^"]+)"', page)
    fever_key = next(k for k in keys if k.endswith("/gate-1/2"))
    answer = client.post("/alerts/ack", data={"alert": fever_key, "csrf_token": token(page)})
    assert answer.status_code == 302
    page = client.get("/alerts").text
    assert re.search(r'<tr class="alert fever acked">.*?binh, \d{4}-', page, re.S)
    assert fever_key not in re.findall(r'name="alert" value="([^"]+)"', page)
    vi = logged_in(make_app, VIEWER).get("/alerts").text
    assert "sốt, đã đo lại để xác nhận" in vi and "3 lần thử: SMTP refused" in vi
    assert "đã bật khóa lối vào" in vi and "confirmed on retest" not in vi
    for made_up in ("event:hq/gate-1/999", "x" * 150):
        refused = client.post("/alerts/ack", data={"alert": made_up, "csrf_token": token(page)})
        assert refused.status_code == 400
    count = store.transaction(lambda cur: cur.execute("SELECT count(*) FROM alert_acks").fetchone())
    assert count[0] == 1


def test_languages_default_from_the_sites_and_switch(make_app: Any) -> None:
    vi = logged_in(make_app, VIEWER)
    assert "Cảnh báo" in vi.get("/").text
    assert "Alerts" in logged_in(make_app, VIEWER, language="en").get("/").text
    switched = vi.get("/language/en?next=/alerts")
    assert switched.headers["Location"] == "/alerts" and "Acknowledge" in vi.get("/alerts").text


def test_roster_upload_is_for_admins_and_counts_per_site(make_app: Any, tmp_path: Path) -> None:
    salt = tmp_path / "salt"
    salt.write_bytes(b"s" * 32)
    salt.chmod(0o600)
    csv = "badge,name,unit,kind\nA1,Nguyễn Văn An,Kế toán,staff\nA2,Trần Bình,IT,staff\n"
    viewer = logged_in(make_app, VIEWER, salt_file=str(salt))
    form = {"site": SITE, "csrf_token": token(viewer.get("/roster").text)}
    refused = viewer.post("/roster", data=form | {"file": (_file(csv), "r.csv")})
    assert refused.status_code == 403
    admin = logged_in(make_app, ADMIN, salt_file=str(salt))
    form["csrf_token"] = token(admin.get("/roster").text)
    page = admin.post("/roster", data=form | {"file": (_file(csv), "r.csv")})
    assert page.status_code == 200 and f"<td>{SITE}</td><td>2</td>" in page.text
    wrong = admin.post("/roster", data=form | {"file": (_file("name\nAn\n"), "r.csv")})
    assert wrong.status_code == 400 and "roster.csv" in wrong.text
    big = io.BytesIO(b"badge,name,unit,kind\n" + b"x" * MAX_UPLOAD)
    too_large = admin.post("/roster", data=form | {"file": (big, "r.csv")})
    assert too_large.status_code == 413
    assert f"Tệp gửi lên lớn hơn {MAX_FILE_BYTES // 1048576} MiB" in too_large.text


def _file(text: str) -> Any:
    return io.BytesIO(text.encode("utf-8"))


def test_probes_and_metrics(make_app: Any) -> None:
    client = make_app().test_client()
    assert client.get("/healthz").json == {"ok": True, "kiosks": 3}
    metrics = client.get("/metrics").text
    assert f'central_kiosks{{availability="online",site="{SITE}"}} 2.0' in metrics
    assert "central_events_stored 4.0" in metrics and "central_quarantined 1.0" in metrics
    assert "# TYPE central_people_inside gauge" in metrics  # its count: the inside page


def test_set_password_writes_the_users_file(tmp_path: Path) -> None:
    central_toml = tmp_path / "central.toml"
    users = tmp_path / "users.toml"
    central_toml.write_text(f'[web]\nusers_file = "{users}"\n', encoding="utf-8")
    runner = CliRunner()

    def run(*args: str, password: str = "a long password") -> Any:
        command = ["central", "--config", str(central_toml), "web", "set-password", *args]
        return runner.invoke(cli, command, input=f"{password}\n{password}\n")

    assert run("chi", "--role", "admin").exit_code == 0
    assert run("dung", "--role", "viewer").exit_code == 0
    assert run("chi", "--role", "viewer").exit_code == 0
    assert {u.name: u.role for u in read_users(users).values()} == {
        "chi": "viewer",
        "dung": "viewer",
    }
    assert users.stat().st_mode & 0o777 == 0o600
    assert run("eve", "--role", "admin", password="short").exit_code == 64
    assert run("eve", "--role", "root").exit_code == 2


def test_a_viewer_sees_who_is_inside(make_app: Any, store: Store) -> None:
    page = logged_in(make_app, VIEWER).get("/inside").text
    area = re.search(r'<section class="area">(.*?)</section>', page, re.S)
    assert area is not None and f"{SITE} · main" in area.group(1)
    assert '<span class="count">1</span>' in area.group(1) and "s-1" in area.group(1)


def test_an_admin_downloads_the_daily_list(make_app: Any) -> None:
    client = logged_in(make_app, ADMIN, language="en")
    today = TODAY.isoformat()
    answer = client.get(f"/reports/daily?date={today}&site={SITE}&format=csv")
    assert answer.status_code == 200 and answer.data.startswith(b"\xef\xbb\xbf")
    assert f"entries-{SITE}-{today}.csv" in answer.headers["Content-Disposition"]
    lines = answer.data.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Time,") and len(lines) == 3  # the header, a grant, a fever
    xlsx = client.get(f"/reports/daily?date={today}&format=xlsx")
    assert xlsx.status_code == 200 and xlsx.data.startswith(b"PK")
    assert client.get("/reports/daily?date=yesterday&format=csv").status_code == 400
    assert client.get(f"/reports/daily?date={today}&format=exe").status_code == 400


def test_an_admin_traces_a_person_by_name(make_app: Any, store: Store) -> None:
    holders = [
        Holder("s-1", "Nguyễn Văn An", "IT", "staff", None, 2),
        Holder("s-2", "Nguyễn Thị Ánh", "HR", "staff", None, 3),
    ]
    roster.replace(store, SITE, "import", holders, "test", 0)
    client = logged_in(make_app, ADMIN)
    today = TODAY.isoformat()
    query = f"/reports/trace?site={SITE}&from={today}&to={today}&window=60"
    several = client.get(f"{query}&name=Nguyễn")
    assert several.status_code == 200 and "Nguyễn Văn An" in several.text
    assert "Nguyễn Thị Ánh" in several.text
    one = client.get(f"{query}&name=Văn An")
    assert one.status_code == 200 and one.headers["Content-Type"].startswith("text/csv")
    text = one.data.decode("utf-8-sig")
    assert "Nguyễn Văn An" in text and "Nguyễn Thị Ánh" in text  # at gate-1 within the hour
    assert client.get(f"{query}&name=Nobody").status_code == 404
    empty = client.get(f"{query}&name=%20")
    assert empty.status_code == 400 and "Nhập một phần tên cần tìm" in empty.text
    assert "Nguyễn" not in empty.text  # not the whole roster
    assert client.get("/reports/daily?date=9999-12-31&format=csv").status_code == 400


def test_serve_answers_until_stopped(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    cfg = dataclasses.replace(config(tmp_path), web=WebSection(host="127.0.0.1", port=port))
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(cfg, sqlite_url, stop))
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/healthz"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_until(answers, timeout=15)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_every_word_of_the_pages_is_in_the_catalogue_in_both_languages() -> None:
    templates = Path(web.__file__).parent / "templates"
    used = set()
    for page in templates.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_.]+)'", page.read_text(encoding="utf-8")))
    prefixes = {key for key in used if key.endswith(".")}  # t('alert.' + name) and the like
    assert used - prefixes <= set(TEXTS)
    assert all(any(key.startswith(prefix) for key in TEXTS) for prefix in prefixes)
    assert all(vi and en for vi, en in TEXTS.values())
