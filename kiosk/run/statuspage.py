"""The status page and display in the kiosk process: adapters from the kiosk to the web app,
and a waitress server run as one of the kiosk's background loops.

The page runs in a child process (kiosk/web/process.py) so that it cannot slow the gate; it
reads the event log through its own read-only SQLite connections, and its actions come back
to the kiosk, which logs each one before it acts.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kiosk.config import FEVER_MAX_C, FEVER_MIN_C, KioskConfig
from kiosk.decide.decision import messages
from kiosk.decide.privacy import load_or_create_secret
from kiosk.store.eventlog import query_events
from kiosk.web import WebSettings
from kiosk.web.server import ConnectionLimits

if TYPE_CHECKING:  # the web process imports this module: it must not import the whole kiosk
    from kiosk.run.engine import DecisionRecord, Kiosk
    from kiosk.sync import Sync
    from kiosk.web.process import WebTiming

log = logging.getLogger(__name__)

PASSWORD_FILE = "web-password"  # in state_dir, written by `kiosk web set-password`


class LastDecision:
    """The newest decision as the display shows it (no subject, no pass id)."""

    def __init__(self, kiosk: Kiosk) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        kiosk.add_observer(self._decided)

    def _decided(self, record: DecisionRecord) -> None:
        measurement = record.measurement
        exiting = record.event is not None and record.event.data.get("direction") == "exit"
        vi, en = messages(record.decision.reason, exiting=exiting)
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
        with self._lock:
            return None if self._last is None else dict(self._last)


class KioskView(Protocol):
    """What the status page reads from the kiosk (the kiosk itself, or the web process's
    mirror of it)."""

    def state(self) -> dict[str, Any]: ...

    def last_decision(self) -> dict[str, Any] | None: ...

    @property
    def fever_threshold_c(self) -> float: ...


class KioskStatus:
    """What the web app reads: the state document, the log, the last decision."""

    def __init__(self, view: KioskView, log_path: Path) -> None:
        self._view = view
        self._log_path = log_path

    def state(self) -> dict[str, Any]:
        """The retained state document."""
        return self._view.state()

    def events(
        self,
        *,
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        type: str | None,
        outcome: str | None,
    ) -> list[dict[str, Any]]:
        """Logged events, newest first."""
        found = query_events(
            self._log_path,
            limit=limit,
            before_seq=before_seq,
            after_seq=after_seq,
            type=type,
            outcome=outcome,
        )
        return [{"seq": e.seq, "ts_ms": e.ts_ms, "type": e.type, "data": e.data} for e in found]

    def hourly(self, day: date) -> list[dict[str, Any]]:
        """Decisions per local hour of ``day``."""
        start = datetime.combine(day, time.min).astimezone()
        end = start + timedelta(days=1)
        rows = [
            {"hour": hour, "granted": 0, "denied": 0, "referred": 0, "fevers": 0}
            for hour in range(24)
        ]
        decisions = query_events(
            self._log_path,
            limit=1_000_000,
            type="decision",
            since_ms=int(start.timestamp() * 1000),
            until_ms=int(end.timestamp() * 1000),
        )
        keys = {"grant": "granted", "deny": "denied", "refer": "referred"}
        for event in decisions:
            row = rows[datetime.fromtimestamp(event.ts_ms / 1000).astimezone().hour]
            row[keys[event.data["outcome"]]] += 1
            row["fevers"] += event.data.get("reason") == "fever"
        return rows

    def last_decision(self) -> dict[str, Any] | None:
        """The newest decision, for the display."""
        return self._view.last_decision()

    def fever_threshold_c(self) -> float:
        """The fever threshold in force."""
        return self._view.fever_threshold_c


class KioskActions:
    """Operator actions from the page: each is logged as a command event, with the operator's
    login name, before it acts."""

    def __init__(self, kiosk: Kiosk) -> None:
        self._kiosk = kiosk

    def _log(self, command: str, args: dict[str, Any], operator: str) -> None:
        self._kiosk.record_operator_action(f"web-{uuid.uuid4()}", command, args, operator=operator)

    def test_relay(self, operator: str) -> str:
        """Release the turnstile once, as for a person."""
        self._log("test_relay", {}, operator)
        opened = self._kiosk.gate.open_for_person()
        return "relay released once" if opened else "relay not released: lockdown is on"

    def emergency_open(self, on: bool, operator: str) -> str:
        """Hold the gate released, or end that."""
        self._log("emergency_open", {"on": on}, operator)
        self._kiosk.emergency_open(on)
        return "gate held open" if on else "emergency open ended"

    def set_lockdown(self, on: bool, operator: str) -> str:
        """Refuse everyone, or end that."""
        self._log("lockdown", {"on": on}, operator)
        self._kiosk.set_lockdown(on)
        return "entrance closed" if on else "lockdown ended"

    def set_fever_threshold(self, celsius: float, operator: str) -> str:
        """Change the fever threshold."""
        self._log("set_fever_threshold", {"celsius": celsius}, operator)
        self._kiosk.set_fever_threshold(celsius)
        return f"fever threshold now {celsius:.1f} °C"


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
        fever_min_c=FEVER_MIN_C,
        fever_max_c=FEVER_MAX_C,
        display_clear_s=config.web.display_clear_s,
        secure_cookie=config.web.cookie_secure,
        session_idle_s=config.web.session_idle_s,
        language=config.web.language,
        mode=config.kiosk.mode,
        direction=config.kiosk.direction,
        meeting=config.kiosk.meeting,
        thermometer=config.thermometer.enabled,
    )


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
    from kiosk.run.cpus import give_the_gate_the_first_cpu
    from kiosk.web.process import WebTiming, feed_web_process, start_web_process

    timing = timing or WebTiming()
    limits = limits or ConnectionLimits()

    last = LastDecision(kiosk)
    actions = KioskActions(kiosk)

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
            actions=actions,
            health_url=local_url(config) + "/healthz",
            timing=timing,
        )
        if not stop.is_set():  # e.g. the port is taken: do not respawn it in a tight loop
            log.error(
                "the web process exited (code %s); starting it again in %g s",
                child.process.exitcode,
                timing.restart_after_s,
            )
            stop.wait(timing.restart_after_s)

    kiosk.add_background(serve)
