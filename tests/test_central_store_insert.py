"""The store's insert of a batch, on SQLite and PostgreSQL: what it stores, ignores, reports
and copies into subject_events, for batches of the size a backlog brings (10,000 events);
on PostgreSQL in a fixed handful of statements, however many kiosks a batch holds."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kiosk.central import Store
from kiosk.central.rows import EventRow
from kiosk.central.schema import POSTGRES
from tests.central_support import fresh_database

pytest_plugins = ("tests.central_fixtures",)

SITE = "s1"
SEEN_MS = 1_800_000_000_000


def event(kiosk: str, seq: int, subject: str | None = None, received: int = SEEN_MS) -> EventRow:
    """A decision; one naming ``subject`` goes to subject_events too."""
    data: dict[str, Any] = {"outcome": "grant", "area": "main", "direction": "entry"}
    if subject is not None:
        data["subject"] = subject
    return EventRow(
        str(uuid.uuid4()),
        SITE,
        kiosk,
        seq,
        "boot-1",
        1_700_000_000_000 + seq,
        True,
        "decision",
        False,
        1,
        json.dumps(data),
        received,
    )


def backlog(kiosks: int, per_kiosk: int) -> list[EventRow]:
    """Kiosks interleaved as a backlog arrives; every other event names a subject."""
    return [
        event(f"k{k:03d}", seq, f"S-{seq}" if seq % 2 else None, SEEN_MS + seq)
        for seq in range(1, per_kiosk + 1)
        for k in range(kiosks)
    ]


def query(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return list(store.transaction(lambda cur: (cur.execute(sql), cur.fetchall())[1]))


def subject_keys(store: Store) -> list[tuple[Any, ...]]:
    return query(store, "SELECT kiosk, seq, event_id, subject FROM subject_events ORDER BY 1, 2")


def test_a_10000_event_batch_is_stored_once_with_its_subject_events(store: Store) -> None:
    batch = backlog(100, 100)
    assert len(batch) == 10_000
    stored = store.insert_batch(batch)
    assert (stored.new, stored.conflicts) == (10_000, [])
    expected = sorted((r.kiosk, r.seq, r.event_id, f"S-{r.seq}") for r in batch if r.seq % 2)
    assert [tuple(row) for row in subject_keys(store)] == expected
    again = store.insert_batch([*batch[5000:], *batch[:5000], batch[7]])  # redelivered
    assert (again.new, again.conflicts) == (0, [])
    assert store.count() == 10_000
    assert [tuple(row) for row in subject_keys(store)] == expected  # written once
    fleet = store.fleet()
    assert len(fleet) == 100
    assert {(k.highest_seq, k.count, k.last_seen_ms) for k in fleet} == {(100, 100, SEEN_MS + 100)}
    assert store.gaps(SITE, "k042") == []


def test_conflicts_in_a_big_batch_are_reported_and_not_stored(store: Store) -> None:
    first = [event("k1", seq, "S-1") for seq in (1, 2, 3)]
    store.insert_batch(first)
    taken_seq = event("k1", 2, "S-x")  # seq 2 is another event's
    taken_id = event("k1", 9, "S-y")._replace(event_id=first[0].event_id)
    twin_a, twin_b = event("k2", 5, "S-a"), event("k2", 5, "S-b")  # one seq twice: first wins
    fresh = [event("k1", seq, "S-2", SEEN_MS + seq) for seq in (4, 5)]
    other = backlog(50, 200)  # 10,000 events of other kiosks around them
    batch = [*other[:4000], first[1], taken_seq, *fresh, taken_id, twin_a, twin_b, *other[4000:]]

    stored = store.insert_batch(batch)

    assert stored.new == 10_000 + 2 + 1
    assert [(row, reason) for row, reason in stored.conflicts] == [
        (taken_seq, "seq already stored for another event"),
        (taken_id, "event_id already stored under another seq"),
        (twin_b, "seq already stored for another event"),
    ]
    named = {
        (kiosk, seq): (event_id, subject) for kiosk, seq, event_id, subject in subject_keys(store)
    }
    assert named[("k1", 2)] == (first[1].event_id, "S-1")
    assert ("k1", 9) not in named
    assert named[("k2", 5)] == (twin_a.event_id, "S-a")
    assert named[("k1", 5)] == (fresh[1].event_id, "S-2")
    assert len(named) == 3 + 2 + 1 + 5_000
    k1 = next(k for k in store.fleet() if k.kiosk == "k1")
    assert (k1.highest_seq, k1.count, k1.last_seen_ms) == (5, 5, SEEN_MS + 5)  # not seq 9
    k2 = next(k for k in store.fleet() if k.kiosk == "k2")
    assert (k2.highest_seq, k2.count) == (5, 1)


def test_a_batch_of_only_conflicts_leaves_its_kiosk_as_it_was(store: Store) -> None:
    first = [event("k1", seq) for seq in (1, 2)]
    store.insert_batch(first)
    late = event("k1", 2, received=SEEN_MS + 99)
    stored = store.insert_batch([late])
    assert (stored.new, [reason for _, reason in stored.conflicts]) == (
        0,
        ["seq already stored for another event"],
    )
    (k1,) = store.fleet()
    assert (k1.highest_seq, k1.count, k1.last_seen_ms) == (2, 2, SEEN_MS)


class CountingCursor(psycopg.Cursor[Any]):
    """Counts the statements a store sends (execute, executemany, copy)."""

    sent = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.sent += 1
        return super().execute(*args, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        params = list(params_seq)
        CountingCursor.sent += len(params)
        super().executemany(query, params, **kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.sent += 1
        return super().copy(*args, **kwargs)


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[Store]:
    """A PostgreSQL store whose statements are counted (the batch path is PostgreSQL's)."""
    database = fresh_database("postgresql", tmp_path)
    db_url = next(database)
    store = Store(lambda: psycopg.connect(db_url, cursor_factory=CountingCursor), POSTGRES)
    yield store
    store.close()
    next(database, None)  # drops the schema


def test_postgresql_stores_a_batch_of_100_kiosks_in_a_few_statements(counted: Store) -> None:
    batch = backlog(100, 100)
    CountingCursor.sent = 0
    assert counted.insert_batch(batch).new == 10_000
    assert CountingCursor.sent <= 6  # not one or more per kiosk, let alone per event
    CountingCursor.sent = 0
    assert counted.insert_batch([*batch, event("k000", 1)]).new == 0  # a conflict too
    assert CountingCursor.sent <= 7
