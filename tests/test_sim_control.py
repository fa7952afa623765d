"""`kiosk sim` drives a `kiosk run --simulate` in another process through its control socket:
decisions logged as for a real person, the fire alarm on the mock pins, bad requests answered
with an error, the socket only the kiosk's user may use and only in simulate mode; an image
folder read under --simulate; the README's two-terminal walk-through run as written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from click.testing import CliRunner, Result

from kiosk.cli.main import cli
from kiosk.run.simcontrol import MAX_REQUEST_BYTES
from kiosk.sensors.qr import make_decoder
from kiosk.sensors.simulated_mlx90614 import nobody
from kiosk.sensors.simulation import Person, Scene, SceneCamera, recorded_source
from kiosk.sensors.synthetic import render_qr_frame
from kiosk.store.eventlog import read_events
from tests.support import REPO, wait_until, write_config
from tests.test_cli import KIOSK, logged, run_until_stopped

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def simulated_kiosk(config: Path, directory: Path) -> Iterator[Path]:
    """``kiosk run --simulate --config CONFIG`` until its control socket answers; the socket's
    path. On exit: SIGTERM, exit 0, and the socket is gone."""
    sock = directory / "simulate.sock"
    with (directory / "kiosk.err").open("w") as stderr:
        child = subprocess.Popen(
            [*KIOSK, "run", "--simulate", "--config", str(config)], stderr=stderr
        )
    try:
        wait_until(lambda: answers(sock) or child.poll() is not None, timeout=60)
        assert child.poll() is None, (directory / "kiosk.err").read_text()
        yield sock
        assert child.poll() is None, "the kiosk stopped while it was driven"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 0, (directory / "kiosk.err").read_text()
        assert not sock.exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def answers(sock: Path) -> bool:
    """Whether a kiosk listens on ``sock`` (a socket file alone may be a stale one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(sock))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    return True


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One simulated kiosk for the tests that drive it: (its config file, its state dir)."""
    directory = tmp_path_factory.mktemp("sim")
    config = write_config(directory)
    with simulated_kiosk(config, directory):
        yield config, directory


def run_cli(*args: str) -> Result:
    """``kiosk ARGS`` in this process (the kiosk it drives runs in another)."""
    return CliRunner().invoke(cli, list(args))


def sim(config: Path, *args: str) -> dict[str, Any]:
    """``kiosk sim ARGS --json``: its answer; the command must succeed."""
    result = run_cli("sim", *args, "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def decision_logged(directory: Path, event_id: str) -> dict[str, Any]:
    (event,) = [e for e in read_events(directory / "events.db", 100) if e.event_id == event_id]
    assert event.type == "decision"
    return event.data


def exchange(sock: Path, raw: bytes) -> dict[str, Any]:
    """Send ``raw`` as it is on a connection of its own; the one answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(str(sock))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.sendall(raw)  # the kiosk stops reading a line that is too long
        with client.makefile("rb") as lines:
            answer: dict[str, Any] = json.loads(lines.readline())
    return answer


def test_the_socket_is_only_for_the_kiosks_user(running: tuple[Path, Path]) -> None:
    info = os.lstat(running[1] / "simulate.sock")
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()


def test_an_allowlisted_badge_is_granted_and_logged(running: tuple[Path, Path]) -> None:
    config, directory = running
    answer = sim(config, "present", "S-0001", "--temp", "36.6")
    decision = answer["decision"]
    assert (decision["outcome"], decision["reason"], decision["temperature_c"]) == (
        "grant",
        "ok",
        36.6,
    )
    logged_data = decision_logged(directory, decision["event_id"])
    assert (logged_data["outcome"], logged_data["credential"]["type"]) == ("grant", "badge")


def test_a_fever_is_denied_and_logged(running: tuple[Path, Path]) -> None:
    config, directory = running
    decision = sim(config, "present", "S-0002", "--temp", "38.4")["decision"]
    assert (decision["outcome"], decision["reason"]) == ("deny", "fever")
    assert decision_logged(directory, decision["event_id"])["reason"] == "fever"


