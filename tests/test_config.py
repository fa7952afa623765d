"""Configuration: every class of bad file names the file and key and exits 78."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk.config import (
    SECTIONS,
    ConfigError,
    Decoder,
    example_toml,
    load_config,
    parse_config,
)
from kiosk.config.keys import convert, members, type_problem
from kiosk.sensors.qr import DECODER_NAMES
from tests.test_cli import logged, run_until_stopped

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
        ("[gate]\nbuzzer_pin = true\n", "gate.buzzer_pin", "must be a whole number or false", 2),
        ("[gate]\nbuzzer_pin = 2.5\n", "gate.buzzer_pin", "must be a whole number or false", 2),
        ("[gate]\nbuzzer_pin = 1\n", "gate.buzzer_pin", "number from 2 to 27, or false", 2),
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
        ('[dcc]\nenabled = true\ntypes = ["v", "vaccine"]\n', "dcc.types", "'vaccine'", 3),
        ('[dcc]\n\ncountries = ["VN", "vn", "VNM", "V1"]\n', "dcc.countries", "'VNM', 'V1'", 3),
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


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from kiosk.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
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


def test_missing_allowlist_is_a_warning_for_the_file_and_an_error_for_the_machine(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, f'[credentials]\nallowlist = "{tmp_path}/none.csv"\n')
    result = run_cli("config", "check", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("kiosk: warning: on this machine: ")
    assert "cannot read the allowlist" in result.stderr
    assert result.stdout.strip() == (
        f"{config}: valid (kiosk kiosk-1 at site-1, mode gate); 1 warning about this machine "
        "(--machine makes them errors)"
    )
    for option in ("--machine", "--strict"):
        result = run_cli("config", "check", option, str(config))
        assert result.returncode == 78
        assert result.stderr.startswith("kiosk: configuration error: ")
        assert "cannot read the allowlist" in result.stderr


def test_the_shipped_example_validates_on_its_own() -> None:
    example = REPO / "deploy" / "kiosk.example.toml"
    result = run_cli("config", "check", str(example))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{example}: ")
    assert "configuration error" not in result.stderr and "Traceback" not in result.stderr


def test_a_file_with_which_nobody_can_be_granted_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, f'[kiosk]\nstate_dir = "{tmp_path}"\n[credentials]\nallowlist = ""\n')
    result = run_cli("config", "check", "--machine", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        f"kiosk: warning: {path}: nobody can ever be granted: credentials.allowlist and "
        'credentials.trust_anchor are empty and credentials.national_qr is "refer"; set an '
        'allowlist, a trust anchor for signed passes, or national_qr = "grant"'
    )
    strict = run_cli("config", "check", "--strict", str(path))
    assert strict.returncode == 78
    assert "kiosk: configuration error: " in strict.stderr and "nobody can" in strict.stderr
    granting = write(tmp_path, path.read_text(encoding="utf-8") + 'national_qr = "grant"\n')
    assert run_cli("config", "check", "--strict", str(granting)).returncode == 0


def test_run_starts_with_a_file_nobody_can_pass_but_says_so_in_the_journal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[kiosk]\nstate_dir = "{tmp_path}"\n[credentials]\nallowlist = ""\n'
        'subject_salt = "a-long-enough-salt-for-tests"\n[web]\nenabled = false\n',
    )
    log = tmp_path / "events.db"
    stderr = run_until_stopped(
        ["run", "--simulate", "--config", str(path)], lambda: bool(logged(log))
    )
    assert "WARNING" in stderr and f"{path}: nobody can ever be granted" in stderr


def test_config_check_names_a_missing_revocation_list_in_words(tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    path = write(
        tmp_path,
        f'[kiosk]\nstate_dir = "{tmp_path}"\n[credentials]\nallowlist = ""\n'
        f'trust_anchor = "{anchor}"\n',
    )
    result = run_cli("config", "check", "--strict", str(path))
    assert result.returncode == 0, result.stderr
    assert "signed passes: no trust list, no revocation list)" in result.stdout
    assert "None" not in result.stdout


def test_decoder_choices_match_the_decoders_that_exist() -> None:
    assert typing.get_args(Decoder) == DECODER_NAMES


SALT_LINE = 'subject_salt = "a-site-salt-long-enough"\n'
FILE_CASES = frozenset(
    {
        "short_salt",
        "short_salt_from_environment",
        "nested_arrays",
        "short_api_token",
        "short_command_key",
    }
)


def setup_case(tmp_path: Path, case: str) -> tuple[str, dict[str, str]]:
    """A config body (and environment) with one problem ``kiosk run`` used to exit 70 on."""
    state = tmp_path / "state"
    state.mkdir()
    env: dict[str, str] = {}
    kiosk = f'[kiosk]\nstate_dir = "{state}"\n'
    mqtt = '[mqtt]\nenabled = true\nhost = "127.0.0.1"\n'
    credentials = f'[credentials]\nallowlist = ""\n{SALT_LINE}'
    match case:
        case "short_salt":
            credentials = '[credentials]\nallowlist = ""\nsubject_salt = "short"\n'
        case "short_salt_from_environment":
            env["KIOSK_CREDENTIALS_SUBJECT_SALT"] = "tiny-secret"
        case "state_dir_a_file":
            (tmp_path / "afile").write_text("x", encoding="utf-8")
            kiosk = f'[kiosk]\nstate_dir = "{tmp_path / "afile"}"\n'
        case "missing_password_file":
            kiosk += mqtt + f'password_file = "{tmp_path}/none.pw"\n'
        case "missing_ca_file":
            kiosk += mqtt + f'ca_file = "{tmp_path}/none.crt"\n'
        case "ca_file_not_a_certificate":
            (tmp_path / "ca.crt").write_text("not a certificate\n", encoding="utf-8")
            kiosk += mqtt + f'ca_file = "{tmp_path}/ca.crt"\n'
        case "log_path_a_directory":
            kiosk += f'[log]\npath = "{state}"\n'
        case "corrupt_salt_file":
            credentials = '[credentials]\nallowlist = ""\n'
            (state / "subject-salt").write_text("not hex at all\n", encoding="utf-8")
        case "site_salt_file_readable_by_others":
            salt = tmp_path / "site-salt"
            salt.write_text("a-site-salt-long-enough\n", encoding="utf-8")
            salt.chmod(0o644)
            credentials = f'[credentials]\nallowlist = ""\nsubject_salt_file = "{salt}"\n'
        case "corrupt_web_secret":
            (state / "web-secret").write_text("zz\n", encoding="utf-8")
            kiosk += "[web]\nenabled = true\n"
        case "nested_arrays":
            kiosk += "[gate]\nrelay_pin = " + "[" * 5000 + "]" * 5000 + "\n"
        case "short_api_token":
            kiosk += '[web]\napi_token = "token-123"\n'
        case "short_command_key":
            kiosk += mqtt + 'command_key = "key-123"\n'
    return kiosk + credentials, env


@pytest.mark.parametrize(
    ("case", "key", "words"),
    [
        ("short_salt", "credentials.subject_salt", "too short (5 characters)"),
        ("short_salt_from_environment", "credentials.subject_salt", "KIOSK_CREDENTIALS"),
        ("state_dir_a_file", "kiosk.state_dir", "is not a directory"),
        ("missing_password_file", "mqtt.password_file", "none.pw does not exist"),
        ("missing_ca_file", "mqtt.ca_file", "none.crt does not exist"),
        ("ca_file_not_a_certificate", "mqtt.ca_file", "not a CA certificate"),
        ("log_path_a_directory", "log.path", "is a directory"),
        ("corrupt_salt_file", "kiosk.state_dir", "subject-salt: not a secret this kiosk wrote"),
        ("site_salt_file_readable_by_others", "credentials.subject_salt_file", "chmod o-rwx"),
        ("corrupt_web_secret", "kiosk.state_dir", "web-secret: not a secret this kiosk wrote"),
        ("nested_arrays", "", "nested too deeply"),
        ("short_api_token", "web.api_token", "at least 20 random characters"),
        ("short_command_key", "mqtt.command_key", "at least 20 random characters"),
    ],
)
def test_config_check_finds_what_run_exits_on_and_run_exits_78_too(
    tmp_path: Path, case: str, key: str, words: str
) -> None:
    body, env = setup_case(tmp_path, case)
    path = write(tmp_path, body)
    environment = {**os.environ, **env}
    on_its_own = run_cli("config", "check", str(path), env=environment)
    if case in FILE_CASES:  # the file itself is wrong: 78 wherever it is checked
        assert on_its_own.returncode == 78, on_its_own.stderr
    else:  # the file is right, this machine lacks what it names
        assert on_its_own.returncode == 0, on_its_own.stderr
        assert on_its_own.stderr.startswith(f"kiosk: warning: on this machine: {path}")
        assert words in on_its_own.stderr
    check = run_cli("config", "check", "--machine", str(path), env=environment)
    assert check.returncode == 78, check.stdout + check.stderr
    assert check.stderr.startswith(f"kiosk: configuration error: {path}"), check.stderr
    assert f": {key}: " in check.stderr if key else True
    assert words in check.stderr
    assert "Traceback" not in check.stderr
    run = run_cli("run", "--simulate", "--config", str(path), env=environment)
    assert (run.returncode, run.stderr) == (78, check.stderr)


def test_a_secret_in_an_error_is_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\napi_token = "hunter2-secret"\n')
    result = run_cli("config", "check", str(path))
    assert result.returncode == 78
    assert "hunter2" not in result.stderr and "web.api_token: the value is too short" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "rule",
    [
        "[rules]\nanti_passback = true\n",
        "[rules]\noccupancy_cap = 50\n",
        "[rules]\nvisitor_daily_cap = 20\n",
        '[kiosk]\ndirection = "exit"\n',
        '[kiosk]\ndirection = "toggle"\n',
    ],
)
def test_site_wide_rules_need_the_site_salt(tmp_path: Path, rule: str) -> None:
    rule += '[mqtt]\nenabled = true\nhost = "127.0.0.1"\ntls = false\n'
    without = write(tmp_path, rule + '[credentials]\nallowlist = ""\n')
    for command in (
        ["config", "check", str(without)],
        ["run", "--simulate", "--config", str(without)],
    ):
        result = run_cli(*command)
        assert result.returncode == 78, result.stderr
        assert "credentials.subject_salt: is not set, but" in result.stderr
        assert "an exit elsewhere never matches the entry" in result.stderr

    report = run_cli("doctor", "--simulate", "--config", str(without))
    assert report.returncode == 1
    assert "FAIL  config" in report.stdout
    assert "fix: give every kiosk of the site the same salt" in report.stdout

    salt = tmp_path / "site-salt"
    salt.write_text("one-salt-for-the-whole-site\n", encoding="utf-8")
    salt.chmod(0o640)
    shared = write(
        tmp_path, rule + f'[credentials]\nallowlist = ""\nsubject_salt_file = "{salt}"\n'
    )
    result = run_cli("config", "check", str(shared))
    assert result.returncode == 0, result.stderr


def test_a_per_kiosk_salt_is_fine_without_site_wide_rules(tmp_path: Path) -> None:
    path = write(tmp_path, f'[kiosk]\nstate_dir = "{tmp_path}"\n[credentials]\nallowlist = ""\n')
    assert run_cli("config", "check", str(path)).returncode == 0


def test_a_kiosk_without_mqtt_matches_people_only_at_itself_so_its_own_salt_is_fine() -> None:
    alone = {"kiosk": {"direction": "toggle"}, "rules": {"anti_passback": True}}
    assert parse_config(alone).credentials.subject_salt == ""
    with pytest.raises(ConfigError, match="an exit elsewhere never matches the entry"):
        parse_config(alone | {"mqtt": {"enabled": True}})


def test_salt_and_salt_file_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="subject_salt or subject_salt_file, not both"):
        parse_config(
            {"credentials": {"subject_salt": "x" * 20, "subject_salt_file": "/etc/kiosk/salt"}}
        )


def test_an_oversized_config_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(path)


def test_loading_a_config_imports_no_gpiozero(tmp_path: Path) -> None:
    """The status page's child process loads the config and must stay light."""
    path = write(tmp_path, '[gate]\nrelay_mode = "hold"\n')
    script = (
        "import sys; from kiosk.config import load_config; load_config(sys.argv[1]);"
        " heavy = sorted({'gpiozero', 'numpy', 'paho'} & sys.modules.keys()); print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ('[thermometer]\nenabled = true\n[mqtt]\nhost = "b"\nenabled = "yes"\n', "mqtt.enabled", 5),
        ('thermometer.enabled = true\nmqtt.enabled = "yes"\n', "mqtt.enabled", 2),
        ('web = { enabled = true }\nmqtt = { enabled = "yes" }\n', "mqtt.enabled", 2),
        ('[web]\nenabled = true\n[ "mqtt" ]\n\'enabled\' = "yes"\n', "mqtt.enabled", 4),
        (
            '[web]\nenabled = true\n[mqtt]\nhost = """\nenabled = true\n"""\nenabled = "yes"\n',
            "mqtt.enabled",
            7,
        ),
        ("[gate]\nrelay_pin = 17\n[web]\nport = 80\n[gate.extra]\nx = 1\n", "gate.extra", 5),
        (
            '[mqtt]\nenabled = false\n[kiosk]\nmode = "screen"\n[thermometer]\nenabled = false\n',
            "thermometer.enabled",
            6,
        ),
    ],
)
def test_an_error_is_reported_at_the_line_of_the_key_in_its_own_section(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert (excinfo.value.key, excinfo.value.line) == (key, line)
    assert str(excinfo.value).startswith(f"{path}:{line}: {key}: ")


@pytest.mark.parametrize(
    ("hint", "value", "expected"),
    [
        (int | Literal[False], 5, 5),
        (int | Literal[False], False, False),
        (float | Literal["auto"], 3, 3.0),
        (float | Literal["auto"], "auto", "auto"),
        (str | bool, True, True),
        (str | bool, "x", "x"),
    ],
)
def test_each_member_of_a_union_takes_and_converts_its_own_values(
    hint: Any, value: object, expected: object
) -> None:
    assert type_problem(value, hint) is None
    converted = convert(value, hint)
    assert (converted, type(converted)) == (expected, type(expected))


@pytest.mark.parametrize(
    ("hint", "value", "problem"),
    [
        (int | Literal[False], True, "must be a whole number or false"),
        (int | Literal[False], 0.5, "must be a whole number or false"),
        (int | Literal[False], 0, None),
        (float | Literal["auto"], "fast", 'must be a number or "auto"'),
        (str | bool, 3, "must be a string or true or false"),
    ],
)
def test_a_value_no_member_of_a_union_takes_is_refused_naming_every_member(
    hint: Any, value: object, problem: str | None
) -> None:
    assert type_problem(value, hint) == problem


def test_every_key_has_a_type_a_toml_value_converts_to() -> None:
    for section in SECTIONS.values():
        for hint in typing.get_type_hints(section).values():
            assert members(hint)
    for unsupported in (int | None, list[int]):
        with pytest.raises(TypeError, match="no TOML value converts to"):
            members(unsupported)
