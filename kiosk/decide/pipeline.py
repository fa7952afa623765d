"""One person's way through the kiosk: scan → assess → measure → decide → log → gate.

No threads: :meth:`Pipeline.handle_scan` and :meth:`Pipeline.handle_presence` run in the
caller's thread (the kiosk's decision loop, or a test) and return when the gate has been told
what to do. The decision is durable in the log before the gate moves; a decision that cannot
be logged becomes a referral to the guard and never opens the gate.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kiosk.config import KioskConfig
from kiosk.credentials import CredentialCheck
from kiosk.decide.decision import Decision, Outcome, Reason, decide, when_log_unavailable
from kiosk.decide.entrance import Assessment, Entrance, declaration_advice
from kiosk.events import (
    EventType,
    Part,
    decision_event_data,
    grant_unused_data,
    passage_event_data,
)
from kiosk.gate import GatePassage, PassageCause, Signal
from kiosk.hardware import Hardware
from kiosk.sensors.measurement import Measurement, MeasurementSettings, TemperatureStatus, measure
from kiosk.sensors.mlx90614 import Reading, SensorError
from kiosk.sensors.qr import Scan
from kiosk.store.eventlog import Event

log = logging.getLogger(__name__)


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
class Grant:
    """The tag a grant gives the gate, handed back when a passage uses it or it expires."""

    event_id: str
    subject: str | None
    direction: str


class Recorder(Protocol):
    """Where the pipeline logs events and reports the thermometer and its counts
    (:class:`kiosk.run.parts.Monitor`)."""

    def record(self, event_type: EventType, data: dict[str, Any]) -> Event | None:
        """Append an event durably; None if it could not be logged."""
        ...

    def set(self, part: Part, ok: bool, detail: str) -> None:
        """A part works or failed."""
        ...

    def reading(self, reading: Reading) -> None:
        """The thermometer's newest raw reading."""
        ...

    def temperature(self, celsius: float) -> None:
        """The newest measured temperature."""
        ...

    def decided(self, outcome: str, reason: str) -> None:
        """Count one decision today."""
        ...

    def tailgated(self) -> None:
        """Count one unauthorised passage today."""
        ...


class Counters(Protocol):
    """The metrics the pipeline counts (:class:`kiosk.run.metrics.KioskMetrics`)."""

    def decided(self, outcome: str, reason: str, seconds: float) -> None:
        """One decision, and how long it took from the code to the gate."""
        ...

    def passage(self, by: str) -> None:
        """One passage, by what let the person through."""
        ...

    def repeat_read(self) -> None:
        """One repeat read of a pass within the anti-passback grace."""
        ...


def measurement_settings(config: KioskConfig) -> MeasurementSettings:
    """The measurement protocol's settings, taken by name from the thermometer section."""
    names = [f.name for f in dataclasses.fields(MeasurementSettings)]
    return MeasurementSettings(**{name: getattr(config.thermometer, name) for name in names})


_SIGNALS = {
    Reason.FEVER: Signal.FEVER,
    Reason.SENSOR_FAULT: Signal.REFER,
    Reason.LOG_UNAVAILABLE: Signal.REFER,
}


def signal_for(decision: Decision) -> Signal:
    """What the lights and the buzzer show for ``decision``."""
    if decision.outcome is Outcome.GRANT:
        return Signal.GRANTED
    return _SIGNALS.get(decision.reason, Signal.DENIED)


