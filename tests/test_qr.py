"""QR decoders on generated camera frames, duplicate suppression, and `kiosk decode` output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.sensors.frames import GeneratedFrameSource
from kiosk.sensors.qr import (
    DECODER_NAMES,
    DecoderUnavailableError,
    QRDecoder,
    Scan,
    ScanFilter,
    StillSceneDecoder,
    decode_image_file,
    make_decoder,
)
from kiosk.sensors.synthetic import (
    Frame,
    add_noise,
    blank_frame,
    blur,
    reduce_contrast,
    render_qr_frame,
    rotate,
    scale_brightness,
    tilt,
)

BADGE = b"KIOSK1:7f3a9c2e-5b1d-4e8a-9c3f-2d6b8a1e4f70:sig=Zk3Yq9"
OTHER_BADGE = b"KIOSK1:0b8e51d2-94c7-4a61-8f0e-3c5d7a9b1e26:sig=Pq7Lm2"


@pytest.fixture(params=DECODER_NAMES)
def decoder(request: pytest.FixtureRequest) -> QRDecoder:
    return make_decoder(request.param)


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
@pytest.mark.parametrize("module_px", [2, 3, 6, 10])
def test_reads_a_badge_at_both_camera_resolutions_and_any_distance(
    decoder: QRDecoder, size: tuple[int, int], module_px: int
) -> None:
    frame = render_qr_frame(BADGE, size=size, module_px=module_px)

    assert frame.shape == (size[1], size[0])
    assert decoder.decode(frame) == [BADGE]


DISTORTIONS: dict[str, Callable[[Frame], Frame]] = {
    "rotated 90": lambda frame: rotate(frame, 90),
    "rotated 180": lambda frame: rotate(frame, 180),
    "rotated 15": lambda frame: rotate(frame, 15),
    "rotated 30": lambda frame: rotate(frame, 30),
    "tilted 40 left": lambda frame: tilt(frame, -40),
    "tilted 40 right": lambda frame: tilt(frame, 40),
    "out of focus": lambda frame: blur(frame, 7),
    "noisy": lambda frame: add_noise(frame, 25, seed=1),
    "low contrast": lambda frame: reduce_contrast(frame, 0.1),
    "dim": lambda frame: scale_brightness(frame, 0.1),
    "rotated, tilted, blurred and noisy": lambda frame: add_noise(
        blur(tilt(rotate(frame, 20), 30), 3), 10, seed=2
    ),
}


@pytest.mark.parametrize("distortion", DISTORTIONS.values(), ids=DISTORTIONS.keys())
def test_reads_a_badge_held_badly(decoder: QRDecoder, distortion: Callable[[Frame], Frame]) -> None:
    frame = render_qr_frame(BADGE, module_px=4)

    assert decoder.decode(distortion(frame)) == [BADGE]


def test_decoders_differ_only_at_the_limits() -> None:
    """Beyond the conditions above each decoder has one weakness; neither reads a wrong code."""
    frame = render_qr_frame(BADGE, module_px=4)
    very_noisy = add_noise(frame, 50, seed=1)
    nearly_flat = reduce_contrast(frame, 0.05)
    zxing, zbar = make_decoder("zxing-cpp"), make_decoder("pyzbar")

    assert [zxing.decode(very_noisy), zbar.decode(very_noisy)] == [[BADGE], []]
    assert [zxing.decode(nearly_flat), zbar.decode(nearly_flat)] == [[], [BADGE]]


def _checkerboard(cell_px: int) -> Frame:
    rows, columns = np.indices((480, 640)) // cell_px
    return (((rows + columns) % 2) * 255).astype(np.uint8)


def _frames_without_a_code() -> list[Frame]:
    textured = [blank_frame((640, 480), seed=seed) for seed in range(40)]
    flat_and_noisy = [
        add_noise(blank_frame((640, 480)), sigma, seed=seed)
        for seed, sigma in enumerate([0, 5, 15, 30, 60])
    ]
    rng = np.random.default_rng(7)
    random_pixels = [rng.integers(0, 256, (480, 640), dtype=np.uint8) for _ in range(3)]
    checkerboards = [_checkerboard(cell_px) for cell_px in (4, 16)]
    return textured + flat_and_noisy + random_pixels + checkerboards


def test_never_reads_a_code_that_is_not_there(decoder: QRDecoder) -> None:
    frames = _frames_without_a_code()

    assert len(frames) == 50
    assert [decoder.decode(frame) for frame in frames] == [[]] * 50


def test_reads_every_badge_in_one_frame(decoder: QRDecoder) -> None:
    payloads = [BADGE, OTHER_BADGE, b"VISITOR:1234"]
    centers = [(250, 200), (640, 480), (1030, 250)]
    frame = np.full((720, 1280), 200, dtype=np.uint8)
    for payload, center in zip(payloads, centers, strict=True):
        code = render_qr_frame(payload, size=(1280, 720), module_px=4, center=center)
        frame = np.where(code != 200, code, frame).astype(np.uint8)

    assert sorted(decoder.decode(frame)) == sorted(payloads)


@pytest.mark.parametrize(
    "payload",
    [
        bytes(range(255, -1, -1))[:120],
        "Zoë Ångström, 東京".encode(),
        b"\x00\x00\xff\xfe binary token \x80\x81",
    ],
    ids=["all byte values", "utf-8 text", "binary token"],
)
def test_returns_the_exact_bytes_of_a_payload(decoder: QRDecoder, payload: bytes) -> None:
    assert decoder.decode(render_qr_frame(payload, module_px=4)) == [payload]


def test_rejects_a_colour_frame(decoder: QRDecoder) -> None:
    colour = np.zeros((480, 640, 3), dtype=np.uint8)

    with pytest.raises(ValueError, match="grayscale"):
        decoder.decode(colour)


def test_make_decoder_names_the_choices_for_an_unknown_decoder() -> None:
    with pytest.raises(ValueError, match="zxing-cpp, pyzbar"):
        make_decoder("opencv")


def test_make_decoder_says_what_to_install_for_zxing_cpp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)

    with pytest.raises(DecoderUnavailableError, match="pip install zxing-cpp"):
        make_decoder("zxing-cpp")


def test_make_decoder_says_what_to_install_for_pyzbar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyzbar", None)
    monkeypatch.setitem(sys.modules, "pyzbar.wrapper", None)

    with pytest.raises(ImportError, match="apt install libzbar0"):
        make_decoder("pyzbar")


FPS = 30


def _feed_frames(
    scan_filter: ScanFilter, visible: Callable[[int], list[bytes]], frames: int
) -> list[Scan]:
    scans = []
    for index in range(frames):
        scans += scan_filter.feed(visible(index), now=index / FPS)
    return scans


def test_a_badge_held_up_for_two_seconds_is_one_scan() -> None:
    scans = _feed_frames(ScanFilter(), lambda _: [BADGE], frames=2 * FPS)

    assert scans == [Scan(BADGE, too_large=False, seen_at=0.0)]


def test_a_badge_shown_again_after_the_rearm_time_is_a_second_scan() -> None:
    def visible(index: int) -> list[bytes]:
        return [BADGE] if index < FPS or index >= 3 * FPS else []

    scans = _feed_frames(ScanFilter(rearm_after_s=2.0), visible, frames=4 * FPS)

    assert scans == [Scan(BADGE, False, 0.0), Scan(BADGE, False, 3.0)]


def test_a_badge_missed_by_the_decoder_for_a_moment_is_still_one_scan() -> None:
    def visible(index: int) -> list[bytes]:
        gap = 2 * FPS <= index < 2 * FPS + 55  # 1.8 s without a read, then back
        return [] if gap or index % 3 == 0 else [BADGE]

    scans = _feed_frames(ScanFilter(rearm_after_s=2.0), visible, frames=5 * FPS)

    assert scans == [Scan(BADGE, False, 1 / FPS)]


def test_a_different_badge_is_reported_at_once() -> None:
    def visible(index: int) -> list[bytes]:
        return [BADGE] if index < 15 else [OTHER_BADGE]

    scans = _feed_frames(ScanFilter(), visible, frames=FPS)

    assert scans == [Scan(BADGE, False, 0.0), Scan(OTHER_BADGE, False, 0.5)]


def test_two_badges_in_one_frame_are_two_scans_and_a_repeated_read_is_one() -> None:
    scans = ScanFilter().feed([BADGE, OTHER_BADGE, BADGE], now=1.0)

    assert scans == [Scan(BADGE, False, 1.0), Scan(OTHER_BADGE, False, 1.0)]


def test_an_oversized_payload_is_reported_once_truncated_and_flagged() -> None:
    oversized = bytes(range(256)) * 5
    scan_filter = ScanFilter(max_payload_bytes=1024)

    scans = _feed_frames(scan_filter, lambda _: [oversized], frames=FPS)
    at_the_cap = scan_filter.feed([oversized[:1024]], now=5.0)

    assert scans == [Scan(oversized[:1024], too_large=True, seen_at=0.0)]
    assert at_the_cap == [Scan(oversized[:1024], too_large=False, seen_at=5.0)]


def test_scan_filter_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="rearm_after_s"):
        ScanFilter(rearm_after_s=-1)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        ScanFilter(max_payload_bytes=0)


def _write_png(path: Path, frame: Frame) -> Path:
    assert cv2.imwrite(str(path), frame)
    return path


def test_decode_image_file_reports_a_printed_badge(tmp_path: Path, decoder: QRDecoder) -> None:
    badge = _write_png(tmp_path / "badge.png", render_qr_frame(BADGE))

    result = decode_image_file(badge, decoder)

    assert result == {
        "file": str(badge),
        "decoder": decoder.name,
        "codes": [{"text": BADGE.decode(), "hex": BADGE.hex(), "bytes": len(BADGE)}],
        "error": None,
    }
    assert json.loads(json.dumps(result)) == result


def test_decode_image_file_gives_hex_for_a_binary_payload(
    tmp_path: Path, decoder: QRDecoder
) -> None:
    payload = b"\xff\xfe\x00token"
    image = _write_png(tmp_path / "binary.png", render_qr_frame(payload))

    codes = decode_image_file(str(image), decoder)["codes"]

    assert codes == [{"text": None, "hex": "fffe00746f6b656e", "bytes": 8}]


def test_decode_image_file_reports_an_image_without_a_code(tmp_path: Path) -> None:
    image = _write_png(tmp_path / "wall.png", blank_frame(seed=3))

    result = decode_image_file(image, make_decoder("zxing-cpp"))

    assert (result["codes"], result["error"]) == ([], None)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("missing.png", None, "cannot read image: no such file"),
        ("notes.png", b"this is not a picture", "cannot read image: not an image"),
        ("empty.png", b"", "cannot read image: not an image"),
    ],
)
def test_decode_image_file_reports_an_unreadable_file_instead_of_failing(
    tmp_path: Path, name: str, content: bytes | None, error: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    result = decode_image_file(path, make_decoder("pyzbar"))

    assert result["file"] == str(path)
    assert result["codes"] == []
    assert result["error"].startswith(error)


class CountingDecoder:
    """The real zxing-cpp decoder, remembering which frames it was given."""

    name = "zxing-cpp"

    def __init__(self) -> None:
        self._decoder = make_decoder("zxing-cpp")
        self.frame_number = 0
        self.decoded_frames: list[int] = []

    def decode(self, gray: Frame) -> list[bytes]:
        self.decoded_frames.append(self.frame_number)
        return self._decoder.decode(gray)


def test_a_still_empty_scene_is_decoded_only_now_and_then_and_a_code_at_once() -> None:
    shown: list[bytes | None] = [None] * 30 + [BADGE] * 6 + [None] * 10
    source = GeneratedFrameSource(lambda: shown[source.delivered - 1], fps=1e6)
    inner = CountingDecoder()
    still = StillSceneDecoder(inner)
    source.start()

    results = []
    for frame_number in range(len(shown)):
        inner.frame_number = frame_number
        frame = source.read()
        assert frame is not None
        results.append(still.decode(frame))

    # Empty and still: three frames to settle, then one in fifteen.
    assert inner.decoded_frames[:6] == [0, 1, 2, 3, 18, 30]
    # The code is read in the frame it appears and in every frame while it is held up.
    assert inner.decoded_frames[5:12] == [30, 31, 32, 33, 34, 35, 36]
    assert results[29:37] == [[]] + [[BADGE]] * 6 + [[]]
    # The person has gone: the scene settles again, then is skipped.
    assert inner.decoded_frames[12:] == [37, 38, 39]
    assert still.skipped == len(shown) - len(inner.decoded_frames)
    assert still.name == "zxing-cpp"
