"""Central's retention: what the privacy notice promises about the server, done once a day.

Events central received more than ``[store] retention_days`` ago are deleted, and so are
quarantine rows last refused before then (:meth:`Store.prune`); the quarantine is also kept to
``[store] quarantine_max_rows``, the rows last refused longest ago going first. Each run logs
how many rows went. Roster entries are removed by hand (``kiosk central roster remove``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kiosk.central.jobs import Job
from kiosk.central.settings import StoreSection
from kiosk.central.store import Store

log = logging.getLogger(__name__)

DAY_S = 86_400.0


@dataclass(frozen=True)
class Pruned:
    """How many rows one run of the retention deleted."""

    events: int
    quarantined: int  # older than the retention
    over_bound: int  # the oldest quarantine rows beyond quarantine_max_rows


def apply_retention(store: Store, policy: StoreSection, now_ms: int) -> Pruned:
    """Delete what ``policy`` says is too old, then bound the quarantine; log the counts."""
    events = quarantined = 0
    if policy.retention_days > 0:
        events, quarantined = store.prune(now_ms - int(policy.retention_days * DAY_S * 1000))
    over_bound = bound_quarantine(store, policy.quarantine_max_rows)
    pruned = Pruned(events, quarantined, over_bound)
    if events or quarantined:
        log.info(
            "retention: deleted %d events and %d quarantine rows older than %g days",
            events,
            quarantined,
            policy.retention_days,
        )
    if over_bound:
        log.warning(
            "retention: deleted the %d oldest quarantine rows beyond quarantine_max_rows %d",
            over_bound,
            policy.quarantine_max_rows,
        )
    return pruned


def bound_quarantine(store: Store, max_rows: int) -> int:
    """Delete the quarantine rows last refused longest ago until ``max_rows`` are left;
    returns how many went."""
    param = store.dialect.param

    def work(cur: Any) -> int:
        cur.execute("SELECT count(*) FROM quarantine")
        excess = int(cur.fetchone()[0]) - max_rows
        if excess <= 0:
            return 0
        cur.execute(
            "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine"
            f" ORDER BY last_ms, id LIMIT {param})",
            (excess,),
        )
        return excess

    return int(store.transaction(work))


class RetentionJob(Job):
    """Runs :func:`apply_retention` at start and then every ``every_s`` in its own thread."""

    def __init__(self, store: Store, policy: StoreSection, every_s: float = DAY_S) -> None:
        super().__init__("central-retention")
        self._store, self._policy, self._every_s = store, policy, every_s
        self.runs = 0

    def _loop(self) -> None:
        while True:
            try:
                apply_retention(self._store, self._policy, time.time_ns() // 1_000_000)
            except Exception:
                log.exception("retention run failed; trying again at the next one")
            self.runs += 1
            if self._stop.wait(self._every_s):
                return
