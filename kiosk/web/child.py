"""The status page's process: its entry point (``python -m kiosk.web.child FD``, :func:`main`)
and its :class:`Mirror` of the kiosk.

The page runs apart from the kiosk so that a hammered page cannot slow the gate (see
kiosk/run/statuspage.py, which starts, feeds and watches it). This module is what that process
imports first, so it imports only what serving pages needs: Flask, waitress, the event log's
reader and the actions' vocabulary, never the engine, the devices, MQTT or the credentials'
crypto (tests/test_imports.py checks it).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kiosk.config import KioskConfig
from kiosk.decide.privacy import load_or_create_secret
from kiosk.operator.actions import ActionError, ActionOutcome, ActionRequest
from kiosk.run.cpus import keep_first_cpu_for_the_gate
from kiosk.run.logs import setup_logging
from kiosk.web.app import create_app
from kiosk.web.interfaces import WebSettings
from kiosk.web.pipe import (
    ActionDone,
    DecisionPush,
    MalformedMessageError,
    Message,
    MetricsPush,
    StatePush,
    WebTiming,
    decode,
    encode,
)
from kiosk.web.server import ConnectionLimits, create_page_server, serve_in_thread
from kiosk.web.status import KioskStatus

log = logging.getLogger(__name__)

PASSWORD_FILE = "web-password"  # in state_dir, written by `kiosk web set-password`


def web_settings(config: KioskConfig) -> WebSettings:
    """The app's settings: the password hash from config, else the file ``kiosk web
    set-password`` writes in ``state_dir`` (re-read at every check); the secret key."""
    state_dir = Path(config.kiosk.state_dir)
    return WebSettings(
        password_hash=config.web.password_hash,
        password_file=state_dir / PASSWORD_FILE,
        secret_key=load_or_create_secret("", state_dir, "web-secret"),
        display_public=config.web.display_public,
        api_token=config.web.api_token,
        display_clear_s=config.web.display_clear_s,
        secure_cookie=config.web.cookie_secure,
        session_idle_s=config.web.session_idle_s,
        language=config.web.language,
        mode=config.kiosk.mode,
        direction=config.kiosk.direction,
        meeting=config.kiosk.meeting,
        thermometer=config.thermometer.enabled,
    )


def main() -> None:
    """The page's process: take the pipe on the descriptor in ``argv[1]``, read the settings
    the kiosk sends first on it (pickled: the kiosk is this process's parent), then serve."""
    conn = Connection(int(sys.argv[1]))
    config, log_level, timing, limits = conn.recv()
    run_web_process(config, conn, log_level, timing, limits)


def run_web_process(
    config: KioskConfig,
    conn: Connection,
    log_level: int,
    timing: WebTiming,
    limits: ConnectionLimits,
) -> None:
    """The child: serve the app with waitress until the kiosk closes the pipe."""
    setup_logging(config.kiosk.id, level=log_level)
    # waitress warns "Task queue depth is N" for every request that waits for a thread: under
    # a burst of requests that would flood the journal, one line per request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    mirror = Mirror(conn, timing, fever_threshold_c=config.thermometer.fever_threshold_c)
    status = KioskStatus(mirror, config.log_path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(mirror)
    app = create_app(status, mirror, web_settings(config), registry=registry)
    server = create_page_server(app, config.web.host, config.web.port, limits)
    stop_server = serve_in_thread(server, "web-server")
    keep_first_cpu_for_the_gate()  # niced once it serves: every thread, started or to come
    mirror.follow()  # returns when the kiosk is gone
    stop_server()


class Mirror:
    """The child's view of the kiosk: what it was last told (a :class:`KioskView` and a
    Prometheus collector), and the :class:`~kiosk.operator.actions.Operator` the page asks.

    :param fever_threshold_c: the threshold to report until the kiosk's first state document.
    """

    def __init__(
        self,
        conn: Connection,
        timing: WebTiming,
        *,
        fever_threshold_c: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._timing = timing
        self._fever_threshold_c = fever_threshold_c
        self._clock = clock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state: dict[str, Any] = {}
        self._state_at: float | None = None
        self._last: dict[str, Any] | None = None
        self._metrics = ""
        self._replies: dict[str, tuple[threading.Event, list[ActionOutcome]]] = {}

    def follow(self) -> None:
        """Apply what the kiosk sends until the pipe closes; a message that is not one of
        the pipe's is logged (never its content) and skipped."""
        while True:
            try:
                raw = self._conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                self._apply(decode(raw))
            except MalformedMessageError as exc:
                log.warning("skipped a message from the kiosk: %s", exc)

    def _apply(self, message: Message) -> None:
        with self._lock:
            match message:
                case StatePush(state):
                    self._state, self._state_at = state, self._clock()
                case DecisionPush(decision):
                    self._last = decision
                case MetricsPush(text):
                    self._metrics = text
                case ActionDone(request_id, outcome) if request_id in self._replies:
                    done, result = self._replies[request_id]
                    result.append(outcome)
                    done.set()
                case ActionDone():
                    log.warning("skipped the answer to a request no longer waited for")
                case _:
                    log.warning("skipped a %s from the kiosk", type(message).__name__)

    # What KioskStatus needs from a kiosk
    def state(self) -> dict[str, Any]:
        """The last state document the kiosk pushed; with ``stale_s`` (its age) when the
        kiosk has not pushed one for ``state_stale_s``: /healthz then reports the kiosk."""
        with self._lock:
            state, at = dict(self._state), self._state_at
        if at is not None and (age := self._clock() - at) > self._timing.state_stale_s:
            state["stale_s"] = round(age)
        return state

    @property
    def fever_threshold_c(self) -> float:
        """The fever threshold in force, from the state document."""
        return float(self.state().get("fever_threshold_c", self._fever_threshold_c))

    def last_decision(self) -> dict[str, Any] | None:
        """The newest decision the kiosk pushed."""
        with self._lock:
            return None if self._last is None else dict(self._last)

    # The prometheus collector: the kiosk's metrics as last pushed
    def collect(self) -> Iterable[Metric]:
        """Metric families parsed from the kiosk's text."""
        with self._lock:
            text = self._metrics
        return list(text_string_to_metric_families(text))

    # The Operator: requests forwarded to the kiosk, which logs each, then acts
    def perform(self, request: ActionRequest) -> ActionOutcome:
        """Send ``request`` to the kiosk and wait for its outcome (an error outcome when
        it does not answer within ``action_timeout_s``)."""
        done, result = threading.Event(), list[ActionOutcome]()
        with self._lock:
            self._replies[request.request_id] = (done, result)
        try:
            with self._send_lock:
                self._conn.send_bytes(encode(request))
            if not done.wait(self._timing.action_timeout_s):
                wait = self._timing.action_timeout_s
                return ActionOutcome(
                    f"the kiosk did not answer {request.action} in {wait:g} s",
                    error=ActionError.FAILED,
                )
        except OSError as exc:  # the kiosk has gone; the page is about to be stopped
            return ActionOutcome(f"the kiosk could not be asked: {exc}", ActionError.FAILED)
        finally:
            with self._lock:
                self._replies.pop(request.request_id, None)
        return result[0]


if __name__ == "__main__":
    main()
