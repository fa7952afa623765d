"""Central's Prometheus metrics, read from the store at each scrape: the fleet's gauges here,
``central_people_inside`` from :mod:`kiosk.central.presence`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kiosk.central.presence import PeopleInsideCollector
from kiosk.central.settings import CentralConfig
from kiosk.central.store import Store


class FleetCollector(Collector):
    """Kiosks by site and availability, events stored, messages quarantined."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges, as the store has them now."""
        kiosks = GaugeMetricFamily(
            "central_kiosks", "Kiosks by site and availability", labels=["site", "availability"]
        )
        counts = Counter((s.site, s.availability or "unknown") for s in self._store.fleet())
        for (site, availability), count in sorted(counts.items()):
            kiosks.add_metric([site, availability], count)
        yield kiosks
        yield GaugeMetricFamily("central_events_stored", "Events stored", value=self._store.count())
        yield GaugeMetricFamily(
            "central_quarantined", "Messages quarantined", value=self._store.quarantined_count()
        )


def central_registry(store: Store, config: CentralConfig) -> CollectorRegistry:
    """A registry with the fleet's gauges and the people inside each area."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(store))
    registry.register(PeopleInsideCollector(store, config))
    return registry
