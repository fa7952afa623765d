"""What ``kiosk sim`` does to a simulated kiosk: the commands of its control socket.

- ``present``: a person steps up holding a code (rendered into the camera's frames) or an
  image, or nothing; a forehead at ``temp_c`` in front of the thermometer, or nobody. The
  answer is the decision the kiosk made (it waits up to ``wait_s`` for it).
- ``leave``: the person walks on.
- ``fire-alarm`` (``on``): the fire-alarm contact, on gpiozero's mock pin.
- ``passage``: the passage sensor's beam broken once and restored.
- ``thermometer`` (``failed``): the simulated MLX90614 fails every read, or works again.
- ``status``: the scene, the gate, every gate pin's level and the parts not working.

Each answer's ``said`` tells a technician what happened; the other fields are for scripts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kiosk.decide.pipeline import DecisionRecord
from kiosk.hardware import gate_pins
from kiosk.run.engine import Kiosk
from kiosk.run.simcontrol import Handler, RequestError
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.frames import Frame
from kiosk.sensors.simulation import Person, read_image

MAX_CODE_BYTES = 2048
TEMPERATURE_RANGE_C = (0.0, 80.0)
DEFAULT_TEMPERATURE_C = 36.6
DEFAULT_WAIT_S = 15.0
MAX_WAIT_S = 60.0
REARM_MARGIN_S = 0.3  # beyond camera.rearm_after_s: a few frames of the empty scene
GATE_PINS = ("relay", "green_light", "warning_light", "buzzer", "passage_sensor", "fire_alarm")


class Decisions:
    """The kiosk's recent decisions, for a request waiting for the one its person gets."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._recent: deque[DecisionRecord] = deque(maxlen=16)

    def add(self, record: DecisionRecord) -> None:
        """A decision was made (the kiosk's observer)."""
        with self._changed:
            self._recent.append(record)
            self._changed.notify_all()

    def first_since(self, since: float, timeout_s: float) -> DecisionRecord | None:
        """The first decision for a frame read at or after ``since`` (monotonic), waiting up
        to ``timeout_s`` for it; None if there is none by then."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for record in self._recent:
                    if record.started_at >= since:
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)


class SimulationCommands:
    """The control socket's commands for one simulated kiosk (``handlers`` by name)."""

    def __init__(self, kiosk: Kiosk) -> None:
        scene, factory = kiosk.hardware.scene, kiosk.hardware.pin_factory
        if scene is None or factory is None:
            raise ValueError("the kiosk runs on real hardware, not a simulation")
        self._kiosk = kiosk
        self._scene = scene
        self._factory = factory
        self._pins = gate_pins(kiosk.config)
        self._lock = threading.Lock()
        self._held: str | None = None  # what the person in front holds up ("code X", …)
        self._gone: tuple[str | None, float] = (None, 0.0)  # the last thing taken away, when
        self._decisions = Decisions()
        kiosk.add_observer(self._decisions.add)
        self.handlers: dict[str, Handler] = {
            "present": self.present,
            "leave": self.leave,
            "fire-alarm": self.fire_alarm,
            "passage": self.passage,
            "thermometer": self.thermometer,
            "status": self.status,
        }

    def present(self, request: dict[str, Any]) -> dict[str, Any]:
        """A person steps up; the decision the kiosk made for them."""
        _only(request, "present", "code", "image", "temp_c", "forehead", "wait_s")
        payload, image, shown = self._held_up(request)
        temp_c = _number(request, "temp_c", DEFAULT_TEMPERATURE_C, *TEMPERATURE_RANGE_C)
        forehead = _flag(request, "forehead", True)
        wait_s = _number(request, "wait_s", DEFAULT_WAIT_S, 0.0, MAX_WAIT_S)
        at_sensor = f"a forehead at {temp_c:.1f} °C" if forehead else "nobody at the thermometer"
        said = f"holding up {shown}, {at_sensor}"
        ambient_c = self._scene.ambient_c
        profile = sim.person(temp_c, ambient_c=ambient_c) if forehead else sim.nobody(ambient_c)
        held = None if payload is None and image is None else shown
        gone, gone_at = self._take_away()
        if held is not None and held == gone:  # shown again: wait until the camera re-arms
            rearm_s = self._kiosk.config.camera.rearm_after_s + REARM_MARGIN_S
            time.sleep(max(0.0, gone_at + rearm_s - time.monotonic()))
        since = time.monotonic()
        with self._lock:
            self._scene.step_up(Person(said, payload, profile, "", image))
            self._held = held
        if not wait_s:
            return {"ok": True, "said": said}
        record = self._decisions.first_since(since, wait_s)
        if record is None:
            raise RequestError(
                f"{said}, but the kiosk made no decision within {wait_s:g} s (a code counts "
                "again only after camera.rearm_after_s out of view, and not at all within the "
                "anti-passback grace; `kiosk sim status` shows what the kiosk sees)"
            )
        decision = _decision(record)
        temperature = decision["temperature_c"]
        return {
            "ok": True,
            "said": f"{said}\n{decision['outcome'].upper()} {decision['reason']}"
            + ("" if temperature is None else f" at {temperature:.1f} °C")
            + f": {decision['message']} (event {decision['event_id']})",
            "decision": decision,
        }

    def _held_up(self, request: dict[str, Any]) -> tuple[bytes | None, Frame | None, str]:
        """What a present request holds up to the camera: a code, an image, or nothing; and
        how to say it."""
        code, image_path = _text(request, "code"), _text(request, "image")
        if code is not None and image_path is not None:
            raise RequestError("present shows a code or an image, not both")
        if code is not None:
            payload = code.encode()
            if not 0 < len(payload) <= MAX_CODE_BYTES:
                raise RequestError(f"a code has 1 to {MAX_CODE_BYTES} bytes")
            return payload, None, f"code {code}"
        if image_path is None:
            return None, None, f"nothing (the camera shows {self._kiosk.hardware.frames.name})"
        if not Path(image_path).is_absolute():
            raise RequestError("the image's path must be absolute")
        try:
            return None, read_image(Path(image_path)), f"image {image_path}"
        except ValueError as exc:
            raise RequestError(str(exc)) from None

    def _take_away(self) -> tuple[str | None, float]:
        """The person in front walks on; what the last one held up, and when it went."""
        with self._lock:
            if self._scene.person is not None:
                self._gone = (self._held, time.monotonic())
                self._scene.leave()
            return self._gone

    def leave(self, request: dict[str, Any]) -> dict[str, Any]:
        """The person walks on."""
        _only(request, "leave")
        self._take_away()
        return {"ok": True, "said": "nobody in front of the camera or the thermometer"}

    def fire_alarm(self, request: dict[str, Any]) -> dict[str, Any]:
        """The fire-alarm contact opens (``on``) or closes."""
        _only(request, "fire-alarm", "on")
        on = _flag(request, "on", None)
        number = self._pins.fire_alarm
        if number is None:
            raise RequestError("no fire-alarm input is fitted (gate.fire_alarm_pin = false)")
        self._drive(number, on, self._pins.fire_alarm_active_low)
        state = self._kiosk.gate.state()
        relay = (
            "relay energised: turnstile released"
            if state.relay_energised
            else "relay de-energised: turnstile locked"
        )
        return {
            "ok": True,
            "said": f"fire alarm {'on' if on else 'off'} (GPIO{number}); {relay}",
            "gate": asdict(state),
        }

    def passage(self, request: dict[str, Any]) -> dict[str, Any]:
        """Someone walks through the passage sensor's beam."""
        _only(request, "passage")
        number = self._pins.passage_sensor
        if number is None:
            raise RequestError("no passage sensor is fitted (gate.passage_sensor_pin = false)")
        before = self._kiosk.gate.state().passages
        self._drive(number, True, self._pins.passage_active_low)
        self._drive(number, False, self._pins.passage_active_low)
        state = self._kiosk.gate.state()
        counted = state.passages - before
        said = f"beam of the passage sensor (GPIO{number}) broken and restored: " + (
            "a passage" if counted else "not counted: within the sensor's debounce time"
        )
        return {"ok": True, "said": said, "gate": asdict(state)}

    def thermometer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The simulated MLX90614 fails every read (``failed``) or works again."""
        _only(request, "thermometer", "failed")
        failed = _flag(request, "failed", None)
        if self._scene.sensor is None:
            raise RequestError("the kiosk has no thermometer (disabled, or not found at start)")
        self._scene.fail_thermometer(failed)
        said = "every read is an I2C error" if failed else "it reads again"
        return {"ok": True, "said": f"thermometer {'failing' if failed else 'working'}: {said}"}

    def status(self, request: dict[str, Any]) -> dict[str, Any]:
        """What the kiosk sees and does now."""
        _only(request, "status")
        kiosk = self._kiosk
        state, degraded = kiosk.gate.state(), kiosk.health().degraded
        person = self._scene.person
        pins = {
            name: {"gpio": number, "level": int(self._factory.pin(number).state)}
            for name in GATE_PINS
            if (number := getattr(self._pins, name)) is not None
        }
        failing = self._scene.thermometer_failed
        lines = [
            f"kiosk {kiosk.config.kiosk.id} ({kiosk.config.kiosk.mode} mode), "
            f"camera {kiosk.hardware.frames.name}",
            "in front: " + ("nobody" if person is None else person.label),
            f"thermometer: {'failing' if failing else 'working'}",
            f"gate: relay {'energised' if state.relay_energised else 'de-energised'}, "
            f"lockdown {_on(state.lockdown)}, emergency open {_on(state.emergency_open)}, "
            f"fire alarm {_on(state.fire_alarm)}, passages {state.passages}",
            "pins: "
            + ", ".join(
                f"GPIO{p['gpio']} {n} {'high' if p['level'] else 'low'}" for n, p in pins.items()
            ),
            "not working: " + (", ".join(degraded) if degraded else "nothing"),
        ]
        return {
            "ok": True,
            "said": "\n".join(lines),
            "scene": {"in_front": None if person is None else person.label},
            "thermometer_failing": failing,
            "gate": asdict(state),
            "pins": pins,
            "degraded": degraded,
        }

    def _drive(self, number: int, active: bool, active_low: bool) -> None:
        pin = self._factory.pin(number)
        if active != active_low:
            pin.drive_high()
        else:
            pin.drive_low()


def _decision(record: DecisionRecord) -> dict[str, Any]:
    decision, measurement = record.decision, record.measurement
    return {
        "outcome": decision.outcome.value,
        "reason": decision.reason.value,
        "message": decision.message_en,
        "temperature_c": None if measurement is None else measurement.celsius,
        "event_id": None if record.event is None else record.event.event_id,
        "signal": record.signal.value,
    }


def _on(value: bool) -> str:
    return "on" if value else "off"


def _only(request: dict[str, Any], command: str, *allowed: str) -> None:
    unknown = sorted(set(request) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) or "nothing"
        raise RequestError(f"{command} takes {expected}; not {', '.join(unknown)[:200]}")


def _text(request: dict[str, Any], key: str) -> str | None:
    value = request.get(key)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{key} must be text")
    return value


def _number(request: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RequestError(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def _flag(request: dict[str, Any], key: str, default: bool | None) -> bool:
    value = request.get(key, default)
    if not isinstance(value, bool):
        raise RequestError(f"{key} must be true or false")
    return value
