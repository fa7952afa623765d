"""The status page in a process of its own, so that a hammered page cannot slow the gate.

Measured first in the kiosk's own process (bench/webload.py): 220 requests/s took the decision
latency's p95 from 4 ms to 41 ms, because the page and the decision loop share one GIL. So
``kiosk run`` starts the web server as a child process (``spawn``) and talks to it over a pipe:

- the kiosk pushes its state document every second, each decision as it happens (for the
  display), and its metrics text every two seconds: serving a page costs the kiosk nothing;
- the child reads the event log itself, through read-only SQLite connections;
- the child forwards operator actions to the kiosk and waits for the confirmation; the kiosk
  logs each as an event and acts (the same path as everywhere else);
- the child is moved off the core the kiosk keeps for its decisions as soon as it is
  started, and niced once it serves (kiosk/run/cpus.py);
- the kiosk asks the child's /healthz every 30 s, once it has answered a first time, and
  kills a child that then misses three times in a row, or never answers within two minutes
  of its start; a child that has exited is started again (kiosk/run/statuspage.py);
- waitress closes idle connections and bounds them per client (kiosk/web/server.py).

Every interval is a field of :class:`WebTiming`, handed down from ``attach_web``.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kiosk.config import KioskConfig
from kiosk.run.cpus import keep_first_cpu_for_the_gate, move_off_the_gate_core
from kiosk.web.server import ConnectionLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebTiming:
    """How often the kiosk feeds and watches its web process, and how long each side waits.

    :param state_every_s: the kiosk pushes its state document this often.
    :param metrics_every_s: the kiosk pushes its metrics this often.
    :param action_timeout_s: the page waits this long for the kiosk to carry out an action.
    :param probe_every_s: the kiosk asks the page's ``/healthz`` this often.
    :param probe_timeout_s: one probe waits this long for an answer.
    :param probe_failures: misses in a row, after a first answer, that kill the page.
    :param start_timeout_s: a page that has not answered once within this of its start
        is killed (a Pi 3 under load takes seconds to import Flask: never kill a slow start).
    :param restart_after_s: a page that has exited is started again after this.
    :param exit_grace_s: once the kiosk stops feeding it, the page has this long to exit
        before it is killed (it holds nothing to save; the kiosk's stop is bounded).
    """

    state_every_s: float = 1.0
    metrics_every_s: float = 2.0
    action_timeout_s: float = 10.0
    probe_every_s: float = 30.0
    probe_timeout_s: float = 5.0
    probe_failures: int = 3
    start_timeout_s: float = 120.0
    restart_after_s: float = 5.0
    exit_grace_s: float = 1.0

    @property
    def state_stale_s(self) -> float:
        """The page reports the kiosk as gone quiet after this without a state document."""
        return 5 * self.state_every_s


@dataclass(frozen=True)
class WebChild:
    """The running web process and the kiosk's end of its pipe."""

    process: multiprocessing.process.BaseProcess
    conn: Connection


def start_web_process(config: KioskConfig, timing: WebTiming, limits: ConnectionLimits) -> WebChild:
    """Start the web server process for ``config``."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=run_web_process,
        args=(config, theirs, logging.getLogger().getEffectiveLevel(), timing, limits),
        name="kiosk-web",
        daemon=True,
    )
    process.start()
    if process.pid is not None:  # always, once started (pid 0 would mean the kiosk itself)
        move_off_the_gate_core(process.pid)
    theirs.close()
    return WebChild(process, ours)


def run_web_process(
    config: KioskConfig,
    conn: Connection,
    log_level: int,
    timing: WebTiming,
    limits: ConnectionLimits,
) -> None:
    """The child: serve the app with waitress until the kiosk closes the pipe."""
    from kiosk.run.logs import setup_logging

    setup_logging(config.kiosk.id, level=log_level)
    # waitress warns "Task queue depth is N" for every request that waits for a thread: under
    # a burst of requests that would flood the journal, one line per request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    from kiosk.run.statuspage import KioskStatus, web_settings
    from kiosk.web import create_app
    from kiosk.web.server import create_page_server

    mirror = Mirror(conn, timing)
    status = KioskStatus(mirror, config.log_path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(mirror)
    app = create_app(status, mirror, web_settings(config), registry=registry)
    server = create_page_server(app, config.web.host, config.web.port, limits)
    threading.Thread(target=server.run, name="web-server", daemon=True).start()
    keep_first_cpu_for_the_gate()  # niced once it serves: every thread, started or to come
    mirror.follow()  # returns when the kiosk is gone
    server.close()


class Mirror:
    """The child's view of the kiosk: what it was last told, and a way to ask for actions."""

    def __init__(
        self,
        conn: Connection,
        timing: WebTiming,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._timing = timing
        self._clock = clock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state: dict[str, Any] = {}
        self._state_at: float | None = None
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
                    self._state, self._state_at = body[0], self._clock()
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
            if not done.wait(self._timing.action_timeout_s):
                wait = self._timing.action_timeout_s
                raise TimeoutError(f"the kiosk did not answer {name} in {wait:g} s")
        finally:
            with self._lock:
                self._replies.pop(request_id, None)
        ok, message = result[0]
        if not ok:
            raise RuntimeError(message)
        return str(message)

    def test_relay(self, operator: str) -> str:
        """Ask the kiosk to release the turnstile once."""
        return self._ask("test_relay", operator)

    def emergency_open(self, on: bool, operator: str) -> str:
        """Ask the kiosk to hold the gate open, or stop."""
        return self._ask("emergency_open", on, operator)

    def set_lockdown(self, on: bool, operator: str) -> str:
        """Ask the kiosk to close the entrance, or reopen it."""
        return self._ask("set_lockdown", on, operator)

    def set_fever_threshold(self, celsius: float, operator: str) -> str:
        """Ask the kiosk to change its fever threshold."""
        return self._ask("set_fever_threshold", celsius, operator)


def feed_web_process(
    child: WebChild,
    stop: threading.Event,
    *,
    state: Any,
    last: Any,
    registry: CollectorRegistry,
    actions: Any,
    health_url: str,
    timing: WebTiming,
) -> None:
    """The kiosk's side: push state, decisions and metrics; carry out requested actions.

    Returns when ``stop`` is set or the child has gone; a child that stops answering
    ``health_url`` is killed (see :func:`watch_page`), which ends this too.
    """
    sent_last: Any = None
    next_state = next_metrics = 0.0
    done = threading.Event()
    threading.Thread(
        target=watch_page,
        args=(child.process, health_url, done, timing),
        name="web-watchdog",
        daemon=True,
    ).start()
    try:
        while not stop.is_set() and child.process.is_alive():
            now = time.monotonic()
            if now >= next_state:
                child.conn.send(("state", state()))
                next_state = now + timing.state_every_s
            if now >= next_metrics:
                child.conn.send(("metrics", generate_latest(registry).decode("utf-8")))
                next_metrics = now + timing.metrics_every_s
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
                child.conn.send(("state", state()))  # before the reply: the page shows it
                child.conn.send(("reply", request_id, reply))
    except (EOFError, OSError, BrokenPipeError):
        log.debug("the web process closed its pipe")
    finally:
        done.set()
        child.conn.close()
        child.process.join(timeout=timing.exit_grace_s)
        if child.process.is_alive():  # slow, hung or stopped: SIGTERM could wait for ever
            child.process.kill()
            child.process.join(timeout=5)


class Killable(Protocol):
    """What the watchdog needs of the web process."""

    def kill(self) -> None:
        """Kill it (SIGKILL): a stopped or hung process ignores anything gentler."""
        ...


def watch_page(
    process: Killable, health_url: str, done: threading.Event, timing: WebTiming
) -> None:
    """Kill a web process that is alive but has stopped answering ``health_url`` (any HTTP
    status counts as an answer): hung threads, or a process stopped with SIGSTOP, which would
    otherwise serve nothing for good.

    Armed at the page's first answer: before that it is starting, however slowly, and only a
    page that has not answered within ``start_timeout_s`` is killed. Once armed,
    ``probe_failures`` misses in a row, ``probe_every_s`` apart, kill it. Returns when
    ``done`` is set. (Whether the process is alive is left to the feeding thread: two threads
    reaping one child race.)
    """
    started = time.monotonic()
    while not _answers(health_url, timing.probe_timeout_s):
        if time.monotonic() - started >= timing.start_timeout_s:
            log.error(
                "the status page has not answered %s within %g s of its start; restarting it",
                health_url,
                timing.start_timeout_s,
            )
            process.kill()
            return
        if done.wait(timing.probe_every_s):
            return
    log.info("the status page answers %s; watching it", health_url)
    failures = 0
    while not done.wait(timing.probe_every_s):
        failures = 0 if _answers(health_url, timing.probe_timeout_s) else failures + 1
        if failures >= timing.probe_failures:
            log.error(
                "the status page has not answered %s %d times in a row; restarting it",
                health_url,
                failures,
            )
            process.kill()
            return


def _answers(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:  # 503: a part of the kiosk is down, but the page answers
        return True
    except OSError:
        return False
