"""Central's reports on a full store: the daily list, a trace and who is inside.

Run: ``.venv/bin/python bench/report.py [--events 1000000] [--days 30] [--roster 20000]
[--pg URL]``. For each store (an SQLite file; a PostgreSQL database of its own on the local
server, dropped after) it stores ``--events`` events over ``--days`` days ending at 17:00
local time today (working-day peaks, a quiet weekend; a second site with a tenth of the
traffic) through ``Store.insert_batch``, the ingest's own insert (no MQTT), and a roster of
``--roster`` people, then times each report five times and keeps the median:

- ``daily_report_s``: the list of the busiest day of the main site, built and rendered as
  XLSX (``daily_list_s``: built only);
- ``trace_ms``: the trace of the busiest person over the last three days, 15-minute window;
- ``inside_ms``: who is inside the main site at 17:00.

Prints one JSON object per store as it goes, then one JSON line with them all.

``--keep NAME``: keep the stores (the SQLite file ``NAME.db`` in the system's temporary
folder, the PostgreSQL database ``NAME``; the name in lower case) and reuse them when a fill
ran to its end there (the table ``bench_report_filled`` says so; a fill cut short stops the
run), so that a later run times the reports without filling again (the data end at 17:00 of
the day they were filled; reuse them that day).

``--insert-cost``: instead, what ``subject_events`` costs the ingest's insert (since schema
version 8 the ingest writes its rows; the delete trigger stays): 100,000 decisions stored in
transactions of 1,000 with ``insert_batch``, into a fresh store as it is and one without them
(no rows written, no delete trigger), twice each, alternating; the best events/s of each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

from benchlib import machine_info

from kiosk.central import EventRow, Store, open_store, roster
from kiosk.central.presence import inside
from kiosk.central.reports.daily import daily_list
from kiosk.central.reports.export import render
from kiosk.central.rosterfile import Holder
from kiosk.central.settings import CentralConfig, SiteSection
from kiosk.central.trace import trace

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SITES = {"hq": ["g1", "g2", "g3", "g4", "lab", "meet"], "branch": ["b1", "b2"]}
CONFIG = CentralConfig(sites={site: SiteSection() for site in SITES})


def subject_of(index: int) -> str:
    return f"s-{index:020x}"


def decision(kiosk: str, person: int, direction: str, area: str, outcome: str) -> dict[str, Any]:
    """A decision's data as a kiosk logs it (kiosk.events.decision_event_data)."""
    entry = direction == "entry" and outcome == "grant"
    return {
        "mode": "checkin" if kiosk == "meet" else "gate",
        "outcome": outcome,
        "reason": "ok" if outcome == "grant" else random.choice(["expired_credential", "fever"]),
        "direction": direction,
        "area": area,
        "subject": subject_of(person),
        "credential": {
            "status": "valid",
            "kind": "visitor" if person % 10 == 0 else "staff",
            "type": "pass",
            "unsigned": False,
            "pass_id": f"{person:016x}",
        },
        "temperature": {"status": "normal", "celsius": 36.6, "ambient_c": 24.0, "stable": True}
        if entry
        else None,
        "clock_synced": True,
        "decision_ms": 712.4,
        **({"meeting": f"M-{person % 50}"} if kiosk == "meet" else {}),
    }


def day_events(day: date, visits: int, people: int, site: str, now_ms: int) -> list[tuple]:
    """One local day of ``visits`` people, each once: an entry at a gate with its passage
    event, a lunch break for some, the lab or a meeting for a few, an exit; a few denials."""
    gates = [k for k in SITES[site] if k not in ("lab", "meet")]
    events: list[tuple[int, str, str, dict[str, Any]]] = []

    def at(hours: float) -> int:
        moment = datetime.combine(day, clock(0), ZONE) + timedelta(hours=hours)
        return int(moment.timestamp() * 1000)

    def passage(ts: int, kiosk: str, person: int, direction: str, area: str = "main") -> None:
        events.append((ts, kiosk, "decision", decision(kiosk, person, direction, area, "grant")))
        events.append((ts + 1500, kiosk, "passage", {"by": "grant", "grant": str(uuid.uuid4())}))

    for person in random.sample(range(people), min(visits, people)):
        arrive, leave = random.gauss(8.5, 0.7), random.gauss(17.3, 0.8)
        if random.random() < 0.03:
            gate = random.choice(gates)
            denied = decision(gate, person, "entry", "main", "deny")
            events.append((at(arrive - 0.05), gate, "decision", denied))
        passage(at(arrive), random.choice(gates), person, "entry")
        if random.random() < 0.3:
            passage(at(12), random.choice(gates), person, "exit")
            passage(at(12.8), random.choice(gates), person, "entry")
        if site == "hq" and random.random() < 0.1:
            passage(at(random.uniform(9, 16)), "lab", person, "entry", "lab")
        if site == "hq" and random.random() < 0.05:
            checkin = decision("meet", person, "entry", "room", "grant")
            events.append((at(random.uniform(9, 16)), "meet", "decision", checkin))
        passage(at(leave), random.choice(gates), person, "exit")
    if random.random() < 0.5:
        events.append((at(10), gates[0], "health", {"part": "camera", "ok": True, "detail": ""}))
    return [e for e in events if e[0] <= now_ms]


