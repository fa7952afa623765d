"""Build the kiosk's devices from config: the real ones, or their PC stand-ins.

This is the only place that knows the difference. On a Pi: picamera2 (or an
OpenCV source), the MLX90614 on /dev/i2c-N, gpiozero's default pin factory. In
simulation: frames rendered from a :class:`~kiosk.sensors.simulation.Scene` (over the
configured image folder or video file, if any: a simulated kiosk opens no camera), the real
Adafruit driver over a simulated I2C bus, gpiozero's own MockFactory (whose pins keep a
short history).
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpiozero.pins.mock import MockConnectedPin, MockFactory, MockPin

from kiosk.config import KioskConfig, Pin
from kiosk.gate import Gate, GatePins, GateTiming
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.frames import FrameSource, open_frame_source
from kiosk.sensors.mlx90614 import MLX90614Thermometer, Reading, SensorError, open_i2c_bus
from kiosk.sensors.qr import QRDecoder, StillSceneDecoder, make_decoder
from kiosk.sensors.scanner import CodeReader, open_code_reader
from kiosk.sensors.simulation import Scene, SceneCamera, recorded_source

log = logging.getLogger(__name__)

PIN_HISTORY = 100  # state changes a simulated pin remembers (gpiozero's MockPin: all of them)


class ShortHistoryPin(MockPin):
    """gpiozero's MockPin keeping only its last ``PIN_HISTORY`` changes in ``states``.

    MockPin appends every change to a list for ever: a few per person, which a simulated
    kiosk running for months (or the soak benchmark) would see as a leak.
    """

    def clear_states(self) -> None:
        """Forget the history, keeping the current state as its first entry."""
        super().clear_states()
        self.states: deque[Any] = deque(self.states, maxlen=PIN_HISTORY)


class ShortHistoryConnectedPin(ShortHistoryPin, MockConnectedPin):
    """MockConnectedPin (an output wired to another pin) with a short history."""


def simulated_pin_factory() -> Any:
    """gpiozero's MockFactory whose pins keep a short history (:class:`ShortHistoryPin`)."""
    return MockFactory(pin_class=ShortHistoryPin)


class Thermometer(Protocol):
    """What the engine needs of a thermometer."""

    def read(self) -> Reading: ...

    def close(self) -> None: ...


@dataclass
class Hardware:
    """The devices of one kiosk; ``close()`` releases them all and leaves the relay off."""

    frames: FrameSource
    decoder: QRDecoder
    gate: Gate
    thermometer: Thermometer | None
    thermometer_problem: str | None = None
    pin_factory: Any = None  # gpiozero MockFactory in simulation, None on a Pi
    scene: Scene | None = None
    scanner: CodeReader | None = None  # a 2D code scanner, opened by its thread
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        """Release every device (idempotent)."""
        self._stack.close()


def gate_pins(config: KioskConfig) -> GatePins:
    """The gate's wiring from config (false → not fitted)."""
    g = config.gate

    def pin(value: Pin) -> int | None:
        return None if value is False else int(value)

    return GatePins(
        relay=g.relay_pin,
        relay_active_high=g.relay_active_high,
        green_light=pin(g.green_light_pin),
        warning_light=pin(g.warning_light_pin),
        buzzer=pin(g.buzzer_pin),
        passage_sensor=pin(g.passage_sensor_pin),
        passage_active_low=g.passage_active_low,
        fire_alarm=pin(g.fire_alarm_pin),
        fire_alarm_active_low=g.fire_alarm_active_low,
    )


def gate_timing(config: KioskConfig) -> GateTiming:
    """The gate's timing from config."""
    g = config.gate
    return GateTiming(
        relay_mode=g.relay_mode,
        pulse_s=g.pulse_ms / 1000,
        hold_timeout_s=g.hold_timeout_s,
        signal_s=g.signal_s,
    )


def build_hardware(
    config: KioskConfig,
    *,
    simulate: bool,
    scene: Scene | None = None,
    on_passage: Callable[[], None] | None = None,
    on_fire_alarm: Callable[[bool], None] | None = None,
    pin_factory: Any = None,
) -> Hardware:
    """Open every device for ``config``. A missing thermometer degrades, it does not stop.

    A camera or GPIO failure raises: without them the kiosk cannot work at all.
    ``pin_factory`` overrides the simulation's fresh gpiozero MockFactory (tests wire
    relay-feedback pins into it).
    """
    stack = contextlib.ExitStack()
    with stack:
        if simulate:
            if pin_factory is None:
                pin_factory = simulated_pin_factory()
                stack.callback(pin_factory.close)
            scene = scene or Scene()
        gate = Gate(
            gate_pins(config),
            gate_timing(config),
            pin_factory=pin_factory,
            on_passage=on_passage,
            on_fire_alarm=on_fire_alarm,
        )
        stack.callback(gate.close)
        decoder = StillSceneDecoder(make_decoder(config.camera.decoder))
        if scene is not None:
            frames: FrameSource = SceneCamera(scene, recorded_source(config.camera.source))
        else:
            frames = open_frame_source(config.camera.source)
        frames.start()
        stack.callback(frames.close)
        thermometer, problem = _open_thermometer(config, scene, stack)
        scanner = open_code_reader(config.scanner, config.camera.max_payload_bytes)
        if scanner is not None:  # a real device under --simulate too: one can be plugged in
            stack.callback(scanner.close)
        hardware = Hardware(
            frames,
            decoder,
            gate,
            thermometer,
            problem,
            pin_factory,
            scene,
            scanner,
            stack.pop_all(),
        )
    return hardware


def _open_thermometer(
    config: KioskConfig, scene: Scene | None, stack: contextlib.ExitStack
) -> tuple[Thermometer | None, str | None]:
    settings = config.thermometer
    if not settings.enabled:
        return None, "disabled in config"
    try:
        if scene is not None:
            sensor = sim.SimulatedMLX90614(sim.nobody(), address=settings.address)
            scene.attach(sensor)
            bus: Any = sim.SimulatedI2CBus(sensor)
        else:
            bus = open_i2c_bus(settings.i2c_bus)
        thermometer = MLX90614Thermometer(bus, address=settings.address, retries=settings.retries)
    except SensorError as exc:
        log.error("thermometer unavailable, people will be referred to the guard: %s", exc)
        return None, str(exc)
    stack.callback(thermometer.close)
    return thermometer, None
