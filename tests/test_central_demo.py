"""kiosk central demo: a store filled through central's own ingest that every central command
answers, on a real SQLite file and the local PostgreSQL; the same store for the same seed; a
store already filled is refused unless --replace; 5 kiosks × 30 days in well under a minute."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from kiosk.central import Store, open_store, roster
from kiosk.central.demo import DemoResult, fill
from kiosk.central.presence import site_inside
from kiosk.cli.main import cli
from kiosk.mqtt.protocol import WireEvent, encode_events

pytest_plugins = ("tests.central_fixtures",)

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 25, 10, 30, tzinfo=ZONE)  # a Wednesday morning
DAYS = 14
SCHEMAS = Path(__file__).parent.parent / "docs" / "schemas"


def central(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["central", "--config", str(config), *args])


def decisions(store: Store) -> list[dict[str, Any]]:
    return [
        json.loads(row.data) for row in store.events_between(0, 2**62) if row.type == "decision"
    ]


@pytest.fixture
def demo(store: Store, db_url: str, tmp_path: Path) -> DemoResult:
    """Two weeks of a five-kiosk site up to NOW."""
    return fill(store, db_url, tmp_path, kiosks=5, days=DAYS, seed=7, now=NOW)


def test_every_command_answers_from_the_demo_store_and_nothing_is_quarantined(
    demo: DemoResult, store: Store
) -> None:
    assert demo.quarantined == 0 and store.quarantined_count() == 0
    assert demo.events == store.count() > 5000
    config = demo.config_file

    status = central(config, "status")
    assert status.exit_code == 0, status.output
    lines = {line.split()[1]: line for line in status.output.splitlines()[1:6]}
    assert sorted(lines) == sorted(demo.kiosks)
    assert " offline " in lines["phong-lab-1"]
    assert "quarantined: 0" in status.output

    listed = central(config, "roster", "list", "--site", "hq")
    assert listed.exit_code == 0, listed.output
    assert len(listed.output.splitlines()) == demo.people + 1
    assert "Nguyễn" in listed.output and "Phòng Kế toán" in listed.output

    day = (NOW - timedelta(days=1)).date().isoformat()  # a Tuesday
    daily = central(
        config,
        "report",
        "daily",
        "--date",
        day,
        "--site",
        "hq",
        "--format",
        "csv",
        "--lang",
        "en",
        "-o",
        "-",
    )
    assert daily.exit_code == 0, daily.output
    rows = [line for line in daily.output.splitlines() if line.startswith(day)]
    assert len(rows) > 300
    assert sum("Nguyễn" in row for row in rows) > 50  # named from the roster

    meeting = next(d["meeting"] for d in decisions(store) if d["mode"] == "checkin")
    attendance = central(config, "report", "attendance", meeting, "--site", "hq")
    assert attendance.exit_code == 0, attendance.output
    assert len(attendance.output.splitlines()) >= 4

    trace = central(
        config,
        "trace",
        "--site",
        "hq",
        "--badge",
        "NV-0001",
        "--format",
        "csv",
        "--from",
        (NOW - timedelta(days=7)).date().isoformat(),
        "--to",
        NOW.date().isoformat(),
    )
    assert trace.exit_code == 0, trace.output
    records = [line.split(",")[0] for line in trace.output.splitlines()[1:]]
    assert "index" in records and len(set(records)) > 1  # the person and who was near

    (main,) = [
        area for area in site_inside(store, "hq", ZONE, NOW.timestamp()) if area.area == "main"
    ]
    assert len(main.people) > 100  # a working morning; some with the guards' unit
    assert any(p.person and p.person.unit == "Bộ phận Bảo vệ" for p in main.people)


def test_the_traffic_has_what_a_site_sees_in_two_weeks(demo: DemoResult, store: Store) -> None:
    made = decisions(store)
    reasons = {d["reason"] for d in made}
    assert {
        "ok",
        "checked_in",
        "already_checked_in",
        "fever",
        "expired_credential",
        "unknown_credential",
        "malformed_credential",
        "already_inside",
        "visitor_cap_reached",
        "lockdown",
        "sensor_fault",
    } <= reasons
    fevers = [d for d in made if d["reason"] == "fever"]
    assert all(d["temperature"]["retested"] and d["temperature"]["celsius"] >= 37.5 for d in fevers)
    cleared = [d for d in made if d["reason"] == "ok" and (d["temperature"] or {}).get("retested")]
    assert cleared and all(d["temperature"]["celsius"] < 37.5 for d in cleared)
    hours = [
        datetime.fromtimestamp(e.ts_ms / 1000, ZONE)
        for e in store.events_between(0, 2**62)
        if e.type == "decision"
    ]
    weekdays = [h for h in hours if h.weekday() < 5]
    assert sum(7 <= h.hour < 9 for h in weekdays) > 5 * sum(2 <= h.hour < 4 for h in weekdays)
    assert sum(h.weekday() < 5 for h in hours) > 10 * sum(h.weekday() == 6 for h in hours)
    kinds = {d["credential"]["kind"] for d in made if d["credential"]}
    assert kinds == {"staff", "visitor", "contractor", None}  # None: an unknown badge

    others = [(e.type, json.loads(e.data)) for e in store.events_between(0, 2**62)]
    lockdowns = [
        d["args"]["on"] for t, d in others if t == "command" and d["command"] == "lockdown"
    ]
    assert True in lockdowns and False in lockdowns
    assert ("health", {"part": "thermometer", "ok": False}) in [
        (t, {k: d[k] for k in ("part", "ok")}) for t, d in others if t == "health"
    ]
    assert {"by": "none", "grant": None} in [d for t, d in others if t == "passage"]

    fleet = {k.kiosk: k for k in store.fleet()}
    side = fleet["cua-ben-1"].state
    assert side["thermometer"]["ok"] is False and side["version"] and side["today"]["granted"] > 0
    assert fleet["phong-hop-1"].state["clock_synced"] is False
    assert any(k.state["log"]["unconfirmed"] > 0 for k in fleet.values())
    assert fleet["phong-lab-1"].availability == "offline"

    subjects = {d["subject"] for d in made if d["subject"]}
    named = roster.people(store, "hq", subjects)
    assert len(named) > 0.9 * len(subjects)  # all but the unknown badges


def schema_errors(name: str, message: dict[str, Any]) -> list[str]:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    return [error.message for error in Draft202012Validator(schema).iter_errors(message)]


def test_the_events_and_states_follow_the_published_schemas(demo: DemoResult, store: Store) -> None:
    """One stored event of each type and decision reason, as its kiosk's events message, and
    every kiosk's retained state."""
    samples: dict[tuple[str, str, str], Any] = {}
    for row in store.events_between(0, 2**62):
        data = json.loads(row.data)
        samples.setdefault((row.type, str(data.get("reason")), row.kiosk), (row, data))
    assert len(samples) > 25
    for row, data in samples.values():
        event = WireEvent(
            row.event_id, row.seq, row.boot_id, row.ts_ms, row.clock_synced, row.type, data
        )
        message = json.loads(encode_events(row.site, row.kiosk, [event]))
        assert schema_errors("events", message) == [], message
    for kiosk in store.fleet():
        assert schema_errors("state", kiosk.state) == [], kiosk.kiosk


