"""systemd integration: the notify protocol against a real datagram socket, and the unit file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kiosk.hardware import build_hardware
from kiosk.run.engine import Kiosk
from kiosk.run.runtime import build_entrance
from kiosk.run.systemd import BACKSTOP_S, STOP_DEADLINE_S
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person, Scene
from kiosk.store.eventlog import EventLog
from tests.support import SALT, make_config, wait_until, write_config

REPO = Path(__file__).resolve().parents[1]


def notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    return sock


def messages(sock: socket.socket, until: str, timeout: float = 20) -> list[str]:
    """Datagrams received until one contains ``until``."""
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(until in m for m in received):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        received.append(sock.recv(4096).decode())
    return received


@pytest.mark.slow
def test_ready_watchdog_and_stopping_from_kiosk_run(tmp_path: Path) -> None:
    config_file = write_config(tmp_path)
    with notify_socket(tmp_path) as sock:
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from kiosk.cli.main import main; main()",
                "run",
                "--simulate",
                "--config",
                str(config_file),
            ],
            env=env,
        )
        try:
            ready = messages(sock, "READY=1")
            assert "STATUS=" in ready[-1]
            pings = messages(sock, "WATCHDOG=1") + messages(sock, "WATCHDOG=1")
            assert sum(m == "WATCHDOG=1" for m in pings) >= 2
            child.send_signal(signal.SIGTERM)
            assert "STOPPING=1" in messages(sock, "STOPPING=1")
            assert child.wait(timeout=15) == 0
        finally:
            if child.poll() is None:
                child.kill()


def test_watchdog_pings_stop_when_the_decision_loop_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    config = make_config(tmp_path, thermometer={"enabled": False})
    scene = Scene()
    hardware = build_hardware(config, simulate=True, scene=scene)
    hung, release = threading.Event(), threading.Event()
    with notify_socket(tmp_path) as sock, EventLog(config.log_path, boot_id="b") as log:
        kiosk = Kiosk(config, hardware, log, build_entrance(config, SALT.encode()))

        def hang(scan: object) -> None:
            hung.set()
            release.wait(10)

        monkeypatch.setattr(kiosk.pipeline, "handle_scan", hang)
        stop = threading.Event()
        thread = threading.Thread(target=kiosk.run, args=(stop,), daemon=True)
        thread.start()
        try:
            messages(sock, "WATCHDOG=1")
            scene.step_up(Person("staff", b"S-0001", sim.nobody(), "grant"))
            wait_until(hung.is_set)
            wait_until(lambda: not kiosk.loops_alive(0.2))
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):  # drain what was sent before the hang showed
                while True:
                    sock.recv(4096)
            sock.settimeout(1.0)
            with pytest.raises(TimeoutError):
                sock.recv(4096)  # no WATCHDOG=1 for a whole second: systemd would restart us
        finally:
            release.set()
            stop.set()
            thread.join(timeout=10)
            hardware.close()


def test_unit_file_verifies_and_is_well_sandboxed(tmp_path: Path) -> None:
    unit = (REPO / "systemd" / "kiosk.service").read_text(encoding="utf-8")
    local = tmp_path / "kiosk.service"  # the same unit, pointing at this checkout's kiosk
    local.write_text(
        unit.replace("/opt/kiosk/.venv/bin/kiosk", str(Path(sys.executable).with_name("kiosk"))),
        encoding="utf-8",
    )
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(local)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (verify.returncode, verify.stderr.strip()) == (0, "")
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(local)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    overall = [line for line in security.stdout.splitlines() if "Overall exposure" in line]
    exposure = float(overall[0].split(":")[1].split()[0])
    assert exposure <= 2.0, overall[0]


def test_relay_safe_command_leaves_the_relay_de_energised(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, gate={"relay_pin": 17, "relay_active_high": False})
    code = (
        "import sys; from gpiozero import Device; from gpiozero.pins.mock import MockFactory;"
        "Device.pin_factory = MockFactory(); from kiosk.cli.main import main;"
        "pin = Device.pin_factory.pin(17); pin.output_with_state(False);"
        "sys.argv = ['kiosk', 'relay-safe', '--config', sys.argv[1]];"
        "\ntry: main()\nexcept SystemExit: pass\n"
        "print('LEVEL', [s.state for s in pin.states])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(config_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "relay on GPIO17 de-energised" in result.stdout, result.stderr
    levels = result.stdout.split("LEVEL", 1)[1].strip()
    assert levels.endswith("True]"), levels  # active-low board: high = de-energised


def test_the_stop_deadline_ends_before_systemd_would_kill_the_kiosk() -> None:
    unit = (REPO / "systemd" / "kiosk.service").read_text(encoding="utf-8")
    timeout_stop_s = float(unit.split("\nTimeoutStopSec=", 1)[1].split()[0])
    assert timeout_stop_s > STOP_DEADLINE_S + BACKSTOP_S
