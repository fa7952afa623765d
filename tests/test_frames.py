"""Frame sources on real files, the simulated camera on a fake clock, and source specs."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from kiosk.sensors.frames import (
    CameraError,
    FrameSource,
    GeneratedFrameSource,
    ImageFolderSource,
    Picamera2Source,
    VideoCaptureSource,
    camera_rate,
    open_frame_source,
)
from kiosk.sensors.qr import QRDecoder, ScanFilter, StillSceneDecoder, make_decoder
from kiosk.sensors.synthetic import Frame, blank_frame, render_qr_frame

BADGE = b"KIOSK1:7f3a9c2e-5b1d-4e8a-9c3f-2d6b8a1e4f70:sig=Zk3Yq9"
OTHER_BADGE = b"KIOSK1:0b8e51d2-94c7-4a61-8f0e-3c5d7a9b1e26:sig=Pq7Lm2"


class FakeClock:
    """A monotonic clock that only moves when slept on or advanced; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _read_all(source: FrameSource, limit: int = 1000) -> list[Frame]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
        assert len(frames) < limit
    return frames


def _decoded(frames: list[Frame]) -> list[list[bytes]]:
    decoder = make_decoder("zxing-cpp")
    return [decoder.decode(frame) for frame in frames]


def _write_png(path: Path, frame: Frame) -> None:
    assert cv2.imwrite(str(path), frame)


@pytest.fixture
def badge_folder(tmp_path: Path) -> Path:
    _write_png(tmp_path / "02_badge.png", render_qr_frame(BADGE))
    _write_png(tmp_path / "01_empty.png", blank_frame(seed=1))
    _write_png(tmp_path / "03_other.png", render_qr_frame(OTHER_BADGE))
    (tmp_path / "02b_broken.png").write_text("not an image")
    (tmp_path / "readme.txt").write_text("not matched by *.png")
    return tmp_path


def test_image_folder_plays_the_images_in_name_order_then_stops(badge_folder: Path) -> None:
    source = ImageFolderSource(badge_folder)
    source.start()

    frames = _read_all(source)
    source.close()
    source.close()

    assert _decoded(frames) == [[], [BADGE], [OTHER_BADGE]]
    assert [frame.shape for frame in frames] == [(480, 640)] * 3


def test_image_folder_can_loop(badge_folder: Path) -> None:
    source = ImageFolderSource(badge_folder, loop=True)
    source.start()

    frames = [source.read() for _ in range(5)]

    assert _decoded([f for f in frames if f is not None]) == [
        [],
        [BADGE],
        [OTHER_BADGE],
        [],
        [BADGE],
    ]


def test_image_folder_pattern_selects_the_files(badge_folder: Path) -> None:
    source = ImageFolderSource(badge_folder, pattern="0[23]_*.png")
    source.start()

    assert _decoded(_read_all(source)) == [[BADGE], [OTHER_BADGE]]


@pytest.mark.parametrize(
    ("folder_name", "message"),
    [("absent", "not a folder"), ("empty", "no files match '\\*.png'")],
)
def test_image_folder_that_cannot_supply_frames_is_a_camera_error(
    tmp_path: Path, folder_name: str, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    source = ImageFolderSource(tmp_path / folder_name)

    with pytest.raises(CameraError, match=f"folder:.*{folder_name}: {message}"):
        source.start()


def test_reading_before_start_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="not started"):
        ImageFolderSource(tmp_path).read()


def _write_clip(path: Path, frames: list[Frame], fps: float = 15.0) -> None:
    height, width = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def test_video_file_gives_grayscale_frames_until_the_end(tmp_path: Path) -> None:
    clip = tmp_path / "entrance.avi"
    empty, badge = blank_frame(seed=5), render_qr_frame(BADGE)
    _write_clip(clip, [empty] * 5 + [badge] * 10 + [empty] * 5)
    source = VideoCaptureSource(str(clip))
    source.start()

    frames = _read_all(source)
    source.close()
    source.close()

    assert [frame.shape for frame in frames] == [(480, 640)] * 20
    assert _decoded(frames) == [[]] * 5 + [[BADGE]] * 10 + [[]] * 5


