"""Central's retention: old events and quarantine rows go, the quarantine stays bounded, and
``kiosk central run`` applies the config's [store] policy at start."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.central import Store, open_store
from kiosk.central.cli import PASSWORD_ENV
from kiosk.central.quarantine import QUARANTINE_MAX_ROWS, refusal
from kiosk.central.retention import RetentionJob, apply_retention, bound_quarantine
from kiosk.central.settings import StoreSection
from kiosk.central.web import alerts
from tests.broker import Broker
from tests.central_support import SITE, rows, stored_seqs
from tests.support import wait_until

pytest_plugins = ("tests.central_fixtures",)

DAY_MS = 86_400_000
TOPIC = f"kiosk/v1/{SITE}/k1/events"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def fill(store: Store, at_ms: int) -> None:
    """Events 1-2 received 3 days before ``at_ms``, 3-4 now; quarantine rows q0 (oldest) to
    q4, the first three days old."""
    store.insert_batch(
        [r._replace(received_at_ms=at_ms - 3 * DAY_MS) for r in rows(SITE, "k1", [1, 2])]
    )
    store.insert_batch([r._replace(received_at_ms=at_ms) for r in rows(SITE, "k1", [3, 4])])
    for n in range(5):
        age = 3 * DAY_MS if n < 3 else 0
        store.quarantine([refusal(TOPIC, f"q{n}".encode(), f"q{n}", at_ms - age + n)])


def test_old_events_and_quarantine_rows_go_and_the_quarantine_is_bounded(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    at = now_ms()
    fill(store, at)
    caplog.set_level(logging.INFO, "kiosk.central.retention")
    pruned = apply_retention(store, StoreSection(retention_days=2, quarantine_max_rows=1), at)
    assert (pruned.events, pruned.quarantined, pruned.over_bound) == (2, 3, 1)
    assert stored_seqs(store) == [3, 4]
    assert [q.reason for q in store.quarantined(10)] == ["q4"]  # the newest is kept
    assert "deleted 2 events, 3 quarantine rows and 0 daily list files older than 2 days" in (
        caplog.text
    )
    assert "deleted the 1 oldest quarantine rows beyond quarantine_max_rows 1" in caplog.text


def test_pruning_forgets_the_gaps_it_reaches_and_is_no_gap_itself(store: Store) -> None:
    at = now_ms()
    old = [r._replace(received_at_ms=at - 3 * DAY_MS) for r in rows(SITE, "k1", [1, 3])]
    store.insert_batch([*old, *rows(SITE, "k1", [5])])  # received at 5 ms: older still
    store.insert_batch([r._replace(received_at_ms=at) for r in rows(SITE, "k1", [7, 8])])
    assert store.gaps(SITE, "k1") == [[2, 2], [4, 4], [6, 6]]
    assert apply_retention(store, StoreSection(retention_days=2), at).events == 3
    assert stored_seqs(store) == [7, 8]
    assert store.gaps(SITE, "k1") == [[6, 6]]  # gaps at or below a pruned seq are forgotten
    (k1,) = store.fleet()
    assert (k1.count, k1.missing) == (5, 3)  # what was ever stored: pruning is not a gap


def test_without_a_retention_only_the_bound_applies(store: Store) -> None:
    at = now_ms()
    fill(store, at)
    assert apply_retention(store, StoreSection(quarantine_max_rows=3), at).events == 0
    assert store.count() == 4
    assert sorted(q.reason for q in store.quarantined(10)) == ["q2", "q3", "q4"]
    assert bound_quarantine(store, 3) == 0


def test_the_daily_lists_older_than_the_retention_leave_the_report_folder(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    at = now_ms()
    today = datetime.fromtimestamp(at / 1000, UTC).date()
    old, recent = (today - timedelta(days=3)).isoformat(), (today - timedelta(days=1)).isoformat()
    names = [
        f"entries-{SITE}-{old}.xlsx",
        f"entries-{old}.csv",
        f"entries-{SITE}-{recent}.json",
        f"notes-{old}.txt",
    ]
    for name in names:
        (folder / name).write_text("x", encoding="utf-8")
    pruned = apply_retention(store, StoreSection(retention_days=2), at, str(folder))
    assert pruned.report_files == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted(names[2:])
    assert apply_retention(store, StoreSection(), at, str(folder)).report_files == 0


def test_the_quarantine_bound_holds_as_rows_are_written(store: Store) -> None:
    store.quarantine_max_rows = 3
    at = now_ms()
    for n in range(5):
        store.quarantine([refusal(TOPIC, f"q{n}".encode(), f"q{n}", at + n)])
    assert [q.reason for q in store.quarantined(10)] == ["q4", "q3", "q2"]
    assert StoreSection().quarantine_max_rows == QUARANTINE_MAX_ROWS == Store.quarantine_max_rows


def test_acknowledgements_older_than_the_alerts_feed_go(store: Store) -> None:
    at = now_ms()
    alerts.acknowledge(store, "old", "anh", at - 8 * DAY_MS)
    alerts.acknowledge(store, "new", "anh", at - DAY_MS)
    assert apply_retention(store, StoreSection(), at).acks == 1
    left = store.transaction(lambda cur: cur.execute("SELECT alert FROM alert_acks").fetchall())
    assert [tuple(row) for row in left] == [("new",)]


def test_the_job_runs_at_start_and_again_after_its_interval(store: Store) -> None:
    fill(store, now_ms())
    job = RetentionJob(store, StoreSection(retention_days=2), every_s=0.05)
    job.start()
    try:
        wait_until(lambda: job.runs >= 2)
    finally:
        job.stop()
    assert stored_seqs(store) == [3, 4]


@pytest.mark.parametrize(
    ("in_file", "flags"), [(2, []), (0, ["--retention-days", "2"])], ids=["file", "flag"]
)
def test_central_run_applies_the_retention_of_its_config_or_flag(
    broker: Broker, tmp_path: Path, in_file: int, flags: list[str]
) -> None:
    db = tmp_path / "central.db"
    store = open_store(str(db))
    fill(store, now_ms())
    config = tmp_path / "central.toml"
    config.write_text(
        f'[store]\ndb = "{db}"\nretention_days = {in_file}\nquarantine_max_rows = 1\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        PASSWORD_ENV: broker.password("central"),
        "KIOSK_CENTRAL_CONFIG": str(config),
    }
    command = [
        sys.executable,
        "-c",
        "from kiosk.cli.main import main; main()",
        "central",
        "run",
        *flags,
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: store.count() == 2 and store.quarantined_count() == 1, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert stored_seqs(store) == [3, 4]
    store.close()