def fill(store: Store, total: int, days: int, people: int, now: datetime) -> int:
    """Store about ``total`` events over ``days`` local days ending at ``now``."""
    now_ms = int(now.timestamp() * 1000)
    first = now.date() - timedelta(days=days - 1)
    weights = [0.15 if (first + timedelta(d)).weekday() >= 5 else 1.0 for d in range(days)]
    per_visit = 4 + 0.3 * 4 + 0.1 * 2 + 0.05 + 0.03  # events per visit, on average
    visits = total / per_visit / sum(weights) / 1.1  # the branch adds a tenth
    seqs: Counter[str] = Counter()
    stored = 0
    for d in range(days):
        day = first + timedelta(days=d)
        for site, share in (("hq", 1.0), ("branch", 0.1)):
            rows = []
            events = day_events(day, int(visits * weights[d] * share), people, site, now_ms)
            for ts, kiosk, kind, data in sorted(events, key=lambda e: e[0]):
                seqs[kiosk] += 1
                rows.append(
                    EventRow(
                        str(uuid.uuid4()),
                        site,
                        kiosk,
                        seqs[kiosk],
                        "boot",
                        ts,
                        True,
                        kind,
                        False,
                        1,
                        json.dumps(data),
                        ts,
                    )
                )
            for at in range(0, len(rows), 20_000):
                stored += store.insert_batch(rows[at : at + 20_000]).new
    return stored


def median_s(work: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def busiest(store: Store, since_ms: int) -> tuple[str, date]:
    """The main site's most frequent subject since ``since_ms``, and its busiest day."""

    def work(cur: Any) -> tuple[str, date]:
        p = store.dialect.param
        cur.execute(
            f"SELECT subject, count(*) FROM subject_events WHERE site = {p} AND ts_ms >= {p}"
            " GROUP BY subject ORDER BY count(*) DESC LIMIT 1",
            ("hq", since_ms),
        )
        subject = cur.fetchone()[0]
        cur.execute(f"SELECT ts_ms FROM subject_events WHERE site = {p}", ("hq",))
        days = Counter(datetime.fromtimestamp(ts / 1000, ZONE).date() for (ts,) in cur.fetchall())
        return subject, days.most_common(1)[0][0]

    found: tuple[str, date] = store.transaction(work)
    return found


FILLED = "bench_report_filled"  # made when a fill ends: a fill cut short is not reused


def filled(store: Store) -> bool:
    """Whether the store's fill ran to its end (the table :data:`FILLED` is there)."""

    def work(cur: Any) -> bool:
        if store.dialect.name == "sqlite":
            cur.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (FILLED,))
        else:
            cur.execute("SELECT to_regclass(%s)", (FILLED,))
        row = cur.fetchone()
        return row is not None and row[0] is not None

    done: bool = store.transaction(work)
    return done


