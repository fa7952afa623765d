"""Prometheus metrics of one kiosk, on a registry of its own (no process-wide globals).

Nothing personal: decisions are counted by outcome and reason only.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DECODE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class KioskMetrics:
    """Counters and histograms the engine feeds; served at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "kiosk_decisions",
            "Decisions by outcome and reason",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "kiosk_decision_seconds",
            "From the frame with the code (or the person at the sensor) to the gate acting",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self.decode_seconds = Histogram(
            "kiosk_decode_seconds",
            "QR decoding time per camera frame",
            buckets=DECODE_BUCKETS,
            registry=self.registry,
        )
        self.sensor_faults = Counter(
            "kiosk_part_failures",
            "Times a part failed (camera, thermometer, log)",
            ["part"],
            registry=self.registry,
        )
        self.passages = Counter(
            "kiosk_passages",
            "Passages the sensor saw, by what let the person through (none: tailgating)",
            ["by"],
            registry=self.registry,
        )
        self.repeat_reads = Counter(
            "kiosk_repeat_reads",
            "The same pass again within the anti-passback grace, ignored as one scan",
            registry=self.registry,
        )
        self.backlog = Gauge(
            "kiosk_backlog_events", "Events not yet confirmed by central", registry=self.registry
        )
        self._inside: Gauge | None = None

    def decided(self, outcome: str, reason: str, seconds: float) -> None:
        """Count one decision and how long it took."""
        self.decisions.labels(outcome, reason).inc()
        self.decision_seconds.observe(seconds)

    def decoded(self, seconds: float) -> None:
        """One frame decoded."""
        self.decode_seconds.observe(seconds)

    def passage(self, by: str) -> None:
        """One passage, by what let the person through."""
        self.passages.labels(by).inc()

    def repeat_read(self) -> None:
        """A pass read again within the anti-passback grace (not a decision)."""
        self.repeat_reads.inc()

    def part_failed(self, part: str) -> None:
        """A part went from working to failed."""
        self.sensor_faults.labels(part).inc()

    def watch_backlog(self, read: Callable[[], float]) -> None:
        """Read the backlog size whenever the metrics are scraped."""
        self.backlog.set_function(read)

    def watch_inside(self, area: str, read: Callable[[], float]) -> None:
        """Serve ``kiosk_people_inside{area}``, read at each scrape; only kiosks that track
        occupancy (gate mode) call this, so the others have no such metric."""
        if self._inside is None:
            self._inside = Gauge(
                "kiosk_people_inside",
                "People inside the area now (entries granted today less exits, all its kiosks)",
                ["area"],
                registry=self.registry,
            )
        self._inside.labels(area).set_function(read)
