"""PostgreSQL's insert of a batch of events: a handful of statements per batch, whatever its size.

The batch is copied (``COPY``) into a temporary table of the connection, ``central_batch``
(the events' columns and the row's place in the batch; emptied at every commit), and stored
from there: one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` for the events, one query for the
rows not stored as they are (only when some were not), one upsert of the batch's kiosks and
one ``INSERT … SELECT`` into ``subject_events``. What it stores and reports is what
:meth:`kiosk.central.store.Store.insert_batch` does row by row in SQLite: rows are tried by
kiosk, then in batch order, so of two rows of a batch with one seq the first wins; the
conflicts come back in that order.
"""

from __future__ import annotations

from typing import Any

from kiosk.central.rows import ID_TAKEN, SEQ_TAKEN, EventRow, Stored
from kiosk.central.schema import POSTGRES, subject_condition, subject_values

STAGE = "central_batch"
_COLUMNS = ", ".join(EventRow._fields)
_SAME_EVENT = "e.site = b.site AND e.kiosk = b.kiosk AND e.seq = b.seq"


class BulkInsert:
    """The statements of one store; ``kiosk_updates`` is the ``DO UPDATE SET`` of the kiosks
    row (last seen, highest seq, event count), as the store's row-by-row path has it."""

    def __init__(self, kiosk_updates: str) -> None:
        # Memory enough to sort a batch without a temporary file; no JIT for a few thousand
        # index lookups (the planner knows nothing of the temporary table's size).
        self.stage_sql = (
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE events, ord INTEGER NOT NULL)"
            " ON COMMIT DELETE ROWS; SET LOCAL work_mem = '64MB'; SET LOCAL jit = off"
        )
        self.copy_sql = f"COPY {STAGE} ({_COLUMNS}, ord) FROM STDIN"
        self.insert_sql = (
            f"WITH added AS (INSERT INTO events SELECT {_COLUMNS} FROM {STAGE}"
            " ORDER BY ord ON CONFLICT DO NOTHING RETURNING site, kiosk)"
            " SELECT site, kiosk, count(*) FROM added GROUP BY site, kiosk"
        )
        self.conflicts_sql = (
            # One index lookup per row (LATERAL … LIMIT 1), however big events is.
            f"SELECT b.ord, e.seq IS NOT NULL FROM {STAGE} b LEFT JOIN LATERAL (SELECT seq,"
            f" event_id FROM events e WHERE {_SAME_EVENT} LIMIT 1) e ON true"
            " WHERE e.event_id IS DISTINCT FROM b.event_id"
            " ORDER BY b.ord"
        )
        self.kiosks_sql = (
            "INSERT INTO kiosks (site, kiosk, last_seen_ms, highest_seq, event_count)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[],"
            f" %s::bigint[]) ON CONFLICT (site, kiosk) DO UPDATE SET {kiosk_updates}"
        )
        # The batch's events as stored, those that name a subject; a row refused as a
        # conflict has no event of its own (another event holds its seq or event id).
        self.subject_sql = (
            f"INSERT INTO subject_events SELECT {subject_values(POSTGRES, 'e')} FROM {STAGE} b"
            f" CROSS JOIN LATERAL (SELECT * FROM events e WHERE {_SAME_EVENT}"
            " AND e.event_id = b.event_id LIMIT 1) e"
            f" WHERE {subject_condition(POSTGRES, 'e')} ON CONFLICT DO NOTHING"
        )

    def __call__(self, cur: Any, rows: list[EventRow]) -> Stored:
        """Store ``rows`` in the cursor's open transaction (the caller commits)."""
        # By kiosk (in code point order, the order of UTF-8 bytes), then as they came: every
        # worker takes the rows' locks in one order, and PostgreSQL's sort on ord finds its
        # input sorted already.
        rows = sorted(rows, key=lambda r: (r.site, r.kiosk))
        cur.execute(self.stage_sql)
        with cur.copy(self.copy_sql) as copy:
            for ord_, row in enumerate(rows):
                copy.write_row((*row, ord_))
        cur.execute(self.insert_sql)
        added = {(site, kiosk): int(n) for site, kiosk, n in cur.fetchall()}
        conflicts: list[tuple[EventRow, str]] = []
        if sum(added.values()) < len(rows):
            cur.execute(self.conflicts_sql)
            conflicts = [
                (rows[ord_], SEQ_TAKEN if seq_held else ID_TAKEN)
                for ord_, seq_held in cur.fetchall()
            ]
        refused = {id(row) for row, _ in conflicts}
        kiosks: dict[tuple[str, str], tuple[int, int]] = {}
        for row in rows:
            if id(row) not in refused:
                key = (row.site, row.kiosk)
                seen, highest = kiosks.get(key, (row.received_at_ms, row.seq))
                kiosks[key] = (max(seen, row.received_at_ms), max(highest, row.seq))
        if kiosks:
            keys = sorted(kiosks)
            cur.execute(
                self.kiosks_sql,
                (
                    [site for site, _ in keys],
                    [kiosk for _, kiosk in keys],
                    [kiosks[k][0] for k in keys],
                    [kiosks[k][1] for k in keys],
                    [added.get(k, 0) for k in keys],
                ),
            )
            cur.execute(self.subject_sql)
        return Stored(sum(added.values()), conflicts)
