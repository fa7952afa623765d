"""The kiosk's watchdog on its status page (kiosk.run.statuspage.watch_page), against a real
HTTP server that is slow to start, answers, then stops answering."""

from __future__ import annotations

import contextlib
import http.server
import logging
import threading
from collections.abc import Iterator

import pytest

from kiosk.run.statuspage import watch_page
from kiosk.web.pipe import WebTiming
from tests.support import wait_until


class Page(http.server.ThreadingHTTPServer):
    """A page that drops every request (as one still starting does) until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.up = threading.Event()
        self.probes = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/healthz"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Page

    def do_GET(self) -> None:
        self.server.probes += 1
        if not self.server.up.is_set():
            self.close_connection = True  # no answer at all: the probe fails
            return
        self.send_response(503)  # a part of the kiosk is down, but the page answers
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Process:
    """Stands for the web process: records that the watchdog killed it."""

    def __init__(self) -> None:
        self.killed = threading.Event()

    def kill(self) -> None:
        self.killed.set()


@contextlib.contextmanager
def watching(page: Page, timing: WebTiming) -> Iterator[Process]:
    process, done = Process(), threading.Event()
    server = threading.Thread(target=page.serve_forever, daemon=True)
    server.start()
    watchdog = threading.Thread(target=watch_page, args=(process, page.url, done, timing))
    watchdog.start()
    try:
        yield process
    finally:
        done.set()
        watchdog.join(timeout=10)
        page.shutdown()
        page.server_close()
    assert not watchdog.is_alive()


FAST = WebTiming(probe_every_s=0.05, probe_timeout_s=2.0, probe_failures=3)


def test_a_page_slow_to_start_is_left_alone_then_watched(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.run.statuspage")
    page = Page()
    with watching(page, FAST) as process:
        wait_until(lambda: page.probes >= 4 * FAST.probe_failures, timeout=20)
        assert not process.killed.is_set()  # 12 misses while starting: not a hung page
        page.up.set()
        wait_until(lambda: "the status page answers" in caplog.text, timeout=20)
        assert not process.killed.is_set()
        page.up.clear()  # now it stops answering: killed after 3 misses in a row
        assert process.killed.wait(timeout=20)
    assert "has not answered http://127.0.0.1:" in caplog.text
    assert "3 times in a row" in caplog.text


def test_a_page_that_never_answers_is_killed_after_the_start_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    page = Page()
    timing = WebTiming(probe_every_s=0.05, probe_timeout_s=2.0, start_timeout_s=0.5)
    with watching(page, timing) as process:
        assert process.killed.wait(timeout=20)
    assert "within 0.5 s of its start" in caplog.text
