"""Camera frame sources: OpenCV devices and files, image folders, the simulated camera, and the
Pi camera (kiosk/sensors/picamera.py) by name.

Every source yields HxW uint8 grayscale frames, which is what the QR decoders read. Camera
libraries (OpenCV, picamera2) are imported in ``start()``, never when this module is imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kiosk.sensors.framesource import CameraError, Frame, FrameSource, require_started
from kiosk.sensors.picamera import Picamera2Source
from kiosk.sensors.synthetic import (
    blank_frame,
    noisy,
    person_holding_code,
    qr_modules,
    sensor_noise,
)

__all__ = [
    "CameraError",
    "Frame",
    "FrameSource",
    "GeneratedFrameSource",
    "ImageFolderSource",
    "Picamera2Source",
    "VideoCaptureSource",
    "camera_rate",
    "open_frame_source",
]

logger = logging.getLogger(__name__)

FRAME_SOURCE_SPECS = (
    "picamera2",
    "opencv:<index>",
    "opencv:/dev/videoN",
    "opencv:/path/to/clip.mp4",
    "folder:/path/to/images",
)


class ImageFolderSource:
    """Images from a folder in file-name order, as grayscale frames; None after the last one.

    :param folder: the folder to read.
    :param pattern: glob pattern of the files to use.
    :param loop: start again from the first image instead of returning None at the end.
    """

    def __init__(self, folder: str | Path, pattern: str = "*.png", *, loop: bool = False) -> None:
        self.folder = Path(folder)
        self.pattern = pattern
        self.loop = loop
        self.name = f"folder:{self.folder}"
        self._paths: list[Path] = []
        self._next_index = 0
        self._started = False

    def start(self) -> None:
        """List the images; raises CameraError if the folder is missing or has no match."""
        if not self.folder.is_dir():
            raise CameraError(f"{self.name}: not a folder")
        self._paths = sorted(path for path in self.folder.glob(self.pattern) if path.is_file())
        if not self._paths:
            raise CameraError(f"{self.name}: no files match {self.pattern!r}")
        self._next_index = 0
        self._started = True

    def read(self) -> Frame | None:
        """The next readable image as grayscale; unreadable files are skipped with a warning."""
        import cv2

        require_started(self._started, self.name)
        for _ in range(len(self._paths)):
            if self._next_index >= len(self._paths):
                if not self.loop:
                    return None
                self._next_index = 0
            path = self._paths[self._next_index]
            self._next_index += 1
            frame = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if frame is not None:
                return np.asarray(frame, dtype=np.uint8)
            logger.warning("%s: skipping unreadable image %s", self.name, path.name)
        return None

    def close(self) -> None:
        """Forget the file list."""
        self._paths = []
        self._started = False

    def __repr__(self) -> str:
        return f"<ImageFolderSource {self.name} pattern={self.pattern!r} loop={self.loop}>"


class VideoCaptureSource:
    """Frames from OpenCV's VideoCapture: a USB webcam index, ``/dev/videoN`` or a video file.

    ``read()`` returns None at the end of a file or when a camera delivers no frame.
    """

    def __init__(self, device: int | str) -> None:
        self.device = device
        self.name = f"opencv:{device}"
        self._capture: Any = None

    def start(self) -> None:
        """Open the device or file; raises CameraError when OpenCV cannot."""
        import cv2

        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.name}: OpenCV cannot open it (missing, busy or no codec)")
        self._capture = capture

    def read(self) -> Frame | None:
        """The next frame converted to grayscale, or None if none was delivered."""
        import cv2

        require_started(self._capture is not None, self.name)
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return np.asarray(frame, dtype=np.uint8)

    @property
    def started(self) -> bool:
        """Whether the device or file is open."""
        return self._capture is not None

    def capture_property(self, prop: int) -> float:
        """An OpenCV ``CAP_PROP_…`` value of the open device or file."""
        require_started(self.started, self.name)
        return float(self._capture.get(prop))

    def close(self) -> None:
        """Release the device or file."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __repr__(self) -> str:
        state = "open" if self._capture is not None else "closed"
        return f"<VideoCaptureSource {self.name} {state}>"


