"""Durable event log in SQLite: every gate decision is committed here before the relay moves.

The same table is the MQTT outbox: the sync reads :meth:`EventLog.pending_json`, marks rows
sent on PUBACK and confirmed on central's receipt. Retention (:class:`Retention`) prunes
confirmed rows first; rows central never confirmed go only past a configured age, with an alert.

:class:`EventLog` is composed of its parts, one job each, sharing one connection, one lock and
one set of cached counts (:mod:`kiosk.store.connection`): the outbox (:mod:`kiosk.store.outbox`),
retention and the disk reserve (:mod:`kiosk.store.retention`); this module adds appending and
statistics. The schema is in :mod:`kiosk.store.schema`, reading from other processes in
:mod:`kiosk.store.queries`. Everything a caller needs is importable from here (``__all__``).
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from kiosk.events import EventType, Part
from kiosk.store.errors import EventLogError, LogOpenError, LogWriteError, sqlite_error
from kiosk.store.outbox import OutboxMarks
from kiosk.store.queries import query_events, read_events, select_recent
from kiosk.store.records import Event, LogStats, OutboxEvent
from kiosk.store.retention import LOG_RESERVE_BYTES, Pruning, Retention
from kiosk.store.schema import SCHEMA_VERSION

__all__ = [
    "LOG_RESERVE_BYTES",
    "REOPEN_AFTER_S",
    "SCHEMA_VERSION",
    "Event",
    "EventLog",
    "EventLogError",
    "LogOpenError",
    "LogStats",
    "LogWriteError",
    "OutboxEvent",
    "Retention",
    "query_events",
    "read_events",
]

log = logging.getLogger(__name__)

REOPEN_AFTER_S = 2.0  # a log that could not be opened is tried again this often


def _utc_now_ms() -> int:
    return time.time_ns() // 1_000_000


def _new_uuid4() -> str:
    return str(uuid.uuid4())


class EventLog(OutboxMarks, Pruning):
    """The kiosk's event log and outbox, in one SQLite file in WAL mode.

    Appends use ``synchronous=FULL``, one transaction and one fsync per event, so an event that
    :meth:`append` returned survives a power cut. Sent/confirmed marks and pruning commit with
    ``synchronous=NORMAL``: losing one in a power cut only causes a re-send, which central
    ingest deduplicates by ``event_id``; the next FULL commit syncs them anyway. Marks share the
    writer's connection and lock, so a gate append waits for at most one short mark transaction
    and never for a busy-retry loop.

    ``capacity`` is a row budget, not a limit: an event is never refused for capacity. Appends
    prune confirmed rows beyond it; :meth:`prune` also applies the age limits of ``retention``.
    While unconfirmed rows exceed it, appends still succeed and :meth:`stats` reports
    ``over_capacity`` so the kiosk can raise an alarm.

    With ``wait_for_disk`` a log that cannot be opened (disk full, I/O error, a corrupt file)
    does not raise: it is *down*, every call raises :class:`LogWriteError` or
    :class:`EventLogError` (the kiosk refers everyone to the guard), and it is opened again at
    most every ``reopen_after_s``. The appends that failed are counted; the first append that
    succeeds afterwards first logs a ``health`` event ``{"part": "log", "ok": true}`` saying how
    many (and of which type) were lost.

    Thread-safe: one lock serialises all use of the connection. Other processes read with
    :func:`read_events`.

    Usage::

        with EventLog("/var/lib/kiosk/events.db", boot_id=boot_id) as events:
            event = events.append("gate", {"code": "OK", "lane": 1})

    :param path: the database file; created if missing (its directory must exist).
    :param boot_id: identifies this run of the kiosk; stored in every event.
    :param capacity: rows to keep; prunable rows beyond this are pruned, oldest first.
    :param warn_ratio: ``near_capacity`` from this fraction of ``capacity``.
    :param retention: which rows may be pruned and when.
    :param now_ms: UTC wall clock in epoch milliseconds.
    :param clock_synced: whether the wall clock is NTP-synchronised, stored per event.
    :param new_id: a new event id (UUID4 string).
    :param wait_for_disk: start *down* instead of raising when the file cannot be opened.
    :param reserve_bytes: refuse appends (LogWriteError, ENOSPC) while the file system has less
        free than this, so that central's confirmations and pruning can still be written and
        free space: a log that filled its partition could otherwise never shrink again.
    :param monotonic: the clock that paces attempts to open the log again.
    :raises LogOpenError: the file cannot be opened or migrated, or its schema is newer (only
        without ``wait_for_disk``).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        boot_id: str,
        capacity: int = 100_000,
        warn_ratio: float = 0.9,
        retention: Retention | None = None,
        now_ms: Callable[[], int] = _utc_now_ms,
        clock_synced: Callable[[], bool] = lambda: True,
        new_id: Callable[[], str] = _new_uuid4,
        wait_for_disk: bool = False,
        reserve_bytes: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        reopen_after_s: float = REOPEN_AFTER_S,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if not 0 < warn_ratio <= 1:
            raise ValueError(f"warn_ratio must be in (0, 1], got {warn_ratio}")
        self.path = Path(path)
        self.capacity = capacity
        self.retention = retention or Retention()
        self._boot_id = boot_id
        self._warn_rows = capacity * warn_ratio
        self._now_ms = now_ms
        self._clock_synced = clock_synced
        self._new_id = new_id
        self._monotonic = monotonic
        self._reopen_after_s = reopen_after_s
        self._reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self._conn = None
        self._closed = False
        self._down = None
        self._down_since = self._next_open = monotonic()
        self._missed: Counter[str] = Counter()
        self._rows = self._confirmed = self._dropped = 0
        self._unreported = 0  # unconfirmed rows dropped whose alert is not written yet
        self._appended: list[Callable[[], None]] = []  # told of each append (the sync's wake)
        try:
            self._connect()
        except LogOpenError as exc:
            if not wait_for_disk:
                raise
            self._down = exc
            self._next_open = monotonic() + reopen_after_s
            log.error("%s; the kiosk refers everyone to the guard until it opens", exc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "down" if self._conn is None else f"rows={self._rows}"
        return f"<EventLog {self.path} {state} capacity={self.capacity}>"

    def append(self, type: str, data: Mapping[str, Any]) -> Event:
        """Commit one event durably and return it, with the next seq.

        :raises TypeError, ValueError: ``data`` is not JSON (NaN included); nothing is written.
        :raises LogWriteError: the event was not recorded; the seq is not used up, and later
            appends work again once the cause (e.g. a full disk) is gone.
        """
        payload = json.dumps(dict(data), ensure_ascii=False, allow_nan=False)
        with self._lock:
            try:
                self._check_reserve()
                with self._write("append", durable=True) as conn:
                    if self._missed:
                        self._insert(conn, EventType.HEALTH, self._recovery_json())
                    seq, event_id, ts_ms, synced = self._insert(conn, type, payload)
            except LogWriteError as exc:
                if exc.errno is not None or self._conn is None:  # the disk, not the data
                    if not self._missed and self._conn is not None:
                        self._down_since = self._monotonic()
                    self._missed[type] += 1
                if exc.errno == errno.ENOSPC:
                    self._checkpoint()
                raise
            if self._missed:
                self._rows += 1
                log.warning("event log writable again: %s", self._recovery_detail())
                self._missed.clear()
                self._down = None
            self._rows += 1
            if self._rows > self.capacity and (
                self._confirmed or not self.retention.awaits_confirmation
            ):  # cheap: cached counts
                try:
                    self._prune_size()
                except LogWriteError:  # the event is durable; the periodic prune retries
                    log.warning("pruning after append failed", exc_info=True)
        for observer in self._appended:
            try:
                observer()
            except Exception:  # the event is durable: a failing observer must not undo that
                log.exception("an append observer failed")
        return Event(event_id, seq, self._boot_id, ts_ms, synced, type, json.loads(payload))

    def add_append_observer(self, observer: Callable[[], None]) -> None:
        """Call ``observer()`` after each event committed by this object, from the appending
        thread, outside the lock: it must be quick (the sync's :meth:`~kiosk.sync.Sync.wake`
        only puts a value on a queue). Appends by other processes are not seen."""
        self._appended.append(observer)

    def _recovery_detail(self) -> str:
        lost = ", ".join(f"{n} {kind}" for kind, n in sorted(self._missed.items()))
        down_s = self._monotonic() - self._down_since
        return (
            f"{sum(self._missed.values())} event(s) could not be written ({lost}) over"
            f" {down_s:.0f} s; every person in that time was referred to the guard"
        )

    def _recovery_json(self) -> str:
        return json.dumps({"part": Part.LOG.value, "ok": True, "detail": self._recovery_detail()})

    def stats(self) -> LogStats:
        """Row counts, backlog and capacity flags (counts are cached, not recounted)."""
        with self._lock:
            conn = self._open_conn(EventLogError)
            try:
                (last_seq,) = conn.execute("SELECT last_seq FROM seq_counter").fetchone()
                oldest = conn.execute(
                    "SELECT ts_ms FROM events WHERE confirmed_at_ms IS NULL ORDER BY seq LIMIT 1"
                ).fetchone()
            except sqlite3.Error as exc:
                raise sqlite_error(EventLogError, "stats", self.path, exc) from exc
            rows = self._rows
            waiting = rows - self._confirmed if self.retention.awaits_confirmation else 0
            return LogStats(
                rows=rows,
                unconfirmed=rows - self._confirmed,
                oldest_unconfirmed_ts_ms=oldest[0] if oldest else None,
                last_seq=last_seq,
                capacity=self.capacity,
                near_capacity=waiting >= self._warn_rows,  # a log full of prunable rows is fine
                over_capacity=rows > self.capacity,
                dropped_unconfirmed=self._dropped,
            )

    def recent(
        self, limit: int = 50, *, after_seq: int | None = None, type: str | None = None
    ) -> list[Event]:
        """Events in seq order: the last ``limit``, or the first ``limit`` after ``after_seq``."""
        with self._lock:
            conn = self._open_conn(EventLogError)
            try:
                return select_recent(conn, limit, after_seq, type)
            except sqlite3.Error as exc:
                raise sqlite_error(EventLogError, "read", self.path, exc) from exc
