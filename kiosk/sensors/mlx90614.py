"""MLX90614 infrared thermometer with checked reads (PEC, error flag, range) and retries.

The Adafruit driver is constructed for its presence probe; the register reads then go through
the driver's own ``I2CDevice`` as 3-byte SMBus *Read Word* frames (LSB, MSB, PEC), because the
driver reads only two bytes and so can check neither the PEC nor the error flag.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x5A
AMBIENT_REGISTER = 0x06
OBJECT_REGISTER = 0x07
ERROR_FLAG = 0x8000
KELVIN_PER_LSB = 0.02
ZERO_CELSIUS_IN_KELVIN = 273.15
AMBIENT_RANGE_C = (-40.0, 125.0)
OBJECT_RANGE_C = (-70.0, 380.0)

Buffer = bytes | bytearray | memoryview


class I2CBus(Protocol):
    """The part of ``busio.I2C`` that the Adafruit ``I2CDevice`` uses."""

    def try_lock(self) -> bool: ...

    def unlock(self) -> None: ...

    def writeto(
        self, address: int, buffer: Buffer, *, start: int = 0, end: int | None = None
    ) -> None: ...

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None: ...

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: Buffer,
        buffer_in: bytearray,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None: ...


class SensorError(OSError):
    """The thermometer could not deliver a trustworthy reading."""


class SensorMissingError(SensorError):
    """No device answers at the configured I2C address, or the bus cannot be opened."""


class BusError(SensorError):
    """I2C transfers kept failing (NACK, timeout, clock stretching) after all retries."""


class PecError(SensorError):
    """The SMBus packet error code did not match the data, after all retries."""


class ErrorFlagError(SensorError):
    """The sensor set its error flag (bit 15) in a temperature register."""


class ImplausibleReadingError(SensorError):
    """A decoded temperature lies outside the sensor's physical measuring range."""


@dataclass(frozen=True)
class Reading:
    """One checked reading: sensor (ambient) and object temperature in °C."""

    ambient_c: float
    object_c: float


@dataclass(frozen=True)
class ThermometerStats:
    """Counters since construction, for the health page and metrics."""

    reads: int
    failed_reads: int
    bus_errors: int
    pec_errors: int
    error_flags: int
    implausible: int
    retries: int