def test_a_failing_thermometer_refers_to_the_guard(running: tuple[Path, Path]) -> None:
    config, _ = running
    sim(config, "thermometer", "fail")
    try:
        decision = sim(config, "present", "S-0004")["decision"]
    finally:
        sim(config, "thermometer", "ok")
    assert (decision["outcome"], decision["reason"]) == ("refer", "sensor_fault")
    assert sim(config, "present", "S-0005")["decision"]["outcome"] == "grant"


def test_an_image_file_held_up_is_read_by_the_decoder(
    running: tuple[Path, Path], tmp_path: Path
) -> None:
    config, _ = running
    image = tmp_path / "badge.png"
    cv2.imwrite(str(image), render_qr_frame(b"S-0003"))  # an expired pass in the allowlist
    decision = sim(config, "present", "--image", str(image))["decision"]
    assert (decision["outcome"], decision["reason"]) == ("deny", "expired_credential")


def test_a_code_shown_again_is_a_new_scan(running: tuple[Path, Path]) -> None:
    config, _ = running
    first = sim(config, "present", "X-0001")["decision"]
    again = sim(config, "present", "X-0001")["decision"]  # taken away until the camera re-arms
    assert first["reason"] == again["reason"] == "unknown_credential"
    assert first["event_id"] != again["event_id"]


def test_the_fire_alarm_releases_the_gate_on_the_mock_pins(running: tuple[Path, Path]) -> None:
    config, directory = running
    relay_energised_level = 0  # the default relay board is active low
    at_rest = {"gpio": 17, "level": 1}  # once an earlier test's grant has ended its pulse
    wait_until(lambda: sim(config, "status")["pins"]["relay"] == at_rest)
    on = sim(config, "fire-alarm", "on")
    try:
        assert on["gate"]["fire_alarm"] and on["gate"]["relay_energised"]
        status = sim(config, "status")
        assert status["pins"]["relay"]["level"] == relay_energised_level
        assert status["pins"]["fire_alarm"]["level"] == 0  # the contact pulls it low
    finally:
        off = sim(config, "fire-alarm", "off")
    assert not off["gate"]["relay_energised"]
    assert sim(config, "status")["pins"]["relay"]["level"] == 1
    alarms = read_events(directory / "events.db", 100, type="fire_alarm")
    assert [e.data["active"] for e in alarms][-2:] == [True, False]


def test_a_passage_through_the_beam_is_counted(running: tuple[Path, Path]) -> None:
    config, _ = running
    before = sim(config, "status")["gate"]["passages"]
    assert sim(config, "passage")["gate"]["passages"] == before + 1


def test_bad_requests_get_an_error_and_the_kiosk_keeps_running(
    running: tuple[Path, Path],
) -> None:
    config, directory = running
    sock = directory / "simulate.sock"
    nested = b'{"command": "status", "x": ' + b"[" * 40 + b"]" * 40 + b"}\n"
    cases = {
        b"garbage\n": "not a request: not JSON",
        b"[1, 2]\n": 'a JSON object with a "command"',
        b'{"command": "dance"}\n': "unknown command 'dance'",
        nested: "nested deeper than",
        b"\xff\xfe\n": "not UTF-8",
        b"x" * 10_000_000 + b"\n": f"request longer than {MAX_REQUEST_BYTES} bytes",
        b'{"command": "present", "temp_c": "hot"}\n': "temp_c must be a number",
        b'{"command": "present", "code": "S-0001", "colour": 1}\n': "not colour",
        b'{"command": "fire-alarm"}\n': "on must be true or false",
    }
    for raw, error in cases.items():
        answer = exchange(sock, raw)
        assert answer["ok"] is False and error in answer["error"], (raw[:60], answer)
    assert sim(config, "status")["ok"] is True


