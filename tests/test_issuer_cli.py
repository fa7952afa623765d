"""The organisation's side as a user runs it: keys, trust list, a pass, its QR, revocation."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiosk.cli.doctor_host import check_trust
from kiosk.config import parse_config

KIOSK = [sys.executable, "-c", "from kiosk.cli.main import main; main()"]


def kiosk(*args: str | Path, tz: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kiosk`` as a user would; ``tz`` sets this machine's time zone (``TZ``)."""
    env = os.environ if tz is None else os.environ | {"TZ": tz}
    return subprocess.run(
        [*KIOSK, *map(str, args)], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@dataclass(frozen=True)
class Office:
    """An office's keys and the site's trust list, made once with the commands themselves."""

    keys: Path
    trust: Path

    @property
    def documents_key(self) -> Path:
        return self.keys / "documents.key"

    @property
    def issuer_key(self) -> Path:
        return self.keys / "issuer.key"

    @property
    def anchor(self) -> Path:
        return self.keys / "documents.pub"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Office:
    keys = tmp_path_factory.mktemp("office") / "keys"
    for name in ("documents", "issuer"):
        assert kiosk("pass", "keygen", keys, "--name", name).returncode == 0
    trust = keys.parent / "trust.cose"
    made = kiosk(
        "pass",
        "trust",
        "--key",
        keys / "documents.key",
        "--org",
        "acme",
        "--version",
        "1",
        keys / "issuer.pub",
        "--anchor",
        keys / "documents.pub",
        "--out",
        trust,
    )
    assert made.returncode == 0, made.stderr
    assert "the same as the trust anchor" in made.stdout
    return Office(keys, trust)


def issue(
    office: Office, tmp_path: Path, *extra: str | Path, tz: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``kiosk pass issue`` for a staff pass of p-0042, the register in ``tmp_path``."""
    result = kiosk(
        "pass",
        "issue",
        "--key",
        office.issuer_key,
        "--issuer",
        "acme",
        "--subject",
        "p-0042",
        "--kind",
        "staff",
        "--register",
        tmp_path / "register.csv",
        "--out",
        tmp_path / "badges",
        *extra,
        tz=tz,
    )
    assert result.returncode == 0, result.stderr
    return result


def revoke(office: Office, tmp_path: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """``kiosk pass revoke`` with the site's state and list in ``tmp_path``."""
    return kiosk(
        "pass",
        "revoke",
        "--org",
        "acme",
        "--state",
        tmp_path / "revoked.json",
        "--out",
        tmp_path / "revocation.cose",
        "--register",
        tmp_path / "register.csv",
        *extra,
    )


def claims_of(text: str) -> dict[str, Any]:
    return dict(json.loads(kiosk("pass", "inspect", text).stdout)["claims"])


def batch(
    office: Office, tmp_path: Path, csv_text: str, *extra: str | Path
) -> subprocess.CompletedProcess[str]:
    """``kiosk pass batch`` of ``csv_text``, the register in ``tmp_path``."""
    (tmp_path / "people.csv").write_text(csv_text, encoding="utf-8")
    return kiosk(
        "pass",
        "batch",
        "--key",
        office.issuer_key,
        "--issuer",
        "acme",
        tmp_path / "people.csv",
        "--register",
        tmp_path / "register.csv",
        "--out",
        tmp_path / "batch",
        *extra,
    )


def register_rows(tmp_path: Path) -> list[dict[str, str]]:
    text = (tmp_path / "register.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def verdict(office: Office, text: str, *extra: str | Path) -> tuple[int, str | None]:
    """``kiosk pass inspect`` against the site's trust list: exit status and the pass's status."""
    result = kiosk(
        "pass", "inspect", text, "--anchor", office.anchor, "--trust-list", office.trust, *extra
    )
    return result.returncode, json.loads(result.stdout)["status"] if result.stdout else None


def test_issue_print_scan_and_verify_a_pass(office: Office, tmp_path: Path) -> None:
    again = kiosk("pass", "keygen", office.keys, "--name", "issuer")
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert office.issuer_key.stat().st_mode & 0o077 == 0

    issued = issue(office, tmp_path, "--valid-until", "2099-01-01", "--sites", "hq")
    text = issued.stdout.strip()
    assert text.startswith("KP1:") and "QR version" in issued.stderr
    page = (tmp_path / "badges" / "p-0042.html").read_text(encoding="utf-8")
    assert "<svg" in page and "p-0042" in page

    scanned = kiosk(
        "decode", "--config", tmp_path / "none.toml", tmp_path / "badges" / "p-0042.png"
    )
    assert json.loads(scanned.stdout)["codes"][0]["text"] == text
    assert verdict(office, text, "--site", "hq") == (0, "valid")

    pass_id = claims_of(text)["pass_id"]
    for expected_version in (1, 2):
        revoked = revoke(office, tmp_path, "--key", office.documents_key, pass_id)
        assert f"revocation list v{expected_version} with 1 passes" in revoked.stdout
    known = json.loads((tmp_path / "revoked.json").read_text())
    assert (known["version"], known["revoked"]) == (2, [pass_id])


def test_a_bad_pass_request_is_refused_clearly(tmp_path: Path) -> None:
    kiosk("pass", "keygen", tmp_path, "--name", "issuer")
    result = kiosk(
        "pass",
        "issue",
        "--key",
        tmp_path / "issuer.key",
        "--issuer",
        "acme",
        "--subject",
        "Nguyen Van A",
        "--kind",
        "staff",
        "--valid-until",
        "2099-01-01",
    )
    assert result.returncode == 65
    assert "subject must be" in result.stderr and "Traceback" not in result.stderr


def test_site_checkin_qr_and_poster(tmp_path: Path) -> None:
    result = kiosk(
        "site-qr",
        "--base-url",
        "https://checkin.example",
        "--site",
        "hq",
        "--site-name",
        "Head office",
        "--out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "https://checkin.example/s/hq"
    poster = (tmp_path / "hq-poster.html").read_text(encoding="utf-8")
    assert "Head office" in poster and "Khẩu trang" in poster
    refused = kiosk("site-qr", "--base-url", "http://checkin.example", "--site", "hq")
    assert refused.returncode == 65 and "https" in refused.stderr


def test_a_malformed_pass_id_is_refused_in_words(office: Office, tmp_path: Path) -> None:
    result = revoke(office, tmp_path, "--key", office.documents_key, "0011223344556677", "zzz")
    assert result.returncode == 65
    assert "'zzz' is not a pass id (16-32 hex digits" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "revocation.cose").exists() and not (tmp_path / "revoked.json").exists()


def test_a_list_signed_with_a_key_the_kiosks_do_not_trust_is_refused(
    office: Office, tmp_path: Path
) -> None:
    # The usual slip: the issuer key from the keys folder, where keygen put the anchor too.
    beside = revoke(office, tmp_path, "--key", office.issuer_key, "--empty")
    assert beside.returncode == 65
    assert "the kiosks' trust anchor is key" in beside.stderr and "nothing written" in beside.stderr
    assert not (tmp_path / "revocation.cose").exists()
    # Keys kept apart: checked against the site's trust list, or not at all.
    apart = tmp_path / "apart"
    apart.mkdir()
    for key in (office.issuer_key, office.documents_key):
        (apart / key.name).write_bytes(key.read_bytes())
    wrong = revoke(
        office, tmp_path, "--key", apart / "issuer.key", "--trust-list", office.trust, "--empty"
    )
    assert wrong.returncode == 65
    assert "the site's trust list is signed by key" in wrong.stderr
    assert "this key (a pass-signing key) is" in wrong.stderr
    unchecked = revoke(office, tmp_path, "--key", apart / "documents.key", "--empty")
    assert unchecked.returncode == 0, unchecked.stderr
    assert "warning: the signing key was not checked" in unchecked.stderr
    # Later versions are held to the key that signed the first one.
    later = revoke(office, tmp_path, "--key", apart / "issuer.key", "--empty")
    assert later.returncode == 65
    assert "earlier versions of this list were signed by key" in later.stderr
    checked = revoke(office, tmp_path, "--key", office.documents_key, "--empty")
    assert "revocation list v2 with 0 passes" in checked.stdout
    assert f"the same as the trust anchor {office.anchor} and earlier versions" in checked.stdout


def test_inspect_checks_the_revocation_list_and_exits_1_unless_valid(
    office: Office, tmp_path: Path
) -> None:
    text = issue(office, tmp_path, "--valid-until", "2099-01-01", "--sites", "hq").stdout.strip()
    pass_id = claims_of(text)["pass_id"]
    made = revoke(
        office, tmp_path, "--key", office.documents_key, "--anchor", office.anchor, pass_id
    )
    assert made.returncode == 0, made.stderr

    assert verdict(office, text, "--site", "hq") == (0, "valid")
    assert verdict(office, text, "--site", "branch") == (1, "wrong_site")
    assert verdict(
        office, text, "--site", "hq", "--revocation-list", tmp_path / "revocation.cose"
    ) == (
        1,
        "revoked",
    )
    assert verdict(office, "S-0001") == (1, "not_a_pass")
    alone = kiosk("pass", "inspect", text, "--revocation-list", tmp_path / "revocation.cose")
    assert alone.returncode == 64 and "--revocation-list needs both" in alone.stderr


def test_issue_prints_the_pass_id_and_revoke_finds_a_holders_passes_in_the_register(
    office: Office, tmp_path: Path
) -> None:
    first = issue(office, tmp_path, "--valid-until", "2099-01-01", "--sites", "hq")
    second = issue(office, tmp_path, "--valid-until", "2099-06-30", "--out", tmp_path / "b2")
    ids = [claims_of(result.stdout.strip())["pass_id"] for result in (first, second)]
    assert f"pass id {ids[0]} (staff p-0042, valid until 2099-01-01" in first.stderr
    assert (tmp_path / "register.csv").stat().st_mode & 0o077 == 0
    rows = register_rows(tmp_path)
    assert [(r["pass_id"], r["subject"], r["kind"], r["sites"]) for r in rows] == [
        (ids[0], "p-0042", "staff", "hq"),
        (ids[1], "p-0042", "staff", "*"),
    ]
    assert set(rows[0]) == {
        "issued_at",
        "pass_id",
        "subject",
        "kind",
        "valid_from",
        "valid_until",
        "sites",
        "issuer",
    }

    revoked = revoke(office, tmp_path, "--key", office.documents_key, "--subject", "p-0042")
    assert "revocation list v1 with 2 passes (2 added)" in revoked.stdout, revoked.stderr
    state = json.loads((tmp_path / "revoked.json").read_text(encoding="utf-8"))
    assert state["revoked"] == sorted(ids)
    unknown = revoke(office, tmp_path, "--key", office.documents_key, "--subject", "p-9999")
    assert unknown.returncode == 65 and "no current pass of 'p-9999'" in unknown.stderr


def test_an_empty_revocation_list_lets_a_fresh_site_pass_doctor(
    office: Office, tmp_path: Path
) -> None:
    config = parse_config(
        {
            "kiosk": {"state_dir": str(tmp_path / "state")},
            "credentials": {
                "trust_anchor": str(office.anchor),
                "trust_list": str(office.trust),
                "revocation_list": str(tmp_path / "revocation.cose"),
            },
        }
    )
    fresh = check_trust(config)
    assert fresh.status == "fail" and "kiosk pass revoke --empty" in fresh.fix
    nothing = revoke(office, tmp_path, "--key", office.documents_key)
    assert nothing.returncode == 64 and "--empty" in nothing.stderr
    made = revoke(
        office, tmp_path, "--key", office.documents_key, "--anchor", office.anchor, "--empty"
    )
    assert "revocation list v1 with 0 passes" in made.stdout, made.stderr
    check = check_trust(config)
    assert (check.status, check.detail) == ("ok", "trust list v1, revocation list v1, 0.0 days old")


HANOI_END_OF_2026 = "2026-12-31T16:59:59+00:00"  # 23:59:59 in Asia/Ho_Chi_Minh (UTC+7)


def test_a_date_is_the_end_of_that_day_in_the_sites_time_zone(
    office: Office, tmp_path: Path
) -> None:
    issued = issue(office, tmp_path, "--valid-until", "2026-12-31", "--tz", "Asia/Ho_Chi_Minh")
    assert claims_of(issued.stdout.strip())["valid_until"] == HANOI_END_OF_2026
    page = (tmp_path / "badges" / "p-0042.html").read_text(encoding="utf-8")
    assert "2026-12-31 23:59 +07" in page
    # Without --tz, the machine's own zone (an office in Hanoi).
    local = issue(office, tmp_path, "--valid-until", "2026-12-31", tz="Asia/Ho_Chi_Minh")
    assert claims_of(local.stdout.strip())["valid_until"] == HANOI_END_OF_2026

    people = "subject,kind,valid_from,valid_until,sites\nv-1,visitor,,2026-12-31,hq\n"
    batched = batch(office, tmp_path, people, "--tz", "Asia/Ho_Chi_Minh")
    assert batched.returncode == 0, batched.stderr
    subject, pass_id = batched.stdout.split()  # each holder reference with its pass id
    rows = register_rows(tmp_path)
    assert subject == "v-1" and (rows[-1]["subject"], rows[-1]["pass_id"]) == (subject, pass_id)
    assert rows[-1]["valid_until"] == HANOI_END_OF_2026
    assert "2026-12-31 23:59 +07" in (tmp_path / "batch" / "v-1.html").read_text(encoding="utf-8")
    bad = batch(office, tmp_path, people, "--tz", "Mars/Olympus")
    assert bad.returncode == 64 and "not a time zone name" in bad.stderr


def test_issue_and_batch_read_sites_and_valid_from_the_same_way(
    office: Office, tmp_path: Path
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    issued = issue(office, tmp_path, "--valid-until", "2099-01-01", "--sites", "hq,branch-2")
    people = 'subject,kind,valid_from,valid_until,sites\nv-1,visitor,,2099-01-01,"hq,branch-2"\n'
    batched = batch(office, tmp_path, people)
    assert batched.returncode == 0, batched.stderr
    rows = register_rows(tmp_path)
    assert [row["sites"] for row in rows] == ["hq,branch-2", "hq,branch-2"]
    from_issue = claims_of(issued.stdout.strip())["valid_from"]
    for valid_from in (from_issue, rows[1]["valid_from"]):
        assert datetime.fromisoformat(valid_from) >= before  # empty or absent: now
    help_text = kiosk("pass", "batch", "--help").stdout
    assert "health_declared_at" in help_text and "meeting" in help_text


def test_damaged_register_and_state_files_are_refused_in_words_not_tracebacks(
    tmp_path: Path,
) -> None:
    """`revoke` turns these ValueErrors into one line and exit 65."""
    from kiosk.cli.lists import _read_state
    from kiosk.credentials import register

    huge_field = tmp_path / "huge.csv"
    huge_field.write_text(",".join(register.COLUMNS) + '\n"' + "x" * 200_000 + '"\n')
    nested = tmp_path / "state.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    for read, path in (
        (register.read, huge_field),
        (register.read, tmp_path),  # a directory
        (_read_state, nested),
        (_read_state, tmp_path),
    ):
        with pytest.raises(ValueError, match=str(path)):
            read(path)
