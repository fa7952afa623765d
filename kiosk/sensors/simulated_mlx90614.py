"""A register-level MLX90614 and I2C bus for PCs: the real Adafruit driver runs against them.

Used by the tests and by the kiosk's simulation mode. Temperatures come from a *profile*, a
function of the seconds since :meth:`SimulatedMLX90614.set_profile` returning a
:class:`SensorState`. Building blocks: :class:`Constant`, :class:`Forehead`, :class:`Switch`;
scenarios: :func:`nobody`, :func:`person`, :func:`noisy_then_settles`,
:func:`fever_not_confirmed`, :func:`dead`, :func:`error_flag`, :func:`bad_pec`.
"""

from __future__ import annotations

import errno
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.sensors.mlx90614 import (
    DEFAULT_ADDRESS,
    ERROR_FLAG,
    Buffer,
    celsius_to_raw,
    read_word_pec,
)

DEFAULT_REFRESH_S = 0.1
"""Output refresh of a factory-configured sensor (FIR 1024, IIR 100 %, −3 dB at 7.23 Hz): a new
settled value about every 0.1 s (pi-hardware notes §2.5). Confirm on hardware."""

_EMISSIVITY_ONE = 0xFFFF
_FACTORY_CONFIG1 = 0x9FB4
_FLAGS_IDLE = 0x0010


@dataclass(frozen=True)
class SensorState:
    """What the sensor reports at one instant, including the faults it can show."""

    ambient_c: float
    object_c: float
    error_flag: bool = False
    corrupt_pec: bool = False
    bus_error: bool = False


Profile = Callable[[float], SensorState]
"""Seconds since the profile was set → sensor state. Must accept slightly negative times."""


@dataclass(frozen=True)
class Constant:
    """The same state forever."""

    state: SensorState

    def __call__(self, t: float) -> SensorState:
        return self.state


@dataclass(frozen=True)
class Forehead:
    """A forehead stepping into view at ``arrive_s`` and leaving at ``leave_s`` (if given).

    The object temperature approaches ``body_c`` exponentially, reaching it within 1 % after
    ``rise_s``. ``noise_c`` adds reproducible Gaussian noise (standard deviation, seeded).
    """

    body_c: float
    ambient_c: float = 24.0
    arrive_s: float = 0.0
    rise_s: float = 0.3
    noise_c: float = 0.0
    seed: int = 0
    leave_s: float | None = None

    def __call__(self, t: float) -> SensorState:
        if t < self.arrive_s or (self.leave_s is not None and t >= self.leave_s):
            return SensorState(self.ambient_c, self.ambient_c)
        time_constant = self.rise_s / math.log(100)
        approach = 1.0 - math.exp(-(t - self.arrive_s) / time_constant) if time_constant else 1.0
        object_c = self.ambient_c + (self.body_c - self.ambient_c) * approach
        if self.noise_c:
            object_c += random.Random(f"{self.seed}:{t:.6f}").gauss(0.0, self.noise_c)
        return SensorState(self.ambient_c, object_c)


@dataclass(frozen=True)
class Switch:
    """``before`` until ``at_s`` seconds, then ``after`` (both see the same time axis)."""

    before: Profile
    at_s: float
    after: Profile

    def __call__(self, t: float) -> SensorState:
        return self.before(t) if t < self.at_s else self.after(t)


def nobody(ambient_c: float = 24.0) -> Profile:
    """Nobody in front of the sensor: it sees the room."""
    return Constant(SensorState(ambient_c, ambient_c))


def person(
    body_c: float,
    *,
    ambient_c: float = 24.0,
    arrive_s: float = 0.0,
    rise_s: float = 0.3,
    noise_c: float = 0.0,
    seed: int = 0,
    leave_s: float | None = None,
) -> Profile:
    """A person whose forehead reads ``body_c`` once in view (see :class:`Forehead`)."""
    return Forehead(body_c, ambient_c, arrive_s, rise_s, noise_c, seed, leave_s)


def noisy_then_settles(
    body_c: float = 36.6, *, noise_c: float = 0.8, settle_s: float = 0.8, seed: int = 1
) -> Profile:
    """A person who fidgets (noisy readings) for ``settle_s``, then holds still."""
    return Switch(person(body_c, noise_c=noise_c, seed=seed), settle_s, person(body_c))


def fever_not_confirmed(
    body_c: float = 36.6, *, hot_c: float = 38.4, hot_for_s: float = 1.0
) -> Profile:
    """A forehead that reads ``hot_c`` for ``hot_for_s`` (sun-warmed skin, a hot cup held up
    in view), then ``body_c``: long enough for a first measurement, gone by the retest."""
    return Switch(person(hot_c), hot_for_s, person(body_c))


def dead() -> Profile:
    """The sensor acknowledges its address but every read transfer fails."""
    return Constant(SensorState(24.0, 24.0, bus_error=True))


def error_flag(object_c: float = 36.6) -> Profile:
    """The sensor sets the error flag (bit 15) in its object-temperature registers."""
    return Constant(SensorState(24.0, object_c, error_flag=True))


def bad_pec(object_c: float = 36.6) -> Profile:
    """Every reply arrives with a wrong PEC byte (electrical noise on the bus)."""
    return Constant(SensorState(24.0, object_c, corrupt_pec=True))


class ManualClock:
    """A clock for tests and benchmarks: ``sleep()`` advances time instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance time by ``seconds``."""
        self._now += max(0.0, seconds)


