"""The kiosk's monitor: which parts work, the events it logs, frames, today's counts.

Every event the kiosk itself writes goes through :meth:`Monitor.append` or
:meth:`Monitor.record`, so that a log that fails or recovers is reported as the part ``log``.
The monitor also keeps the log healthy (pruning, the fill check) and replays today's log
at start, so that today's counts, occupancy and attendance survive a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from kiosk.events import EventType, Part
from kiosk.gate_parts.data import GateState
from kiosk.run.health import DailyCounts, FrameCounter, Health, Parts, PartState
from kiosk.run.metrics import KioskMetrics
from kiosk.sensors.mlx90614 import Reading
from kiosk.store.eventlog import (
    REOPEN_AFTER_S,
    Event,
    EventLog,
    EventLogError,
    LogStats,
    LogWriteError,
)

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 60.0  # prune confirmed events and check the log's fill this often

Learn = Callable[[str, str, int, dict[str, Any]], None]
"""Takes a logged event into the area state: ``learn(type, event_id, ts_ms, data)``."""


def local_day(moment: datetime) -> date:
    """The local calendar day of ``moment``."""
    return moment.astimezone().date()


class Monitor:
    """Parts, logged events and counts of one kiosk; thread-safe where the loops share it."""

    def __init__(
        self,
        event_log: EventLog,
        metrics: KioskMetrics,
        learn: Learn,
        *,
        thermometer: PartState,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.event_log = event_log
        self.frames = FrameCounter()
        self.last_reading: Reading | None = None
        self.last_temperature_c: float | None = None
        self._metrics = metrics
        self._learn = learn
        self._clock = clock
        self._wall_clock = wall_clock
        self._parts = Parts(thermometer=thermometer)
        self._today = DailyCounts(self.today())
        self._observers: list[Callable[[], None]] = []
        self._next_housekeeping = 0.0
        self._replay_pending = False  # today's log still to replay once it can be read

    def add_observer(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` whenever a part fails or recovers, or the gate's overrides change."""
        self._observers.append(observer)

    def changed(self) -> None:
        """Tell the observers that the health changed."""
        for observer in self._observers:
            observer()

    def today(self) -> date:
        """The local day now."""
        return local_day(self._wall_clock())

    # --- the log -----------------------------------------------------------------------

    def append(self, event_type: EventType, data: dict[str, Any]) -> Event:
        """Append an event durably; LogWriteError if not (the part ``log`` then fails)."""
        try:
            event = self.event_log.append(event_type.value, data)
        except LogWriteError as exc:
            self.set(Part.LOG, False, str(exc))
            raise
        self.set(Part.LOG, True, "ok")
        return event

    def record(self, event_type: EventType, data: dict[str, Any]) -> Event | None:
        """Append an event durably; on failure report it and return None."""
        try:
            return self.append(event_type, data)
        except LogWriteError:
            return None

    # --- parts ---------------------------------------------------------------------------

    def set(self, part: Part, ok: bool, detail: str) -> None:
        """Record a part's state; a change is logged, counted, recorded and observed."""
        if not self._parts.set(part, ok, detail):
            return
        if ok:
            log.info("%s recovered", part)
        else:
            log.error("%s failed: %s", part, detail)
            self._metrics.part_failed(part)
        if part is not Part.LOG:
            self.record(EventType.HEALTH, {"part": part.value, "ok": ok, "detail": detail})
        self.changed()

    def failed_at_start(self, part: Part, detail: str) -> None:
        """A part found broken while the kiosk is built (before anyone observes it)."""
        self._parts.set(part, False, detail)
        self.record(EventType.HEALTH, {"part": part.value, "ok": False, "detail": detail})

    def ok(self, part: Part) -> bool:
        """Whether ``part`` works now."""
        return self._parts.snapshot()[part].ok

    def frame_seen(self, at: float) -> None:
        """A camera frame arrived at monotonic ``at``: the camera works."""
        self.frames.seen(at)
        if not self.ok(Part.CAMERA):
            self.set(Part.CAMERA, True, "ok")

    def reading(self, reading: Reading) -> None:
        """The thermometer's newest raw reading."""
        self.last_reading = reading

    def temperature(self, celsius: float) -> None:
        """The newest measured temperature (kept to 0.01 °C)."""
        self.last_temperature_c = round(celsius, 2)

    def decided(self, outcome: str, reason: str) -> None:
        """Count one decision today."""
        self._today.add(self.today(), outcome, reason)

    def tailgated(self) -> None:
        """Count one passage that nothing authorised today."""
        self._today.add_tailgating(self.today())

    def health(self, gate: GateState, inside: int | None, clock_synced: bool) -> Health:
        """Every part's state now, with the gate's and the area's."""
        try:
            stats: LogStats | None = self.event_log.stats()
        except EventLogError:
            stats = None
        return Health(
            parts=self._parts.snapshot(),
            frames_read=self.frames.count,
            frames_per_s=self.frames.per_second(),
            last_reading=self.last_reading,
            last_temperature_c=self.last_temperature_c,
            gate=gate,
            log=stats,
            clock_synced=clock_synced,
            today=self._today.snapshot(self.today()),
            inside=inside,
        )

    # --- housekeeping ----------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Now and then: prune confirmed events and report a log that is filling up."""
        now = self._clock()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        try:
            self.event_log.prune()
            stats = self.event_log.stats()
        except EventLogError as exc:
            self.set(Part.LOG, False, str(exc))
            self._next_housekeeping = now + REOPEN_AFTER_S  # a log down at start: retry soon
            return
        self.set(Part.LOG, True, "ok")
        if self._replay_pending:  # the log could not be read at start
            self.replay_today()
        detail = f"{stats.unconfirmed} unconfirmed of {stats.rows} rows, capacity {stats.capacity}"
        self.set(Part.LOG_CAPACITY, not stats.near_capacity, detail)

    def replay_today(self) -> None:
        """Today's counts, occupancy and attendance survive a restart: replay today's log."""
        today = self.today()
        midnight = datetime.combine(today, datetime.min.time()).astimezone()
        since_ms = int(midnight.timestamp() * 1000)
        kinds = (EventType.DECISION, EventType.PASSAGE, EventType.GRANT_UNUSED)
        try:
            events = [e for kind in kinds for e in self.event_log.recent(100_000, type=kind.value)]
        except EventLogError:
            self._replay_pending = True
            return
        self._replay_pending = False
        today_events = sorted((e for e in events if e.ts_ms >= since_ms), key=lambda e: e.seq)
        self._today.add_logged(
            today_events, lambda ts_ms: local_day(datetime.fromtimestamp(ts_ms / 1000, UTC))
        )
        for e in today_events:
            self._learn(e.type, e.event_id, e.ts_ms, e.data)
