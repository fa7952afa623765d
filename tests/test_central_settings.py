"""central.toml: the shipped example, errors that name file, line and key, and the commands
reading it (--config, KIOSK_CENTRAL_CONFIG) with flags that override it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.central.settings import (
    DEFAULT_TIMEZONE,
    CentralConfig,
    example_toml,
    load_central_config,
)
from kiosk.cli.main import cli
from kiosk.config import ConfigError

REPO = Path(__file__).resolve().parent.parent

FULL = """\
[store]
db = "{db}"
retention_days = 30
quarantine_max_rows = 5000

[mqtt]
host = "broker.example"
port = 1883

[sites.hq]
name = "Trụ sở chính"
timezone = "Asia/Bangkok"
language = "en"

[sites.branch-2]

[report]
folder = "/srv/reports"
daily_at = "06:30"
format = "csv"
recipients = ["an@example.vn", "binh@example.vn"]

[report.smtp]
host = "smtp.example.vn"
starttls = false

[web]
session_minutes = 15
"""


def test_the_shipped_example_is_current_and_loads() -> None:
    shipped = REPO / "deploy" / "central.example.toml"
    assert shipped.read_text(encoding="utf-8") == example_toml() + "\n", (
        "run: kiosk central config example > deploy/central.example.toml"
    )
    assert load_central_config(shipped).sites["site-1"].timezone == DEFAULT_TIMEZONE
    result = CliRunner().invoke(cli, ["central", "config", "check", str(shipped)])
    assert result.exit_code == 0 and "OK (sites: site-1)" in result.output


def test_every_section_is_read_typed(tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text(FULL.format(db=tmp_path / "c.db"), encoding="utf-8")
    config = load_central_config(path)
    assert (config.store.retention_days, config.store.quarantine_max_rows) == (30.0, 5000)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == (
        "broker.example",
        1883,
        "central",
    )
    assert config.site("hq").name == "Trụ sở chính" and config.site("hq").language == "en"
    assert config.site("branch-2").timezone == DEFAULT_TIMEZONE
    assert config.site("unknown") == config.site("branch-2")  # defaults for an unnamed site
    assert config.report.recipients == ("an@example.vn", "binh@example.vn")
    assert (config.report.format, config.report.daily_at) == ("csv", "06:30")
    assert (config.smtp.host, config.smtp.port, config.smtp.starttls) == (
        "smtp.example.vn",
        587,
        False,
    )
    assert config.web.session_minutes == 15
    assert CentralConfig().smtp.starttls is True


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('timezone = "Asia/Bangkok"', 'timezone = "Mars/Base"', "sites.hq.timezone:"),
        ('"binh@example.vn"]', '"binh"]', "report.recipients:"),
        ('daily_at = "06:30"', 'daily_at = "6h"', "report.daily_at:"),
        ("starttls = false", 'starttls = "no"', "report.smtp.starttls:"),
        ("starttls = false", "tls = false", "report.smtp.tls: unknown key"),
        ("[sites.branch-2]", "[sites.Branch_2]", "sites.Branch_2:"),
        ("retention_days = 30", "retention_days = -1", "store.retention_days:"),
        ("[web]", "[webs]", "webs: unknown section"),
        ('format = "csv"', 'format = "pdf"', "report.format:"),
    ],
)
def test_a_wrong_key_is_reported_with_file_line_and_key(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    path = tmp_path / "central.toml"
    text = FULL.format(db="c.db").replace(old, new)
    line = next(n for n, written in enumerate(text.splitlines(), 1) if new in written)
    where = f":{line}: {problem}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_central_config(path)
    assert str(raised.value).startswith(f"{path}{where}"), str(raised.value)
    result = CliRunner().invoke(cli, ["central", "--config", str(path), "status"])
    assert result.exit_code == 78 and f"{path}{where}" in result.output


def test_commands_take_the_store_from_the_config_or_env_and_db_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_file = tmp_path / "from-file.db"
    path = tmp_path / "central.toml"
    path.write_text(FULL.format(db=from_file), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli, ["central", "--config", str(path), "status"]).exit_code == 0
    assert from_file.exists()
    from_file.unlink()
    monkeypatch.setenv("KIOSK_CENTRAL_CONFIG", str(path))
    flag = tmp_path / "flag.db"
    result = runner.invoke(cli, ["central", "status", "--db", str(flag)])
    assert result.exit_code == 0 and "no kiosks yet" in result.output
    assert flag.exists() and not from_file.exists()
    assert runner.invoke(cli, ["central", "status"]).exit_code == 0
    assert from_file.exists()


def test_a_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = CliRunner().invoke(cli, ["central", "--config", str(missing), "status"])
    assert result.exit_code == 78 and f"{missing}: file not found" in result.output
