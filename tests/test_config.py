"""Configuration: every class of bad file names the file and key and exits 78."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest

from kiosk.config import ConfigError, Decoder, example_toml, load_config, parse_config
from kiosk.sensors.qr import DECODER_NAMES

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert (
        config.kiosk.mode,
        config.thermometer.fever_threshold_c,
        config.gate.pulse_ms,
        config.gate.relay_active_high,
    ) == ("gate", 37.5, 500, False)
    assert config.log_path == Path("/var/lib/kiosk/events.db")


def test_values_from_file_are_typed(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "[thermometer]\nfever_threshold_c = 38\n[gate]\nbuzzer_pin = false\n")
    )
    assert config.thermometer.fever_threshold_c == 38.0
    assert isinstance(config.thermometer.fever_threshold_c, float)
    assert config.gate.buzzer_pin is False


@pytest.mark.parametrize(
    ("text", "key", "fragment", "line"),
    [
        (
            "[thermometer]\nfever_threshold_c = 45.0\n",
            "thermometer.fever_threshold_c",
            "out of range: allowed 37 to 39",
            2,
        ),
        ("[gate]\npulse_ms = 0\n", "gate.pulse_ms", "out of range: allowed 50 to 10000", 2),
        (
            "[gate]\nrelay_pin = 17\nbuzzer_pin = 17\n",
            "gate.buzzer_pin",
            "GPIO17 is already used by gate.relay_pin",
            3,
        ),
        ('[gate]\npulse_ms = "500"\n', "gate.pulse_ms", "must be a whole number", 2),
        ("[gate]\nrelay_active_high = 1\n", "gate.relay_active_high", "must be true or false", 2),
        ("[gate]\nrelay_pin = 40\n", "gate.relay_pin", "BCM GPIO number from 2 to 27", 2),
        ("[gate]\nrelay_pin = true\n", "gate.relay_pin", "must be a whole number", 2),
        ("[gate]\nbuzzer_pin = true\n", "gate.buzzer_pin", "must be a pin number or false", 2),
        ('[kiosk]\nmode = "turbo"\n', "kiosk.mode", "choose one of: gate, screen, checkin", 2),
        ('[kiosk]\nid = "Gate 1"\n', "kiosk.id", "a-z, 0-9 and '-'", 2),
        ('[kiosk]\nid = "central"\n', "kiosk.id", "reserved for the broker's central", 2),
        ('[kiosk]\nmode = "checkin"\n', "kiosk.meeting", "needs a meeting name", 2),
        (
            '[gate]\nrelay_mode = "hold"\npassage_sensor_pin = false\n',
            "gate.relay_mode",
            "needs gate.passage_sensor_pin",
            2,
        ),
        (
            "[thermometer]\nfever_treshold_c = 38.0\n",
            "thermometer.fever_treshold_c",
            "unknown key; allowed: enabled,",
            2,
        ),
        ('\n[mqt]\nhost = "x"\n', "mqt", "unknown section", 2),
        ('[camera]\nsource = "webcam"\n', "camera.source", "'picamera2', 'opencv:", 2),
    ],
)
def test_bad_values_name_file_key_and_allowed(
    tmp_path: Path, text: str, key: str, fragment: str, line: int
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    error = excinfo.value
    assert (error.source, error.key, error.line) == (str(path), key, line)
    assert fragment in str(error)
    assert str(error).startswith(f"{path}:{line}: {key}: ")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[gate\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_secret_comes_from_environment_only_for_secret_keys() -> None:
    env = {"KIOSK_CREDENTIALS_SUBJECT_SALT": "from-env-salt-0123456789", "KIOSK_GATE_PULSE_MS": "9"}
    config = parse_config({"credentials": {"subject_salt": "from-file"}}, env=env)
    assert config.credentials.subject_salt == "from-env-salt-0123456789"
    assert config.gate.pulse_ms == 500


def test_shipped_example_is_current_and_loads(tmp_path: Path) -> None:
    shipped = (REPO / "deploy" / "kiosk.example.toml").read_text(encoding="utf-8")
    assert shipped == example_toml(), "run: kiosk config example > deploy/kiosk.example.toml"
    config = load_config(REPO / "deploy" / "kiosk.example.toml")
    assert config.kiosk.id == "kiosk-1"
    for line in shipped.splitlines():
        if " = " in line and not line.startswith("#"):
            assert shipped.split(line)[0].rstrip().splitlines()[-1].startswith("# ")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from kiosk.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_config_check_command_exit_codes(tmp_path: Path) -> None:
    allowlist = tmp_path / "allow.csv"
    allowlist.write_text("S-1,staff,\n", encoding="utf-8")
    good = write(tmp_path, f'[credentials]\nallowlist = "{allowlist}"\n')
    result = run_cli("config", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert (
        "ok (kiosk kiosk-1 at site-1, mode gate, 1 legacy badges, signed passes off)"
        in result.stdout
    )

    bad = tmp_path / "bad.toml"
    bad.write_text("[thermometer]\nfever_threshold_c = 45.0\n", encoding="utf-8")
    result = run_cli("config", "check", str(bad))
    assert result.returncode == 78
    assert result.stderr.strip() == (
        f"kiosk: configuration error: {bad}:2: thermometer.fever_threshold_c: "
        "45.0 is out of range: allowed 37 to 39"
    )
    assert "Traceback" not in result.stderr


def test_run_refuses_bad_config_with_78(tmp_path: Path) -> None:
    bad = write(tmp_path, "[gate]\nrelay_pin = 5\nfire_alarm_pin = 5\n")
    result = run_cli("run", "--simulate", "--config", str(bad))
    assert result.returncode == 78
    assert "gate.fire_alarm_pin: GPIO5 is already used by gate.relay_pin" in result.stderr


def test_missing_allowlist_is_a_config_error(tmp_path: Path) -> None:
    config = write(tmp_path, f'[credentials]\nallowlist = "{tmp_path}/none.csv"\n')
    result = run_cli("config", "check", str(config))
    assert result.returncode == 78
    assert "cannot read the allowlist" in result.stderr


def test_decoder_choices_match_the_decoders_that_exist() -> None:
    assert typing.get_args(Decoder) == DECODER_NAMES
