"""The organisation's side as a user runs it: keys, trust list, a pass, its QR, revocation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KIOSK = [sys.executable, "-c", "from kiosk.cli import main; main()"]


def kiosk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KIOSK, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_issue_print_scan_and_verify_a_pass(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert kiosk("pass", "keygen", keys, "--name", "issuer").returncode == 0
    assert kiosk("pass", "keygen", keys, "--name", "documents").returncode == 0
    again = kiosk("pass", "keygen", keys, "--name", "issuer")
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert (keys / "issuer.key").stat().st_mode & 0o077 == 0

    trust = kiosk(
        "pass",
        "trust",
        "--key",
        keys / "documents.key",
        "--org",
        "acme",
        "--version",
        "1",
        keys / "issuer.pub",
        "--out",
        tmp_path / "trust.cose",
    )
    assert trust.returncode == 0, trust.stderr

    issued = kiosk(
        "pass",
        "issue",
        "--key",
        keys / "issuer.key",
        "--issuer",
        "acme",
        "--subject",
        "p-0042",
        "--kind",
        "staff",
        "--valid-until",
        "2099-01-01",
        "--sites",
        "hq",
        "--out",
        tmp_path / "badges",
    )
    assert issued.returncode == 0, issued.stderr
    text = issued.stdout.strip()
    assert text.startswith("KP1:") and "QR version" in issued.stderr
    page = (tmp_path / "badges" / "p-0042.html").read_text(encoding="utf-8")
    assert "<svg" in page and "p-0042" in page

    scanned = kiosk(
        "decode", "--config", tmp_path / "none.toml", tmp_path / "badges" / "p-0042.png"
    )
    assert json.loads(scanned.stdout)["codes"][0]["text"] == text

    def verdict(site: str) -> str:
        result = kiosk(
            "pass",
            "inspect",
            text,
            "--anchor",
            keys / "documents.pub",
            "--trust-list",
            tmp_path / "trust.cose",
            "--site",
            site,
        )
        return str(json.loads(result.stdout)["status"])

    assert (verdict("hq"), verdict("branch")) == ("valid", "wrong_site")

    state, out = tmp_path / "revoked.json", tmp_path / "revocation.cose"
    pass_id = json.loads(kiosk("pass", "inspect", text).stdout)["claims"]["pass_id"]
    for expected_version in (1, 2):
        revoked = kiosk(
            "pass",
            "revoke",
            "--key",
            keys / "documents.key",
            "--org",
            "acme",
            "--state",
            state,
            pass_id,
            "--out",
            out,
        )
        assert f"revocation list v{expected_version} with 1 passes" in revoked.stdout
    assert json.loads(state.read_text()) == {"version": 2, "revoked": [pass_id]}


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
