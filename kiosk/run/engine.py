"""The kiosk loop: frames → scans → credential and temperature → decision → log → gate.

Two threads: the frame loop reads and decodes camera frames and queues new
scans; the decision loop (the caller's thread in :meth:`Kiosk.run`) measures,
decides, makes the decision durable and only then moves the gate. Nothing here
knows whether the hardware is real or simulated.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.config import FEVER_MAX_C, FEVER_MIN_C, KioskConfig
from kiosk.credentials import Allowlist, AllowlistError, CredentialCheck
from kiosk.credentials.passes import PassVerifier
from kiosk.decide.decision import Decision, Outcome, Reason, decide, when_log_unavailable
from kiosk.decide.entrance import Assessment, Entrance
from kiosk.events import (
    EventType,
    decision_event_data,
    grant_unused_data,
    passage_event_data,
)
from kiosk.gate import Gate, GatePassage, PassageCause, Signal
from kiosk.hardware import Hardware
from kiosk.mqtt.protocol import Command
from kiosk.operator.state import (
    OperatorState,
    OperatorStateError,
    OperatorStateStore,
    restore,
)
from kiosk.run.health import DailyCounts, FrameCounter, Health, Parts, PartState, state_document
from kiosk.run.metrics import KioskMetrics
from kiosk.run.systemd import StopDeadline, notify, watchdog_interval_s, watchdog_loop, where
from kiosk.sensors.frames import CameraError
from kiosk.sensors.measurement import (
    Measurement,
    MeasurementSettings,
    TemperatureStatus,
    is_present,
    measure,
)
from kiosk.sensors.mlx90614 import Reading, SensorError
from kiosk.sensors.qr import Scan, ScanFilter
from kiosk.store.eventlog import (
    REOPEN_AFTER_S,
    Event,
    EventLog,
    EventLogError,
    LogStats,
    LogWriteError,
)

log = logging.getLogger(__name__)

CAMERA_SILENCE_S = 3.0  # no frame for this long: the camera is lost, reopen it
STALE_SCAN_S = 5.0  # a queued scan older than this belongs to someone who has left
CAMERA_RETRY_S = 2.0
NO_FRAME_WAIT_S = 0.01  # a source with no frame ready is asked again after this
BACKGROUND_RESTART_S = 5.0  # a crashed background loop (the MQTT sync) starts again after this
JOIN_S = 5.0  # a stop waits this long in all for the kiosk's threads to end
HOUSEKEEPING_S = 60.0  # prune confirmed events and check the log's fill this often


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as it happened: what the observers (display, demo, benches) see."""

    decision: Decision
    signal: Signal  # what the lights and buzzer showed
    event: Event | None
    credential: CredentialCheck | None
    measurement: Measurement | None
    started_at: float  # monotonic: the frame with the code entered the decoder
    logged_at: float  # monotonic: the event was durable
    gate_moved_at: float  # monotonic: the gate was told to act


@dataclass(frozen=True)
class _Grant:
    """The tag a grant gives the gate, handed back when a passage uses it or it expires."""

    event_id: str
    subject: str | None
    direction: str


def measurement_settings(config: KioskConfig) -> MeasurementSettings:
    """The measurement protocol's settings, taken by name from the thermometer section."""
    names = [f.name for f in dataclasses.fields(MeasurementSettings)]
    return MeasurementSettings(**{name: getattr(config.thermometer, name) for name in names})


_SIGNALS = {
    Reason.FEVER: Signal.FEVER,
    Reason.SENSOR_FAULT: Signal.REFER,
    Reason.LOG_UNAVAILABLE: Signal.REFER,
}