COMMANDS_KEPT = 100  # a simulated kiosk reads the sensor for months: keep only the newest


class SimulatedMLX90614:
    """An MLX90614 answering SMBus Read Word commands like the real chip.

    RAM 0x06 ambient, 0x07 object, 0x08 object 2; EEPROM as 0x20|addr (emissivity, config 1,
    SMBus address); read flags 0xF0. Replies are LSB, MSB, PEC; anything else is NACKed with
    ``OSError(EREMOTEIO)``. Like the real output filter, values change only every
    ``refresh_s`` seconds: default 0.1 s, the factory filter (FIR 1024, IIR 100 %) delivering
    about ten settled values a second; the refresh phase is fixed at construction.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        clock: Callable[[], float] = time.monotonic,
        address: int = DEFAULT_ADDRESS,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        if refresh_s <= 0:
            raise ValueError(f"refresh_s must be > 0, got {refresh_s}")
        self.address = address
        self.refresh_s = refresh_s
        self.commands_read: deque[int] = deque(maxlen=COMMANDS_KEPT)  # the newest, for tests
        self._clock = clock
        self._lock = threading.Lock()
        self._powered_on_at = clock()
        self._profile = profile
        self._profile_started_at = self._powered_on_at
        self._failing_reads = 0

    def set_profile(self, profile: Profile) -> None:
        """Switch scenario now; the new profile's time starts at zero."""
        with self._lock:
            self._profile = profile
            self._profile_started_at = self._clock()

    def fail_next_reads(self, count: int) -> None:
        """Make the next ``count`` read transfers fail with a bus error (transient glitch)."""
        with self._lock:
            self._failing_reads = count

    def state(self) -> SensorState:
        """The state the sensor currently reports (held since the last output refresh)."""
        with self._lock:
            since_power_on = self._clock() - self._powered_on_at
            last_refresh = math.floor(since_power_on / self.refresh_s + 1e-9) * self.refresh_s
            return self._profile(self._powered_on_at + last_refresh - self._profile_started_at)

    def read_word(self, command: int, length: int) -> bytes:
        """Answer one Read Word transfer: ``length`` bytes of LSB, MSB, PEC, then 0xFF."""
        with self._lock:
            if self._failing_reads:
                self._failing_reads -= 1
                raise OSError(errno.EREMOTEIO, "Remote I/O error (simulated glitch)")
        state = self.state()
        if state.bus_error:
            raise OSError(errno.EREMOTEIO, "Remote I/O error (simulated dead sensor)")
        word = self._word(command, state)
        self.commands_read.append(command)
        lsb, msb = word & 0xFF, word >> 8
        pec = read_word_pec(self.address, command, lsb, msb) ^ (0xFF if state.corrupt_pec else 0)
        return (bytes([lsb, msb, pec]) + b"\xff" * length)[:length]

    def _word(self, command: int, state: SensorState) -> int:
        if command == 0x06:
            return celsius_to_raw(state.ambient_c)
        if command in (0x07, 0x08):
            return celsius_to_raw(state.object_c) | (ERROR_FLAG if state.error_flag else 0)
        eeprom = {0x24: _EMISSIVITY_ONE, 0x25: _FACTORY_CONFIG1, 0x2E: self.address}
        if command in eeprom:
            return eeprom[command]
        if command == 0xF0:
            return _FLAGS_IDLE
        raise OSError(errno.EREMOTEIO, f"NACK: unsupported command 0x{command:02x}")

    def __repr__(self) -> str:
        return f"<SimulatedMLX90614 at 0x{self.address:02x} profile={self._profile!r}>"


class SimulatedI2CBus:
    """A duck-typed ``busio.I2C`` with simulated devices on it."""

    def __init__(self, *devices: SimulatedMLX90614) -> None:
        self._lock = threading.Lock()
        self._devices = {device.address: device for device in devices}

    def try_lock(self) -> bool:
        """Take the bus if free (non-blocking), like ``busio.I2C``."""
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        """Release the bus."""
        self._lock.release()

    def deinit(self) -> None:
        """Nothing to release."""

    def scan(self) -> list[int]:
        """Addresses that acknowledge."""
        return sorted(self._devices)

    def writeto(
        self, address: int, buffer: Buffer, *, start: int = 0, end: int | None = None
    ) -> None:
        """Address-only writes (the driver's presence probe) are acknowledged."""
        self._device(address)
        if bytes(buffer[start:end]):
            raise OSError(errno.EREMOTEIO, "NACK: writes are not simulated")

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        """A read without a command: the bus idles high."""
        self._device(address)
        stop = len(buffer) if end is None else end
        buffer[start:stop] = b"\xff" * (stop - start)

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
    ) -> None:
        """Write a command, repeated start, read the reply (an SMBus Read Word)."""
        device = self._device(address)
        command = bytes(buffer_out[out_start:out_end])  # copy: the driver reuses one buffer
        if len(command) != 1:
            raise OSError(errno.EREMOTEIO, "NACK: expected a one-byte command")
        stop = len(buffer_in) if in_end is None else in_end
        buffer_in[in_start:stop] = device.read_word(command[0], stop - in_start)

    def _device(self, address: int) -> SimulatedMLX90614:
        try:
            return self._devices[address]
        except KeyError:
            raise OSError(errno.EREMOTEIO, "Remote I/O error") from None