def test_camera_rate_is_what_each_source_delivers(tmp_path: Path) -> None:
    clip = tmp_path / "entrance.avi"
    _write_clip(clip, [blank_frame(seed=5)] * 3, fps=12.0)
    video, folder = VideoCaptureSource(str(clip)), ImageFolderSource(tmp_path, "*.avi")
    video.start()
    folder.start()

    rates = [
        camera_rate(source)
        for source in (video, folder, Picamera2Source(fps=25), GeneratedFrameSource(lambda: None))
    ]
    video.close()

    assert rates == [pytest.approx(12.0), None, 25.0, 30.0]


def test_video_source_that_cannot_open_is_a_camera_error(tmp_path: Path) -> None:
    source = VideoCaptureSource(str(tmp_path / "missing.avi"))

    with pytest.raises(CameraError, match=r"opencv:.*missing\.avi: OpenCV cannot open it"):
        source.start()


def test_picamera2_missing_off_the_pi_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)

    with pytest.raises(CameraError, match="apt install python3-picamera2"):
        Picamera2Source().start()


class FakePicamera2:
    """Stands in for picamera2.Picamera2: lores YUV420 buffers with a padded row stride."""

    def __init__(self) -> None:
        self.camera_controls: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.events: list[str] = []
        self.y_plane = render_qr_frame(BADGE, size=(600, 400), module_px=4)

    def create_video_configuration(self, **config: Any) -> dict[str, Any]:
        return config

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.events.append("start")

    def capture_array(self, stream: str) -> Frame:
        assert stream == "lores"
        height, width = self.y_plane.shape
        buffer = np.full((height * 3 // 2, 640), 255, dtype=np.uint8)  # stride 640, U/V below
        buffer[:height, :width] = self.y_plane
        return buffer

    def stop(self) -> None:
        self.events.append("stop")

    def close(self) -> None:
        self.events.append("close")


def test_picamera2_source_reads_the_y_plane_of_the_lores_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cameras: list[FakePicamera2] = []

    def open_camera() -> FakePicamera2:
        cameras.append(FakePicamera2())
        return cameras[-1]

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=open_camera))
    source = Picamera2Source(lores_size=(600, 400), fps=25)

    source.start()
    frame = source.read()
    source.close()
    source.close()

    [camera] = cameras
    assert camera.config["lores"] == {"size": (600, 400), "format": "YUV420"}
    assert camera.config["controls"] == {"FrameRate": 25}
    assert frame is not None
    assert np.array_equal(frame, camera.y_plane)
    assert _decoded([frame]) == [[BADGE]]
    assert camera.events == ["start", "stop", "close"]


def test_generated_source_shows_the_current_payload() -> None:
    shown: list[bytes | None] = [None, BADGE, BADGE, OTHER_BADGE, None]
    clock = FakeClock()
    source = GeneratedFrameSource(lambda: shown.pop(0), clock=clock, sleep=clock.sleep)
    source.start()

    frames = [source.read() for _ in range(5)]

    assert _decoded([f for f in frames if f is not None]) == [
        [],
        [BADGE],
        [BADGE],
        [OTHER_BADGE],
        [],
    ]


def test_generated_source_fits_a_large_payload_in_the_frame() -> None:
    large = bytes(range(256)) * 6
    clock = FakeClock()
    source = GeneratedFrameSource(lambda: large, clock=clock, sleep=clock.sleep)
    source.start()

    frame = source.read()

    assert frame is not None
    assert _decoded([frame]) == [[large]]


