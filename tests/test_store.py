"""Tests for the durable event log (kiosk.store.eventlog), on real SQLite files."""

from __future__ import annotations

import errno
import itertools
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.run.runtime import open_kiosk
from kiosk.store.eventlog import (
    SCHEMA_VERSION,
    Event,
    EventLog,
    EventLogError,
    LogOpenError,
    LogStats,
    LogWriteError,
    Retention,
    read_events,
)
from tests.support import make_config

T0 = 1_700_000_000_000

MakeLog = Callable[..., EventLog]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def make_log(db: Path) -> Iterator[MakeLog]:
    """Build logs on ``db`` with a clock ticking 1 s per call and ids id-1, id-2, …."""
    logs: list[EventLog] = []
    ids = (f"id-{n}" for n in itertools.count(1))

    def make(**kwargs: Any) -> EventLog:
        kwargs.setdefault("boot_id", "boot-a")
        kwargs.setdefault("now_ms", itertools.count(T0, 1000).__next__)
        kwargs.setdefault("new_id", ids.__next__)
        log = EventLog(db, **kwargs)
        logs.append(log)
        return log

    yield make
    for log in logs:
        log.close()


def raw_rows(db: Path) -> list[tuple[Any, ...]]:
    """Every event row as stored, read over a separate connection."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM events ORDER BY seq").fetchall()


def user_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_append_stores_every_field_and_reads_back_after_reopen(make_log: MakeLog) -> None:
    synced = iter([False, True])
    log = make_log(clock_synced=synced.__next__)
    first = log.append("scan", {"code": "UNREADABLE"})
    second = log.append("gate", {"code": "OK", "lane": 1})
    log.close()

    assert [first, second] == [
        Event("id-1", 1, "boot-a", T0, False, "scan", {"code": "UNREADABLE"}),
        Event("id-2", 2, "boot-a", T0 + 1000, True, "gate", {"code": "OK", "lane": 1}),
    ]
    assert make_log(boot_id="boot-b").recent() == [first, second]


def test_rows_are_committed_before_append_returns(make_log: MakeLog, db: Path) -> None:
    log = make_log()
    log.append("gate", {"code": "FEVER"})
    assert raw_rows(db) == [(1, "id-1", "boot-a", T0, 1, "gate", '{"code": "FEVER"}', None, None)]


def test_default_ids_are_uuid4_and_default_clock_is_utc_ms(db: Path) -> None:
    before = time.time_ns() // 1_000_000
    with EventLog(db, boot_id="b") as log:
        events = [log.append("gate", {}), log.append("gate", {})]
    after = time.time_ns() // 1_000_000
    assert [uuid.UUID(e.event_id).version for e in events] == [4, 4]
    assert events[0].event_id != events[1].event_id
    assert all(before <= e.ts_ms <= after for e in events)


def test_connection_uses_wal_and_full_sync_also_after_marks(make_log: MakeLog) -> None:
    log = make_log()
    log.append("gate", {})
    log.mark_sent([1])
    log.mark_confirmed([1])
    conn = log._conn
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_seq_is_gapless_across_close_and_reopen(make_log: MakeLog) -> None:
    with make_log() as log:
        assert [log.append("gate", {}).seq for _ in range(3)] == [1, 2, 3]
    with make_log(boot_id="boot-b") as log:
        assert [log.append("gate", {}).seq for _ in range(2)] == [4, 5]
        assert [(e.seq, e.boot_id) for e in log.recent()] == [
            (1, "boot-a"),
            (2, "boot-a"),
            (3, "boot-a"),
            (4, "boot-b"),
            (5, "boot-b"),
        ]


def test_failed_append_does_not_use_up_a_seq(make_log: MakeLog, db: Path) -> None:
    ids = iter(["dup", "dup", "fresh"])
    log = make_log(new_id=ids.__next__)
    log.append("gate", {})
    with pytest.raises(LogWriteError, match="append failed"):
        log.append("gate", {})  # UNIQUE(event_id) fails inside the transaction
    with pytest.raises(ValueError):
        log.append("temp", {"celsius": float("nan")})  # not JSON: rejected before writing
    assert log.append("gate", {}).seq == 2
    assert [(row[0], row[1]) for row in raw_rows(db)] == [(1, "dup"), (2, "fresh")]


def test_disk_full_raises_writes_nothing_and_recovers(make_log: MakeLog, db: Path) -> None:
    log = make_log()
    conn = log._conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the real SQLITE_FULL path
    written = []
    with pytest.raises(LogWriteError) as caught:
        for _ in range(1000):
            written.append(log.append("gate", {"pad": "x" * 300}).seq)

    assert caught.value.errno == errno.ENOSPC
    assert "disk full" in str(caught.value)
    assert written == list(range(1, len(written) + 1))
    assert [row[0] for row in raw_rows(db)] == written
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    conn.execute("PRAGMA max_page_count = 1000000")
    assert log.append("gate", {}).seq == len(written) + 2
    assert log.stats().rows == len(written) + 2
    recovered = log.recent(2)[0]
    assert (recovered.type, recovered.data["part"], recovered.data["ok"]) == ("health", "log", True)
    assert recovered.data["detail"].startswith("1 event(s) could not be written (1 gate) over")


def test_garbage_file_is_refused_and_left_alone(db: Path) -> None:
    garbage = b"not a database, just some bytes " * 100
    db.write_bytes(garbage)
    with pytest.raises(LogOpenError, match="corrupt or not a database"):
        EventLog(db, boot_id="b")
    with pytest.raises(LogOpenError, match="corrupt or not a database"):
        read_events(db)
    assert db.read_bytes() == garbage


def test_missing_directory_is_a_clear_open_error(tmp_path: Path) -> None:
    with pytest.raises(LogOpenError, match="cannot open the file"):
        EventLog(tmp_path / "missing" / "events.db", boot_id="b")


def test_reader_never_creates_or_migrates(tmp_path: Path, db: Path) -> None:
    with pytest.raises(LogOpenError, match="cannot open"):
        read_events(db)
    assert not db.exists()

    sqlite3.connect(db).close()  # an empty, schema-less database
    with pytest.raises(LogOpenError, match="schema version 0"):
        read_events(db)
    assert user_version(db) == 0


def test_empty_v0_database_is_migrated(db: Path) -> None:
    sqlite3.connect(db).close()
    assert user_version(db) == 0
    with EventLog(db, boot_id="b") as log:
        assert log.append("gate", {}).seq == 1
    assert user_version(db) == SCHEMA_VERSION == 1


def test_newer_schema_is_refused_not_downgraded(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LogOpenError, match="newer than this kiosk's 1; refusing to downgrade"):
        EventLog(db, boot_id="b")
    assert user_version(db) == SCHEMA_VERSION + 1


def test_prune_deletes_oldest_confirmed_and_keeps_every_unconfirmed(
    make_log: MakeLog, db: Path
) -> None:
    log = make_log(capacity=6)
    for _ in range(10):
        log.append("gate", {})
    assert log.mark_confirmed([1, 2, 3, 7, 8]) == 5

    assert log.prune() == 4  # 10 rows, capacity 6: the 4 oldest confirmed go
    assert [(row[0], row[-1] is not None) for row in raw_rows(db)] == [
        (4, False),
        (5, False),
        (6, False),
        (8, True),
        (9, False),
        (10, False),
    ]
    assert log.prune() == 0


def test_over_capacity_without_confirmed_rows_still_accepts_events(make_log: MakeLog) -> None:
    log = make_log(capacity=3)
    seqs = [log.append("gate", {}).seq for _ in range(5)]
    assert log.prune() == 0
    assert seqs == [1, 2, 3, 4, 5]
    assert [e.seq for e in log.recent()] == [1, 2, 3, 4, 5]
    assert log.stats().over_capacity


def test_prune_with_nothing_confirmed_does_not_touch_the_database(
    make_log: MakeLog, db: Path
) -> None:
    log = make_log(capacity=1)
    log.append("gate", {})
    log.append("gate", {})
    other_writer = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        other_writer.execute("BEGIN IMMEDIATE")  # any write attempt would now wait and fail
        assert log.prune() == 0
    finally:
        other_writer.close()


def test_append_prunes_when_over_capacity(make_log: MakeLog) -> None:
    log = make_log(capacity=3)
    for _ in range(3):
        log.append("gate", {})
    log.mark_confirmed(range(1, 4))
    log.append("gate", {})
    assert [e.seq for e in log.recent()] == [2, 3, 4]
    assert log.stats().rows == 3


def test_seq_is_not_reused_when_the_newest_row_was_pruned(make_log: MakeLog) -> None:
    log = make_log(capacity=2)
    for _ in range(3):
        log.append("gate", {})
    log.mark_confirmed([3])
    assert log.prune() == 1
    assert [e.seq for e in log.recent()] == [1, 2]
    assert log.append("gate", {}).seq == 4
    log.close()
    assert make_log().append("gate", {}).seq == 5


def test_stats_report_backlog_and_capacity_flags(make_log: MakeLog) -> None:
    log = make_log(capacity=10, warn_ratio=0.8)
    assert log.stats() == LogStats(0, 0, None, 0, 10, near_capacity=False, over_capacity=False)
    for _ in range(7):
        log.append("gate", {})
    log.mark_confirmed(range(1, 3))
    assert log.stats() == LogStats(7, 5, T0 + 2000, 7, 10, near_capacity=False, over_capacity=False)
    log.append("gate", {})  # 8 rows, but only the 6 waiting for central count
    assert log.stats() == LogStats(8, 6, T0 + 2000, 8, 10, near_capacity=False, over_capacity=False)
    for _ in range(3):
        log.append("gate", {})
    # 11 rows; the append-time prune removed confirmed seq 1 only (seq 2 is then within budget)
    assert log.stats() == LogStats(
        10, 9, T0 + 2000, 11, 10, near_capacity=True, over_capacity=False
    )
    log.append("gate", {})
    log.append("gate", {})
    assert log.stats() == LogStats(
        11, 11, T0 + 2000, 13, 10, near_capacity=True, over_capacity=True
    )


def unconfirmed(log: EventLog, limit: int, after_seq: int = 0) -> list[tuple[int, str, Any]]:
    """What the sync would send next: (seq, event id, data) of each pending event."""
    return [
        (e.seq, e.event_id, json.loads(e.data_json)) for e in log.pending_json(limit, after_seq)
    ]


def rows(events: list[Event]) -> list[tuple[int, str, Any]]:
    return [(e.seq, e.event_id, e.data) for e in events]


def test_outbox_pending_sent_and_confirmed(make_log: MakeLog) -> None:
    log = make_log()
    events = [log.append("gate", {"n": n}) for n in range(5)]  # clock: T0 … T0+4000
    assert unconfirmed(log, 10) == rows(events)
    assert unconfirmed(log, 2, after_seq=1) == rows(events[1:3])

    log.mark_sent([1, 2])  # clock T0+5000
    assert unconfirmed(log, 10) == rows(events)  # sent is not confirmed: still pending

    assert log.mark_confirmed([2, 4]) == 2  # clock T0+6000
    assert log.mark_confirmed([2]) == 0
    assert unconfirmed(log, 10) == rows([events[0], events[2], events[4]])
    assert [(e.seq, e.sent_at_ms, e.confirmed_at_ms) for e in log.recent()] == [
        (1, T0 + 5000, None),
        (2, T0 + 5000, T0 + 6000),
        (3, None, None),
        (4, T0 + 6000, T0 + 6000),  # confirmed implies sent, even if the sent-mark was lost
        (5, None, None),
    ]

    assert log.mark_confirmed(range(1, 4)) == 2
    assert unconfirmed(log, 10) == rows([events[4]])
    log.mark_sent([2])  # a late PUBACK does not touch a confirmed row
    assert log.recent()[1].sent_at_ms == T0 + 5000


def test_recent_lists_the_newest_or_follows_after_a_seq(make_log: MakeLog) -> None:
    log = make_log()
    for type_ in ["scan", "gate", "scan", "gate", "temp"]:
        log.append(type_, {})
    assert [e.seq for e in log.recent(3)] == [3, 4, 5]
    assert [e.seq for e in log.recent(type="gate")] == [2, 4]
    assert [e.seq for e in log.recent(2, after_seq=1)] == [2, 3]
    assert [e.seq for e in log.recent(after_seq=1, type="scan")] == [3]
    assert log.recent(after_seq=5) == []


def test_concurrent_appends_get_unique_gapless_seqs(db: Path) -> None:
    start = threading.Barrier(4)
    seqs: list[int] = []
    errors: list[BaseException] = []

    def worker(log: EventLog, n: int) -> None:
        start.wait()
        try:
            seqs.extend([log.append("gate", {"thread": n}).seq for _ in range(50)])
        except BaseException as exc:
            errors.append(exc)

    with EventLog(db, boot_id="b") as log:
        threads = [threading.Thread(target=worker, args=(log, n)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(seqs) == list(range(1, 201))
        assert [e.seq for e in log.recent(500)] == list(range(1, 201))
        assert len({e.event_id for e in log.recent(500)}) == 200
        assert log.stats().rows == 200


def test_reader_sees_commits_while_writer_continues(make_log: MakeLog, db: Path) -> None:
    log = make_log()
    first = log.append("gate", {"n": 1})
    assert read_events(db) == [first]

    reader = sqlite3.connect(db.absolute().as_uri() + "?mode=ro", uri=True, timeout=0)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)
        second = log.append("gate", {"n": 2})  # not blocked by the open read transaction
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)  # its snapshot
        assert read_events(db, after_seq=first.seq) == [second]
    finally:
        reader.close()


def test_unicode_json_round_trip(make_log: MakeLog, db: Path) -> None:
    data = {
        "name": "Zoë Ångström 李小龙 🚪",
        "nested": {"temps": [36.6, 37.05], "ok": True, "note": None},
        "quote": 'a "b" \\ c\n',
    }
    log = make_log()
    event = log.append("gate", data)
    assert event.data == data
    assert log.recent() == [event]
    assert read_events(db) == [event]
    assert json.loads(json.dumps(event.to_json_dict())) == {
        "event_id": "id-1",
        "seq": 1,
        "boot_id": "boot-a",
        "ts_ms": T0,
        "clock_synced": True,
        "type": "gate",
        "data": data,
        "sent_at_ms": None,
        "confirmed_at_ms": None,
    }


def test_close_is_idempotent_and_later_use_is_an_error(make_log: MakeLog) -> None:
    log = make_log()
    log.append("gate", {})
    log.close()
    log.close()
    assert repr(log) == f"<EventLog {log.path} closed capacity=100000>"
    with pytest.raises(LogWriteError, match="is closed"):
        log.append("gate", {})
    with pytest.raises(EventLogError, match="is closed"):
        log.recent()


@pytest.mark.parametrize(("capacity", "warn_ratio"), [(0, 0.9), (10, 0.0), (10, 1.5)])
def test_impossible_settings_are_rejected(db: Path, capacity: int, warn_ratio: float) -> None:
    with pytest.raises(ValueError):
        EventLog(db, boot_id="b", capacity=capacity, warn_ratio=warn_ratio)
    assert not db.exists()


def test_event_log_is_the_outbox_the_sync_drains(db: Path) -> None:
    from kiosk.sync_send import Outbox

    log = EventLog(db, boot_id="b")
    for n in range(3):
        log.append("decision", {"n": n})
    outbox: Outbox = log
    assert [e.seq for e in outbox.pending_json(10)] == [1, 2, 3]
    outbox.mark_sent([1, 2])
    assert outbox.mark_confirmed([1, 2]) == 2
    assert [e.seq for e in outbox.pending_json(10)] == [3]
    log.close()


DAY_MS = 86_400_000


def test_with_sync_off_the_oldest_rows_are_pruned_to_capacity(make_log: MakeLog) -> None:
    log = make_log(capacity=1000, retention=Retention(awaits_confirmation=False))
    for n in range(1100):
        log.append("decision", {"n": n})
    assert log.stats().rows == 1000
    assert [e.data["n"] for e in log.recent(1)] == [1099]
    assert log.recent(1000)[0].data["n"] == 100
    assert log.stats().dropped_unconfirmed == 0  # nothing was waiting for central
    assert not log.stats().near_capacity  # full of rows that may go: the normal state


def clock_at(start_ms: int) -> tuple[list[int], Callable[[], int]]:
    """A settable wall clock: now[0] is the time in epoch ms."""
    now = [start_ms]
    return now, lambda: now[0]


def test_unconfirmed_rows_go_only_past_their_age_with_an_alert_and_a_count(
    make_log: MakeLog, db: Path
) -> None:
    now, clock = clock_at(T0)
    retention = Retention(unconfirmed_max_age_days=30)
    log = make_log(capacity=10, now_ms=clock, retention=retention)
    for n in range(12):  # 12 rows, capacity 10, central down: none confirmed
        now[0] = T0 + n * DAY_MS
        log.append("decision", {"n": n})
    assert log.prune() == 0  # over capacity, but every row is younger than 30 days
    assert log.stats().rows == 12

    now[0] = T0 + 31 * DAY_MS + 1  # rows 0 and 1 are now older than 30 days
    assert log.prune() == 2
    stats = log.stats()
    assert (stats.rows, stats.unconfirmed, stats.dropped_unconfirmed) == (11, 11, 2)
    alert = log.recent(1)[0]
    assert (alert.type, alert.data["part"], alert.data["ok"]) == ("health", "log_capacity", False)
    assert alert.data["detail"].startswith("dropped 2 events central never confirmed")
    assert [e.data.get("n") for e in log.recent(11)][:2] == [2, 3]
    log.close()

    reopened = make_log(capacity=10, now_ms=clock, retention=retention)
    assert reopened.stats().dropped_unconfirmed == 2


def test_confirmed_rows_go_before_unconfirmed_ones(make_log: MakeLog) -> None:
    now, clock = clock_at(T0)
    log = make_log(capacity=5, now_ms=clock, retention=Retention(unconfirmed_max_age_days=1))
    for n in range(8):
        log.append("decision", {"n": n})
    log.mark_confirmed([7, 8])  # the newest two were confirmed, the old ones never
    now[0] = T0 + 2 * DAY_MS
    assert log.prune() == 3  # 8 rows: the two confirmed, then the oldest unconfirmed one
    assert [e.seq for e in log.recent(10)] == [2, 3, 4, 5, 6, 9]  # 9: the alert


def test_max_age_prunes_under_capacity(make_log: MakeLog) -> None:
    now, clock = clock_at(T0)
    retention = Retention(max_age_days=7, unconfirmed_max_age_days=30)
    log = make_log(capacity=1000, now_ms=clock, retention=retention)
    for n in range(4):
        now[0] = T0 + n * DAY_MS
        log.append("decision", {"n": n})
    log.mark_confirmed([1, 2])
    now[0] = T0 + 7 * DAY_MS + DAY_MS // 2
    assert log.prune() == 1  # seq 1 is 7.5 days old and confirmed; seq 2 is 6.5 days old
    now[0] = T0 + 20 * DAY_MS
    assert log.prune() == 1  # seq 2; seq 3 and 4 are unconfirmed and younger than 30 days
    assert [e.seq for e in log.recent(10)] == [3, 4]
    now[0] = T0 + 32 * DAY_MS + DAY_MS // 2
    assert log.prune() == 1  # seq 3 is 30.5 days old: dropped, with an alert
    assert [e.seq for e in log.recent(10)] == [4, 5]
    assert log.stats().dropped_unconfirmed == 1


def test_a_kiosk_with_sync_off_keeps_its_log_within_capacity(tmp_path: Path) -> None:
    """The report: 1,100 of 1,000 rows and 0 pruned, because nothing is ever confirmed."""
    config = make_config(tmp_path, log={"capacity": 1000})
    with open_kiosk(config, simulate=True) as kiosk:
        for n in range(1100):
            kiosk.event_log.append("decision", {"n": n})
        stats = kiosk.event_log.stats()
    assert (stats.rows, stats.last_seq, stats.near_capacity) == (1000, 1100, False)
