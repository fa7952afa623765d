"""kiosk doctor's frame-loop check: the real decoder on the simulated camera, a clip, a folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from kiosk.cli.doctor_frames import check_frame_loop
from kiosk.config import KioskConfig
from kiosk.sensors.frames import GeneratedFrameSource, ImageFolderSource, VideoCaptureSource
from kiosk.sensors.qr import make_decoder
from kiosk.sensors.synthetic import blank_frame
from tests import support


@pytest.fixture
def config(tmp_path: Path) -> KioskConfig:
    return support.make_config(tmp_path)


def test_a_loop_that_keeps_up_with_the_camera_is_ok(config: KioskConfig) -> None:
    camera = GeneratedFrameSource(lambda: None, fps=10)

    check = check_frame_loop(config, True, camera, make_decoder("zxing-cpp"), frames=6)

    assert check.status == "ok", check
    assert "of the camera's 10 frames per second read and decoded (zxing-cpp:" in check.detail
    assert camera.delivered == 2 + 6  # two to warm up


def test_a_loop_slower_than_the_camera_warns_with_the_fix(config: KioskConfig) -> None:
    camera = GeneratedFrameSource(lambda: None, fps=5000)  # a frame every 0.2 ms

    check = check_frame_loop(config, True, camera, make_decoder("zxing-cpp"), frames=10)

    assert check.status == "warn", check
    assert check.detail.startswith("falls behind: ")
    assert "5000 frames per second" in check.detail
    assert "zxing-cpp decoder" in check.fix
    assert camera.dropped > 0


def test_a_folder_has_no_rate_to_keep_up_with(config: KioskConfig, tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "empty.png"), blank_frame(seed=3))

    check = check_frame_loop(config, False, ImageFolderSource(tmp_path))

    assert check.status == "ok", check
    assert "no frame rate of its own" in check.detail


def test_a_camera_that_cannot_open_is_not_measured(config: KioskConfig, tmp_path: Path) -> None:
    check = check_frame_loop(config, False, VideoCaptureSource(str(tmp_path / "gone.avi")))

    assert check.status == "warn", check
    assert check.detail.startswith("not measured: opencv:")
    assert check.fix == "see the camera check above"
