"""The status page and display served by a running kiosk (waitress), seen by a real browser.

Headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) logs in, watches
a simulated person's decision appear on the dashboard and on the display without a reload,
and saves screenshots (to docs/screenshots/ for the README when KIOSK_SCREENSHOTS says so).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.security import generate_password_hash

from kiosk.run.cpus import WEB_NICENESS, online_cpus
from kiosk.run.statuspage import attach_web
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from kiosk.store.eventlog import query_events
from kiosk.web.child import PASSWORD_FILE
from kiosk.web.pipe import WebTiming
from tests.broker import free_port
from tests.support import RunningKiosk, make_config, running, wait_until
from tests.test_web_server import ANSWER_WITHIN_S, FLOOD, sockets
from tests.web_fakes import OPERATOR, PASSWORD, PASSWORD_HASH

# Set KIOSK_SCREENSHOTS=docs/screenshots to refresh the README's pictures.
SCREENSHOTS_ENV = "KIOSK_SCREENSHOTS"


@contextlib.contextmanager
def kiosk_with_web(
    tmp_path: Path,
    port: int | None = None,
    timing: WebTiming | None = None,
    password_hash: str | None = None,
) -> Iterator[tuple[RunningKiosk, str]]:
    """A kiosk serving its page on ``port``; ``password_hash`` "": the one saved in state_dir."""
    port = port or free_port()
    hashed = PASSWORD_HASH if password_hash is None else password_hash
    config = make_config(tmp_path, web={"enabled": False, "port": port, "password_hash": hashed})
    cpus = os.sched_getaffinity(0)
    try:
        with running(config, attach=lambda k: attach_web(k, config, timing=timing)) as kiosk:
            yield kiosk, f"http://127.0.0.1:{port}"
    finally:  # the kiosk pins this (test) process to the gate's core: undo it for other tests
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)


@contextlib.contextmanager
def serving(tmp_path: Path, **options: Any) -> Iterator[tuple[RunningKiosk, str]]:
    with kiosk_with_web(tmp_path, **options) as (kiosk, base):
        wait_until(lambda: _status(f"{base}/healthz") is not None, timeout=15)
        yield kiosk, base


def _status(url: str, timeout: float = 2) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def test_the_running_kiosk_serves_probes_api_and_display(tmp_path: Path) -> None:
    with serving(tmp_path) as (kiosk, base):
        assert _status(f"{base}/healthz") in (200, 503)
        assert _status(f"{base}/api/v1/status") == 401
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "kiosk_decisions_total" in metrics or "kiosk_decision_seconds" in metrics

        kiosk.scene.step_up(Person("staff", b"S-0001", sim.person(36.6), "grant"))
        kiosk.next_decision()

        def shown_on_display() -> Any:
            answer = urllib.request.urlopen(f"{base}/display/last.json", timeout=5).read()
            return json.loads(answer)["decision"]

        wait_until(lambda: shown_on_display() is not None)
        shown = shown_on_display()
        assert shown["outcome"] == "grant" and shown["temperature_c"] == pytest.approx(36.6, 0.2)
        assert "subject" not in json.dumps(shown) and "S-0001" not in json.dumps(shown)
        page = web_child_pid()
        assert page is not None and "cryptography" in libraries(os.getpid())  # the kiosk's
        assert not {"numpy", "cryptography", "cbor2"} & libraries(page)  # a lean page

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        login_page = opener.open(f"{base}/login", timeout=5).read().decode()
        token = login_page.split('name="csrf_token" value="')[1].split('"')[0]
        form = urllib.parse.urlencode(
            {"operator": OPERATOR, "password": PASSWORD, "csrf_token": token}
        ).encode()
        opener.open(f"{base}/login", data=form, timeout=5)
        events = json.loads(opener.open(f"{base}/api/v1/events?type=decision", timeout=5).read())
        assert [e["data"]["outcome"] for e in events] == ["grant"]


class Client:
    """A client of the live page that carries its session cookie by hand (so that a test can
    copy it, as a thief would) and never follows redirects."""

    def __init__(self, base: str, cookie: str = "") -> None:
        self.address = urllib.parse.urlsplit(base).netloc
        self.cookie = cookie

    def send(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        """``(status, Location or body)``; keeps a new session cookie."""
        connection = http.client.HTTPConnection(self.address, timeout=10)
        headers = {"Cookie": f"kiosk_session={self.cookie}"} if self.cookie else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            text = response.read().decode()
            found = re.search(r"kiosk_session=([^;]*)", response.getheader("Set-Cookie") or "")
            if found:
                self.cookie = found.group(1)
            return response.status, response.getheader("Location") or text
        finally:
            connection.close()

    def token(self, path: str = "/") -> str:
        """The CSRF token of the form on ``path``."""
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.send("GET", path)[1])
        assert found, path
        return found.group(1)

    def login(self, password: str) -> int:
        token = self.token("/login")
        return self.send(
            "POST", "/login", {"operator": OPERATOR, "password": password, "csrf_token": token}
        )[0]


def relay_tests(log_path: Path) -> int:
    """How many relay tests the kiosk has logged."""
    commands = query_events(log_path, limit=100, type="command")
    return sum(event.data["command"] == "test_relay" for event in commands)


def test_the_live_page_ends_sessions_at_logout_and_on_a_new_password(tmp_path: Path) -> None:
    password_file = tmp_path / PASSWORD_FILE
    password_file.write_text(PASSWORD_HASH + "\n", encoding="utf-8")
    log_path = tmp_path / "events.db"
    with serving(tmp_path, password_hash="") as (_, base):
        operator = Client(base)
        assert operator.login(PASSWORD) == 302
        token = operator.token()
        thief = Client(base, operator.cookie)
        assert thief.send("GET", "/api/v1/status")[0] == 200
        assert operator.send("POST", "/actions/test-relay", {"csrf_token": token}) == (302, "/")
        assert relay_tests(log_path) == 1

        assert operator.send("POST", "/logout", {"csrf_token": token}) == (302, "/login")
        assert thief.send("GET", "/api/v1/status")[0] == 401
        refused = thief.send("POST", "/actions/test-relay", {"csrf_token": token})
        assert refused[0] == 302 and refused[1].startswith("/login")
        assert relay_tests(log_path) == 1

        assert operator.login(PASSWORD) == 302
        thief = Client(base, operator.cookie)
        new_password = "a different passphrase"
        new_hash = generate_password_hash(new_password, method="pbkdf2:sha256:1000")
        password_file.write_text(new_hash + "\n", encoding="utf-8")  # kiosk web set-password
        assert thief.send("GET", "/api/v1/status")[0] == 401
        assert operator.send("GET", "/")[0] == 302
        assert Client(base).login(PASSWORD) == 401
        assert Client(base).login(new_password) == 302


def test_the_live_page_answers_with_150_idle_connections_open(tmp_path: Path) -> None:
    timing = WebTiming(probe_every_s=0.5, probe_timeout_s=2.0)
    with serving(tmp_path, timing=timing) as (_, base):
        page = web_child_pid()
        port = int(base.rsplit(":", 1)[1])
        with sockets(FLOOD, port):
            started = time.monotonic()
            assert _status(f"{base}/healthz", timeout=ANSWER_WITHIN_S) in (200, 503)
            assert time.monotonic() - started < ANSWER_WITHIN_S
            assert _status(f"{base}/healthz", timeout=ANSWER_WITHIN_S) in (200, 503)
        assert web_child_pid() == page  # the watchdog never saw it fail


def web_child_pid() -> int | None:
    """The page's process: a child of this one started as ``python -m kiosk.web.child``
    (a killed one that is not reaped yet has no command line any more)."""
    children = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):  # gone meanwhile
            parent = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            if parent == os.getpid() and b"\0-m\0kiosk.web.child\0" in command:
                children.append(int(entry))
    assert len(children) <= 1
    return children[0] if children else None


def libraries(pid: int) -> set[str]:
    """The packages of the virtual environment whose compiled parts ``pid`` has loaded."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {
        line.split("site-packages/")[1].split("/")[0] for line in maps if "site-packages/" in line
    }


