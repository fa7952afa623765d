"""The declaration page served by waitress, filled in by headless Chromium at a phone's size:
a badge holder with a cough is referred, the declaration is stored under the kiosks' subject,
the English switch; the README's screenshot of the form (docs/screenshots/ when
KIOSK_SCREENSHOTS says so)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from kiosk.central import Store, open_store
from kiosk.central.declarations import store as declarations
from kiosk.central.settings import DeclarationsSection
from kiosk.central.web import create_central_app
from kiosk.credentials.declarations import DeclarationStatus
from kiosk.decide.privacy import Pseudonymizer
from tests.central_web_support import SITE, config
from tests.test_central_web_ui import serving
from tests.test_web_live import SCREENSHOTS_ENV, browser, wait_for

SALT = b"declaration-test-salt-0123456789"
PHONE = (412, 915)  # CSS pixels of a common Android phone
pytestmark = pytest.mark.slow


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    salt = tmp_path / "salt"
    salt.write_bytes(SALT)
    salt.chmod(0o600)
    store = open_store(str(tmp_path / "central.db"))
    settings = dataclasses.replace(
        config(tmp_path, salt_file=str(salt)), declarations=DeclarationsSection()
    )
    try:
        with serving(create_central_app(store, settings)) as base:
            yield f"{base}/s/{SITE}", store
    finally:
        store.close()


@pytest.fixture
def phone() -> Iterator[webdriver.Chrome]:
    chrome = browser()
    chrome.set_window_size(*PHONE)
    yield chrome
    chrome.quit()


def test_a_phone_fills_the_form_and_is_referred(
    phone: webdriver.Chrome, page: tuple[str, Store], tmp_path: Path
) -> None:
    url, store = page
    phone.get(url + "?k=gate-1")  # the poster of one kiosk adds ?k=
    assert phone.find_element(By.TAG_NAME, "h1").text == "Khai báo y tế"
    width = phone.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0]  # nothing wider than the phone: no sideways scrolling
    phone.find_element(By.ID, "kind-badge").click()
    phone.find_element(By.ID, "value").send_keys("B-1001")
    phone.find_element(By.ID, "symptom-cough").click()
    phone.find_element(By.ID, "contact-no").click()
    phone.find_element(By.ID, "travel-no").click()
    phone.find_element(By.ID, "consent").click()
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    height = phone.execute_script("return document.documentElement.scrollHeight")
    phone.set_window_size(PHONE[0], max(PHONE[1], int(height) + 200))
    phone.execute_script("window.scrollTo(0, 0)")
    phone.save_screenshot(str(folder / "declaration-form.png"))
    phone.set_window_size(*PHONE)
    phone.find_element(By.ID, "submit").click()
    status = wait_for(phone, lambda d: d.find_elements(By.ID, "status"))[0]
    assert "Cần gặp bảo vệ" in status.text
    assert "B-1001" not in phone.current_url and "B-1001" not in phone.page_source
    subject = Pseudonymizer(SALT).subject("B-1001")
    entries, _ = declarations.entries_after(store, SITE, 0, 0)
    assert [(s, st) for s, _, st in entries] == [(subject, DeclarationStatus.REFER)]
    assert (folder / "declaration-form.png").stat().st_size > 5_000


def test_the_english_switch(phone: webdriver.Chrome, page: tuple[str, Store]) -> None:
    url, _ = page
    phone.get(url)
    phone.find_element(By.ID, "language").click()
    wait_for(phone, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Health declaration")
    for element in ("kind-phone", "contact-no", "travel-yes", "consent"):
        phone.find_element(By.ID, element).click()
    phone.find_element(By.ID, "value").send_keys("0912 345 678")
    phone.find_element(By.ID, "submit").click()
    status = wait_for(phone, lambda d: d.find_elements(By.ID, "status"))[0]
    assert status.text == "Result: OK"
