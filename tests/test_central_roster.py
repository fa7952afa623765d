"""The roster at central: import through the CLI with the site's salt, re-import, removal,
the register of issued passes, the batch lookup and the version-3 migration, on real SQLite
files and the local PostgreSQL."""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kiosk.central import Store, roster
from kiosk.central.schema import VERSION
from kiosk.central.trace import find_people
from kiosk.cli.main import cli
from kiosk.credentials.register import COLUMNS as REGISTER_COLUMNS
from kiosk.decide.privacy import Pseudonymizer, read_salt_file
from tests.central_support import SITE, execute, rows

pytest_plugins = ("tests.central_fixtures",)

SALT = "site-salt-0123456789abcdef"
HEADER = "badge,pass,subject,name,unit,kind,phone\n"
NATIONAL = "n-0123456789abcdef0123"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """central.toml naming the site's salt file, as its kiosks' subject_salt_file."""
    salt = tmp_path / "site-salt"
    salt.write_text(SALT + "\n", encoding="utf-8")
    os.chmod(salt, 0o600)
    path = tmp_path / "central.toml"
    path.write_text(f'[sites.{SITE}]\nsubject_salt_file = "{salt}"\n', encoding="utf-8")
    return path


def kiosk_subject(config: Path, identifier: str) -> str:
    """The subject a kiosk of the site records for a badge id or ``pass:`` + holder reference
    (kiosk.decide.entrance: Pseudonymizer with the salt read from subject_salt_file)."""
    return Pseudonymizer(read_salt_file(config.parent / "site-salt")).subject(identifier)


def central(config: Path, db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["central", "--config", str(config), *args, "--db", db_url])