def test_present_without_a_simulated_kiosk_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli("sim", "present", "S-0001", "--config", str(config))
    assert result.exit_code == 69
    assert "no simulated kiosk is running" in result.stderr


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "simulate.sock"))  # a crashed kiosk's, nobody listening
    stale.close()
    with simulated_kiosk(write_config(tmp_path), tmp_path):
        assert sim(tmp_path / "kiosk.toml", "status")["ok"] is True


def test_no_socket_without_simulate(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "badge.png"), render_qr_frame(b"S-0001"))
    config = write_config(
        tmp_path, camera={"source": f"folder:{images}"}, thermometer={"enabled": False}
    )

    def decided_without_a_socket() -> bool:
        decided = any(e.type == "decision" for e in logged(tmp_path / "events.db"))
        assert not (tmp_path / "simulate.sock").exists()
        return decided

    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    run_until_stopped(["run", "--config", str(config)], decided_without_a_socket, env)


def test_an_image_folder_is_the_simulated_cameras_view(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "badge.png"), render_qr_frame(b"S-0006"))
    config = write_config(tmp_path, camera={"source": f"folder:{images}"})
    with simulated_kiosk(config, tmp_path):
        answer = sim(config, "present", "--temp", "36.5")  # a forehead, no code held up
        decision = answer["decision"]
        assert (decision["outcome"], decision["temperature_c"]) == ("grant", 36.5)
        assert decision_logged(tmp_path, decision["event_id"])["credential"]["type"] == "badge"
        assert f"folder:{images}" in sim(config, "status")["said"]


@pytest.mark.parametrize("spec", ["picamera2", "opencv:0", "opencv:/dev/video0"])
def test_a_simulated_kiosk_opens_no_camera(spec: str) -> None:
    assert recorded_source(spec) is None


def test_a_video_file_plays_until_someone_holds_a_code_up(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    video = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480), False)
    for _ in range(3):
        video.write(render_qr_frame(b"S-0001"))
    video.release()
    scene, decoder = Scene(), make_decoder("zxing-cpp")
    camera = SceneCamera(scene, recorded_source(f"opencv:{clip}"))

    def shown() -> list[bytes]:
        frame = camera.read()
        assert frame is not None
        return decoder.decode(frame)

    camera.start()
    try:
        assert camera.name == f"generated+opencv:{clip}"
        assert shown() == [b"S-0001"]
        scene.step_up(Person("staff", b"S-0002", nobody(), "grant"))
        assert shown() == [b"S-0002"]
        scene.leave()
        assert shown() == [b"S-0001"]
    finally:
        camera.close()


README_DIR = "/tmp/kiosk-sim"


def _readme_block(first_line: str) -> str:
    """The fenced block of README.md whose first line starts with ``first_line``."""
    blocks = re.findall(
        r"^```[a-z]*\n(.*?)^```", (REPO / "README.md").read_text("utf-8"), re.M | re.S
    )
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return str(block)


def test_the_readmes_walk_through_runs_as_written(tmp_path: Path) -> None:
    toml = _readme_block(f"# {README_DIR}/kiosk.toml")
    allowlist = _readme_block(f"# {README_DIR}/allowlist.csv")
    terminal_1 = _readme_block("kiosk run --simulate --config")
    terminal_2 = _readme_block("kiosk sim present S-0001")
    assert terminal_1.strip() == f"kiosk run --simulate --config {README_DIR}/kiosk.toml"
    (tmp_path / "kiosk.toml").write_text(toml.replace(README_DIR, str(tmp_path)), "utf-8")
    (tmp_path / "allowlist.csv").write_text(allowlist, "utf-8")
    with simulated_kiosk(tmp_path / "kiosk.toml", tmp_path):
        for line in terminal_2.splitlines():
            command, _, shows = line.partition("  # ")
            words = shlex.split(command.replace(README_DIR, str(tmp_path)))
            assert words[0] == "kiosk"
            result = run_cli(*words[1:])
            assert result.exit_code == 0, (line, result.output)
            if words[1] == "sim":
                assert shows.strip() in result.stdout, (line, result.stdout)
            else:
                assert result.stdout.count("decision") >= 5, result.stdout
