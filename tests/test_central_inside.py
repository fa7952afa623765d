"""Who is inside at central (kiosk.central.presence): the kiosks' rules over the passages of
all a site's kiosks, the site's local day, names from the roster, the Prometheus gauge and
``kiosk central report inside``; on SQLite and PostgreSQL with hand-made events."""

from __future__ import annotations

import gc
import json
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from kiosk.central import EventRow, Store, roster, schema
from kiosk.central.presence import (
    PeopleInsideCollector,
    collector_paused,
    inside,
    site_inside,
)
from kiosk.central.reports.daily import day_bounds
from kiosk.central.settings import CentralConfig
from kiosk.cli.main import cli
from tests.central_people import ZONE, at, decision, person, put, unused
from tests.central_support import execute

pytest_plugins = ("tests.central_fixtures",)

NOW = at("2026-12-01 15:00") / 1000


def recent_ms() -> int:
    """A minute ago, or just after the site's midnight if that was later: today, either way."""
    start, _ = day_bounds(datetime.now(ZONE).date(), ZONE)
    return max(int(time.time() * 1000) - 60_000, start + 1)


def who(store: Store, site: str = "s1", now: float = NOW) -> dict[str, list[str]]:
    return {a.area: [p.subject for p in a.people] for a in site_inside(store, site, ZONE, now)}


def test_a_person_who_left_is_not_inside_and_one_who_came_back_is(store: Store) -> None:
    put(
        store,
        decision("s-in", at("2026-12-01 08:00"), kiosk="k1"),
        decision("s-left", at("2026-12-01 08:05"), kiosk="k1"),
        decision("s-left", at("2026-12-01 12:00"), kiosk="k2", direction="exit"),
        decision("s-back", at("2026-12-01 08:10"), kiosk="k1"),
        decision("s-back", at("2026-12-01 12:00"), kiosk="k2", direction="exit"),
        decision("s-back", at("2026-12-01 13:00"), kiosk="k2"),
        decision("s-denied", at("2026-12-01 09:00"), outcome="deny"),
    )
    assert who(store) == {"main": ["s-back", "s-in"]}


def test_the_newest_passage_wins_whatever_order_the_kiosks_sent_them_in(store: Store) -> None:
    put(store, decision("s-a", at("2026-12-01 12:00"), kiosk="k2", direction="exit"))
    put(store, decision("s-a", at("2026-12-01 08:00"), kiosk="k1"))  # arrived late
    assert who(store) == {"main": []}


def test_a_tie_in_one_millisecond_goes_to_the_higher_crc_of_the_event_id(store: Store) -> None:
    ids = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"]
    entry_id, exit_id = sorted(ids, key=lambda i: zlib.crc32(i.encode()), reverse=True)
    ts = at("2026-12-01 09:00")
    put(
        store,
        decision("s-a", ts, event_id=entry_id),
        decision("s-a", ts, direction="exit", event_id=exit_id),
    )
    assert who(store) == {"main": ["s-a"]}  # the entry's CRC-32 is the higher


def test_a_tie_goes_to_the_higher_crc_whichever_passage_was_stored_first(store: Store) -> None:
    """Whoever reads the newest passages (one row per subject and area) must notice the tie:
    the row it happens to pick (the first stored, or the first kiosk's) is an exit for one of
    the two subjects."""
    ids = sorted(
        (f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)),
        key=lambda i: zlib.crc32(i.encode()),
        reverse=True,
    )
    ts = at("2026-12-01 09:00")
    put(store, decision("s-a", ts, kiosk="k2", direction="exit", event_id=ids[2]))
    put(store, decision("s-a", ts, kiosk="k1", event_id=ids[0]))  # the higher CRC-32
    put(store, decision("s-b", ts, kiosk="k2", event_id=ids[1]))  # the higher CRC-32
    put(store, decision("s-b", ts, kiosk="k1", direction="exit", event_id=ids[3]))
    assert who(store) == {"main": ["s-a", "s-b"]}


def test_withdrawn_grants_put_the_person_back_where_they_were(store: Store) -> None:
    put(
        store,
        decision("s-never-came", at("2026-12-01 08:00")),
        unused("s-never-came", at("2026-12-01 08:00") + 20_000, direction="entry"),
        decision("s-stayed", at("2026-12-01 08:00")),
        decision("s-stayed", at("2026-12-01 12:00"), direction="exit"),
        unused("s-stayed", at("2026-12-01 12:00") + 20_000, direction="exit"),
    )
    assert who(store) == {"main": ["s-stayed"]}


def test_the_day_starts_at_the_sites_midnight(store: Store) -> None:
    put(
        store,
        decision("s-yesterday", at("2026-11-30 23:30")),  # 16:30 UTC, the same UTC day
        decision("s-early", at("2026-12-01 00:30")),  # 17:30 UTC the day before
    )
    assert who(store) == {"main": ["s-early"]}
    assert who(store, now=at("2026-11-30 23:45") / 1000) == {"main": ["s-yesterday"]}