def roster_file(tmp_path: Path, text: str, name: str = "roster.csv", bom: bool = True) -> Path:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_import_names_the_subjects_kiosks_record_for_badges_passes_and_national_codes(
    tmp_path: Path, config: Path, db_url: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = roster_file(
        tmp_path,
        HEADER
        + "B-1001,,,Nguyễn Thị Hằng,Phòng Kế toán,staff,0901 234 567\n"
        + ",E-77,,Trần Văn Đức,Ban Giám đốc,staff,\n"
        + f",,{NATIONAL},Lê Minh Châu,Khách,visitor,\n",
    )
    result = central(config, db_url, "roster", "import", str(path), "--site", SITE, "--by", "hr")
    assert result.exit_code == 0, result.output
    assert "3 people" in result.output
    assert "3 holders imported for site" in caplog.text and "Hằng" not in caplog.text
    badge, holder = kiosk_subject(config, "B-1001"), kiosk_subject(config, "pass:E-77")
    found = roster.people(store, SITE, [badge, holder, NATIONAL, "s-00000000000000000000"])
    assert found == {
        badge: roster.Person("Nguyễn Thị Hằng", "Phòng Kế toán", "staff"),
        holder: roster.Person("Trần Văn Đức", "Ban Giám đốc", "staff"),
        NATIONAL: roster.Person("Lê Minh Châu", "Khách", "visitor"),
    }
    assert roster.people(store, "other-site", [badge]) == {}
    (first, *_) = roster.entries(store, SITE)
    assert (first.source, first.imported_by) == ("import", "hr")
    assert {e.phone for e in roster.entries(store)} == {"0901 234 567", None}
    listed = central(config, db_url, "roster", "list")
    assert listed.exit_code == 0 and "Nguyễn Thị Hằng" in listed.output


def test_names_are_stored_composed_and_found_without_accents_or_case(
    tmp_path: Path, config: Path, db_url: str, store: Store
) -> None:
    decomposed = unicodedata.normalize("NFD", "Trần Văn Đức")
    path = roster_file(
        tmp_path, HEADER + f"B-1,,,{decomposed},Kho,staff,\nB-2,,,Lê Thị An,Kho,staff,\n"
    )
    assert central(config, db_url, "roster", "import", str(path), "--site", SITE).exit_code == 0
    names = [e.name for e in roster.entries(store)]
    assert "Trần Văn Đức" in names  # NFC, as a name typed on a Vietnamese keyboard
    for typed in ("đức", "DUC", "tran van duc", decomposed.lower(), "Trần Văn Đức"):
        found = [e.name for e in find_people(store, SITE, typed)]
        assert found == ["Trần Văn Đức"], typed
    assert find_people(store, SITE, "dung") == []


def test_the_listed_roster_cannot_run_as_a_formula_in_a_spreadsheet(
    tmp_path: Path, config: Path, db_url: str
) -> None:
    text = HEADER + 'B-1,,,"=HYPERLINK(""http://x"")",+Kho,staff,+84 901\n'
    path = roster_file(tmp_path, text)
    assert central(config, db_url, "roster", "import", str(path), "--site", SITE).exit_code == 0
    (line,) = central(config, db_url, "roster", "list").output.splitlines()[1:]
    assert line.split("\t")[2:6] == ['\'=HYPERLINK("http://x")', "'+Kho", "staff", "'+84 901"]


def test_a_reimport_replaces_the_sites_rows_and_a_bad_file_stores_nothing(
    tmp_path: Path, config: Path, db_url: str, store: Store
) -> None:
    first = roster_file(tmp_path, HEADER + "A1,,,An,U1,staff,\nA2,,,Bình,U1,staff,\n", "1.csv")
    assert central(config, db_url, "roster", "import", str(first), "--site", SITE).exit_code == 0
    second = roster_file(tmp_path, "name,unit,kind,badge\nBình,U2,staff,A2\n", "2.csv", bom=False)
    assert central(config, db_url, "roster", "import", str(second), "--site", SITE).exit_code == 0
    assert [(e.name, e.unit) for e in roster.entries(store)] == [("Bình", "U2")]
    bad = roster_file(tmp_path, HEADER + "A3,,,Cường,U1,staff,\nA4,,,Dũng,U1,boss,\n", "3.csv")
    result = central(config, db_url, "roster", "import", str(bad), "--site", SITE)
    assert result.exit_code == 65
    assert f"{bad}:3: column 'kind' must be one of staff, visitor, contractor" in result.output
    assert "Dũng" not in result.output  # no names in messages
    assert [e.name for e in roster.entries(store)] == ["Bình"]  # nothing of the bad file


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("badge,name,unit\n", ":1: the header needs the column kind"),
        ("badge,name,unit,kind,email\n", ":1: column 'email' is unknown"),
        ("badge,pass,name,unit,kind\nA1,P1,An,U,staff\n", ":2: fill exactly one of the columns"),
        ("badge,name,unit,kind\nA 1,An,U,staff\n", ":2: column 'badge' is not a valid badge"),
        ("badge,name,unit,kind\nA1,,U,staff\n", ":2: column 'name' is empty"),
        ("badge,name,unit,kind\nA1,An,U\n", ":2: 3 cells, the header has 4"),
        ("badge,name,unit,kind\nA1,An,U,staff\nA1,Bo,U,staff\n", ":3: the same person as line 2"),
        ("subject,name,unit,kind\nn-12,An,U,staff\n", ":2: column 'subject' is not a valid"),
    ],
)
def test_a_wrong_roster_file_is_refused_naming_line_and_column(
    tmp_path: Path, config: Path, text: str, problem: str
) -> None:
    db = str(tmp_path / "central.db")
    path = roster_file(tmp_path, text)
    result = central(config, db, "roster", "import", str(path), "--site", SITE)
    assert result.exit_code == 65 and f"{path}{problem}" in result.output, result.output


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path, config: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes("badge,name,unit,kind\nA1,Đông,U,staff\n".encode("cp1258"))
    result = central(config, str(tmp_path / "c.db"), "roster", "import", str(path), "--site", SITE)
    assert result.exit_code == 65 and f"{path}:2: not UTF-8" in result.output


def test_removal_by_badge_or_subject(tmp_path: Path, config: Path, db_url: str) -> None:
    path = roster_file(tmp_path, HEADER + f"A1,,,An,U,staff,\n,,{NATIONAL},Bình,U,visitor,\n")
    assert central(config, db_url, "roster", "import", str(path), "--site", SITE).exit_code == 0
    assert central(config, db_url, "roster", "remove", "--site", SITE, "--id", "A1").exit_code == 0
    gone = central(config, db_url, "roster", "remove", "--site", SITE, "--subject", NATIONAL)
    assert gone.exit_code == 0
    again = central(config, db_url, "roster", "remove", "--site", SITE, "--subject", NATIONAL)
    assert again.exit_code == 65
    both = central(config, db_url, "roster", "remove", "--site", SITE, "--id", "A1", "--pass", "B")
    assert both.exit_code == 2
    assert "An" not in central(config, db_url, "roster", "list").output


