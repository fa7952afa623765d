"""The fleet dashboard served by waitress, driven by headless Chromium (Selenium), sending its
commands through a real mosquitto broker (tests/broker.py): a viewer sees the fleet and cannot
send a command; an admin's site lockdown reaches the broker only after its confirmation page,
as one signed command per kiosk; logout ends the session; the language switch; screenshots of
the fleet and alerts pages (to docs/screenshots/ when KIOSK_SCREENSHOTS says so)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from selenium import webdriver
from selenium.webdriver.common.by import By

from kiosk.central import Store, demo, open_store
from kiosk.central.settings import WebSection, load_central_config
from kiosk.central.web import create_central_app
from kiosk.central.web.commands import broker_publisher
from kiosk.cli.command import Broker as BrokerAddress
from kiosk.mqtt.protocol import command_signature, decode_command
from kiosk.web.server import ConnectionLimits, create_page_server
from tests.broker import Broker, Collector, free_port, mqtt_client
from tests.central_web_support import (
    ADMIN,
    KIOSKS,
    PASSWORD,
    SITE,
    VIEWER,
    config,
    fill,
    write_users,
)
from tests.test_web_live import SCREENSHOTS_ENV, browser, wait_for

KEY = b"site-command-key"
pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "central.db"))
    fill(opened)
    yield opened
    opened.close()


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` on waitress (bounded connections, as ``kiosk central web`` runs it)."""
    port = free_port()
    server = create_page_server(app, "127.0.0.1", port, ConnectionLimits())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        thread.join(timeout=10)


@pytest.fixture
def dashboard(tmp_path: Path, store: Store, broker: Broker) -> Iterator[str]:
    """The dashboard on a free port, its commands going to ``broker`` as user central."""
    write_users(tmp_path / "users.toml", **{ADMIN: "admin", VIEWER: "viewer"})
    address = BrokerAddress(
        broker.host, broker.port, None, None, None, "central", broker.password("central")
    )
    publisher = broker_publisher(address, KEY, answer_within_s=0.5)
    with serving(create_central_app(store, config(tmp_path), publisher=publisher)) as base:
        yield base


@pytest.fixture
def commands(broker: Broker) -> Collector:
    """What the broker delivers on the kiosks' command topics."""
    collector = Collector(mqtt_client(broker, "central"))
    collector.subscribe(f"kiosk/v1/{SITE}/+/cmd")
    return collector


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    chrome = browser()
    yield chrome
    chrome.quit()


def log_in(driver: webdriver.Chrome, base: str, user: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "user").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "fleet"))


def nothing_more(broker: Broker, collector: Collector) -> list[Any]:
    """What arrived on the command topics before a marker sent now (so nothing after it)."""
    marker = f"kiosk/v1/{SITE}/marker/cmd"
    mqtt_client(broker, "central").publish_acked(marker, b"{}")
    return [m for m in collector.get_until(marker) if m.topic != marker]


def post_as(driver: webdriver.Chrome, url: str, form: dict[str, str]) -> int:
    """POST ``form`` to ``url`` with the browser's session cookie; the answer's status."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers={"Cookie": cookies})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_viewer_sees_the_fleet_and_cannot_send_a_command(
    dashboard: str, driver: webdriver.Chrome, broker: Broker, commands: Collector
) -> None:
    log_in(driver, dashboard, VIEWER)
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.kiosk")
    assert [r.get_attribute("data-kiosk") for r in rows] == [f"{SITE}/{k}" for k in KIOSKS]
    assert not driver.find_elements(By.LINK_TEXT, "Lệnh")  # no Commands link for a viewer
    csrf = driver.find_element(By.NAME, "csrf_token").get_attribute("value") or ""
    form = {"target": SITE, "on": "1", "confirm": "1", "csrf_token": csrf}
    assert post_as(driver, f"{dashboard}/commands/lockdown", form) == 403
    driver.get(f"{dashboard}/commands")
    assert "403" in driver.title
    assert nothing_more(broker, commands) == []


def test_an_admin_locks_a_site_down_only_after_confirming(
    dashboard: str, driver: webdriver.Chrome, broker: Broker, commands: Collector
) -> None:
    log_in(driver, dashboard, ADMIN)
    driver.find_element(By.LINK_TEXT, "Lệnh").click()
    site_row = driver.find_element(By.CSS_SELECTOR, "tr.site")
    site_row.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".confirm"))
    listed = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#targets li")]
    assert listed == [f"{SITE}/{k}" for k in KIOSKS]
    assert nothing_more(broker, commands) == []  # asking is not sending

    driver.find_element(By.CSS_SELECTOR, ".confirm button.danger").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "sent"), timeout=30)
    outcomes = [
        r.get_attribute("class") for r in driver.find_elements(By.CSS_SELECTOR, "tr.delivery")
    ]
    assert outcomes == ["delivery pending"] * len(KIOSKS)  # nobody answers in this test
    received = nothing_more(broker, commands)
    assert sorted(m.topic for m in received) == [f"kiosk/v1/{SITE}/{k}/cmd" for k in KIOSKS]
    for message in received:
        command = decode_command(message.payload)
        assert (command.command, command.args) == ("lockdown", {"on": True})
        assert command.sig == command_signature(KEY, command)


def test_logout_ends_the_session_and_the_language_switches(
    dashboard: str, driver: webdriver.Chrome
) -> None:
    log_in(driver, dashboard, VIEWER)
    assert driver.find_element(By.CSS_SELECTOR, "header h1").text == "Bảng điều khiển đội kiosk"
    driver.find_element(By.ID, "language").click()
    wait_for(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, "header h1").text == "Fleet dashboard"
    )
    assert "online" in driver.find_element(By.ID, "fleet").text
    driver.find_element(By.ID, "logout").click()
    wait_for(driver, lambda d: "/login" in d.current_url)
    driver.get(f"{dashboard}/alerts")
    assert "/login" in driver.current_url


def test_screenshots_of_the_fleet_and_alerts_with_demo_data(
    driver: webdriver.Chrome, tmp_path: Path
) -> None:
    """The README's pictures: a week of ``kiosk central demo`` traffic, four kiosks."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    store = open_store(str(tmp_path / "demo.db"))
    try:
        made = demo.fill(store, str(tmp_path / "demo.db"), tmp_path, kiosks=4, days=7)
        loaded = load_central_config(made.config_file)
        users = tmp_path / "users.toml"
        write_users(users, **{ADMIN: "admin"})
        settings = dataclasses.replace(loaded, web=WebSection(users_file=str(users)))
        with serving(create_central_app(store, settings)) as base:
            log_in(driver, base, ADMIN)
            driver.find_element(By.ID, "language").click()
            wait_for(driver, lambda d: "Kiosks" in d.find_element(By.TAG_NAME, "nav").text)
            assert len(driver.find_elements(By.CSS_SELECTOR, "tr.kiosk")) == 4
            driver.save_screenshot(str(folder / "central-fleet.png"))
            driver.find_element(By.LINK_TEXT, "Alerts").click()
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.alert"))
            driver.save_screenshot(str(folder / "central-alerts.png"))
    finally:
        store.close()
    for name in ("central-fleet.png", "central-alerts.png"):
        assert (folder / name).stat().st_size > 5_000
