"""The event log as the MQTT outbox: reading what central has not confirmed, and marking
events sent (the broker's PUBACK) and confirmed (central's receipt).

Marks commit with ``synchronous=NORMAL``: losing one in a power cut only causes a re-send,
which central deduplicates by ``event_id``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from kiosk.store.connection import LogConnection
from kiosk.store.errors import EventLogError, sqlite_error
from kiosk.store.records import OutboxEvent


class OutboxMarks(LogConnection):
    """The outbox side of :class:`~kiosk.store.eventlog.EventLog` (what :class:`kiosk.sync.Sync`
    reads and marks)."""

    def pending_json(self, limit: int, after_seq: int = 0) -> list[OutboxEvent]:
        """Up to ``limit`` unconfirmed events with seq > ``after_seq``, in seq order, their
        data left as the stored JSON text (the sync forwards it as it is). Includes rows
        already sent: the sync sends them again when no receipt comes."""
        with self._lock:
            conn = self._open_conn(EventLogError)
            try:
                rows = conn.execute(
                    "SELECT event_id, seq, boot_id, ts_ms, clock_synced, type, data FROM events"
                    " WHERE confirmed_at_ms IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise sqlite_error(EventLogError, "read", self.path, exc) from exc
        return [
            OutboxEvent(event_id, seq, boot_id, ts_ms, bool(synced), type_, data)
            for event_id, seq, boot_id, ts_ms, synced, type_, data in rows
        ]

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """Record that these events were published (PUBACK), in one transaction.

        ``sent_at_ms`` is the latest send, so a re-send restarts the re-send timer.
        """
        now = self._now_ms()
        with self._lock, self._write("mark_sent", durable=False) as conn:
            conn.executemany(
                "UPDATE events SET sent_at_ms = ? WHERE seq BETWEEN ? AND ?"
                " AND confirmed_at_ms IS NULL",
                ((now, first, last) for first, last in _ranges(seqs)),
            )

    def mark_confirmed(self, seqs: Iterable[int]) -> int:
        """Record central's receipt for these events; returns how many were newly confirmed."""
        now = self._now_ms()
        with self._lock:
            with self._write("mark_confirmed", durable=False) as conn:
                cursor = conn.executemany(
                    "UPDATE events SET confirmed_at_ms = ?, sent_at_ms = coalesce(sent_at_ms, ?)"
                    " WHERE seq BETWEEN ? AND ? AND confirmed_at_ms IS NULL",
                    ((now, now, first, last) for first, last in _ranges(seqs)),
                )
            self._confirmed += cursor.rowcount
        return cursor.rowcount


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive runs of consecutive seqs: one UPDATE per run, not per event."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
