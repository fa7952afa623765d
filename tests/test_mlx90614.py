"""The checked MLX90614 reader, driven through the real Adafruit driver over the simulated bus."""

from __future__ import annotations

import errno

import adafruit_mlx90614
import pytest
from adafruit_bus_device.i2c_device import I2CDevice

from kiosk.sensors.mlx90614 import (
    BusError,
    ErrorFlagError,
    ImplausibleReadingError,
    MLX90614Thermometer,
    PecError,
    SensorError,
    SensorMissingError,
    ThermometerStats,
    crc8_smbus,
    open_i2c_bus,
)
from kiosk.sensors.simulated_mlx90614 import (
    Constant,
    ManualClock,
    Profile,
    SensorState,
    SimulatedI2CBus,
    SimulatedMLX90614,
    bad_pec,
    dead,
    error_flag,
    person,
)

STANDING = person(36.6, arrive_s=-5.0)


def rig(
    profile: Profile, *, retries: int = 2
) -> tuple[ManualClock, SimulatedMLX90614, MLX90614Thermometer]:
    clock = ManualClock()
    sensor = SimulatedMLX90614(profile, clock=clock)
    return clock, sensor, MLX90614Thermometer(SimulatedI2CBus(sensor), retries=retries)


def test_pec_matches_the_datasheet_example() -> None:
    assert crc8_smbus(bytes([0xB4, 0x07, 0xB5, 0xD2, 0x3A])) == 0x30


def test_reads_ambient_and_object_through_the_real_driver() -> None:
    _, sensor, thermometer = rig(STANDING)

    reading = thermometer.read()

    assert reading.ambient_c == pytest.approx(24.0, abs=0.02)
    assert reading.object_c == pytest.approx(36.6, abs=0.02)
    assert list(sensor.commands_read) == [0x06, 0x07]
    assert thermometer.stats() == ThermometerStats(1, 0, 0, 0, 0, 0, 0)


def test_corrupt_pec_is_retried_then_rejected() -> None:
    _, _, thermometer = rig(bad_pec())

    with pytest.raises(PecError, match=r"register 0x06 of MLX90614 at 0x5a \(3 attempts\)"):
        thermometer.read()

    stats = thermometer.stats()
    assert (stats.pec_errors, stats.retries, stats.failed_reads, stats.reads) == (3, 2, 1, 0)


def test_error_flag_is_rejected_although_the_driver_reports_garbage() -> None:
    _, sensor, thermometer = rig(error_flag(36.6))
    adafruit_driver = adafruit_mlx90614.MLX90614(SimulatedI2CBus(sensor))

    assert adafruit_driver.object_temperature > 600  # why we do not use the driver's read
    with pytest.raises(ErrorFlagError, match="error flag in register 0x07"):
        thermometer.read()
    assert thermometer.stats().error_flags == 1


def test_dead_sensor_raises_bus_error_and_counts_every_attempt() -> None:
    _, sensor, thermometer = rig(STANDING)
    sensor.set_profile(dead())

    with pytest.raises(BusError, match="I2C error") as raised:
        thermometer.read()

    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == errno.EREMOTEIO
    stats = thermometer.stats()
    assert (stats.bus_errors, stats.retries, stats.failed_reads) == (3, 2, 1)


def test_transient_bus_errors_are_recovered_by_retrying() -> None:
    _, sensor, thermometer = rig(STANDING, retries=2)
    sensor.fail_next_reads(2)

    assert thermometer.read().object_c == pytest.approx(36.6, abs=0.02)
    snapshot = thermometer.stats()
    assert (snapshot.reads, snapshot.failed_reads) == (1, 0)
    assert (snapshot.bus_errors, snapshot.retries) == (2, 2)

    thermometer.read()
    assert snapshot.reads == 1  # a snapshot does not move under the health page's feet


def test_without_retries_one_glitch_is_a_failure() -> None:
    _, sensor, thermometer = rig(STANDING, retries=0)
    sensor.fail_next_reads(1)

    with pytest.raises(BusError, match=r"\(1 attempts\)"):
        thermometer.read()


@pytest.mark.parametrize(
    ("state", "register"),
    [
        (SensorState(ambient_c=130.0, object_c=36.6), "0x06"),
        (SensorState(ambient_c=24.0, object_c=381.0), "0x07"),
    ],
)
def test_values_outside_the_sensor_range_are_rejected(state: SensorState, register: str) -> None:
    _, _, thermometer = rig(Constant(state))

    with pytest.raises(ImplausibleReadingError, match=f"register {register}"):
        thermometer.read()
    assert thermometer.stats().implausible == 1


def test_missing_sensor_is_reported_at_construction() -> None:
    elsewhere = SimulatedMLX90614(STANDING, clock=ManualClock(), address=0x5B)

    with pytest.raises(SensorMissingError, match="no MLX90614 answers at I2C address 0x5a"):
        MLX90614Thermometer(SimulatedI2CBus(elsewhere))
    with pytest.raises(SensorMissingError):
        MLX90614Thermometer(SimulatedI2CBus())


def test_close_is_idempotent_and_stops_reads() -> None:
    _, _, thermometer = rig(STANDING)

    with thermometer:
        assert "reads=0" in repr(thermometer)
    thermometer.close()

    assert thermometer.closed
    assert repr(thermometer) == "<MLX90614Thermometer at 0x5a closed>"
    with pytest.raises(SensorError, match="closed"):
        thermometer.read()


def test_missing_i2c_device_node_says_how_to_fix_it() -> None:
    with pytest.raises(SensorError, match=r"/dev/i2c-99 not found: enable I2C with raspi-config"):
        open_i2c_bus(99)


def test_simulator_output_changes_only_at_its_refresh_period() -> None:
    clock, sensor, thermometer = rig(person(36.6, arrive_s=0.0, rise_s=0.3))
    assert sensor.refresh_s == 0.1

    clock.sleep(0.1)
    first = thermometer.read().object_c
    clock.sleep(0.099)
    held = thermometer.read().object_c
    clock.sleep(0.001)
    refreshed = thermometer.read().object_c

    assert held == first
    assert refreshed > first + 0.5


def test_set_profile_restarts_the_scenario() -> None:
    clock, sensor, thermometer = rig(STANDING)
    clock.sleep(10.0)

    sensor.set_profile(person(37.2, rise_s=0.3))
    arriving = thermometer.read().object_c
    clock.sleep(0.5)
    arrived = thermometer.read().object_c

    assert arriving == pytest.approx(24.0, abs=0.02)
    assert arrived == pytest.approx(37.2, abs=0.02)


def test_simulator_answers_eeprom_and_nacks_unknown_commands() -> None:
    sensor = SimulatedMLX90614(STANDING, clock=ManualClock())
    device = I2CDevice(SimulatedI2CBus(sensor), 0x5A)
    reply = bytearray(3)

    with device:
        device.write_then_readinto(bytes([0x25]), reply)
    assert reply[1] << 8 | reply[0] == 0x9FB4  # factory config register 1

    with device, pytest.raises(OSError) as nack:
        device.write_then_readinto(bytes([0x10]), reply)
    assert nack.value.errno == errno.EREMOTEIO