def test_generated_source_is_paced_to_its_frame_rate() -> None:
    clock = FakeClock()
    source = GeneratedFrameSource(lambda: BADGE, fps=20, clock=clock, sleep=clock.sleep)
    source.start()

    read_at = []
    for _ in range(4):
        source.read()
        read_at.append(clock.now)
        clock.now += 0.01  # the caller spends 10 ms decoding each frame

    assert read_at == pytest.approx([0.0, 0.05, 0.10, 0.15])
    assert clock.sleeps == pytest.approx([0.04, 0.04, 0.04])


def test_generated_source_does_not_burst_after_a_slow_caller() -> None:
    clock = FakeClock()
    source = GeneratedFrameSource(lambda: None, fps=20, clock=clock, sleep=clock.sleep)
    source.start()

    source.read()
    clock.now += 0.5  # the caller stalled for ten frame periods
    source.read()
    source.read()

    assert clock.sleeps == pytest.approx([0.05])
    assert (source.delivered, source.dropped) == (3, 9)  # frames 0, 10 and 11 of a camera


def test_generated_source_shows_a_noisy_textured_scene_not_a_flat_frame() -> None:
    clock = FakeClock()
    source = GeneratedFrameSource(lambda: None, clock=clock, sleep=clock.sleep)
    source.start()

    first, second = source.read(), source.read()

    assert first is not None and second is not None
    assert first.std() > 20  # a room, not a grey card
    difference = np.abs(first.astype(int) - second.astype(int))
    assert 1 < difference.mean() < 10  # the same room, through a camera's sensor noise
    assert _decoded([first, second]) == [[], []]


@pytest.mark.parametrize("still", [False, True], ids=["every frame", "still frames skipped"])
def test_simulated_visitors_give_one_scan_per_presentation(still: bool) -> None:
    """Camera, decoder and filter together: who holds up which badge, second by second."""
    clock = FakeClock()

    def badge_in_view() -> bytes | None:
        t = clock.now
        if 1.05 <= t < 3.05 or 3.55 <= t < 5.05:  # shown, lowered for 0.5 s, shown again
            return BADGE
        if 6.05 <= t < 7.05:
            return OTHER_BADGE
        if 9.55 <= t < 10.05:  # the first visitor comes back much later
            return BADGE
        return None

    source = GeneratedFrameSource(badge_in_view, fps=10, clock=clock, sleep=clock.sleep)
    decoder: QRDecoder = make_decoder("zxing-cpp")
    if still:
        decoder = StillSceneDecoder(decoder)
    scan_filter = ScanFilter(rearm_after_s=2.0)
    source.start()
    scans = []
    while clock.now < 10.5:
        frame = source.read()
        assert frame is not None
        scans += scan_filter.feed(decoder.decode(frame), now=clock.now)

    assert [(scan.payload, round(scan.seen_at, 2)) for scan in scans] == [
        (BADGE, 1.1),
        (OTHER_BADGE, 6.1),
        (BADGE, 9.6),
    ]


@pytest.mark.parametrize(
    ("spec", "kind", "attribute", "value"),
    [
        ("picamera2", Picamera2Source, "lores_size", (640, 480)),
        ("opencv:0", VideoCaptureSource, "device", 0),
        ("opencv:/dev/video2", VideoCaptureSource, "device", "/dev/video2"),
        ("opencv:/srv/clips/door.mp4", VideoCaptureSource, "device", "/srv/clips/door.mp4"),
        ("folder:/srv/badges", ImageFolderSource, "folder", Path("/srv/badges")),
    ],
)
def test_open_frame_source_understands_each_spec(
    spec: str, kind: type, attribute: str, value: object
) -> None:
    source = open_frame_source(spec)

    assert isinstance(source, kind)
    assert getattr(source, attribute) == value


@pytest.mark.parametrize("spec", ["webcam", "opencv:", "folder", "file:/clip.mp4", ""])
def test_open_frame_source_lists_the_allowed_forms_for_a_bad_spec(spec: str) -> None:
    with pytest.raises(
        ValueError, match=r"use one of: picamera2, opencv:<index>, .*folder:/path/to/images"
    ):
        open_frame_source(spec)