def test_a_passage_dated_ahead_of_now_does_not_count_and_areas_are_apart(store: Store) -> None:
    put(
        store,
        decision("s-a", at("2026-12-01 08:00")),
        decision("s-a", at("2026-12-01 09:00"), area="lab"),
        decision("s-a", at("2026-12-01 15:06"), direction="exit"),  # 6 min ahead of now
        decision("s-b", at("2026-12-01 09:00"), area="lab"),
        decision("s-b", at("2026-12-01 15:04"), area="lab", direction="exit"),  # 4 min ahead
    )
    assert who(store) == {"lab": ["s-a"], "main": ["s-a"]}


def test_other_sites_do_not_leak_and_names_come_from_the_sites_roster(store: Store) -> None:
    roster.replace(store, "s1", "import", [person("s-a", "Nguyễn Văn An")], "test", 0)
    roster.replace(store, "s2", "import", [person("s-b", "Trần Thị Bình")], "test", 0)
    put(
        store,
        decision("s-a", at("2026-12-01 08:00")),
        decision("s-b", at("2026-12-01 08:00")),
        decision("s-b", at("2026-12-01 08:00"), site="s2", kind="visitor"),
    )
    config = CentralConfig()
    areas = inside(store, config, "s1", NOW)
    assert [(a.site, a.area) for a in areas] == [("s1", "main")]
    named = {p.subject: (p.person.name if p.person else None, p.kind) for p in areas[0].people}
    assert named == {"s-a": ("Nguyễn Văn An", "staff"), "s-b": (None, "staff")}
    every = inside(store, config, None, NOW)
    assert [(a.site, len(a.people)) for a in every] == [("s1", 2), ("s2", 1)]
    assert every[1].people[0].person is not None and every[1].people[0].kind == "staff"


def test_the_gauge_counts_people_per_site_and_area_and_an_emptied_area_shows_0(
    store: Store,
) -> None:
    now_ms = recent_ms()
    put(
        store,
        decision("s-a", now_ms),
        decision("s-b", now_ms),
        decision("s-c", now_ms, area="lab"),
        decision("s-c", now_ms + 1, area="lab", direction="exit"),
    )
    registry = CollectorRegistry()
    registry.register(PeopleInsideCollector(store, CentralConfig()))
    text = generate_latest(registry).decode()
    assert 'central_people_inside{area="main",site="s1"} 2.0' in text
    assert 'central_people_inside{area="lab",site="s1"} 0.0' in text


