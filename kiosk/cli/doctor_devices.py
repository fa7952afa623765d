"""``kiosk doctor``'s device checks: the camera, the code scanner, the thermometer and the
gate's GPIO pins.

Each opens the real device (or its PC stand-in with ``simulate``), reads it once and closes it.
A scanner has no stand-in: it is a USB device that a PC can have too.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from kiosk.cli.doctor_check import PC_FIX, Check, ok
from kiosk.config import KioskConfig
from kiosk.sensors.frames import CameraError, FrameSource

CAMERA_TIMEOUT_S = 3.0
AMBIENT_PLAUSIBLE_C = (0.0, 50.0)  # the sensor's own temperature: a room, indoors or a porch


def check_camera(
    config: KioskConfig,
    simulate: bool,
    source: FrameSource | None = None,
    timeout_s: float = CAMERA_TIMEOUT_S,
    on_pi: Callable[[], bool] = lambda: True,
) -> Check:
    """The camera opens and delivers a frame within ``timeout_s``."""
    from kiosk.sensors.frames import GeneratedFrameSource, open_frame_source

    if source is None:
        source = (
            GeneratedFrameSource(lambda: None)
            if simulate
            else open_frame_source(config.camera.source)
        )
    name = source.name
    result: list[tuple[Any, float] | BaseException] = []

    def grab() -> None:
        started = time.monotonic()
        try:
            source.start()
            try:
                frame = None
                while frame is None and time.monotonic() - started < timeout_s:
                    frame = source.read()
                    if frame is None:
                        time.sleep(0.05)
            finally:
                source.close()
            result.append((frame, time.monotonic() - started))
        except Exception as exc:
            result.append(exc)

    worker = threading.Thread(target=grab, name="doctor-camera", daemon=True)
    worker.start()
    worker.join(timeout_s + 1.0)
    fix = (
        "check the camera cable and camera.source (`rpicam-hello --list-cameras`)"
        if simulate or on_pi()
        else PC_FIX
    )
    if not result:
        return Check("camera", "fail", f"{name}: no answer within {timeout_s:g} s", fix)
    outcome = result[0]
    if isinstance(outcome, CameraError | OSError | ValueError):
        return Check("camera", "fail", str(outcome), fix)
    if isinstance(outcome, BaseException):
        raise outcome
    frame, elapsed = outcome
    if frame is None:
        return Check("camera", "fail", f"{name}: opened, but no frame in {timeout_s:g} s", fix)
    height, width = frame.shape[:2]
    return ok("camera", f"{name}: {width}x{height} frame in {elapsed:.2f} s")


def check_scanner(config: KioskConfig) -> Check:
    """The configured scanner is there and can be taken: a keyboard-wedge scanner found and
    grabbed, a serial port opened (then released again)."""
    from kiosk.sensors.scanner import ScannerError, open_code_reader

    reader = open_code_reader(config.scanner, config.camera.max_payload_bytes)
    if reader is None:
        return ok("scanner", "none configured (scanner.type = none)")
    try:
        reader.open()
        where = reader.where
    except ScannerError as exc:
        if config.scanner.type == "hid":
            fix = (
                "plug the scanner in and check scanner.device (`ls -l /dev/input/by-id/`); "
                "the service user needs the 'input' group; stop what holds it "
                "(`systemctl stop kiosk`)"
            )
        else:
            fix = (
                "plug the scanner in and check scanner.device (`ls -l /dev/serial/by-id/`); "
                "the service user needs the 'dialout' group; stop what holds the port "
                "(`systemctl stop kiosk`)"
            )
        return Check("scanner", "fail", str(exc), fix)
    finally:
        reader.close()
    taken = "grabbed" if config.scanner.type == "hid" else "port opened"
    return ok("scanner", f"{where}: {taken}")


def check_thermometer(
    config: KioskConfig,
    simulate: bool,
    bus: Any = None,
    on_pi: Callable[[], bool] = lambda: True,
) -> Check:
    """The MLX90614 answers at the configured address with a plausible ambient reading."""
    from kiosk.sensors import simulated_mlx90614 as sim
    from kiosk.sensors.mlx90614 import (
        MLX90614Thermometer,
        SensorError,
        SensorMissingError,
        open_i2c_bus,
    )

    settings = config.thermometer
    if not settings.enabled:
        return ok("thermometer", "disabled in config (thermometer.enabled = false)")
    where = f"MLX90614 at 0x{settings.address:02x} on I2C bus {settings.i2c_bus}"
    wiring_fix = (
        f"check wiring (SDA, SCL, 3.3 V, GND), `i2cdetect -y {settings.i2c_bus}` "
        "and thermometer.address"
    )
    owned = bus is None
    try:
        if bus is None:
            if simulate:
                sensor = sim.SimulatedMLX90614(sim.nobody(), address=settings.address)
                bus = sim.SimulatedI2CBus(sensor)
            else:
                bus = open_i2c_bus(settings.i2c_bus)
        with MLX90614Thermometer(
            bus, address=settings.address, retries=settings.retries
        ) as thermometer:
            reading = thermometer.read()
    except SensorMissingError as exc:
        fix = wiring_fix if simulate or on_pi() else PC_FIX
        return Check("thermometer", "fail", str(exc), fix)
    except SensorError as exc:
        fix = (
            "check wiring and pull-ups, slow the bus (dtparam=i2c_arm_baudrate=50000); "
            "replace the sensor if it persists"
        )
        return Check("thermometer", "fail", f"{where}: {exc}", fix)
    finally:
        if owned and bus is not None:
            with contextlib.suppress(Exception):
                bus.deinit()
    low, high = AMBIENT_PLAUSIBLE_C
    if not low <= reading.ambient_c <= high:
        return Check(
            "thermometer",
            "fail",
            f"{where}: ambient {reading.ambient_c:.1f} °C is not a room temperature "
            f"({low:g} to {high:g} °C)",
            "the sensor is faulty or in the sun or next to a heat source: move or replace it",
        )
    return ok(
        "thermometer",
        f"{where}: ambient {reading.ambient_c:.1f} °C, object {reading.object_c:.1f} °C",
    )


def check_gpio(
    config: KioskConfig,
    simulate: bool,
    pin_factory: Any = None,
    on_pi: Callable[[], bool] = lambda: True,
) -> Check:
    """The gate's pins can be claimed and the relay is de-energised right after construction."""
    from gpiozero import Device

    from kiosk.gate import Gate
    from kiosk.hardware import gate_pins, gate_timing

    pins = gate_pins(config)
    owned = None
    if pin_factory is None and simulate:
        from gpiozero.pins.mock import MockFactory

        pin_factory = owned = MockFactory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gpiozero's PinFactoryFallback on each attempt
            try:
                gate = Gate(pins, gate_timing(config), pin_factory=pin_factory)
            except Exception as exc:
                if not simulate and not on_pi():
                    fix = PC_FIX
                else:
                    fix = (
                        f"stop whatever holds GPIO{pins.relay} (`systemctl stop kiosk`), "
                        "add the service user to the 'gpio' group, check the gate.*_pin keys"
                    )
                return Check(
                    "gpio",
                    "fail",
                    f"cannot claim the gate's pins: {type(exc).__name__}: {exc}",
                    fix,
                )
        try:
            factory = pin_factory if pin_factory is not None else Device.pin_factory
            level = bool(factory.pin(pins.relay).state)
            state = gate.state()
        finally:
            gate.close()
    finally:
        if owned is not None:
            owned.close()
    safe = not pins.relay_active_high  # de-energised: low when active high, high when active low
    where = f"relay on GPIO{pins.relay} (active {'high' if pins.relay_active_high else 'low'})"
    if state.fire_alarm:
        return Check(
            "gpio",
            "warn",
            f"{where}: the fire alarm input is active, so the relay is held energised",
            "if there is no alarm, check the fire-alarm wiring and gate.fire_alarm_active_low",
        )
    if level != safe:
        return Check(
            "gpio",
            "fail",
            f"{where}: pin reads {'high' if level else 'low'} after construction, "
            f"expected {'high' if safe else 'low'} (de-energised)",
            "check gate.relay_active_high against the relay board and its wiring",
        )
    return ok("gpio", f"{where}: claimed, de-energised ({'high' if level else 'low'})")
