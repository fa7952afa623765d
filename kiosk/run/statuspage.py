"""The status page, the kiosk's side: start its process, feed it, carry out what it asks,
watch it.

Measured first in the kiosk's own process (bench/webload.py): 220 requests/s took the decision
latency's p95 from 4 ms to 41 ms, because the page and the decision loop share one GIL. So
``kiosk run`` starts the web server as a child process (``python -m kiosk.web.child``) and
talks to it over a pipe (the messages: kiosk/web/pipe.py):

- the kiosk pushes its state document every second, each decision as it happens (for the
  display), and its metrics text every two seconds: serving a page costs the kiosk nothing;
- the child reads the event log itself, through read-only SQLite connections;
- the child forwards operator actions as requests and waits for their outcome; the kiosk
  carries each out with ``Kiosk.perform`` (logged as a command event, then done: the same
  path as MQTT commands). The child serves the network, so the kiosk trusts none of what it
  says about a request but what it checks: the source is the web whatever the child says,
  and a request whose operator is not a login name (or whose id is not a token) is refused;
- the child is moved off the core the kiosk keeps for its decisions as soon as it is
  started, and niced once it serves (kiosk/run/cpus.py);
- the kiosk asks the child's /healthz every 30 s, once it has answered a first time, and
  kills a child that then misses three times in a row, or never answers within two minutes
  of its start; a child that has exited is started again;
- waitress closes idle connections and bounds them per client (kiosk/web/server.py).

Every interval is a field of :class:`~kiosk.web.pipe.WebTiming`, handed to ``attach_web``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest

from kiosk.config import KioskConfig
from kiosk.decide.decision import messages
from kiosk.ids import OPERATOR, TOKEN
from kiosk.operator.actions import ActionError, ActionOutcome, ActionRequest, Operator, Source
from kiosk.run.cpus import give_the_gate_the_first_cpu, move_off_the_gate_core
from kiosk.web.pipe import (
    MAX_REQUEST_BYTES,
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
from kiosk.web.server import ConnectionLimits

if TYPE_CHECKING:
    from kiosk.run.engine import DecisionRecord, Kiosk
    from kiosk.sync import Sync

log = logging.getLogger(__name__)


class LastDecision:
    """The newest decision as the display shows it (no subject, no pass id)."""

    def __init__(self, kiosk: Kiosk) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        kiosk.add_observer(self._decided)

    def _decided(self, record: DecisionRecord) -> None:
        measurement = record.measurement
        exiting = record.event is not None and record.event.data.get("direction") == "exit"
        vi, en = messages(record.decision.reason, exiting=exiting, advice=record.decision.advice)
        last = {
            "seq": None if record.event is None else record.event.seq,
            "ts_ms": None if record.event is None else record.event.ts_ms,
            "outcome": record.decision.outcome.value,
            "reason": record.decision.reason.value,
            "message_vi": vi,
            "message_en": en,
            "temperature_c": None
            if measurement is None or measurement.celsius is None
            else round(measurement.celsius, 1),
        }
        with self._lock:
            self._last = last

    def __call__(self) -> dict[str, Any] | None:
        """The newest decision, or None before the first."""
        with self._lock:
            return None if self._last is None else dict(self._last)


@dataclass(frozen=True)
class WebChild:
    """The running web process and the kiosk's end of its pipe."""

    process: subprocess.Popen[bytes]
    conn: Connection


def start_web_process(config: KioskConfig, timing: WebTiming, limits: ConnectionLimits) -> WebChild:
    """Start the web server process for ``config``: ``python -m kiosk.web.child FD``, handed
    its settings over the pipe on FD.

    Not multiprocessing's ``spawn``: that runs the parent's main script again in the child
    first, and the ``kiosk`` command's script imports the whole kiosk (gpiozero, paho, cbor2,
    cryptography) before the page could serve.
    """
    ours, theirs = multiprocessing.Pipe()
    with theirs:
        fd = theirs.fileno()
        process = subprocess.Popen(
            [sys.executable, "-m", "kiosk.web.child", str(fd)],
            stdin=subprocess.DEVNULL,
            pass_fds=[fd],
        )
    move_off_the_gate_core(process.pid)
    with contextlib.suppress(OSError):  # one that died at once: the feeding loop sees it exit
        ours.send((config, logging.getLogger().getEffectiveLevel(), timing, limits))
    return WebChild(process, ours)


