"""The kiosk command as a user runs it: demo, run with SIGTERM, events, decode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.cli.main import cli
from kiosk.events import EventType
from kiosk.sensors.synthetic import render_qr_frame
from kiosk.store.eventlog import Event, EventLog, LogOpenError, read_events
from tests.support import wait_until, write_config

KIOSK = [sys.executable, "-c", "from kiosk.cli.main import main; main()"]


def kiosk(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KIOSK, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_demo_json_runs_the_queue_within_a_minute(tmp_path: Path) -> None:
    started = time.monotonic()
    result = kiosk("demo", "--json", "--state-dir", str(tmp_path))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 60
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    people, summary = lines[:-1], lines[-1]["summary"]
    assert [(p["outcome"], p["reason"]) for p in people] == [
        ("grant", "ok"),
        ("grant", "ok"),
        ("deny", "fever"),
        ("deny", "unknown_credential"),
        ("deny", "expired_credential"),
        ("deny", "malformed_credential"),
        ("grant", "ok"),
        ("refer", "sensor_fault"),
        ("deny", "no_person_at_sensor"),
        ("grant", "ok"),
    ]
    assert [p["relay_open_s"] is not None for p in people] == [
        p["outcome"] == "grant" for p in people
    ]
    assert all(
        p["relay_open_s"] == pytest.approx(0.5, abs=0.1)
        for p in people
        if p["relay_open_s"] is not None
    )
    assert summary["people"] == 10 and summary["unexpected"] == 0
    logged = read_events(tmp_path / "events.db", 100, type="decision")
    assert [e.event_id for e in logged] == [p["event_id"] for p in people if p["event_id"]]


def logged(db: Path) -> list[Event]:
    """The events in ``db`` so far; none while the kiosk is still creating it."""
    try:
        return read_events(db, 5)
    except LogOpenError:
        return []


def run_until_stopped(
    args: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> str:
    """Start ``kiosk ARGS``, wait until ``ready()``, stop it with SIGTERM and check that it
    exits 0; its stderr."""
    child = subprocess.Popen([*KIOSK, *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(ready, timeout=60)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 0
    finally:
        if child.poll() is None:
            child.kill()
        stderr = child.stderr.read() if child.stderr else ""
    return stderr


@pytest.mark.slow
def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, web={"enabled": True})  # the page's child stops too
    stderr = run_until_stopped(
        ["run", "--simulate", "--config", str(config_file)],
        lambda: bool(logged(tmp_path / "events.db")),
    )
    assert [e.type for e in read_events(tmp_path / "events.db", 10)] == [
        "kiosk_started",
        "kiosk_stopped",
    ]
    assert "Traceback" not in stderr


def test_events_lists_the_log_and_explains_a_missing_one(tmp_path: Path) -> None:
    result = kiosk("events", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 69
    assert "none.db" in result.stderr and "Traceback" not in result.stderr


def test_events_reads_the_log_the_config_names_and_says_how_when_there_is_none(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path, kiosk={"state_dir": str(state)})

    missing = kiosk("events", "--config", str(config))
    assert missing.returncode == 69
    assert missing.stderr.strip() == (
        f"kiosk: no event log at {state}/events.db (kiosk.state_dir in {config}): the kiosk "
        "has not run with this configuration on this machine yet; give --db FILE to read a "
        "log copied from a kiosk"
    )

    state.mkdir()
    with EventLog(state / "events.db", boot_id="b") as log:
        log.append("kiosk_started", {"mode": "gate", "version": "1", "degraded": []})
        log.append("health", {"part": "camera", "ok": False, "detail": "unplugged"})
    listed = kiosk("events", "--config", str(config), "--type", "health", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["data"]["detail"] for line in listed.stdout.splitlines()] == [
        "unplugged"
    ]

    nothing = kiosk("events", "--config", str(tmp_path / "absent.toml"))
    assert nothing.returncode == 78
    assert "give --config FILE (the kiosk's kiosk.toml) or --db FILE" in nothing.stderr


def test_help_loads_none_of_the_heavy_libraries() -> None:
    """The help of the command and of its subcommands starts fast: no numpy, OpenCV or Flask."""
    probe = (
        "import sys\n"
        "from kiosk.cli.main import cli\n"
        "for args in (['--help'], ['demo', '--help'], ['run', '--help'], ['doctor', '--help']):\n"
        "    cli(args, standalone_mode=False)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'cv2', 'flask'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Usage:" in result.stdout
    assert result.stdout.splitlines()[-1] == "[]"


def test_events_refuses_an_unknown_type_and_lists_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["events", "--db", str(tmp_path / "x.db"), "--type", "nope"])
    assert result.exit_code == 2
    assert "'nope' is not one of 'decision', 'passage'" in result.output
    assert all(t.value in result.output for t in EventType)


def test_decode_prints_one_json_object_per_image(tmp_path: Path) -> None:
    import cv2

    badge = tmp_path / "badge.png"
    cv2.imwrite(str(badge), render_qr_frame(b"S-0001"))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), render_qr_frame(b"x")[:50, :50] * 0 + 200)
    result = kiosk(
        "decode",
        "--config",
        str(tmp_path / "absent.toml"),
        str(badge),
        str(blank),
        str(tmp_path / "missing.png"),
    )
    assert result.returncode == 1  # one file could not be read
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["codes"] for o in objects[:2]] == [
        [{"text": "S-0001", "hex": b"S-0001".hex(), "bytes": 6}],
        [],
    ]
    assert objects[2]["error"].startswith("cannot read image")
    assert {o["decoder"] for o in objects} == {"zxing-cpp"}


def test_decode_with_an_unknown_backend_says_which_exist(tmp_path: Path) -> None:
    result = kiosk("decode", "--decoder", "zbar2", str(tmp_path / "x.png"))
    assert result.returncode == 69
    assert "zxing-cpp" in result.stderr and "pyzbar" in result.stderr


def test_run_without_gpio_says_so_without_a_traceback(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, camera={"source": f"folder:{tmp_path}"})
    (tmp_path / "frame.png").write_bytes(b"")  # the folder source needs one image file
    result = kiosk("run", "--config", str(config_file), timeout=60)
    assert result.returncode == 69, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("kiosk: GPIO unavailable")


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    """gpiozero's MockFactory as the default factory, as `kiosk relay-safe` would find lgpio."""
    factory = MockFactory()
    previous, Device.pin_factory = Device.pin_factory, factory
    yield factory
    factory.close()
    Device.pin_factory = previous


