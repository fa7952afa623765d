"""The forehead measurement protocol: presence, stable sampling, plausibility, fever retest.

Pure logic: the thermometer read, the clock and sleep are injected, so the protocol runs the
same against the real sensor, the simulator, or a scripted list of readings.

Temperatures leave here rounded to 0.1 °C (halves up), and the fever threshold is compared
with the rounded value, so what the display shows and what was decided agree: with a 38.0 °C
threshold, 37.95 °C shows as 38.0 and is a fever; 37.94 shows as 37.9 and is not.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from kiosk.config import ThermometerSection
from kiosk.sensors.mlx90614 import Reading, SensorError

logger = logging.getLogger(__name__)

MIN_SAMPLES = 3
_SECTION = ThermometerSection()  # the defaults, declared once with the config's keys


class TemperatureStatus(StrEnum):
    """Outcome of one measurement."""

    NORMAL = "normal"
    FEVER = "fever"
    FAULT = "fault"
    NO_PERSON = "no_person"


@dataclass(frozen=True)
class MeasurementSettings:
    """Tuning of the protocol; the defaults are the ``[thermometer]`` section's, which suit a
    factory-configured MLX90614 (0.1 s refresh)."""

    presence_delta_c: float = _SECTION.presence_delta_c
    presence_timeout_s: float = _SECTION.presence_timeout_s
    sample_interval_s: float = _SECTION.sample_interval_s
    stable_count: int = _SECTION.stable_count
    stable_tolerance_c: float = _SECTION.stable_tolerance_c
    stable_timeout_s: float = _SECTION.stable_timeout_s
    calibration_offset_c: float = _SECTION.calibration_offset_c
    min_plausible_c: float = _SECTION.min_plausible_c
    max_plausible_c: float = _SECTION.max_plausible_c
    fever_threshold_c: float = _SECTION.fever_threshold_c
    retest_pause_s: float = _SECTION.retest_pause_s

    def __post_init__(self) -> None:
        for field in fields(self):
            if not math.isfinite(getattr(self, field.name)):
                raise ValueError(f"{field.name} must be a finite number")
        positive = ("presence_delta_c", "sample_interval_s", "stable_tolerance_c")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("presence_timeout_s", "retest_pause_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.stable_count < MIN_SAMPLES:
            raise ValueError(f"stable_count must be >= {MIN_SAMPLES}, got {self.stable_count}")
        shortest_stable_s = (self.stable_count - 1) * self.sample_interval_s
        if self.stable_timeout_s < shortest_stable_s:
            raise ValueError(
                f"stable_timeout_s ({self.stable_timeout_s}) is shorter than "
                f"{self.stable_count} samples take ({shortest_stable_s:.2f} s)"
            )
        if not self.min_plausible_c < self.fever_threshold_c <= self.max_plausible_c:
            raise ValueError(
                "need min_plausible_c < fever_threshold_c <= max_plausible_c, got "
                f"{self.min_plausible_c} / {self.fever_threshold_c} / {self.max_plausible_c}"
            )
        if abs(self.calibration_offset_c) > 5.0:
            raise ValueError(
                f"calibration_offset_c {self.calibration_offset_c} is beyond ±5 °C: "
                "recalibrate the installation instead"
            )


@dataclass(frozen=True)
class Measurement:
    """Result of :func:`measure`; ``celsius`` (calibrated, 0.1 °C) is None unless NORMAL/FEVER."""

    status: TemperatureStatus
    celsius: float | None
    ambient_c: float | None
    samples: int
    stable: bool
    retested: bool
    detail: str
    duration_s: float


def is_present(reading: Reading, settings: MeasurementSettings) -> bool:
    """True when the object is warm enough above ambient to be a forehead in view."""
    return reading.object_c - reading.ambient_c >= settings.presence_delta_c


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def to_tenth(celsius: float) -> float:
    """``celsius`` rounded to 0.1 °C, halves up (37.95 → 38.0), as shown and as decided."""
    exact = Decimal(f"{celsius:.6f}")  # first drop float noise such as 37.949999999999996
    return float(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class _Sampling:
    values: tuple[float, ...]
    stable: bool
    person_left: bool

    def value(self, stable_count: int) -> float:
        return median(self.values[-stable_count:] if self.stable else self.values)


class _Protocol:
    """One run of :func:`measure`: holds the injected I/O and the pacing of reads."""

    def __init__(
        self,
        read: Callable[[], Reading],
        settings: MeasurementSettings,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.read = read
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.started_at = clock()
        self.next_read_at = self.started_at
        self.samples = 0
        self.retested = False
        self.ambient_c: float | None = None

    def paced_read(self) -> Reading:
        """Read at the sensor's refresh cadence (no drift from the time reads take)."""
        self.sleep(max(0.0, self.next_read_at - self.clock()))
        self.next_read_at = max(self.next_read_at, self.clock()) + self.settings.sample_interval_s
        reading = self.read()
        self.ambient_c = reading.ambient_c
        return reading

    def wait_for_presence(self) -> Reading | None:
        deadline = self.clock() + self.settings.presence_timeout_s
        while True:
            reading = self.paced_read()
            if is_present(reading, self.settings):
                return reading
            if self.clock() >= deadline:
                return None

    def sample(self, first: Reading | None = None) -> _Sampling:
        settings = self.settings
        deadline = self.clock() + settings.stable_timeout_s
        values: list[float] = []
        reading = first if first is not None else self.paced_read()
        while True:
            if not is_present(reading, settings):
                return _Sampling(tuple(values), stable=False, person_left=True)
            values.append(reading.object_c)
            self.samples += 1
            recent = values[-settings.stable_count :]
            stable = (
                len(recent) == settings.stable_count
                and max(recent) - min(recent) <= settings.stable_tolerance_c
            )
            if stable or self.clock() >= deadline:
                return _Sampling(tuple(values), stable, person_left=False)
            reading = self.paced_read()

    def result(
        self,
        status: TemperatureStatus,
        detail: str,
        *,
        celsius: float | None = None,
        stable: bool = False,
    ) -> Measurement:
        measurement = Measurement(
            status=status,
            celsius=celsius,
            ambient_c=None if self.ambient_c is None else to_tenth(self.ambient_c),
            samples=self.samples,
            stable=stable,
            retested=self.retested,
            detail=detail,
            duration_s=self.clock() - self.started_at,
        )
        logger.debug("measurement: %s", measurement)
        return measurement

    def calibrated_or_failure(self, sampling: _Sampling) -> Measurement | float:
        """A final NO_PERSON/FAULT measurement, or the calibrated temperature."""
        settings = self.settings
        if sampling.person_left:
            return self.result(
                TemperatureStatus.NO_PERSON,
                "person stepped away during measurement",
            )
        if len(sampling.values) < MIN_SAMPLES:
            return self.result(
                TemperatureStatus.FAULT,
                f"only {len(sampling.values)} samples before timeout",
            )
        celsius = to_tenth(sampling.value(settings.stable_count) + settings.calibration_offset_c)
        if not settings.min_plausible_c <= celsius <= settings.max_plausible_c:
            return self.result(
                TemperatureStatus.FAULT,
                f"implausible {celsius:.1f} °C, outside {settings.min_plausible_c:g}.."
                f"{settings.max_plausible_c:g} °C (forehead not filling the sensor's view?)",
            )
        return celsius