def test_the_same_seed_makes_the_same_store(tmp_path: Path) -> None:
    def dump(seed: int, name: str) -> tuple[list[Any], list[Any]]:
        path = tmp_path / name / "central.db"
        store = open_store(str(path))
        fill(store, str(path), path.parent, kiosks=2, days=3, seed=seed, now=NOW)
        store.close()
        with sqlite3.connect(path) as db:
            events = db.execute("SELECT * FROM events ORDER BY site, kiosk, seq").fetchall()
            people = db.execute("SELECT * FROM roster ORDER BY subject").fetchall()
        return events, people

    first = dump(3, "a")
    assert first == dump(3, "b")
    assert first[0] and first[1]
    assert dump(4, "c")[0] != first[0]


def test_a_filled_store_is_refused_unless_replace(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    run = CliRunner().invoke(cli, ["central", "demo", "--db", str(db)])
    assert run.exit_code == 0, run.output
    # how long it took is printed (measured, never asserted: docs/central.md gives the figure)
    assert re.search(r"; [0-9.]+ s \([0-9.]+ s of processor time\)\n", run.output), run.output
    assert (tmp_path / "central.toml").exists() and (tmp_path / "roster-hq.csv").exists()
    assert (tmp_path / "hq.salt").stat().st_mode & 0o077 == 0

    again = CliRunner().invoke(cli, ["central", "demo", "--db", str(db)])
    assert again.exit_code == 73
    assert "already holds" in again.output and "--replace" in again.output

    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "central.toml").write_text("[store]\n", encoding="utf-8")
    other = ["central", "demo", "--db", str(tmp_path / "other.db"), "--files", str(elsewhere)]
    refused = CliRunner().invoke(cli, other)
    assert refused.exit_code == 73 and "not written by the demo" in refused.output
    assert (elsewhere / "central.toml").read_text(encoding="utf-8") == "[store]\n"

    replaced = CliRunner().invoke(
        cli, ["central", "demo", "--db", str(db), "--kiosks", "1", "--days", "2", "--replace"]
    )
    assert replaced.exit_code == 0, replaced.output
    store = open_store(str(db))
    try:
        assert {k.kiosk for k in store.fleet()} == {"cua-ben-1"}
        assert len(roster.entries(store)) < 400
    finally:
        store.close()