class Pipeline:
    """Decides for one person at a time, logs the decision, then moves the gate."""

    def __init__(
        self,
        config: KioskConfig,
        hardware: Hardware,
        entrance: Entrance,
        recorder: Recorder,
        metrics: Counters,
        *,
        fever_threshold_c: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock_synced: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.hardware = hardware
        self.entrance = entrance
        self.settings = measurement_settings(config)  # the threshold comes from the operators
        self._recorder = recorder
        self._metrics = metrics
        self._fever_threshold_c = fever_threshold_c
        self._clock = clock
        self._wall_clock = wall_clock
        self._clock_synced = clock_synced
        self._observers: list[Callable[[DecisionRecord], None]] = []

    def add_observer(self, observer: Callable[[DecisionRecord], None]) -> None:
        """Call ``observer`` after every decision (from the deciding thread; keep it quick)."""
        self._observers.append(observer)

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
            self._metrics.repeat_read()
            return None
        measurement = self._measure() if self.entrance.needs_temperature(assessment) else None
        return self._conclude(scan.seen_at, assessment, measurement)

    def handle_presence(self) -> DecisionRecord:
        """Screen mode: measure the person in front of the sensor, log, then move the gate."""
        started = self._clock()
        return self._conclude(started, None, self._measure())

    def read_quietly(self) -> Reading | None:
        """One thermometer reading (screen mode's presence check); None if the sensor failed."""
        try:
            reading = self._read_for_measurement()
        except SensorError as exc:
            self._recorder.set(Part.THERMOMETER, False, str(exc))
            return None
        self._recorder.set(Part.THERMOMETER, True, "ok")
        return reading

    def _conclude(
        self, started: float, assessment: Assessment | None, measurement: Measurement | None
    ) -> DecisionRecord:
        gate = self.hardware.gate
        credential = None if assessment is None else assessment.credential
        decision = decide(
            self.config.kiosk.mode,
            credential,
            measurement,
            lockdown=gate.state().lockdown,
            rule=None if assessment is None else assessment.rule,
            unsigned_policy=self.config.credentials.national_qr,
            exiting=assessment is not None and assessment.exiting,
            checked_in_before=assessment is not None and assessment.checked_in_before,
            advice=declaration_advice(self.config),
        )
        data = decision_event_data(
            self.config,
            decision,
            assessment,
            measurement,
            decision_ms=(self._clock() - started) * 1000,
            clock_synced=self._clock_synced(),
        )
        event = self._recorder.record(EventType.DECISION, data)
        if event is None:
            decision = when_log_unavailable()
        logged = self._clock()
        signal = signal_for(decision)
        if decision.opens_gate and event is not None:
            subject = None if assessment is None else assessment.subject
            gate.open_for_person(Grant(event.event_id, subject, data["direction"]))
        else:
            gate.show(signal)
        record = DecisionRecord(
            decision, signal, event, credential, measurement, started, logged, self._clock()
        )
        # Bookkeeping after the gate has moved: the person is not kept waiting for it.
        if event is not None:
            self.entrance.learn(event.event_id, event.ts_ms, event.data)
        self._recorder.decided(decision.outcome.value, decision.reason.value)
        self._metrics.decided(
            decision.outcome.value, decision.reason.value, record.gate_moved_at - started
        )
        for observer in self._observers:
            try:
                observer(record)
            except Exception:
                log.exception("a decision observer failed")
        return record

    def _measure(self) -> Measurement:
        settings = dataclasses.replace(self.settings, fever_threshold_c=self._fever_threshold_c())
        measurement = measure(self._read_for_measurement, settings)
        fault = measurement.status is TemperatureStatus.FAULT
        self._recorder.set(Part.THERMOMETER, not fault, measurement.detail if fault else "ok")
        if measurement.celsius is not None:
            self._recorder.temperature(measurement.celsius)
        return measurement

    def _read_for_measurement(self) -> Reading:
        thermometer = self.hardware.thermometer
        if thermometer is None:
            raise SensorError(self.hardware.thermometer_problem or "no thermometer")
        reading = thermometer.read()
        self._recorder.reading(reading)
        return reading

    # --- what the gate reports back (gpiozero's thread) --------------------------------------

    def on_passage(self, passage: GatePassage) -> None:
        """The gate saw someone go through: log it, count tailgating."""
        grant = passage.grant if isinstance(passage.grant, Grant) else None
        by = passage.cause.value
        grant_id = None if grant is None else grant.event_id
        self._recorder.record(EventType.PASSAGE, passage_event_data(by, grant_id))
        self._metrics.passage(by)
        if passage.cause is PassageCause.NONE:
            log.warning("unauthorised passage: nobody was granted (tailgating or forced)")
            self._recorder.tailgated()

    def on_fire_alarm(self, active: bool) -> None:
        """The fire-alarm input changed (the gate already released or re-locked itself): log
        it, so that a log that cannot take it is reported like any other."""
        log.warning("fire alarm %s", "active: gate released" if active else "cleared")
        self._recorder.record(EventType.FIRE_ALARM, {"active": active})

    def on_grant_unused(self, grant: object) -> None:
        """Hold mode: a grant expired with nobody through; the person is where they were."""
        if not isinstance(grant, Grant):
            return
        log.info("a grant expired unused: the person is not counted as through")
        data = grant_unused_data(
            grant.event_id, grant.subject, grant.direction, self.config.kiosk.area
        )
        event = self._recorder.record(EventType.GRANT_UNUSED, data)
        if event is not None:  # unlogged, it is not applied: the person stays counted
            self.entrance.learn_event(event.type, event.event_id, event.ts_ms, event.data)
