"""The kiosk's health: which parts work, frame rate, today's counts, the retained state document."""

from __future__ import annotations

import shutil
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.config import KioskConfig
from kiosk.decide.decision import Reason
from kiosk.events import EventType, Part
from kiosk.gate_parts.admissions import PassageCause
from kiosk.gate_parts.data import GateState
from kiosk.sensors.mlx90614 import Reading
from kiosk.store.eventlog import Event, LogStats


@dataclass(frozen=True)
class PartState:
    """One part: working or not, and why."""

    ok: bool = True
    detail: str = "ok"


@dataclass(frozen=True)
class Health:
    """A snapshot of every part, for logs, the status page and MQTT."""

    parts: dict[str, PartState]
    frames_read: int
    frames_per_s: float
    last_reading: Reading | None
    last_temperature_c: float | None
    gate: GateState
    log: LogStats | None
    clock_synced: bool
    today: dict[str, int]
    inside: int | None = None  # people in the area, where tracked (gate mode); else None

    @property
    def degraded(self) -> list[str]:
        """Names of the parts that are not working."""
        return [name for name, part in self.parts.items() if not part.ok]

    def ok(self, part: str) -> bool:
        """Whether ``part`` works."""
        return self.parts[part].ok


class Parts:
    """Thread-safe working/failed state of each part."""

    def __init__(self, **initial: PartState) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, PartState] = {name: initial.get(name, PartState()) for name in Part}

    def set(self, name: Part, ok: bool, detail: str) -> bool:
        """Record a part's state; True if working/failed changed."""
        with self._lock:
            changed = self._parts[name].ok != ok
            self._parts[name] = PartState(ok, detail)
        return changed

    def snapshot(self) -> dict[str, PartState]:
        """Every part's state now."""
        with self._lock:
            return dict(self._parts)


@dataclass
class FrameCounter:
    """Frames read: how many, when the last came, and the recent rate."""

    count: int = 0
    last_frame_at: float = 0.0
    _times: deque[float] = field(default_factory=lambda: deque(maxlen=60))

    def seen(self, at: float) -> None:
        """A frame arrived at monotonic time ``at``."""
        self.count += 1
        self.last_frame_at = at
        self._times.append(at)

    def per_second(self) -> float:
        """Frames per second over the last 60 frames."""
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return round((len(times) - 1) / (times[-1] - times[0]), 1)


class DailyCounts:
    """Today's decisions by outcome, fevers and unauthorised passages (tailgating); starts
    again at local midnight."""

    def __init__(self, day: date) -> None:
        self._lock = threading.Lock()
        self._day = day
        self._counts = dict.fromkeys(("granted", "denied", "referred", "fevers", "tailgating"), 0)

    def add(self, day: date, outcome: str, reason: str) -> None:
        """Count one decision made on ``day``."""
        key = {"grant": "granted", "deny": "denied", "refer": "referred"}[outcome]
        self._count(day, key, fever=reason == Reason.FEVER)

    def add_tailgating(self, day: date) -> None:
        """Count one passage that nothing authorised, on ``day``."""
        self._count(day, "tailgating")

    def _count(self, day: date, key: str, *, fever: bool = False) -> None:
        with self._lock:
            if day != self._day:
                self._day, self._counts = day, dict.fromkeys(self._counts, 0)
            self._counts[key] += 1
            if fever:
                self._counts["fevers"] += 1

    def snapshot(self, day: date) -> dict[str, int]:
        """The counts for ``day`` (zeros once the day has changed)."""
        with self._lock:
            return dict(self._counts) if day == self._day else dict.fromkeys(self._counts, 0)

    def add_logged(self, events: Iterable[Event], day_of: Any) -> None:
        """Count decisions and unauthorised passages already in the log (at start),
        ``day_of(ts_ms) -> date``."""
        for event in events:
            if event.type == EventType.DECISION:
                self.add(day_of(event.ts_ms), event.data["outcome"], event.data["reason"])
            elif event.type == EventType.PASSAGE and event.data.get("by") == PassageCause.NONE:
                self.add_tailgating(day_of(event.ts_ms))


def _free_mb(directory: Path) -> float | None:
    try:
        return round(shutil.disk_usage(directory).free / 1_048_576, 1)
    except OSError:
        return None


def state_document(config: KioskConfig, health: Health, now_ms: int) -> dict[str, Any]:
    """The retained ``state`` message (without the sync's own ``mqtt`` part; ``scanner`` only
    where one is configured)."""
    parts, reading, stats = health.parts, health.last_reading, health.log
    oldest = None
    if stats is not None and stats.oldest_unconfirmed_ts_ms is not None:
        oldest = round(max(0, now_ms - stats.oldest_unconfirmed_ts_ms) / 1000, 1)
    gate = health.gate
    scanner = None
    if config.scanner.type != "none":
        scanner = {"ok": parts[Part.SCANNER].ok, "detail": parts[Part.SCANNER].detail}
    document = {
        "kiosk": config.kiosk.id,
        "site": config.kiosk.site,
        "version": __version__,
        "mode": config.kiosk.mode,
        "camera": {
            "ok": parts[Part.CAMERA].ok,
            "detail": parts[Part.CAMERA].detail,
            "fps": health.frames_per_s,
        },
        "thermometer": {
            "ok": parts[Part.THERMOMETER].ok,
            "detail": parts[Part.THERMOMETER].detail,
            "ambient_c": None if reading is None else round(reading.ambient_c, 2),
            "object_c": None if reading is None else round(reading.object_c, 2),
        },
        "gate": {
            "relay_energised": gate.relay_energised,
            "lockdown": gate.lockdown,
            "emergency_open": gate.emergency_open,
            "fire_alarm": gate.fire_alarm,
        },
        "log": {
            "ok": parts[Part.LOG].ok and stats is not None,
            "rows": 0 if stats is None else stats.rows,
            "unconfirmed": 0 if stats is None else stats.unconfirmed,
            "oldest_unconfirmed_age_s": oldest,
            "near_capacity": stats is not None and stats.near_capacity,
            "disk_free_mb": _free_mb(config.log_path.parent),
        },
        "operator_state": {
            "ok": parts[Part.OPERATOR_STATE].ok,
            "detail": parts[Part.OPERATOR_STATE].detail,
        },
        "clock_synced": health.clock_synced,
        "today": health.today,
        "last_temperature_c": health.last_temperature_c,
        "occupancy": None
        if health.inside is None
        else {"area": config.kiosk.area, "inside": health.inside},
    }
    if scanner is not None:
        document["scanner"] = scanner
    return document