def measure(name: str, url: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    random.seed(13)
    store = open_store(url)
    try:
        start = time.perf_counter()
        events = 0
        if not filled(store):  # else a kept store, filled by an earlier run
            if store.count():
                raise SystemExit(
                    f"{name}: the kept store's fill was cut short; delete it and run again"
                )
            events = fill(store, args.events, args.days, args.roster, now)
            holders = [
                Holder(subject_of(i), f"Người {i}", f"Phòng {i % 40}", "staff", None, 0)
                for i in range(args.roster)
            ]
            roster.replace(store, "hq", "import", holders, "bench", 0)
            store.transaction(lambda cur: cur.execute(f"CREATE TABLE {FILLED} (done INTEGER)"))
        fill_s = time.perf_counter() - start
        since = now - timedelta(days=3)
        subject, day = busiest(store, int(since.timestamp() * 1000))
        listed = daily_list(store, CONFIG, day, "hq")
        traced = trace(store, "hq", subject, since, now, ZONE)
        present = inside(store, CONFIG, "hq", now.timestamp())
        result = {
            "store": name,
            "events": store.count(),
            "stored_now": events,
            "fill_s": round(fill_s, 1),
            "daily_report_s": round(
                median_s(lambda: render(daily_list(store, CONFIG, day, "hq"), "xlsx", "vi")), 3
            ),
            "daily_list_s": round(median_s(lambda: daily_list(store, CONFIG, day, "hq")), 3),
            "daily_rows": len(listed.rows),
            "trace_ms": round(
                1000 * median_s(lambda: trace(store, "hq", subject, since, now, ZONE)), 1
            ),
            "trace_passages": len(traced.sightings),
            "trace_contacts": len(traced.contacts),
            "inside_ms": round(
                1000 * median_s(lambda: inside(store, CONFIG, "hq", now.timestamp())), 1
            ),
            "inside_people": sum(len(a.people) for a in present),
        }
    finally:
        store.close()
    print(json.dumps(result), flush=True)
    return result


def insert_rate(store: Store, rows: list[EventRow], subject_events: bool) -> float:
    """Events per second ``insert_batch`` stores, in transactions of 1,000; without
    ``subject_events`` no row of it is written and no delete trigger is there."""
    with contextlib.ExitStack() as stack:
        if not subject_events:
            p = store.dialect.param
            nothing = f"SELECT {p}, {p}, {p}"  # the copy of the rows, undone
            stack.enter_context(mock.patch.object(store, "_subject_sql", nothing))
            on = " ON events" if store.dialect.name == "postgresql" else ""
            store.transaction(lambda cur: cur.execute(f"DROP TRIGGER subject_events_drop{on}"))
        start = time.perf_counter()
        for at in range(0, len(rows), 1000):
            store.insert_batch(rows[at : at + 1000])
        return len(rows) / (time.perf_counter() - start)


def insert_cost(
    name: str, fresh: Callable[[], contextlib.AbstractContextManager[str]]
) -> dict[str, Any]:
    """``subject_events``' cost on the insert of 100,000 decisions (best of two runs each)."""
    now = int(time.time() * 1000)
    rows = [
        EventRow(
            str(uuid.uuid4()),
            "hq",
            f"g{i % 4}",
            i // 4 + 1,
            "boot",
            now + i,
            True,
            "decision",
            False,
            1,
            json.dumps(decision("g1", i % 20_000, "entry", "main", "grant")),
            now,
        )
        for i in range(100_000)
    ]
    best = {True: 0.0, False: 0.0}
    for kept in (True, False, True, False):
        with fresh() as url:
            store = open_store(url)
            try:
                best[kept] = max(best[kept], insert_rate(store, rows, kept))
            finally:
                store.close()
    result = {
        "store": name,
        "with_subject_events_per_s": round(best[True]),
        "without_per_s": round(best[False]),
        "cost_percent": round(100 * (best[False] / best[True] - 1), 1),
    }
    print(json.dumps(result), flush=True)
    return result


@contextlib.contextmanager
def sqlite_file() -> Iterator[str]:
    """An SQLite file in a directory deleted afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        yield str(Path(tmp) / "central.db")


@contextlib.contextmanager
def kept_file(name: str) -> Iterator[str]:
    """The SQLite file ``name``.db in the temporary folder, kept afterwards."""
    yield str(Path(tempfile.gettempdir()) / f"{name}.db")


@contextlib.contextmanager
def pg_database(admin_url: str, keep: str = "") -> Iterator[str]:
    """A database of its own on the server ``admin_url`` reaches, dropped afterwards; or the
    database ``keep``, created if missing and kept."""
    import psycopg

    name = keep or f"kiosk_bench_report_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        missing = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if missing.fetchone() is None:
            admin.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--roster", type=int, default=20_000)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL server URL ('' to skip)")
    parser.add_argument("--keep", default="", help="keep and reuse the stores under this name")
    parser.add_argument("--insert-cost", action="store_true", help="subject_events' insert cost.")
    args = parser.parse_args()
    if args.insert_cost:
        costs = [insert_cost("sqlite", sqlite_file)]
        if args.pg:
            costs.append(insert_cost("postgresql", lambda: pg_database(args.pg)))
        print(json.dumps({"machine": machine_info(), "insert_cost": costs}))
        return
    now = datetime.combine(datetime.now(ZONE).date(), clock(17), ZONE)
    results = []
    if args.keep and not args.keep.isidentifier():
        parser.error("--keep takes a name of letters, digits and underscores")
    args.keep = args.keep.lower()  # PostgreSQL folds the database's name to lower case
    with kept_file(args.keep) if args.keep else sqlite_file() as path:
        results.append(measure("sqlite", path, args, now))
    if args.pg:
        with pg_database(args.pg, args.keep) as url:
            results.append(measure("postgresql", url, args, now))
    print(json.dumps({"machine": machine_info(), "results": results}))


if __name__ == "__main__":
    main()