class GeneratedFrameSource:
    """Simulated camera: an entrance's textured scene, with sensor noise, at a fixed frame rate.

    While ``payload()`` returns bytes, a person stands in front of the camera holding up a phone
    with that code; while it returns None the scene is empty. Like a real camera the frames come
    at fixed times (``fps``, on the injected ``clock`` and ``sleep``): ``read()`` waits for the
    next one, and a caller that fell behind gets the newest frame, the ones it missed counted in
    ``dropped``. Noise comes from a few fields made once, so a frame costs almost nothing to make.

    :param payload: called once per frame; the bytes to show, or None for no code.
    :param size: frame ``(width, height)``.
    :param fps: frames per second delivered by ``read()``.
    :param clock: monotonic clock in seconds.
    :param sleep: waits the given number of seconds.
    :param seed: which scene (the room behind the person and the noise).
    """

    name = "generated"
    NOISE_FIELDS = 4
    NOISE_SIGMA = 4.0

    def __init__(
        self,
        payload: Callable[[], bytes | None],
        *,
        size: tuple[int, int] = (640, 480),
        fps: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._payload = payload
        self.size = size
        self.fps = fps
        self.seed = seed
        self._clock = clock
        self._sleep = sleep
        self._frame_period = 1.0 / fps
        self._first_frame_at: float | None = None
        self._index = 0
        self._started = False
        self.delivered = 0
        self.dropped = 0
        self._scene: Frame | None = None
        self._noise: list[npt.NDArray[np.int16]] = []
        self._views: dict[bytes | None, list[Frame]] = {}

    def start(self) -> None:
        """Start delivering frames; the first ``read()`` returns at once."""
        self._started = True
        self._first_frame_at = None

    def read(self) -> Frame | None:
        """Wait for the next frame time, then return a read-only frame of the current payload."""
        require_started(self._started, self.name)
        now = self._clock()
        if self._first_frame_at is None:
            self._first_frame_at, self._index = now, 0
        else:
            newest = int((now - self._first_frame_at) / self._frame_period + 1e-9)
            index = max(self._index + 1, newest)
            due = self._first_frame_at + index * self._frame_period
            if now < due:
                self._sleep(due - now)
            self.dropped += index - self._index - 1
            self._index = index
        self.delivered += 1
        return self._view(self._payload(), self._index)

    def _view(self, payload: bytes | None, index: int) -> Frame:
        if self._scene is None:
            self._scene = blank_frame(self.size, seed=self.seed)
            self._noise = [
                sensor_noise(self.size, self.NOISE_SIGMA, self.seed * 100 + n)
                for n in range(self.NOISE_FIELDS)
            ]
        views = self._views.get(payload)
        if views is None:
            base = self._scene
            if payload is not None:
                module_px = _module_px_to_fit(payload, self.size)
                base = person_holding_code(base, payload, module_px=module_px)
            views = [_read_only(noisy(base, noise)) for noise in self._noise]
            self._views = {key: value for key, value in self._views.items() if key is None}
            self._views[payload] = views  # the empty scene's, and the newest code's
        return views[index % len(views)]

    def close(self) -> None:
        """Stop delivering frames."""
        self._started = False

    def __repr__(self) -> str:
        return f"<GeneratedFrameSource {self.size[0]}x{self.size[1]} @ {self.fps:g} fps>"


def open_frame_source(spec: str) -> FrameSource:
    """The frame source described by ``spec`` (not started).

    Specs: ``picamera2``, ``opencv:0`` (webcam index), ``opencv:/dev/video0``,
    ``opencv:/path/clip.mp4``, ``folder:/path/to/images``.

    :raises ValueError: for any other spec, naming the allowed forms.
    """
    kind, separator, argument = spec.partition(":")
    if spec == "picamera2":
        return Picamera2Source()
    if separator and argument and kind == "opencv":
        return VideoCaptureSource(int(argument) if argument.isdigit() else argument)
    if separator and argument and kind == "folder":
        return ImageFolderSource(argument)
    raise ValueError(f"unknown frame source {spec!r}; use one of: {', '.join(FRAME_SOURCE_SPECS)}")


def camera_rate(source: FrameSource) -> float | None:
    """The frames per second ``source`` delivers (asked of the camera, or of a started OpenCV
    device or file), or None when it has no rate of its own (an image folder)."""
    if isinstance(source, Picamera2Source | GeneratedFrameSource):
        return float(source.fps)
    if isinstance(source, VideoCaptureSource) and source.started:
        import cv2

        rate = float(source.capture_property(cv2.CAP_PROP_FPS))
        return rate if rate > 0 else None
    return None


def _module_px_to_fit(payload: bytes, size: tuple[int, int]) -> int:
    """Pixels per module of a phone held up at reading distance: 4, fewer when the code is big."""
    return max(1, min(4, min(size) * 3 // 4 // qr_modules(payload)))


def _read_only(frame: Frame) -> Frame:
    frame.setflags(write=False)
    return frame
