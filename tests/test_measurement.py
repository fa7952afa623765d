"""The measurement protocol: real Adafruit driver, simulated sensor, manual clock."""

from __future__ import annotations

import json
import math

import pytest

from kiosk.sensors.measurement import (
    Measurement,
    MeasurementSettings,
    TemperatureStatus,
    is_present,
    measure,
    median,
    to_tenth,
)
from kiosk.sensors.mlx90614 import MLX90614Thermometer, Reading
from kiosk.sensors.simulated_mlx90614 import (
    ManualClock,
    Profile,
    SimulatedI2CBus,
    SimulatedMLX90614,
    bad_pec,
    dead,
    error_flag,
    fever_not_confirmed,
    nobody,
    noisy_then_settles,
    person,
)

DEFAULTS = MeasurementSettings()


class Kiosk:
    """A simulated sensor on a simulated bus, read by the real driver, on a manual clock."""

    def __init__(self, profile: Profile) -> None:
        self.clock = ManualClock()
        self.sensor = SimulatedMLX90614(profile, clock=self.clock)
        self.thermometer = MLX90614Thermometer(SimulatedI2CBus(self.sensor))

    def measure(self, settings: MeasurementSettings = DEFAULTS) -> Measurement:
        return measure(self.thermometer.read, settings, clock=self.clock, sleep=self.clock.sleep)


def measure_profile(profile: Profile, settings: MeasurementSettings = DEFAULTS) -> Measurement:
    return Kiosk(profile).measure(settings)


def test_person_standing_still_reads_normal() -> None:
    result = measure_profile(person(36.6))

    assert result.status is TemperatureStatus.NORMAL
    assert result.celsius == pytest.approx(36.6, abs=0.03)
    assert result.ambient_c == pytest.approx(24.0, abs=0.03)
    assert result.stable and not result.retested
    assert result.detail.startswith("stable after")


def test_noisy_reading_waits_until_it_settles() -> None:
    calm = measure_profile(person(36.8))
    fidgety = measure_profile(noisy_then_settles(36.8, noise_c=0.8, settle_s=0.8))

    assert fidgety.status is TemperatureStatus.NORMAL
    assert fidgety.stable
    assert fidgety.celsius == pytest.approx(36.8, abs=0.03)
    assert fidgety.samples > calm.samples
    assert fidgety.duration_s > 0.8 > calm.duration_s


def test_never_settling_uses_the_median_after_the_timeout() -> None:
    result = measure_profile(person(36.6, noise_c=0.6, seed=3))

    assert result.status is TemperatureStatus.NORMAL
    assert not result.stable
    assert result.detail.startswith("not stable in time")
    assert result.celsius == pytest.approx(36.6, abs=0.4)
    assert result.duration_s == pytest.approx(0.1 + DEFAULTS.stable_timeout_s, abs=0.11)


def test_fever_is_confirmed_by_a_retest() -> None:
    result = measure_profile(person(38.4))

    assert result.status is TemperatureStatus.FEVER
    assert result.celsius == pytest.approx(38.4, abs=0.03)
    assert result.retested
    assert result.samples >= 2 * DEFAULTS.stable_count
    assert result.detail.startswith("confirmed on retest")


def test_fever_not_confirmed_on_retest_is_normal() -> None:
    result = measure_profile(fever_not_confirmed(36.9, hot_c=38.4, hot_for_s=1.0))

    assert result.status is TemperatureStatus.NORMAL
    assert result.celsius == pytest.approx(36.9, abs=0.03)
    assert result.retested
    assert result.detail.startswith("not confirmed on retest")


@pytest.mark.parametrize(
    ("profile", "reason"),
    [(bad_pec(), "PEC mismatch"), (error_flag(), "error flag"), (dead(), "I2C error")],
)
def test_sensor_faults_are_reported_not_raised(profile: Profile, reason: str) -> None:
    kiosk = Kiosk(person(36.6))
    kiosk.sensor.set_profile(profile)

    result = kiosk.measure()

    assert result.status is TemperatureStatus.FAULT
    assert result.celsius is None
    assert reason in result.detail


def test_dead_sensor_shows_in_the_counters() -> None:
    kiosk = Kiosk(person(36.6))
    kiosk.sensor.set_profile(dead())

    kiosk.measure()

    stats = kiosk.thermometer.stats()
    assert (stats.bus_errors, stats.retries, stats.failed_reads) == (3, 2, 1)


def test_transient_bus_error_is_recovered_and_counted() -> None:
    kiosk = Kiosk(person(36.6))
    kiosk.sensor.fail_next_reads(2)

    result = kiosk.measure()

    assert result.status is TemperatureStatus.NORMAL
    assert kiosk.thermometer.stats().retries == 2


