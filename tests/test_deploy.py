"""The installer: shellcheck-clean, and a dry run that plans every step and changes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [
    REPO / "deploy" / "install.sh",
    REPO / "deploy" / "update.sh",
    REPO / "deploy" / "common.sh",
    *sorted((REPO / "scripts").iterdir()),
    REPO / ".ci" / "run",
]


def test_shell_scripts_pass_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", "--external-sources", *map(str, SCRIPTS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_install_dry_run_plans_every_step_and_changes_nothing() -> None:
    result = subprocess.run(
        [str(REPO / "deploy" / "install.sh"), "--dry-run", "--relay-pin", "5"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    for step in (
        "would run: apt-get install",
        "libzbar0",
        "gpio=5=op,dh",
        "i2c_arm_baudrate=50000",
        "useradd --system",
        "venv --system-site-packages",
        "kiosk.service",
        "systemctl enable kiosk.service",
        "done (dry run: nothing was changed)",
    ):
        assert step in out, step
    last = (os.cpu_count() or 1) - 1
    if last:  # every other process off the gate's core; the kiosk may use them all
        assert f"| CPUAffinity=1-{last}" in out.split("50-kiosk-gate-core.conf")[1]
        assert f"| CPUAffinity=0-{last}" in out.split("50-all-cores.conf")[1]


def test_install_refuses_to_run_for_real_without_root_or_bad_options() -> None:
    bad = subprocess.run(
        [str(REPO / "deploy" / "install.sh"), "--frobnicate"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 64 and "unknown option --frobnicate" in bad.stderr


def test_update_dry_run_keeps_the_previous_version_and_checks_the_new_one() -> None:
    update = str(REPO / "deploy" / "update.sh")
    result = subprocess.run(
        [update, "--dry-run"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = [
        "cp -a /opt/kiosk/.venv /opt/kiosk/.venv.previous",
        "pip install",
        "kiosk config check",
        "systemctl restart kiosk.service",
        "kiosk doctor",
        "updated",
    ]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions), out
    rollback = subprocess.run(
        [update, "--rollback", "--dry-run"], capture_output=True, text=True, check=False, timeout=60
    )
    assert "mv /opt/kiosk/.venv.previous /opt/kiosk/.venv" in rollback.stdout


def dry_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "deploy" / "install.sh"), "--dry-run", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_install_makes_or_installs_the_site_salt_and_points_the_config_at_it(
    tmp_path: Path,
) -> None:
    first = dry_install()
    assert first.returncode == 0, first.stderr
    assert "would generate /etc/kiosk/site-salt: 32 random bytes" in first.stdout
    assert "copy /etc/kiosk/site-salt to the others of this site" in first.stdout
    sed = 'sed -i s|^subject_salt_file = ""|subject_salt_file = "/etc/kiosk/site-salt"|'
    assert sed in first.stdout

    # The line the installer's sed rewrites is in the shipped example, once.
    example = (REPO / "deploy" / "kiosk.example.toml").read_text(encoding="utf-8")
    assert example.count('\nsubject_salt_file = ""\n') == 1

    salt = tmp_path / "site-salt"
    salt.write_text("a-salt-from-the-first-kiosk-of-the-site\n", encoding="utf-8")
    other = dry_install("--site-salt", str(salt))
    assert f"would run: install -m 0640 -g kiosk {salt} /etc/kiosk/site-salt" in other.stdout
    assert "would generate" not in other.stdout

    salt.write_text("short\n", encoding="utf-8")
    bad = dry_install("--site-salt", str(salt))
    assert bad.returncode == 64
    assert "not a readable file of at least 16 characters" in bad.stderr
