"""What the event log deletes and when: the retention rules, pruning, and the disk-space
reserve that prunes early so a full partition can still shrink.

Confirmed rows go first; rows central never confirmed go only past a configured age, with an
alert (a ``health`` event ``{"part": "log_capacity", "ok": false}``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
from dataclasses import dataclass

from kiosk.events import EventType, Part
from kiosk.store.connection import LogConnection
from kiosk.store.errors import LogWriteError

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000
LOG_RESERVE_BYTES = 512 * 1024  # the kiosk's reserve_bytes: room for marks and a prune's WAL
PRUNE_CHUNK = 200  # rows deleted per transaction, so each one's WAL stays small


@dataclass(frozen=True)
class Retention:
    """What :meth:`Pruning.prune` may delete, oldest first.

    :param awaits_confirmation: False when nothing will ever confirm events (sync off): then
        every row is pruned like a confirmed one.
    :param max_age_days: rows older than this go even under capacity (0: no age limit).
    :param unconfirmed_max_age_days: unconfirmed rows older than this go when the log is over
        capacity or past ``max_age_days`` (0: never); each such prune logs an alert.
    """

    awaits_confirmation: bool = True
    max_age_days: float = 0.0
    unconfirmed_max_age_days: float = 0.0


class Pruning(LogConnection):
    """The retention side of :class:`~kiosk.store.eventlog.EventLog`: :meth:`prune`, the
    prune after an append over ``capacity``, and the free-space reserve checked before one."""

    capacity: int
    retention: Retention
    _reserve_bytes: int
    _unreported: int  # unconfirmed rows dropped whose alert is not written yet

    def prune(self) -> int:
        """Apply the retention: rows past ``max_age_days``, then rows over ``capacity``,
        oldest first, confirmed (prunable) rows before unconfirmed ones; returns the count.

        Unconfirmed rows go only past ``unconfirmed_max_age_days``; when any do, a ``health``
        event ``{"part": "log_capacity", "ok": false}`` (an alert over MQTT) is written in the
        same transaction with how many, and ``stats()`` counts them in ``dropped_unconfirmed``.
        """
        with self._lock:
            deleted = self._prune_age() + self._prune_size() + self._drop_unconfirmed()
        if deleted:
            self._checkpoint_after_prune()
        return deleted

    def _prunable(self) -> str:
        return "confirmed_at_ms IS NOT NULL" if self.retention.awaits_confirmation else "1"

    def _cutoff_ms(self, days: float) -> int:
        return self._now_ms() - int(days * _DAY_MS)

    def _prune_age(self) -> int:
        if not self.retention.max_age_days:
            return 0
        cutoff = self._cutoff_ms(self.retention.max_age_days)
        return self._delete(f"{self._prunable()} AND ts_ms < ?", (cutoff,), self._rows)

    def _prune_size(self) -> int:
        prunable = self._confirmed if self.retention.awaits_confirmation else self._rows
        excess = min(self._rows - self.capacity, prunable)
        return self._delete(self._prunable(), (), excess) if excess > 0 else 0

    def _delete(self, where: str, params: tuple[int, ...], limit: int) -> int:
        """Delete up to ``limit`` rows matching ``where``, oldest first, at most PRUNE_CHUNK
        per transaction with a checkpoint between (so the WAL stays small on a small disk);
        keeps the cached counts right."""
        total = 0
        while total < limit:
            chunk = min(PRUNE_CHUNK, limit - total)
            with self._write("prune", durable=False) as conn:
                rows = conn.execute(
                    f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {where}"
                    " ORDER BY seq LIMIT ?) RETURNING confirmed_at_ms",
                    (*params, chunk),
                ).fetchall()
            confirmed = sum(row[0] is not None for row in rows)
            self._rows -= len(rows)
            self._confirmed -= confirmed
            total += len(rows)
            if len(rows) < chunk:
                break
            self._checkpoint()
        if total:
            log.debug("pruned %d events", total)
        return total

    def _drop_unconfirmed(self, limit: int | None = None) -> int:
        """Unconfirmed rows past their age, when over capacity or past max_age_days (or up to
        ``limit`` of them, for room on a full disk); the alert (and the count) is written
        after them, and again at the next prune if that failed."""
        retention = self.retention
        if not (retention.awaits_confirmation and retention.unconfirmed_max_age_days):
            return 0
        cutoff = self._cutoff_ms(retention.unconfirmed_max_age_days)
        if limit is None:
            limit = max(self._rows - self.capacity, 0)
            if retention.max_age_days:
                cutoff, limit = min(cutoff, self._cutoff_ms(retention.max_age_days)), self._rows
        dropped = self._delete("confirmed_at_ms IS NULL AND ts_ms < ?", (cutoff,), limit)
        self._unreported += dropped
        if self._unreported:
            total = self._dropped + self._unreported
            detail = (
                f"dropped {self._unreported} events central never confirmed, older than"
                f" {retention.unconfirmed_max_age_days:g} days, to keep the log within"
                f" log.capacity / log.max_age_days ({total} in all)"
            )
            alert = json.dumps({"part": Part.LOG_CAPACITY.value, "ok": False, "detail": detail})
            with self._write("prune", durable=False) as conn:
                conn.execute("UPDATE retention SET dropped_unconfirmed = ?", (total,))
                self._insert(conn, EventType.HEALTH, alert)
            self._rows += 1
            self._dropped, self._unreported = total, 0
            log.error("event log: %s", detail)
        return dropped

    def _checkpoint_after_prune(self) -> None:
        """Pages freed by a prune are reused only once the WAL is checkpointed into the file."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.debug("checkpoint after pruning failed", exc_info=True)

    # --- the disk-space reserve ----------------------------------------------------------

    def _check_reserve(self) -> None:
        """Refuse the append when the reserve is not free, after pruning the oldest prunable
        rows to make room (their pages are reused); lock held."""
        if not self._reserve_bytes:
            return
        free = self._free_bytes()
        for _ in range(5):  # a few chunks at most: the person at the gate is waiting
            if free >= self._reserve_bytes or not self._make_room():
                break
            free = self._free_bytes()
        if free < self._reserve_bytes:
            err = LogWriteError(
                f"event log {self.path}: append refused: disk full ({free // 1024} KiB free,"
                f" {self._reserve_bytes // 1024} KiB kept for confirmations and pruning)"
            )
            err.errno = errno.ENOSPC
            raise err

    def _free_bytes(self) -> int:
        """Free space for the log: the file system's, plus (when that is short) free pages
        inside the file."""
        conn = self._open_conn(LogWriteError)
        try:
            stat = os.statvfs(self.path.parent)
            free = int(stat.f_bavail * stat.f_frsize)
            if free >= self._reserve_bytes:
                return free  # the usual case: one statvfs, no query
            (pages,) = conn.execute("PRAGMA freelist_count").fetchone()
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        except (OSError, sqlite3.Error):
            return self._reserve_bytes  # the write itself reports what is wrong
        return free + int(pages * page_size)

    def _make_room(self) -> bool:
        """Prune one chunk of the oldest prunable rows (else of unconfirmed ones past their
        age), whatever the capacity; True if any went."""
        prunable = self._confirmed if self.retention.awaits_confirmation else self._rows
        if prunable:
            deleted = self._delete(self._prunable(), (), min(prunable, PRUNE_CHUNK))
        else:
            deleted = self._drop_unconfirmed(PRUNE_CHUNK)
        if not deleted:
            return False
        self._checkpoint()
        log.warning("event log: disk nearly full, pruned the %d oldest events early", deleted)
        return True