def placement(pid: int) -> set[tuple[frozenset[int], int]]:
    """(CPUs, niceness) of every thread of ``pid``."""
    return {
        (frozenset(os.sched_getaffinity(int(task))), os.getpriority(os.PRIO_PROCESS, int(task)))
        for task in os.listdir(f"/proc/{pid}/task")
    }


def test_the_page_runs_niced_off_the_gate_core_and_comes_back_after_a_crash(
    tmp_path: Path,
) -> None:
    cpus = online_cpus()
    gate_core, others = frozenset(cpus[:1]), frozenset(cpus[1:] or cpus)
    niced = min(os.getpriority(os.PRIO_PROCESS, 0) + WEB_NICENESS, 19)
    with serving(tmp_path, timing=WebTiming(restart_after_s=0.1)) as (kiosk, base):
        first = web_child_pid()
        assert first is not None
        wait_until(lambda: placement(first) == {(others, niced)}, timeout=15)  # niced once up
        if len(cpus) > 1:
            assert {cores for cores, _ in placement(os.getpid())} == {gate_core}

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: web_child_pid() not in (None, first), timeout=15)
        wait_until(lambda: _status(f"{base}/healthz") is not None, timeout=15)
        # started again by a kiosk that is already pinned: still off the gate's core
        again = web_child_pid() or 0
        wait_until(lambda: placement(again) == {(others, niced)}, timeout=15)
        kiosk.scene.step_up(Person("staff", b"S-0001", sim.person(36.6), "grant"))
        assert kiosk.next_decision().decision.opens_gate


