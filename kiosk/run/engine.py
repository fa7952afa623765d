"""One entrance: the :class:`Kiosk` composes the parts that run it.

- :class:`~kiosk.decide.pipeline.Pipeline`: scan → assess → measure → decide → log → gate;
- :class:`~kiosk.run.loops.Loops`: the frame loop, the decision loop, background loops;
- :class:`~kiosk.run.parts.Monitor`: parts, the kiosk's own events, today's counts;
- :class:`~kiosk.operator.perform.OperatorDesk`: operator requests, logged before they act.

Nothing here knows whether the hardware is real or simulated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.config import KioskConfig
from kiosk.credentials import Allowlist
from kiosk.credentials.passes import PassVerifier
from kiosk.decide.entrance import Entrance
from kiosk.decide.pipeline import DecisionRecord, Pipeline
from kiosk.events import EventType
from kiosk.gate import Gate
from kiosk.hardware import Hardware
from kiosk.operator.actions import ActionOutcome, ActionRequest
from kiosk.operator.perform import OperatorDesk
from kiosk.operator.state import OperatorStateStore
from kiosk.run.health import Health, PartState, state_document
from kiosk.run.loops import CAMERA_RETRY_S, Loops
from kiosk.run.metrics import KioskMetrics
from kiosk.run.parts import Monitor
from kiosk.sensors.qr import Scan
from kiosk.store.eventlog import EventLog

__all__ = ["DecisionRecord", "Kiosk"]

log = logging.getLogger(__name__)


class Kiosk:
    """Runs one entrance. Build it with :func:`kiosk.run.runtime.open_kiosk`.

    Its public surface is what the wiring (:mod:`kiosk.run.runtime`), the status page, the
    sync and the tests use: the parts it was built from (``config``, ``hardware``, ``gate``,
    ``event_log``, ``entrance``, ``metrics``) and ``pipeline`` (where the gate's reports go);
    :meth:`run` and :meth:`loops_alive`; :meth:`handle_scan`; the observers
    (:meth:`add_observer`, :meth:`add_health_observer`, :meth:`add_background`); what it
    reports (:meth:`health`, :meth:`state`, :meth:`people_inside`,
    :attr:`fever_threshold_c`); and what others ask of it (:meth:`perform`, the one way in
    for operators, :meth:`apply_trust_update` and :meth:`record_document`).

    :param resender: sends every event from a seq again (the sync's, for the ``resend``
        action; None: MQTT is off).
    """

    def __init__(
        self,
        config: KioskConfig,
        hardware: Hardware,
        event_log: EventLog,
        entrance: Entrance,
        *,
        allowlist_loader: Callable[[], Allowlist | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock_synced: Callable[[], bool] = lambda: True,
        camera_retry_s: float = CAMERA_RETRY_S,
        metrics: KioskMetrics | None = None,
        operator_state: OperatorStateStore | None = None,
        resender: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or KioskMetrics()
        self.hardware = hardware
        self.event_log = event_log
        self.entrance = entrance
        entrance.area.clock = lambda: wall_clock().timestamp()  # "ahead" of this kiosk's clock
        self._wall_clock = wall_clock
        self._clock_synced = clock_synced
        self._monitor = Monitor(
            event_log,
            self.metrics,
            entrance.learn_event,
            thermometer=PartState(  # switched off in the config is not a fault
                hardware.thermometer is not None or not config.thermometer.enabled,
                hardware.thermometer_problem or "ok",
            ),
            clock=clock,
            wall_clock=wall_clock,
        )
        self._operator = OperatorDesk(
            config,
            hardware.gate,
            self._monitor,
            operator_state or OperatorStateStore(Path(config.kiosk.state_dir)),
            allowlist_loader=allowlist_loader,
            use_allowlist=entrance.checker.replace_allowlist,
            resender=resender,
        )
        self.pipeline = Pipeline(
            config,
            hardware,
            entrance,
            self._monitor,
            self.metrics,
            fever_threshold_c=lambda: self._operator.fever_threshold_c,
            clock=clock,
            wall_clock=wall_clock,
            clock_synced=clock_synced,
        )
        self._loops = Loops(
            hardware,
            self.pipeline,
            self._monitor,
            self.metrics,
            self.health,
            clock=clock,
            camera_retry_s=camera_retry_s,
        )
        hardware.gate.watch_admissions(self.pipeline.on_passage, self.pipeline.on_grant_unused)
        if config.kiosk.mode == "gate":
            self.metrics.watch_inside(config.kiosk.area, lambda: self.people_inside() or 0)

    @property
    def gate(self) -> Gate:
        """The gate this kiosk drives."""
        return self.hardware.gate

    def add_observer(self, observer: Callable[[DecisionRecord], None]) -> None:
        """Call ``observer`` after every decision (from the decision thread; keep it quick)."""
        self.pipeline.add_observer(observer)

    def add_health_observer(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` whenever a part fails or recovers, or an override changes."""
        self._monitor.add_observer(observer)

    def add_background(self, loop: Callable[[threading.Event], None]) -> None:
        """Run ``loop(stop)`` in its own thread while :meth:`run` runs (e.g. the MQTT sync)."""
        self._loops.add_background(loop)

    def run(self, stop: threading.Event, *, stop_deadline_s: float | None = None) -> None:
        """Run until ``stop`` is set: the frame loop in a thread, decisions in this one.

        Stopping joins the threads started here within ``JOIN_S`` in all (half the deadline if
        that is shorter); one still running is named in the log and left behind. With
        ``stop_deadline_s`` (``kiosk run``) the process must be gone that long after ``stop``
        is set, or :class:`~kiosk.run.systemd.StopDeadline` releases the relay, logs which part
        still runs and exits with status 70. Without it (a kiosk inside another program, such
        as the tests) nothing ends the process.
        """
        self._loops.run(stop, stop_deadline_s=stop_deadline_s)

    def loops_alive(self, max_age_s: float) -> bool:
        """Whether the frame loop and the decision loop both ran within ``max_age_s``."""
        return self._loops.alive(max_age_s)

    def handle_scan(self, scan: Scan) -> DecisionRecord | None:
        """Decide for one scanned code, log the decision, then move the gate (None for a
        repeat read within the anti-passback grace)."""
        return self.pipeline.handle_scan(scan)

    # --- health --------------------------------------------------------------------------

    def health(self) -> Health:
        """The kiosk's health right now."""
        return self._monitor.health(self.gate.state(), self.people_inside(), self._clock_synced())

    def people_inside(self) -> int | None:
        """People in this kiosk's area now, where it is tracked (gate mode), else None."""
        if self.config.kiosk.mode != "gate":
            return None
        return self.entrance.area.facts(None, self._wall_clock()).occupancy

    def state(self) -> dict[str, Any]:
        """The retained MQTT state document for this kiosk."""
        now = self._wall_clock()
        return state_document(self.config, self.health(), int(now.timestamp() * 1000))

    # --- operators -------------------------------------------------------------------------

    def perform(self, request: ActionRequest) -> ActionOutcome:
        """Log an operator's request as a ``command`` event, then carry it out; a refusal
        is an outcome with an error code, never an exception (the ``Operator`` protocol)."""
        return self._operator.perform(request)

    @property
    def fever_threshold_c(self) -> float:
        """The fever threshold in force."""
        return self._operator.fever_threshold_c

    # --- signed lists ----------------------------------------------------------------------

    def apply_trust_update(
        self,
        kind: str,
        accepted: bool,
        version: int | None,
        reason: str,
        verifier: PassVerifier | None,
    ) -> None:
        """A signed trust or revocation list arrived: log the outcome, use it if accepted."""
        if accepted:
            self.entrance.checker.replace_verifier(verifier)
        self.record_document(kind, accepted, version, reason)

    def record_document(self, kind: str, accepted: bool, version: int | None, reason: str) -> None:
        """Log a signed site document's arrival as a ``document`` event (a refusal alerts).

        The document in force arriving again (retained, after every reconnect) changed nothing
        and is not logged: an accepted document's event always says ``accepted``."""
        if accepted and reason != "accepted":
            return
        if accepted:
            log.info("%s document version %s in force", kind, version)
        else:
            log.warning("refused a %s document: %s", kind, reason)
        self._monitor.record(
            EventType.DOCUMENT,
            {"kind": kind, "accepted": accepted, "version": version, "reason": reason},
        )