class Kiosk:
    """Runs one entrance. Build it with :func:`kiosk.run.runtime.open_kiosk`."""

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
    ) -> None:
        self.config = config
        self.metrics = metrics or KioskMetrics()
        self.hardware = hardware
        self.event_log = event_log
        self.entrance = entrance
        entrance.area.clock = lambda: wall_clock().timestamp()  # "ahead" of this kiosk's clock
        self._clock = clock
        self._wall_clock = wall_clock
        self._clock_synced = clock_synced
        self._camera_retry_s = camera_retry_s
        self._settings = measurement_settings(config)
        self._scans: queue.Queue[Scan] = queue.Queue(maxsize=8)
        self._scan_filter = ScanFilter(
            rearm_after_s=config.camera.rearm_after_s,
            max_payload_bytes=config.camera.max_payload_bytes,
        )
        self._allowlist_loader = allowlist_loader
        self._observers: list[Callable[[DecisionRecord], None]] = []
        self._health_observers: list[Callable[[], None]] = []
        self._background: list[Callable[[threading.Event], None]] = []
        self._parts = Parts(
            thermometer=PartState(  # switched off in the config is not a fault
                hardware.thermometer is not None or not config.thermometer.enabled,
                hardware.thermometer_problem or "ok",
            )
        )
        self._next_housekeeping = 0.0
        self._replay_pending = False  # today's log still to replay once it can be read
        self._beats: dict[str, float] = {}
        self._frames = FrameCounter()
        self._last_reading: Reading | None = None
        self._last_temperature_c: float | None = None
        self._today = DailyCounts(self._local_day(self._wall_clock()))
        self._operator_lock = threading.Lock()
        self._operator_store = operator_state or OperatorStateStore(Path(config.kiosk.state_dir))
        self._operator = self._restore_operator_state()
        hardware.gate.watch_admissions(self._on_passage, self._on_grant_unused)
        if config.kiosk.mode == "gate":
            self.metrics.watch_inside(config.kiosk.area, lambda: self.people_inside() or 0)

    @property
    def gate(self) -> Gate:
        """The gate this kiosk drives."""
        return self.hardware.gate

    def add_observer(self, observer: Callable[[DecisionRecord], None]) -> None:
        """Call ``observer`` after every decision (from the decision thread; keep it quick)."""
        self._observers.append(observer)

    def add_health_observer(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` whenever a part fails or recovers."""
        self._health_observers.append(observer)

    def add_background(self, loop: Callable[[threading.Event], None]) -> None:
        """Run ``loop(stop)`` in its own thread while :meth:`run` runs (e.g. the MQTT sync)."""
        self._background.append(loop)

    # --- the two loops -------------------------------------------------------------

    def run(self, stop: threading.Event, *, stop_deadline_s: float | None = None) -> None:
        """Run until ``stop`` is set: the frame loop in a thread, decisions in this one.

        Stopping joins the threads started here within ``JOIN_S`` in all (half the deadline if
        that is shorter); one still running is named in the log and left behind. With
        ``stop_deadline_s`` (``kiosk run``) the process must be gone that long after ``stop``
        is set, or :class:`~kiosk.run.systemd.StopDeadline` releases the relay, logs which part
        still runs and exits with status 70. Without it (a kiosk inside another program, such
        as the tests) nothing ends the process.
        """
        parts = {"decision loop": threading.current_thread()}
        if stop_deadline_s is not None:
            StopDeadline(
                stop_deadline_s, make_safe=self.gate.force_relay_off, parts=lambda: dict(parts)
            ).watch(stop)
        self._record(
            EventType.KIOSK_STARTED,
            {
                "mode": self.config.kiosk.mode,
                "version": __version__,
                "degraded": self.health().degraded,
            },
        )
        if self.gate.state().fire_alarm:
            log.warning("fire alarm active at start: gate released")
            self._record(EventType.FIRE_ALARM, {"active": True})
        self._count_logged_decisions()
        threads = [
            threading.Thread(target=self.frame_loop, args=(stop,), name="frame-loop", daemon=True)
        ]
        background = list(self._background)
        interval = watchdog_interval_s()
        if interval is not None:
            background.append(watchdog_loop(self.loops_alive, interval))
        threads += [
            threading.Thread(
                target=_supervised,
                args=(loop, stop),
                name=getattr(loop, "__qualname__", "background").replace("<locals>.", ""),
                daemon=True,
            )
            for loop in background
        ]
        for thread in threads:
            parts[thread.name] = thread
            thread.start()
        degraded = self.health().degraded
        notify(
            "READY=1\nSTATUS="
            + (f"degraded: {', '.join(degraded)} not working" if degraded else "ready")
        )
        try:
            if self.config.kiosk.mode == "screen":
                self._screen_loop(stop)
            else:
                self._scan_loop(stop)
        finally:
            notify("STOPPING=1")
            self._record(EventType.KIOSK_STOPPED, {})
            stop.set()
            _join_all(threads, min(JOIN_S, (stop_deadline_s or 2 * JOIN_S) / 2))

    def frame_loop(self, stop: threading.Event) -> None:
        """Read frames, decode them and queue each new scan, until ``stop`` is set."""
        source, decoder = self.hardware.frames, self.hardware.decoder
        self._frames.last_frame_at = self._clock()
        while not stop.is_set():
            self._beat("frame")
            try:
                frame = source.read()
            except CameraError as exc:
                self._camera_lost(str(exc), stop)
                continue
            started = self._clock()
            if frame is None:
                if started - self._frames.last_frame_at > CAMERA_SILENCE_S:
                    self._camera_lost(f"no frames for {CAMERA_SILENCE_S:g} s", stop)
                stop.wait(NO_FRAME_WAIT_S)
                continue
            self._frame_seen(started)
            payloads = decoder.decode(frame)
            self.metrics.decoded(self._clock() - started)
            for scan in self._scan_filter.feed(payloads, started):
                self._queue_scan(scan)

    def _beat(self, loop: str) -> None:
        self._beats[loop] = self._clock()

    def loops_alive(self, max_age_s: float) -> bool:
        """Whether the frame loop and the decision loop both ran within ``max_age_s``."""
        now = self._clock()
        return all(now - self._beats.get(loop, -1e9) <= max_age_s for loop in ("frame", "decision"))

    def _queue_scan(self, scan: Scan) -> None:
        try:
            self._scans.put_nowait(scan)
        except queue.Full:
            log.warning("scan queue full: dropped a scan (the person can scan again)")

    def _scan_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._beat("decision")
            self._housekeeping()
            try:
                scan = self._scans.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._clock() - scan.seen_at > STALE_SCAN_S:
                log.info("dropped a stale scan (%.1f s old)", self._clock() - scan.seen_at)
                continue
            try:
                self.handle_scan(scan)
            except Exception:
                log.exception("deciding for a scan failed: person referred to the guard")
                self.gate.show(Signal.REFER)

    def _screen_loop(self, stop: threading.Event) -> None:
        waiting_for_next_person = False
        while not stop.wait(self._settings.sample_interval_s):
            self._beat("decision")
            self._housekeeping()
            reading = self._read_quietly()
            present = reading is not None and is_present(reading, self._settings)
            if present and not waiting_for_next_person:
                self.handle_presence()
                waiting_for_next_person = True
            elif not present:
                waiting_for_next_person = False

    # --- one person ----------------------------------------------------------------

    def handle_scan(self, scan: Scan) -> DecisionRecord | None:
        """Decide for one scanned code, log the decision, then move the gate.

        None for a repeat read (anti-passback): the same pass again within the grace of its
        grant is the same scan, so nothing is decided, logged, shown or released again.
        """
        assessment = self.entrance.assess(
            scan.payload, self._wall_clock(), too_large=scan.too_large
        )
        if assessment.repeat:
            log.info("the same pass again within the anti-passback grace: one scan, ignored")
            self.metrics.repeat_read()
            return None
        measurement = self._measure() if self.entrance.needs_temperature(assessment) else None
        return self._conclude(scan.seen_at, assessment, measurement)

    def handle_presence(self) -> DecisionRecord:
        """Screen mode: measure the person in front of the sensor, log, then move the gate."""
        started = self._clock()
        return self._conclude(started, None, self._measure())

    def _conclude(
        self, started: float, assessment: Assessment | None, measurement: Measurement | None
    ) -> DecisionRecord:
        credential = None if assessment is None else assessment.credential
        decision = decide(
            self.config.kiosk.mode,
            credential,
            measurement,
            lockdown=self.gate.state().lockdown,
            rule=None if assessment is None else assessment.rule,
            unsigned_policy=self.config.credentials.national_qr,
            exiting=assessment is not None and assessment.exiting,
            checked_in_before=assessment is not None and assessment.checked_in_before,
        )
        data = decision_event_data(
            self.config,
            decision,
            assessment,
            measurement,
            decision_ms=(self._clock() - started) * 1000,
            clock_synced=self._clock_synced(),
        )
        event = self._record(EventType.DECISION, data)
        if event is None:
            decision = when_log_unavailable()
        logged = self._clock()
        signal = self._signal_for(decision)
        if decision.opens_gate and event is not None:
            subject = None if assessment is None else assessment.subject
            self.gate.open_for_person(_Grant(event.event_id, subject, data["direction"]))
        else:
            self.gate.show(signal)
        record = DecisionRecord(
            decision, signal, event, credential, measurement, started, logged, self._clock()
        )
        # Bookkeeping after the gate has moved: the person is not kept waiting for it.
        if event is not None:
            self.entrance.learn(event.event_id, event.ts_ms, event.data)
        self._today.add(
            self._local_day(self._wall_clock()), decision.outcome.value, decision.reason.value
        )
        self.metrics.decided(
            decision.outcome.value, decision.reason.value, record.gate_moved_at - started
        )
        for observer in self._observers:
            try:
                observer(record)
            except Exception:
                log.exception("a decision observer failed")
        return record

    @staticmethod
    def _signal_for(decision: Decision) -> Signal:
        if decision.outcome is Outcome.GRANT:
            return Signal.GRANTED
        return _SIGNALS.get(decision.reason, Signal.DENIED)

    def _measure(self) -> Measurement:
        measurement = measure(self._read_for_measurement, self._settings)
        fault = measurement.status is TemperatureStatus.FAULT
        self._set_health("thermometer", not fault, measurement.detail if fault else "ok")
        if measurement.celsius is not None:
            self._last_temperature_c = round(measurement.celsius, 2)
        return measurement

    def _read_for_measurement(self) -> Reading:
        thermometer = self.hardware.thermometer
        if thermometer is None:
            raise SensorError(self.hardware.thermometer_problem or "no thermometer")
        reading = thermometer.read()
        self._last_reading = reading
        return reading

    def _read_quietly(self) -> Reading | None:
        try:
            reading = self._read_for_measurement()
        except SensorError as exc:
            self._set_health("thermometer", False, str(exc))
            return None
        self._set_health("thermometer", True, "ok")
        return reading

    # --- the log, health -----------------------------------------------------------

    def _record(self, event_type: EventType, data: dict[str, Any]) -> Event | None:
        """Append an event durably; on failure report it and return None."""
        try:
            event = self.event_log.append(event_type.value, data)
        except LogWriteError as exc:
            self._set_health("log", False, str(exc))
            return None
        self._set_health("log", True, "ok")
        return event

    def _on_passage(self, passage: GatePassage) -> None:
        """The gate saw someone go through (gpiozero's thread): log it, count tailgating."""
        grant = passage.grant if isinstance(passage.grant, _Grant) else None
        by = passage.cause.value
        grant_id = None if grant is None else grant.event_id
        self._record(EventType.PASSAGE, passage_event_data(by, grant_id))
        self.metrics.passage(by)
        if passage.cause is PassageCause.NONE:
            log.warning("unauthorised passage: nobody was granted (tailgating or forced)")
            self._today.add_tailgating(self._local_day(self._wall_clock()))

    def _on_grant_unused(self, grant: object) -> None:
        """Hold mode: a grant expired with nobody through; the person is where they were."""
        if not isinstance(grant, _Grant):
            return
        log.info("a grant expired unused: the person is not counted as through")
        data = grant_unused_data(
            grant.event_id, grant.subject, grant.direction, self.config.kiosk.area
        )
        event = self._record(EventType.GRANT_UNUSED, data)
        if event is not None:  # unlogged, it is not applied: the person stays counted
            self.entrance.learn_event(event.type, event.event_id, event.ts_ms, event.data)

    def _housekeeping(self) -> None:
        """Now and then: prune confirmed events and report a log that is filling up."""
        now = self._clock()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        try:
            self.event_log.prune()
            stats = self.event_log.stats()
        except EventLogError as exc:
            self._set_health("log", False, str(exc))
            self._next_housekeeping = now + REOPEN_AFTER_S  # a log down at start: retry soon
            return
        self._set_health("log", True, "ok")
        if self._replay_pending:  # the log could not be read at start
            self._count_logged_decisions()
        detail = f"{stats.unconfirmed} unconfirmed of {stats.rows} rows, capacity {stats.capacity}"
        self._set_health("log_capacity", not stats.near_capacity, detail)

    def _set_health(self, name: str, ok: bool, detail: str) -> None:
        if not self._parts.set(name, ok, detail):
            return
        if ok:
            log.info("%s recovered", name)
        else:
            log.error("%s failed: %s", name, detail)
            self.metrics.part_failed(name)
        if name != "log":
            self._record(EventType.HEALTH, {"part": name, "ok": ok, "detail": detail})
        for observer in self._health_observers:
            observer()

    def _frame_seen(self, at: float) -> None:
        self._frames.seen(at)
        if not self._parts.snapshot()["camera"].ok:
            self._set_health("camera", True, "ok")

    def _camera_lost(self, detail: str, stop: threading.Event) -> None:
        self._set_health("camera", False, detail)
        source = self.hardware.frames
        source.close()
        if stop.wait(self._camera_retry_s):
            return
        try:
            source.start()
        except CameraError as exc:
            self._set_health("camera", False, str(exc))
            return
        self._frames.last_frame_at = self._clock()

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone().date()

    def _count_logged_decisions(self) -> None:
        """Today's counts, occupancy and attendance survive a restart: replay today's log."""
        today = self._local_day(self._wall_clock())
        midnight = datetime.combine(today, datetime.min.time()).astimezone()
        since_ms = int(midnight.timestamp() * 1000)
        kinds = (EventType.DECISION, EventType.PASSAGE, EventType.GRANT_UNUSED)
        try:
            events = [e for kind in kinds for e in self.event_log.recent(100_000, type=kind.value)]
        except EventLogError:
            self._replay_pending = True
            return
        self._replay_pending = False
        today_events = sorted((e for e in events if e.ts_ms >= since_ms), key=lambda e: e.seq)
        self._today.add_logged(
            today_events,
            lambda ts_ms: self._local_day(datetime.fromtimestamp(ts_ms / 1000, UTC)),
        )
        for e in today_events:
            self.entrance.learn_event(e.type, e.event_id, e.ts_ms, e.data)

    def health(self) -> Health:
        """The kiosk's health right now."""
        try:
            stats: LogStats | None = self.event_log.stats()
        except EventLogError:
            stats = None
        return Health(
            parts=self._parts.snapshot(),
            frames_read=self._frames.count,
            frames_per_s=self._frames.per_second(),
            last_reading=self._last_reading,
            last_temperature_c=self._last_temperature_c,
            gate=self.gate.state(),
            log=stats,
            clock_synced=self._clock_synced(),
            today=self._today.snapshot(self._local_day(self._wall_clock())),
            inside=self.people_inside(),
        )

    def people_inside(self) -> int | None:
        """People in this kiosk's area now, where it is tracked (gate mode), else None."""
        if self.config.kiosk.mode != "gate":
            return None
        return self.entrance.area.facts(None, self._wall_clock()).occupancy

    def state(self) -> dict[str, Any]:
        """The retained MQTT state document for this kiosk."""
        now = self._wall_clock()
        return state_document(self.config, self.health(), int(now.timestamp() * 1000))

    # --- operator actions (commands, status page) ------------------------------------

    def record_operator_action(
        self, action_id: str, command: str, args: dict[str, Any], *, operator: str
    ) -> None:
        """Log an operator action (status page) and who took it (their login name) before it
        is carried out; LogWriteError if not."""
        self.event_log.append(
            EventType.COMMAND.value,
            {"id": action_id, "command": command, "args": args, "operator": operator},
        )

    def record_command(self, command: Command) -> None:
        """Log an accepted command before it is carried out; raises LogWriteError."""
        self.event_log.append(
            EventType.COMMAND.value,
            {"id": command.id, "command": command.command, "args": command.args},
        )

    def set_lockdown(self, on: bool) -> None:
        """Close the entrance (refuse everyone) or open it again, saved before this returns.

        :raises OperatorStateError: not saved. Lockdown on is in force even so (it would not
            survive a restart); lockdown stays on when ending it could not be saved.
        """
        with self._operator_lock:
            if on:
                self.gate.set_lockdown(True)
                self._notify_health()
            try:
                self._save_operator_state(lockdown=on)
            except OperatorStateError as exc:
                now = "on, but a restart would end it" if on else "still on: ending it failed"
                raise OperatorStateError(f"lockdown is {now}: {exc}") from None
            if not on:
                self.gate.set_lockdown(False)
                self._notify_health()

    def emergency_open(self, on: bool) -> None:
        """Hold the gate released until turned off (saved, but never restored at start).

        :raises OperatorStateError: turning it on could not be saved, so it was not done.
        """
        with self._operator_lock:
            if not on:
                self.gate.emergency_open(False)
                self._notify_health()
            self._save_operator_state(emergency_open=on)
            if on:
                self.gate.emergency_open(True)
                self._notify_health()

    def reload_allowlist(self) -> int:
        """Read the allowlist again; a bad file raises AllowlistError and the old list stays."""
        if self._allowlist_loader is None:
            raise AllowlistError("this kiosk has no allowlist file to reload")
        allowlist = self._allowlist_loader()
        self.entrance.checker.replace_allowlist(allowlist)
        return 0 if allowlist is None else len(allowlist)

    def set_fever_threshold(self, celsius: float) -> None:
        """Change the fever threshold from the next measurement on.

        :raises ValueError: outside FEVER_MIN_C..FEVER_MAX_C (NaN included); the callers check
            first, this keeps a slip in any of them from setting a threshold nobody can pass
            or that lets fevers through.
        """
        if not FEVER_MIN_C <= celsius <= FEVER_MAX_C:
            raise ValueError(
                f"fever threshold {celsius} °C refused: it must be from {FEVER_MIN_C} to"
                f" {FEVER_MAX_C} °C"
            )
        with self._operator_lock:
            configured = self.config.thermometer.fever_threshold_c
            self._save_operator_state(fever_threshold_c=celsius, config_fever_c=configured)
            self._settings = dataclasses.replace(self._settings, fever_threshold_c=celsius)

    def _save_operator_state(self, **changes: Any) -> None:
        """Save the operator state with ``changes`` durably (lock held); the gate's lockdown
        and emergency open are saved as they are now unless changed.

        :raises OperatorStateError: not saved; the part ``operator_state`` then fails.
        """
        gate = self.gate.state()
        state = dataclasses.replace(
            self._operator,
            **{"lockdown": gate.lockdown, "emergency_open": gate.emergency_open, **changes},
        )
        try:
            self._operator_store.save(state)
        except OperatorStateError as exc:
            self._set_health("operator_state", False, str(exc))
            raise
        self._operator = state
        self._set_health("operator_state", True, "ok")

    def _restore_operator_state(self) -> OperatorState:
        """Before the first decision: put back what operators set; fail secure if unusable."""
        restored = restore(self._operator_store, self.config.thermometer.fever_threshold_c)
        state = restored.state
        if state.lockdown:
            self.gate.set_lockdown(True)
        if state.fever_threshold_c is not None:
            self._settings = dataclasses.replace(
                self._settings, fever_threshold_c=state.fever_threshold_c
            )
        if restored.problem is not None:
            self._parts.set("operator_state", False, restored.problem)
            self._record(
                EventType.HEALTH,
                {"part": "operator_state", "ok": False, "detail": restored.problem},
            )
        return state

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
            log.info("%s list version %s in force", kind, version)
        else:
            log.warning("refused a %s list: %s", kind, reason)
        self._record(
            EventType.DOCUMENT,
            {"kind": kind, "accepted": accepted, "version": version, "reason": reason},
        )

    @property
    def fever_threshold_c(self) -> float:
        """The fever threshold in force."""
        return self._settings.fever_threshold_c

    def _notify_health(self) -> None:
        for observer in self._health_observers:
            observer()


def _join_all(threads: list[threading.Thread], within_s: float) -> None:
    """Join ``threads`` within ``within_s`` in all; name those still running and leave them."""
    deadline = time.monotonic() + within_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    running = [f"{t.name} in {where(t)}" for t in threads if t.is_alive()]
    if running:
        log.error("still running %g s after the stop: %s", within_s, "; ".join(running))


def _supervised(loop: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Run a background loop until ``stop``; if it crashes, log it and start it again."""
    while not stop.is_set():
        try:
            loop(stop)
        except Exception:
            log.exception(
                "%s crashed; restarting it in %.0f s",
                getattr(loop, "__qualname__", "a background loop"),
                BACKGROUND_RESTART_S,
            )
            stop.wait(BACKGROUND_RESTART_S)