def test_report_inside_prints_the_list_in_each_format(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    ts = recent_ms()
    roster.replace(store, "s1", "import", [person("s-a", "Nguyễn Văn An")], "test", 0)
    put(store, decision("s-a", ts, kiosk="gate-1"), decision("s-b", ts, site="s2"))
    runner = CliRunner()

    def report(*args: str) -> str:
        result = runner.invoke(cli, ["central", "report", "inside", "--db", db_url, *args])
        assert result.exit_code == 0, result.output
        return result.output

    text = report("--site", "s1")
    assert "s1 / main: 1 inside" in text and "Nguyễn Văn An (Phòng Kế toán)" in text
    assert "s-b" not in text
    rows = report("--format", "csv").splitlines()
    assert rows[0] == "site,area,subject,name,unit,kind,since,kiosk"
    assert rows[1].startswith("s1,main,s-a,Nguyễn Văn An,Phòng Kế toán,staff,")
    assert rows[2].startswith("s2,main,s-b,,,staff,")
    listed = json.loads(report("--format", "json", "--site", "s2"))
    assert listed == [
        {"site": "s2", "area": "main", "inside": 1, "people": [listed[0]["people"][0]]}
    ]
    assert listed[0]["people"][0]["subject"] == "s-b"
    out = tmp_path / "inside.csv"
    report("--format", "csv", "-o", str(out))
    assert out.read_bytes().startswith("\ufeffsite,area".encode())


def test_the_retention_deletes_the_passages_with_their_events(store: Store) -> None:
    old, new = decision("s-old", at("2026-12-01 08:00")), decision("s-new", at("2026-12-01 08:00"))
    put(store, old._replace(received_at_ms=1), new)
    assert store.prune(before_ms=2) == (1, 0)
    assert who(store) == {"main": ["s-new"]}


def test_the_version_6_step_fills_subject_events_from_the_stored_events(
    db_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(db_url)
    put(store, decision("s-a", at("2026-12-01 08:00")), decision("s-b", at("2026-12-01 08:00")))
    store.close()
    on = "" if db_url.startswith("sqlite") else " ON events"
    execute(
        db_url,
        [
            f"DROP TRIGGER subject_events_drop{on}",
            "DROP TABLE subject_events",
        ],
    )  # the store as version 5 left it, events and all
    again = connect(db_url)
    again.transaction(lambda cur: schema.STEPS[4][1](cur, again.dialect))
    assert schema.STEPS[4][0] == 6
    assert who(again) == {"main": ["s-a", "s-b"]}
    put(again, decision("s-b", at("2026-12-01 09:00"), direction="exit"))  # triggers are back
    assert who(again) == {"main": ["s-a"]}
    again.transaction(lambda cur: schema.STEPS[4][1](cur, again.dialect))  # runs again safely
    assert who(again) == {"main": ["s-a"]}


def subject_rows(store: Store) -> list[tuple[object, ...]]:
    return list(
        store.transaction(
            lambda cur: (
                cur.execute("SELECT kiosk, seq, subject, area, kind FROM subject_events"),
                cur.fetchall(),
            )[1]
        )
    )


def test_the_ingest_writes_subject_events_once_per_event_and_no_trigger_does(
    store: Store,
) -> None:
    first = decision("s-a", at("2026-12-01 08:00"))
    put(store, first, unused("s-a", at("2026-12-01 08:01"), direction="exit"))
    put(store, first)  # delivered again
    other = decision("s-b", at("2026-12-01 08:02"))._replace(seq=first.seq)
    assert [row for row, _ in store.insert_batch([other]).conflicts] == [other]
    store.insert_batch([decision("s-c", at("2026-12-01 08:03"))._replace(data="{}")])
    assert sorted(subject_rows(store)) == [
        ("k1", first.seq, "s-a", "main", "staff"),
        ("k1", first.seq + 1, "s-a", "main", None),
    ]
    sql = (
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
        if store.dialect.name == "sqlite"
        else "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass"
        " AND NOT tgisinternal"
    )
    assert store.transaction(lambda cur: (cur.execute(sql), cur.fetchone()[0])[1]) == 1


def test_who_is_inside_leaves_the_garbage_collector_as_it_found_it(store: Store) -> None:
    """The collector is paused while the rows become people (it would walk them again and
    again), and only then."""
    put(store, decision("s-a", at("2026-12-01 08:00")))
    assert gc.isenabled()
    assert who(store) == {"main": ["s-a"]}
    assert gc.isenabled()
    gc.disable()
    try:
        assert who(store) == {"main": ["s-a"]}
        assert not gc.isenabled()  # paused by someone else: left so
    finally:
        gc.enable()


def _no_area(row: EventRow) -> EventRow:
    """The decision ``row`` as a kiosk without an area logs it: no ``area`` key (NULL)."""
    data = json.loads(row.data)
    del data["area"]
    return row._replace(data=json.dumps(data))


def test_an_empty_area_and_none_are_one_area_with_each_subject_once(store: Store) -> None:
    """A passage stored with area "" and one with NULL are one area, as at the kiosks: the
    newer wins, also when the two are tied in one millisecond (the higher CRC-32 wins)."""
    ids = sorted(
        (f"00000000-0000-4000-8000-00000000000{i}" for i in range(2)),
        key=lambda i: zlib.crc32(i.encode()),
        reverse=True,
    )
    ts = at("2026-12-01 09:00")
    put(
        store,
        decision("s-a", at("2026-12-01 08:00"), area=""),
        _no_area(decision("s-a", ts)),
        decision("s-b", ts, area="", direction="exit", event_id=ids[1]),
        _no_area(decision("s-b", ts, event_id=ids[0])),  # the higher CRC-32: inside
        _no_area(decision("s-c", at("2026-12-01 08:00"))),
        decision("s-c", ts, area="", direction="exit"),
    )
    (only,) = site_inside(store, "s1", ZONE, NOW)
    assert only.area == ""
    assert [(p.subject, f"{p.since:%H:%M}") for p in only.people] == [
        ("s-a", "09:00"),
        ("s-b", "09:00"),
    ]


def test_overlapping_pauses_in_two_threads_turn_the_collector_back_on_only_at_the_end() -> None:
    """Thread B pauses the collector; thread A pauses it too while B's pause holds (A having
    read that the collector is off just before B's pause ended); B ends, then A: the collector
    stays off until A ends, and is on after (it used to be left off for good)."""
    real = gc.isenabled
    a_read, a_in, b_done, b_in = (threading.Event() for _ in range(4))
    seen: dict[str, bool] = {}

    def isenabled() -> bool:  # the thread switch between reading and pausing, in thread A
        value = real()
        if threading.current_thread().name == "A":
            a_read.set()
            b_done.wait(60)
        return value

    def b() -> None:
        with collector_paused():
            b_in.set()
            assert a_read.wait(60) or a_in.is_set()
        b_done.set()

    def a() -> None:
        assert b_in.wait(60)
        with collector_paused():
            a_read.set()  # now inside (where A found the pause held, it read nothing)
            a_in.set()
            assert b_done.wait(60)
            seen["during"] = real()

    assert gc.isenabled()
    gc.isenabled = isenabled  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=f, name=f.__name__.upper()) for f in (b, a)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        gc.isenabled = real  # type: ignore[assignment]
        collector_on = gc.isenabled()
        gc.enable()
    assert seen == {"during": False}  # off while A's pause held, after B's ended
    assert collector_on
