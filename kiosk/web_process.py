"""The status page in a process of its own, so that a hammered page cannot slow the gate.

Measured first in the kiosk's own process (bench/webload.py): 220 requests/s took the decision
latency's p95 from 4 ms to 41 ms, because the page and the decision loop share one GIL. So
``kiosk run`` starts the web server as a child process (``spawn``) and talks to it over a pipe:

- the kiosk pushes its state document every second, each decision as it happens (for the
  display), and its metrics text every two seconds: serving a page costs the kiosk nothing;
- the child reads the event log itself, through read-only SQLite connections;
- the child forwards operator actions to the kiosk and waits for the confirmation; the kiosk
  logs each as an event and acts (the same path as everywhere else);
- the child runs niced and off the core the kiosk keeps for its decisions (kiosk/cpus.py).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kiosk.config import KioskConfig
from kiosk.cpus import keep_first_cpu_for_the_gate

log = logging.getLogger(__name__)

STATE_EVERY_S = 1.0
METRICS_EVERY_S = 2.0
ACTION_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WebChild:
    """The running web process and the kiosk's end of its pipe."""

    process: multiprocessing.process.BaseProcess
    conn: Connection


def start_web_process(config: KioskConfig) -> WebChild:
    """Start the web server process for ``config``."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=run_web_process,
        args=(config, theirs, logging.getLogger().getEffectiveLevel()),
        name="kiosk-web",
        daemon=True,
    )
    process.start()
    theirs.close()
    return WebChild(process, ours)


def run_web_process(config: KioskConfig, conn: Connection, log_level: int) -> None:
    """The child: serve the app with waitress until the kiosk closes the pipe."""
    import waitress

    from kiosk.logs import setup_logging

    keep_first_cpu_for_the_gate()
    setup_logging(config.kiosk.id, level=log_level)
    # waitress warns "Task queue depth is N" for every request that waits for a thread: under
    # a burst of requests that would flood the journal, one line per request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    from kiosk.web import create_app
    from kiosk.web_runtime import KioskStatus, web_settings

    mirror = Mirror(conn)
    status = KioskStatus(mirror, config.log_path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(mirror)
    app = create_app(status, mirror, web_settings(config), registry=registry)
    server = waitress.create_server(app, host=config.web.host, port=config.web.port, threads=4)
    threading.Thread(target=server.run, name="web-server", daemon=True).start()
    mirror.follow()  # returns when the kiosk is gone
    server.close()


class Mirror:
    """The child's view of the kiosk: what it was last told, and a way to ask for actions."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state: dict[str, Any] = {}
        self._last: dict[str, Any] | None = None
        self._metrics = ""
        self._replies: dict[str, tuple[threading.Event, list[Any]]] = {}

    def follow(self) -> None:
        """Apply what the kiosk sends until the pipe closes."""
        while True:
            try:
                kind, *body = self._conn.recv()
            except (EOFError, OSError):
                return
            with self._lock:
                if kind == "state":
                    self._state = body[0]
                elif kind == "last":
                    self._last = body[0]
                elif kind == "metrics":
                    self._metrics = body[0]
                elif kind == "reply" and body[0] in self._replies:
                    done, result = self._replies[body[0]]
                    result.append(body[1])
                    done.set()

    # What KioskStatus needs from a kiosk
    def state(self) -> dict[str, Any]:
        """The last state document the kiosk pushed."""
        with self._lock:
            return dict(self._state)

    @property
    def fever_threshold_c(self) -> float:
        """The fever threshold in force, from the state document."""
        return float(self.state().get("fever_threshold_c", 37.5))

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

    # WebActions: forwarded to the kiosk
    def _ask(self, name: str, *args: Any) -> str:
        request_id = str(uuid.uuid4())
        done, result = threading.Event(), list[Any]()
        with self._lock:
            self._replies[request_id] = (done, result)
        try:
            with self._send_lock:
                self._conn.send(("action", request_id, name, args))
            if not done.wait(ACTION_TIMEOUT_S):
                raise TimeoutError(f"the kiosk did not answer {name} in {ACTION_TIMEOUT_S:g} s")
        finally:
            with self._lock:
                self._replies.pop(request_id, None)
        ok, message = result[0]
        if not ok:
            raise RuntimeError(message)
        return str(message)

    def test_relay(self) -> str:
        """Ask the kiosk to release the turnstile once."""
        return self._ask("test_relay")

    def emergency_open(self, on: bool) -> str:
        """Ask the kiosk to hold the gate open, or stop."""
        return self._ask("emergency_open", on)

    def set_lockdown(self, on: bool) -> str:
        """Ask the kiosk to close the entrance, or reopen it."""
        return self._ask("set_lockdown", on)

    def set_fever_threshold(self, celsius: float) -> str:
        """Ask the kiosk to change its fever threshold."""
        return self._ask("set_fever_threshold", celsius)


def feed_web_process(
    child: WebChild,
    stop: threading.Event,
    *,
    state: Any,
    last: Any,
    registry: CollectorRegistry,
    actions: Any,
) -> None:
    """The kiosk's side: push state, decisions and metrics; carry out requested actions."""
    sent_last: Any = None
    next_state = next_metrics = 0.0
    try:
        while not stop.is_set() and child.process.is_alive():
            now = time.monotonic()
            if now >= next_state:
                child.conn.send(("state", state()))
                next_state = now + STATE_EVERY_S
            if now >= next_metrics:
                child.conn.send(("metrics", generate_latest(registry).decode("utf-8")))
                next_metrics = now + METRICS_EVERY_S
            current = last()
            if current is not None and current != sent_last:
                child.conn.send(("last", current))
                sent_last = current
            if child.conn.poll(0.05):
                _, request_id, name, args = child.conn.recv()
                try:
                    reply = (True, getattr(actions, name)(*args))
                except Exception as exc:
                    log.exception("web action %s failed", name)
                    reply = (False, str(exc))
                child.conn.send(("reply", request_id, reply))
    except (EOFError, OSError, BrokenPipeError):
        log.debug("the web process closed its pipe")
    finally:
        child.conn.close()
        child.process.join(timeout=5)
        if child.process.is_alive():
            child.process.terminate()
