"""Central's retention: what the privacy notice promises about the server, done once a day.

Events central received more than ``[store] retention_days`` ago are deleted, and so are
quarantine rows last refused before then (:meth:`Store.prune`) and the daily lists in
``[report] folder`` of days before then (``entries-*.xlsx``, ``.csv``, ``.json``); the quarantine
is also kept to ``[store] quarantine_max_rows`` (as every write does), the rows last refused
longest ago going first. Acknowledgements of alerts older than the dashboard's feed
(:data:`~kiosk.central.reports.deliveries.ALERT_DAYS`) go too. Each run logs how many rows and
files went. Roster entries are removed by hand (``kiosk central roster remove``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kiosk.central.jobs import Job
from kiosk.central.quarantine import trim
from kiosk.central.reports.deliveries import ALERT_DAYS
from kiosk.central.settings import StoreSection
from kiosk.central.store import Store

log = logging.getLogger(__name__)

DAY_S = 86_400.0
#: A daily list's file name (:func:`kiosk.central.reports.export.file_name`) and its day.
_REPORT_FILE = re.compile(r"entries-(?:.+-)?(\d{4}-\d{2}-\d{2})\.(?:xlsx|csv|json)")


@dataclass(frozen=True)
class Pruned:
    """How many rows and files one run of the retention deleted."""

    events: int
    quarantined: int  # older than the retention
    over_bound: int  # the oldest quarantine rows beyond quarantine_max_rows
    report_files: int = 0  # daily lists in the report folder older than the retention
    acks: int = 0  # acknowledgements of alerts no longer in the feed


def apply_retention(
    store: Store, policy: StoreSection, now_ms: int, report_folder: str = ""
) -> Pruned:
    """Delete what ``policy`` says is too old (with the daily lists in ``report_folder``),
    then bound the quarantine and drop acknowledgements older than the feed; log the counts."""
    events = quarantined = files = 0
    if policy.retention_days > 0:
        before_ms = now_ms - int(policy.retention_days * DAY_S * 1000)
        events, quarantined = store.prune(before_ms)
        if report_folder:
            files = remove_old_reports(Path(report_folder), _utc_day(before_ms))
    over_bound = bound_quarantine(store, policy.quarantine_max_rows)
    acks = prune_acks(store, now_ms - int(ALERT_DAYS * DAY_S * 1000))
    pruned = Pruned(events, quarantined, over_bound, files, acks)
    if events or quarantined or files:
        log.info(
            "retention: deleted %d events, %d quarantine rows and %d daily list files older"
            " than %g days",
            events,
            quarantined,
            files,
            policy.retention_days,
        )
    if over_bound:
        log.warning(
            "retention: deleted the %d oldest quarantine rows beyond quarantine_max_rows %d",
            over_bound,
            policy.quarantine_max_rows,
        )
    return pruned


def _utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def remove_old_reports(folder: Path, before: date) -> int:
    """Delete the daily lists in ``folder`` of days before ``before``; returns how many."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        found = _REPORT_FILE.fullmatch(path.name)
        if found and path.is_file() and date.fromisoformat(found[1]) < before:
            path.unlink()
            removed += 1
    return removed


def prune_acks(store: Store, before_ms: int) -> int:
    """Delete the alert acknowledgements made before ``before_ms``; returns how many went."""
    param = store.dialect.param

    def work(cur: Any) -> int:
        cur.execute(f"DELETE FROM alert_acks WHERE acked_at_ms < {param}", (before_ms,))
        return int(cur.rowcount)

    return int(store.transaction(work))


def bound_quarantine(store: Store, max_rows: int) -> int:
    """Delete the quarantine rows last refused longest ago until ``max_rows`` are left;
    returns how many went."""
    return int(store.transaction(lambda cur: trim(cur, store.dialect.param, max_rows)))


class RetentionJob(Job):
    """Runs :func:`apply_retention` at start and then every ``every_s`` in its own thread."""

    def __init__(
        self, store: Store, policy: StoreSection, every_s: float = DAY_S, report_folder: str = ""
    ) -> None:
        super().__init__("central-retention")
        self._store, self._policy, self._every_s = store, policy, every_s
        self._report_folder = report_folder
        self.runs = 0

    def _loop(self) -> None:
        while True:
            try:
                now_ms = time.time_ns() // 1_000_000
                apply_retention(self._store, self._policy, now_ms, self._report_folder)
            except Exception:
                log.exception("retention run failed; trying again at the next one")
            self.runs += 1
            if self._stop.wait(self._every_s):
                return