def energised(factory: MockFactory, pin: int, active_high: bool) -> None:
    """The relay pin driven to its energised level, as a crashed kiosk may leave it."""
    relay = factory.pin(pin)
    relay.function = "output"
    relay.state = active_high


def driven_levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(state.state) for state in factory.pin(pin).states]


@pytest.mark.parametrize(
    ("config_text", "options", "pin", "active_high", "words"),
    [
        (None, [], 17, False, "wiring defaults: the config is unusable"),
        (None, ["--pin", "5", "--active-high"], 5, True, "wiring from the options"),
        ("[gate]\nrelay_pin = 6\nrelay_active_high = true\n", [], 6, True, "wiring from"),
        (  # another key is wrong: the relay keys are still read from the file
            "[gate]\nrelay_pin = 6\nrelay_active_high = true\n"
            "[thermometer]\nfever_threshold_c = 99\n",
            [],
            6,
            True,
            "wiring from",
        ),
        ("[gate\nnot toml", ["--pin", "12"], 12, False, "not valid TOML"),
        ('[kiosk]\nid = "Bad Id"\n', ["--active-high"], 17, False, "it overrides --pin"),
    ],
)
def test_relay_safe_releases_the_relay_without_a_usable_config(
    tmp_path: Path,
    mock_pins: MockFactory,
    config_text: str | None,
    options: list[str],
    pin: int,
    active_high: bool,
    words: str,
) -> None:
    config = tmp_path / "kiosk.toml"
    if config_text is not None:
        config.write_text(config_text, encoding="utf-8")
    energised(mock_pins, pin, active_high)

    result = CliRunner().invoke(cli, ["relay-safe", "--config", str(config), *options])

    assert result.exit_code == 0, result.output
    assert driven_levels(mock_pins, pin)[-2:] == [active_high, not active_high]
    polarity = "active high" if active_high else "active low"
    assert result.output.startswith(f"relay on GPIO{pin} de-energised ({polarity}); ")
    assert words in result.output


def test_relay_safe_says_when_the_config_overrides_its_options(
    tmp_path: Path, mock_pins: MockFactory
) -> None:
    config = write_config(tmp_path, gate={"relay_pin": 6})
    energised(mock_pins, 6, False)
    result = CliRunner().invoke(cli, ["relay-safe", "--config", str(config), "--pin", "5"])
    assert result.exit_code == 0
    assert driven_levels(mock_pins, 6) == [False, True]
    assert "it overrides --pin" in result.output


def test_relay_safe_on_a_machine_without_gpio_says_so_without_pointing_at_an_option(
    tmp_path: Path,
) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    result = subprocess.run(
        [*KIOSK, "relay-safe", "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )
    assert result.returncode == 69
    assert result.stderr.strip().startswith("kiosk: GPIO unavailable (")
    assert "relay pin of the kiosk's Raspberry Pi; a PC has no relay" in result.stderr
    assert "use --simulate" not in result.stderr  # relay-safe has no such option
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