def feed_web_process(
    child: WebChild,
    stop: threading.Event,
    *,
    state: Callable[[], dict[str, Any]],
    last: Callable[[], dict[str, Any] | None],
    registry: CollectorRegistry,
    operator: Operator,
    health_url: str,
    timing: WebTiming,
) -> None:
    """Push state, decisions and metrics; carry out the requests the page sends.

    Returns when ``stop`` is set or the child has gone; a child that stops answering
    ``health_url`` is killed (see :func:`watch_page`), which ends this too. A message from
    the child that is not an action request is logged (never its content) and skipped.
    """

    def send(message: Message) -> None:
        child.conn.send_bytes(encode(message))

    sent_last: dict[str, Any] | None = None
    next_state = next_metrics = 0.0
    done = threading.Event()
    threading.Thread(
        target=watch_page,
        args=(child.process, health_url, done, timing),
        name="web-watchdog",
        daemon=True,
    ).start()
    try:
        while not stop.is_set() and child.process.poll() is None:
            now = time.monotonic()
            if now >= next_state:
                send(StatePush(state()))
                next_state = now + timing.state_every_s
            if now >= next_metrics:
                send(MetricsPush(generate_latest(registry).decode("utf-8")))
                next_metrics = now + timing.metrics_every_s
            current = last()
            if current is not None and current != sent_last:
                send(DecisionPush(current))
                sent_last = current
            if child.conn.poll(0.05):
                asked = _request(child.conn.recv_bytes(MAX_REQUEST_BYTES))
                if asked is not None:
                    outcome = _carry_out(operator, asked)
                    send(StatePush(state()))  # before the outcome: the page shows it
                    send(ActionDone(asked.request_id, outcome))
    except (EOFError, OSError):  # gone, or sent more than a request can be
        log.debug("the web process closed its pipe")
    finally:
        done.set()
        child.conn.close()
        try:
            child.process.wait(timeout=timing.exit_grace_s)
        except subprocess.TimeoutExpired:  # slow, hung or stopped: SIGTERM could wait for ever
            child.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):  # reaped at the next start
                child.process.wait(timeout=5)


def _request(raw: bytes) -> ActionRequest | None:
    """The action request in ``raw``, or None (logged) for anything else."""
    try:
        message = decode(raw)
    except MalformedMessageError as exc:
        log.warning("skipped a message from the status page: %s", exc)
        return None
    if not isinstance(message, ActionRequest):
        log.warning("skipped a %s from the status page", type(message).__name__)
        return None
    return message


def _carry_out(operator: Operator, asked: ActionRequest) -> ActionOutcome:
    """Carry out a request of the page as the web's, if it names an operator's login name and
    a plausible id; otherwise refuse it (logged without either)."""
    if not OPERATOR.match(asked.operator) or not TOKEN.match(asked.request_id):
        log.warning(
            "refused a %s request from the status page: its operator or id is malformed",
            asked.action,
        )
        return ActionOutcome(
            "refused: the request names no operator's login or has a malformed id",
            ActionError.NOT_ALLOWED,
        )
    return operator.perform(dataclasses.replace(asked, source=Source.WEB))


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


def local_url(config: KioskConfig) -> str:
    """The status page's address as this machine reaches it."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
        config.web.host, config.web.host
    )
    return f"http://{f'[{host}]' if ':' in host else host}:{config.web.port}"


def attach_web(
    kiosk: Kiosk,
    config: KioskConfig,
    sync: Sync | None = None,
    *,
    timing: WebTiming | None = None,
    limits: ConnectionLimits | None = None,
) -> None:
    """Serve the status page and display from a child process, fed by a background loop.

    :param timing: how the page is fed and watched (defaults: ``WebTiming()``).
    :param limits: the page's connection bounds (defaults: ``ConnectionLimits()``).
    """
    timing = timing or WebTiming()
    limits = limits or ConnectionLimits()

    last = LastDecision(kiosk)

    def state() -> dict[str, Any]:
        mqtt = {} if sync is None else {"mqtt": sync.mqtt_state()}
        return kiosk.state() | mqtt | {"fever_threshold_c": kiosk.fever_threshold_c}

    def serve(stop: threading.Event) -> None:
        child = start_web_process(config, timing, limits)
        give_the_gate_the_first_cpu()
        log.info(
            "status page on http://%s:%d/ (process %s)",
            config.web.host,
            config.web.port,
            child.process.pid,
        )
        feed_web_process(
            child,
            stop,
            state=state,
            last=last,
            registry=kiosk.metrics.registry,
            operator=kiosk,
            health_url=local_url(config) + "/healthz",
            timing=timing,
        )
        if not stop.is_set():  # e.g. the port is taken: do not respawn it in a tight loop
            log.error(
                "the web process exited (code %s); starting it again in %g s",
                child.process.returncode,
                timing.restart_after_s,
            )
            stop.wait(timing.restart_after_s)

    kiosk.add_background(serve)