def test_the_pass_register_names_its_holders_for_the_site_without_overriding_the_roster(
    tmp_path: Path, config: Path, db_url: str, store: Store
) -> None:
    register = tmp_path / "issued-passes.csv"
    passes = [
        ("P-1", "E-77", "staff", "*"),
        ("P-2", "V-5", "visitor", f"{SITE},other"),
        ("P-3", "V-5", "visitor", SITE),  # a second pass of the same holder
        ("P-4", "X-9", "contractor", "other"),  # not good at this site
    ]
    register.write_text(
        ",".join(REGISTER_COLUMNS)
        + "\n"
        + "".join(
            f"2026-01-01T00:00:00+00:00,{pid},{ref},{kind},2026-01-01T00:00:00+00:00,"
            f'2027-01-01T00:00:00+00:00,"{sites}",office\n'
            for pid, ref, kind, sites in passes
        ),
        encoding="utf-8",
    )
    named = roster_file(tmp_path, "pass,name,unit,kind\nE-77,Trần Văn Đức,BGĐ,staff\n")
    assert central(config, db_url, "roster", "import", str(named), "--site", SITE).exit_code == 0
    args = ("roster", "import", "--register", str(register), "--site", SITE)
    result = central(config, db_url, *args)
    assert result.exit_code == 0, result.output
    e77, v5 = kiosk_subject(config, "pass:E-77"), kiosk_subject(config, "pass:V-5")
    x9 = kiosk_subject(config, "pass:X-9")
    assert roster.people(store, SITE, [e77, v5, x9]) == {
        e77: roster.Person("Trần Văn Đức", "BGĐ", "staff"),  # the roster file's row is kept
        v5: roster.Person("V-5", "", "visitor"),  # named by its holder reference
    }
    assert central(config, db_url, *args).exit_code == 0  # again: the same rows
    assert sorted(e.source for e in roster.entries(store)) == ["import", "register"]


def test_people_looks_up_twenty_thousand_subjects_in_one_call(
    tmp_path: Path, config: Path, db_url: str, store: Store
) -> None:
    lines = "".join(f"B{n},Người {n},Unit {n % 40},staff\n" for n in range(20_000))
    path = roster_file(tmp_path, "badge,name,unit,kind\n" + lines)
    assert central(config, db_url, "roster", "import", str(path), "--site", SITE).exit_code == 0
    pseudonyms = Pseudonymizer(SALT.encode())
    wanted = [pseudonyms.subject(f"B{n}") for n in range(20_000)]
    found = roster.people(store, SITE, [*wanted, NATIONAL])
    assert len(found) == 20_000 and found[wanted[12_345]].name == "Người 12345"

    def inside_a_transaction(cur: object) -> int:
        return len(roster.people(cur, SITE, wanted[:10]))

    assert store.transaction(inside_a_transaction) == 10


def test_roster_commands_need_the_sites_salt(tmp_path: Path, db_url: str) -> None:
    empty = tmp_path / "central.toml"
    empty.write_text("", encoding="utf-8")
    path = roster_file(tmp_path, "badge,name,unit,kind\nA1,An,U,staff\n")
    result = central(empty, db_url, "roster", "import", str(path), "--site", SITE)
    assert result.exit_code == 78 and f"sites.{SITE}.subject_salt_file is not set" in result.output


def test_a_version_2_store_gets_the_roster_and_keeps_its_events(
    db_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(db_url)
    store.insert_batch(rows(SITE, "k1", [1, 2]))
    store.close()
    execute(
        db_url,
        [
            "DROP TABLE roster",
            "DROP TABLE deliveries",
            "DROP TABLE alert_acks",
            "UPDATE central_schema SET version = 2",
        ],
    )
    again = connect(db_url)
    assert again.count() == 2 and roster.entries(again) == []

    def versions(cur: Any) -> list[int]:
        cur.execute("SELECT version FROM central_schema ORDER BY version")
        return [int(version) for (version,) in cur.fetchall()]

    assert again.transaction(versions) == [2, VERSION]