def test_nobody_in_view_times_out() -> None:
    result = measure_profile(nobody())

    assert result.status is TemperatureStatus.NO_PERSON
    assert result.celsius is None
    assert result.samples == 0
    assert result.duration_s == pytest.approx(DEFAULTS.presence_timeout_s, abs=0.11)


def test_person_who_steps_away_is_no_person() -> None:
    result = measure_profile(person(36.6, leave_s=0.4))

    assert result.status is TemperatureStatus.NO_PERSON
    assert result.detail == "person stepped away during measurement"


def test_leaving_before_the_fever_retest_is_no_person() -> None:
    result = measure_profile(person(38.4, leave_s=0.8))

    assert result.status is TemperatureStatus.NO_PERSON
    assert result.retested


@pytest.mark.parametrize("forehead_c", [29.0, 44.0])
def test_implausible_temperatures_are_faults(forehead_c: float) -> None:
    result = measure_profile(person(forehead_c))

    assert result.status is TemperatureStatus.FAULT
    assert result.celsius is None
    assert "implausible" in result.detail


def test_calibration_offset_is_applied() -> None:
    settings = MeasurementSettings(calibration_offset_c=0.7)

    assert measure_profile(person(36.0), settings).celsius == pytest.approx(36.7, abs=0.03)
    assert measure_profile(person(37.0), settings).status is TemperatureStatus.FEVER


def test_too_few_samples_before_the_timeout_is_a_fault() -> None:
    kiosk = Kiosk(person(36.6, arrive_s=-5.0))

    def slow_read() -> Reading:  # a bus that hangs 2.5 s per transfer (> stable_timeout_s)
        kiosk.clock.sleep(2.5)
        return kiosk.thermometer.read()

    result = measure(slow_read, DEFAULTS, clock=kiosk.clock, sleep=kiosk.clock.sleep)

    assert result.status is TemperatureStatus.FAULT
    assert result.detail == "only 2 samples before timeout"


def test_normal_measurement_is_fast_at_the_real_refresh_rate() -> None:
    waiting = measure_profile(person(36.6, arrive_s=-5.0))
    walking_up = measure_profile(person(36.6, arrive_s=0.0, rise_s=0.3))

    assert waiting.duration_s == pytest.approx(0.4)  # 5 samples, one per 0.1 s refresh
    assert walking_up.duration_s <= 0.8
    assert walking_up.status is waiting.status is TemperatureStatus.NORMAL


@pytest.mark.parametrize(
    "bad",
    [
        {"stable_count": 2},
        {"sample_interval_s": 0.0},
        {"presence_delta_c": -1.0},
        {"stable_timeout_s": 0.2},
        {"min_plausible_c": 44.0},
        {"fever_threshold_c": 45.0},
        {"calibration_offset_c": 9.0},
        {"stable_tolerance_c": math.nan},
        {"retest_pause_s": -0.1},
    ],
)
def test_impossible_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MeasurementSettings(**bad)  # type: ignore[arg-type]


def test_presence_and_median_helpers() -> None:
    assert is_present(Reading(ambient_c=24.0, object_c=27.0), DEFAULTS)
    assert not is_present(Reading(ambient_c=24.0, object_c=26.9), DEFAULTS)
    assert median([36.4, 40.0, 36.6]) == 36.6
    assert median([36.4, 36.6]) == pytest.approx(36.5)
    with pytest.raises(ValueError):
        median([])


@pytest.mark.parametrize(
    ("body_c", "shown_c", "status"),
    [
        (37.95, 38.0, TemperatureStatus.FEVER),  # shows 38.0: a fever at a 38.0 threshold
        (37.93, 37.9, TemperatureStatus.NORMAL),
        (38.01, 38.0, TemperatureStatus.FEVER),
    ],
)
def test_the_threshold_is_compared_with_the_temperature_as_shown(
    body_c: float, shown_c: float, status: TemperatureStatus
) -> None:
    result = measure_profile(person(body_c), MeasurementSettings(fever_threshold_c=38.0))
    assert (result.celsius, result.status) == (shown_c, status)
    assert result.retested is (status is TemperatureStatus.FEVER)


def test_temperatures_are_reported_to_a_tenth_of_a_degree() -> None:
    result = measure_profile(person(36.6))  # the sensor's 0.02 K steps read 36.59000000000003
    assert (json.dumps(result.celsius), json.dumps(result.ambient_c)) == ("36.6", "24.0")
    calibrated = MeasurementSettings(calibration_offset_c=0.37)
    assert json.dumps(measure_profile(person(36.6), calibrated).celsius) == "37.0"


@pytest.mark.parametrize(
    ("celsius", "tenth"),
    [(37.95, 38.0), (37.949999999999996, 38.0), (37.94, 37.9), (36.59000000000003, 36.6)],
)
def test_to_tenth_rounds_halves_up_despite_float_noise(celsius: float, tenth: float) -> None:
    assert to_tenth(celsius) == tenth