def crc8_smbus(data: bytes) -> int:
    """SMBus PEC: CRC-8, polynomial x⁸+x²+x+1 (0x07), initial value 0, MSB first."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def read_word_pec(address: int, register: int, lsb: int, msb: int) -> int:
    """The PEC the MLX90614 sends after a Read Word of ``register`` at ``address``."""
    address_write = address << 1
    return crc8_smbus(bytes([address_write, register, address_write | 1, lsb, msb]))


def raw_to_celsius(raw: int) -> float:
    """Convert a 15-bit temperature word (0.02 K per LSB) to °C."""
    return raw * KELVIN_PER_LSB - ZERO_CELSIUS_IN_KELVIN


def celsius_to_raw(celsius: float) -> int:
    """Convert °C to the 15-bit temperature word the sensor reports."""
    return round((celsius + ZERO_CELSIUS_IN_KELVIN) / KELVIN_PER_LSB) & 0x7FFF


class MLX90614Thermometer:
    """An MLX90614 on an injected I2C bus (``open_i2c_bus(1)`` on a Pi, a simulated bus on a PC).

    Every register read is checked (PEC, error flag, physical range); bus errors and PEC
    mismatches are retried up to ``retries`` times before a :class:`SensorError` is raised.
    The bus belongs to the caller: :meth:`close` does not deinitialise it.
    """

    def __init__(
        self, i2c_bus: I2CBus, *, address: int = DEFAULT_ADDRESS, retries: int = 2
    ) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"I2C address 0x{address:02x} is outside 0x03..0x77")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        import adafruit_mlx90614

        self._address = address
        self._retries = retries
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(ThermometerStats.__dataclass_fields__, 0)
        try:
            driver = adafruit_mlx90614.MLX90614(i2c_bus, address)
        except ValueError as exc:
            raise SensorMissingError(
                f"no MLX90614 answers at I2C address 0x{address:02x}: check wiring and address"
            ) from exc
        self._device: Any = driver._device
        logger.info("MLX90614 found at I2C address 0x%02x", address)

    @property
    def address(self) -> int:
        """The 7-bit I2C address."""
        return self._address

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._device is None

    def read(self) -> Reading:
        """Read ambient and object temperature; raise a :class:`SensorError` subclass on failure."""
        with self._lock:
            if self._device is None:
                raise SensorError(f"MLX90614 at 0x{self._address:02x} is closed")
            try:
                reading = Reading(
                    ambient_c=self._read_celsius(AMBIENT_REGISTER, AMBIENT_RANGE_C),
                    object_c=self._read_celsius(OBJECT_REGISTER, OBJECT_RANGE_C),
                )
            except SensorError:
                self._counts["failed_reads"] += 1
                raise
            self._counts["reads"] += 1
            return reading

    def stats(self) -> ThermometerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return ThermometerStats(**self._counts)

    def close(self) -> None:
        """Stop using the sensor. Idempotent."""
        with self._lock:
            self._device = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<MLX90614Thermometer at 0x{self._address:02x} closed>"
        stats = self.stats()
        return (
            f"<MLX90614Thermometer at 0x{self._address:02x}, reads={stats.reads}, "
            f"failed_reads={stats.failed_reads}, retries={stats.retries}>"
        )

    def _read_celsius(self, register: int, valid_range: tuple[float, float]) -> float:
        word = self._read_word_with_retries(register)
        if word & ERROR_FLAG:
            self._counts["error_flags"] += 1
            raise ErrorFlagError(
                f"MLX90614 at 0x{self._address:02x} set the error flag in register 0x{register:02x}"
            )
        celsius = raw_to_celsius(word)
        low, high = valid_range
        if not low <= celsius <= high:
            self._counts["implausible"] += 1
            raise ImplausibleReadingError(
                f"register 0x{register:02x} of MLX90614 at 0x{self._address:02x} reads "
                f"{celsius:.2f} °C, outside the sensor range {low:g}..{high:g} °C"
            )
        return celsius

    def _read_word_with_retries(self, register: int) -> int:
        attempt = 1
        while True:
            try:
                return self._read_word(register)
            except PecError as exc:
                self._counts["pec_errors"] += 1
                kind: type[SensorError] = PecError
                cause: OSError = exc
                reason = f"PEC mismatch ({exc})"
            except OSError as exc:
                self._counts["bus_errors"] += 1
                kind, reason, cause = BusError, f"I2C error ({exc.strerror or exc})", exc
            if attempt > self._retries:
                raise kind(
                    f"{reason} reading register 0x{register:02x} of MLX90614 at "
                    f"0x{self._address:02x} ({attempt} attempts)"
                ) from cause
            logger.debug("register 0x%02x attempt %d failed: %s", register, attempt, reason)
            self._counts["retries"] += 1
            attempt += 1

    def _read_word(self, register: int) -> int:
        reply = bytearray(3)
        with self._device as device:
            device.write_then_readinto(bytes([register]), reply)
        lsb, msb, pec = reply
        expected = read_word_pec(self._address, register, lsb, msb)
        if pec != expected:
            raise PecError(f"PEC 0x{pec:02x}, expected 0x{expected:02x}")
        return msb << 8 | lsb


def open_i2c_bus(bus_number: int) -> Any:
    """Open ``/dev/i2c-<bus_number>`` as a ``busio.I2C``-compatible bus, without ``import board``.

    The bus clock is set by the kernel (``dtparam=i2c_arm_baudrate=50000`` in config.txt is
    recommended for the MLX90614 on Pi 4 / Zero 2 W), not here.
    """
    device_path = f"/dev/i2c-{bus_number}"
    try:
        from adafruit_extended_bus import ExtendedI2C
    except (ImportError, RuntimeError) as exc:
        raise SensorMissingError(
            f"cannot open {device_path}: adafruit-extended-bus unusable ({exc})"
        ) from exc
    try:
        return ExtendedI2C(bus_number)
    except ValueError as exc:
        raise SensorMissingError(
            f"{device_path} not found: enable I2C with raspi-config (nonint do_i2c 0)"
        ) from exc
    except PermissionError as exc:
        raise SensorMissingError(
            f"{device_path}: permission denied: add the service user to the 'i2c' group"
        ) from exc
    except OSError as exc:
        raise SensorMissingError(f"cannot open {device_path}: {exc.strerror or exc}") from exc