def test_a_page_that_stops_answering_is_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.run.statuspage")
    timing = WebTiming(probe_every_s=0.2, probe_timeout_s=0.5, restart_after_s=0.1)
    with serving(tmp_path, timing=timing) as (_, base):
        hung = web_child_pid()
        assert hung is not None
        wait_until(lambda: "the status page answers" in caplog.text, timeout=20)  # armed
        os.kill(hung, signal.SIGSTOP)  # alive, holding its port, answering nothing
        wait_until(lambda: web_child_pid() not in (None, hung), timeout=20)
        wait_until(lambda: _status(f"{base}/healthz") is not None, timeout=15)
        assert "has not answered http://127.0.0.1:" in caplog.text


def test_a_taken_port_is_reported_and_the_gate_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timing = WebTiming(restart_after_s=0.5)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with kiosk_with_web(tmp_path, port=port, timing=timing) as (kiosk, _):
            wait_until(lambda: "the web process exited" in caplog.text, timeout=20)
            kiosk.scene.step_up(Person("staff", b"S-0001", sim.person(36.6), "grant"))
            assert kiosk.next_decision().decision.opens_gate


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def wait_for(driver: webdriver.Chrome, condition: Any, timeout: float = 30) -> Any:
    """Poll ``condition`` until it holds; an element that a navigation (a login's redirect)
    made stale between finding and reading it is looked for again."""
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition)


def fever_look(driver: webdriver.Chrome) -> tuple[str, str, bool]:
    """The display's class, its animation, and whether the temperature is larger than the
    message (a guard reads it from across the hall)."""
    body = driver.find_element(By.TAG_NAME, "body")
    temperature = driver.find_element(By.ID, "temperature")
    message = driver.find_element(By.ID, "message-vi")
    larger = float(temperature.value_of_css_property("font-size").removesuffix("px")) > float(
        message.value_of_css_property("font-size").removesuffix("px")
    )
    return str(body.get_attribute("class")), body.value_of_css_property("animation-name"), larger


def card_class(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "last-decision").get_attribute("class"))


def confirmed_lockdown(dashboard: webdriver.Chrome) -> None:
    """Lockdown from the dashboard: a confirmation page first, then the dashboard with the
    gate card already saying lockdown (no wait for the next refresh)."""
    dashboard.find_element(By.CSS_SELECTOR, "form[action='/actions/lockdown'] [value='1']").click()
    wait_for(dashboard, lambda d: d.find_elements(By.CSS_SELECTOR, ".confirm .question"))
    assert "/actions/lockdown" in dashboard.current_url
    dashboard.find_element(By.CSS_SELECTOR, ".confirm [type=submit]").click()
    wait_for(dashboard, lambda d: d.find_elements(By.ID, "dashboard"))
    lockdown = dashboard.find_element(By.CSS_SELECTOR, "[data-on='gate.lockdown']")
    assert (lockdown.get_attribute("class"), lockdown.text) == ("bad", "khóa lối vào: có")


@pytest.mark.slow
def test_a_browser_sees_a_decision_on_the_dashboard_and_the_display(tmp_path: Path) -> None:
    screenshots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    screenshots.mkdir(parents=True, exist_ok=True)
    with serving(tmp_path) as (kiosk, base):
        driver = browser()
        try:
            driver.get(f"{base}/display")
            wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").text.strip())
            idle = driver.find_element(By.TAG_NAME, "body").text

            dashboard = browser()
            try:
                dashboard.get(f"{base}/login")
                dashboard.find_element(By.NAME, "operator").send_keys(OPERATOR)
                dashboard.find_element(By.NAME, "password").send_keys(PASSWORD)
                dashboard.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
                wait_for(
                    dashboard,
                    lambda d: (
                        "kiosk" in d.find_element(By.TAG_NAME, "body").text.lower()
                        and "/login" not in d.current_url
                    ),
                )
                assert "test-1" in dashboard.find_element(By.TAG_NAME, "body").text

                kiosk.scene.step_up(Person("visitor", b"V-7F3A", sim.person(38.4), "deny"))
                kiosk.next_decision(timeout=20)
                wait_for(driver, lambda d: "Fever" in d.find_element(By.TAG_NAME, "body").text)
                assert fever_look(driver) == ("fever", "blink", True)
                driver.execute_script("document.body.style.animation = 'none'")  # bright phase
                driver.save_screenshot(str(screenshots / "display-fever.png"))
                wait_for(dashboard, lambda d: card_class(d) == "decision fever")
                confirmed_lockdown(dashboard)
                dashboard.save_screenshot(str(screenshots / "dashboard.png"))
            finally:
                dashboard.quit()
            assert "Fever" not in idle
            wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").text == idle, timeout=20)
            driver.save_screenshot(str(screenshots / "display-idle.png"))
        finally:
            driver.quit()
    for name in ("display-fever.png", "dashboard.png", "display-idle.png"):
        assert (screenshots / name).stat().st_size > 5_000