def measure(
    read: Callable[[], Reading],
    settings: MeasurementSettings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Measurement:
    """Measure one person's forehead temperature; never raises for sensor faults (→ FAULT)."""
    settings = settings or MeasurementSettings()
    run = _Protocol(read, settings, clock, sleep)
    try:
        arrival = run.wait_for_presence()
        if arrival is None:
            return run.result(
                TemperatureStatus.NO_PERSON,
                f"nobody in view within {settings.presence_timeout_s:g} s",
            )
        first = run.sample(arrival)
        outcome = run.calibrated_or_failure(first)
        if isinstance(outcome, Measurement):
            return outcome
        if outcome < settings.fever_threshold_c:
            return run.result(
                TemperatureStatus.NORMAL,
                _stability_text(first),
                celsius=outcome,
                stable=first.stable,
            )
        run.retested = True
        run.sleep(settings.retest_pause_s)
        retest = run.sample()
        confirmed = run.calibrated_or_failure(retest)
        if isinstance(confirmed, Measurement):
            return confirmed
        stable = first.stable and retest.stable
        if confirmed >= settings.fever_threshold_c:
            return run.result(
                TemperatureStatus.FEVER,
                f"confirmed on retest; {_stability_text(retest)}",
                celsius=confirmed,
                stable=stable,
            )
        return run.result(
            TemperatureStatus.NORMAL,
            f"not confirmed on retest; {_stability_text(retest)}",
            celsius=confirmed,
            stable=stable,
        )
    except SensorError as exc:
        return run.result(TemperatureStatus.FAULT, f"sensor error: {exc}")


def _stability_text(sampling: _Sampling) -> str:
    if sampling.stable:
        return f"stable after {len(sampling.values)} samples"
    return f"not stable in time, median of {len(sampling.values)} samples"
