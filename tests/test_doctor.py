"""``kiosk doctor``: a healthy simulated kiosk passes; each injected fault is named with a fix."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk.cli.doctor import exit_code, format_report, run_checks
from kiosk.cli.doctor_check import Check
from kiosk.cli.doctor_devices import check_gpio
from kiosk.config import KioskConfig, load_config
from kiosk.credentials.issuing import revocation_document, trust_document
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.store.eventlog import EventLog, Retention
from tests import support

GB = 1024**3
MB = 1024**2
LOCAL_MQTT = {"enabled": True, "host": "127.0.0.1", "port": 1, "tls": False}  # nobody listens
NAMES = [
    "config",
    "camera",
    "frame loop",
    "scanner",
    "thermometer",
    "gpio",
    "disk",
    "event log",
    "clock",
    "cpu",
    "broker",
    "trust",
]


def write_config(directory: Path, *, signed: bool = True, **sections: dict[str, Any]) -> Path:
    """A kiosk.toml in ``directory`` with no allowlist and no subject salt; with ``signed``, a
    trust anchor and fresh documents."""
    credentials = {"allowlist": "", "subject_salt": ""}
    if signed:
        org = Ed25519PrivateKey.generate()
        issuer = Ed25519PrivateKey.generate()
        anchor = directory / "anchor.pem"
        anchor.write_bytes(
            org.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        trust = directory / "trust-list.cose"
        trust.write_bytes(
            trust_document(org, org="acme", version=3, public_keys=[issuer.public_key()])
        )
        # As if it arrived over MQTT: the saved copy in state_dir.
        (directory / "revocation.cose").write_bytes(
            revocation_document(org, org="acme", version=7, pass_ids=["0011223344556677"])
        )
        credentials |= {"trust_anchor": str(anchor), "trust_list": str(trust)}
    return support.write_config(directory, credentials=credentials, **sections)


def doctor(config: Path | KioskConfig, **kwargs: Any) -> list[Check]:
    """run_checks on simulated hardware with a healthy machine unless a test says otherwise."""
    kwargs.setdefault("free_bytes", lambda path: 20 * GB)
    kwargs.setdefault("clock_synced", lambda: True)
    kwargs.setdefault("manager_cpus", lambda: {1})  # installed: other processes off core 0
    kwargs.setdefault("cpus", lambda: [0, 1])
    kwargs.setdefault("broker_timeout_s", 1.0)
    return run_checks(config, simulate=True, **kwargs)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def assert_problem(check: Check, status: str, *words: str) -> None:
    assert check.status == status, check
    assert check.fix and "\n" not in check.fix, check
    for word in words:
        assert word in check.detail + " " + check.fix, check


def test_a_healthy_simulated_kiosk_passes_every_check(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with EventLog(tmp_path / "events.db", boot_id="b1", capacity=1000) as log:
        log.append("decision", {"n": 1})

    checks = doctor(path)

    assert [check.name for check in checks] == NAMES
    assert all(check.status == "ok" for check in checks), format_report(checks)
    assert all(check.fix == "" and "\n" not in check.detail for check in checks)
    assert exit_code(checks) == 0
    found = by_name(checks)
    assert "frame" in found["camera"].detail
    assert "0x5a" in found["thermometer"].detail
    assert "de-energised" in found["gpio"].detail
    assert "1 of 200,000 rows" in found["event log"].detail
    assert "trust list v3, revocation list v7" in found["trust"].detail
    report = format_report(checks)
    assert report.endswith(f"all {len(NAMES)} checks passed")


def test_a_loaded_config_is_accepted_too(tmp_path: Path) -> None:
    checks = doctor(load_config(write_config(tmp_path, signed=False)))
    assert [check.name for check in checks] == NAMES
    assert exit_code(checks) == 0


def test_a_dead_sensor_fails_the_thermometer_check(tmp_path: Path) -> None:
    bus = sim.SimulatedI2CBus(sim.SimulatedMLX90614(sim.dead()))
    checks = doctor(write_config(tmp_path), i2c_bus=bus)

    assert_problem(by_name(checks)["thermometer"], "fail", "0x5a", "I2C error", "wiring")
    assert exit_code(checks) == 1
    others = [check for check in checks if check.name != "thermometer"]
    assert all(check.status == "ok" for check in others)


def test_no_sensor_at_the_address_names_wiring_and_address(tmp_path: Path) -> None:
    checks = doctor(write_config(tmp_path), i2c_bus=sim.SimulatedI2CBus())
    assert_problem(by_name(checks)["thermometer"], "fail", "0x5a", "i2cdetect")
    assert exit_code(checks) == 1


def test_an_implausible_ambient_reading_fails(tmp_path: Path) -> None:
    hot = sim.Constant(sim.SensorState(ambient_c=80.0, object_c=80.0))
    bus = sim.SimulatedI2CBus(sim.SimulatedMLX90614(hot))
    checks = doctor(write_config(tmp_path), i2c_bus=bus)
    assert_problem(by_name(checks)["thermometer"], "fail", "80.0 °C")


def test_a_bad_config_file_is_the_only_check(tmp_path: Path) -> None:
    path = write_config(tmp_path, signed=False, gate={"relay_pin": 99})
    checks = doctor(path)

    assert len(checks) == 1
    assert_problem(checks[0], "fail", "gate.relay_pin", "99", f"{path}:")
    assert exit_code(checks) == 1
    assert "fix: " in format_report(checks)


def test_a_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    checks = doctor(tmp_path / "nowhere.toml")
    assert len(checks) == 1
    assert_problem(checks[0], "fail", "file not found", "kiosk config example")


@pytest.mark.parametrize(("free", "status"), [(10 * MB, "fail"), (200 * MB, "warn")])
def test_a_full_disk_is_reported(tmp_path: Path, free: int, status: str) -> None:
    seen: list[Path] = []

    def free_bytes(path: Path) -> int:
        seen.append(path)
        return free

    checks = doctor(write_config(tmp_path), free_bytes=free_bytes)

    assert seen == [tmp_path]
    assert_problem(by_name(checks)["disk"], status, f"{free // MB} MB free", "state_dir")
    assert exit_code(checks) == (1 if status == "fail" else 0)


def test_an_unsynchronised_clock_is_a_warning(tmp_path: Path) -> None:
    checks = doctor(write_config(tmp_path), clock_synced=lambda: False)
    assert_problem(by_name(checks)["clock"], "warn", "enable systemd-timesyncd/chrony")
    assert exit_code(checks) == 0


@pytest.mark.parametrize(
    ("manager", "cpus", "status", "words"),
    [
        ({0, 1, 2, 3}, [0, 1, 2, 3], "warn", "other processes may run on core 0"),
        ({1, 2, 3}, [0, 1, 2, 3], "ok", "core 0 kept for the gate; other processes on 1,2,3"),
        ({0}, [0], "ok", "one core"),
    ],
)
def test_other_processes_on_the_gate_core_are_a_warning(
    tmp_path: Path, manager: set[int], cpus: list[int], status: str, words: str
) -> None:
    checks = doctor(write_config(tmp_path), manager_cpus=lambda: manager, cpus=lambda: cpus)
    check = by_name(checks)["cpu"]
    assert (check.status, words in check.detail) == (status, True)
    if status == "warn":
        assert "deploy/install.sh" in check.fix
    assert exit_code(checks) == 0


def test_a_broker_that_is_down_fails_in_words(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    started = time.monotonic()
    checks = doctor(write_config(tmp_path, mqtt=LOCAL_MQTT | {"port": port}))

    assert time.monotonic() - started < 10
    assert_problem(
        by_name(checks)["broker"], "fail", f"cannot reach 127.0.0.1:{port}", "start the broker"
    )
    assert exit_code(checks) == 1


def test_a_stale_revocation_list_is_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    eight_days_ago = time.time() - 8 * 86400
    os.utime(tmp_path / "revocation.cose", (eight_days_ago, eight_days_ago))

    checks = doctor(path)

    assert_problem(by_name(checks)["trust"], "warn", "revocation list v7", "8.0 days old")
    assert exit_code(checks) == 0


def test_a_missing_revocation_list_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "revocation.cose").unlink()
    assert_problem(by_name(doctor(path))["trust"], "fail", "no valid revocation list")


def test_gpio_off_the_pi_without_simulate_says_so(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, signed=False))
    check = check_gpio(config, simulate=False, pin_factory=object(), on_pi=lambda: False)
    assert_problem(check, "fail", "cannot claim", "run on the Pi or use --simulate")


def test_the_report_puts_a_fix_under_each_problem() -> None:
    checks = [
        Check("config", "ok", "fine"),
        Check("clock", "warn", "not synchronised", "enable it"),
        Check("broker", "fail", "down", "start it"),
    ]
    lines = format_report(checks).splitlines()
    assert lines[0].startswith("OK    config")
    assert lines[1].startswith("WARN  clock")
    assert lines[2].strip() == "fix: enable it"
    assert lines[3].startswith("FAIL  broker")
    assert lines[-1].startswith("1 failed, 1 warning(s)")
    assert exit_code(checks) == 1
    assert exit_code(checks[:2]) == 0


def test_a_log_near_capacity_is_a_warning_when_central_must_confirm(tmp_path: Path) -> None:
    path = write_config(tmp_path, log={"capacity": 1000}, mqtt=LOCAL_MQTT)
    with EventLog(tmp_path / "events.db", boot_id="b1", capacity=1000) as log:
        for n in range(900):
            log.append("decision", {"n": n})

    found = by_name(doctor(path))

    assert_problem(found["event log"], "warn", "900 of 1,000 rows", "unconfirmed_max_age_days")
    assert_problem(found["config"], "warn", "central sees other subject ids", "site-salt")


def test_a_full_log_with_sync_off_is_normal(tmp_path: Path) -> None:
    path = write_config(tmp_path, log={"capacity": 1000})
    with EventLog(tmp_path / "events.db", boot_id="b1", capacity=1000) as log:
        for n in range(1000):
            log.append("decision", {"n": n})

    checks = doctor(path)

    assert by_name(checks)["event log"].status == "ok"
    assert "oldest are pruned" in by_name(checks)["event log"].detail
    assert exit_code(checks) == 0


def test_a_problem_with_what_the_config_points_at_fails_and_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").write_text("a file, not a directory", encoding="utf-8")
    path = write_config(
        tmp_path,
        signed=False,
        kiosk={"state_dir": f"{tmp_path}/state"},
        log={"path": f"{tmp_path}/events.db"},
    )
    checks = doctor(path)
    assert [check.name for check in checks] == NAMES
    assert_problem(checks[0], "fail", "kiosk.state_dir", "is not a directory")
    assert exit_code(checks) == 1


@pytest.mark.parametrize(
    ("password", "wrong_ca", "status", "words"),
    [
        ("k1-pw", False, "ok", ("MQTT connection accepted over TLS as k1",)),
        ("nope", False, "fail", ("refused", "mqtt.username")),
        ("k1-pw", True, "fail", ("not trusted", "mqtt.ca_file")),
    ],
)
def test_the_broker_check_speaks_tls_and_mqtt(
    tmp_path: Path, broker: Any, password: str, wrong_ca: bool, status: str, words: tuple[str]
) -> None:
    ca_file = broker.wrong_ca_file if wrong_ca else broker.ca_file
    mqtt = {"enabled": True, "host": broker.host, "port": broker.tls_port, "ca_file": ca_file}
    mqtt |= {"username": "k1", "password": password}
    check = by_name(doctor(write_config(tmp_path, signed=False, mqtt=mqtt)))["broker"]
    assert check.status == status, check
    for word in words:
        assert word in check.detail + " " + check.fix, check


def test_events_dropped_before_central_confirmed_them_are_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, log={"capacity": 1000}, mqtt=LOCAL_MQTT)
    now = [1_700_000_000_000]
    with EventLog(
        tmp_path / "events.db",
        boot_id="b1",
        capacity=10,
        now_ms=lambda: now[0],
        retention=Retention(unconfirmed_max_age_days=1),
    ) as log:
        for n in range(12):
            log.append("decision", {"n": n})
        now[0] += 2 * 86_400_000
        assert log.prune() == 2

    check = by_name(doctor(path))["event log"]

    assert_problem(check, "warn", "2 dropped unconfirmed", "unconfirmed_max_age_days")
