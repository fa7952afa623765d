"""Camera frame sources: the Pi camera, OpenCV devices and files, image folders, generated frames.

Every source yields HxW uint8 grayscale frames, which is what the QR decoders read. Camera
libraries (OpenCV, picamera2) are imported in ``start()``, never when this module is imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kiosk.sensors.synthetic import blank_frame, render_qr_frame

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

FRAME_SOURCE_SPECS = (
    "picamera2",
    "opencv:<index>",
    "opencv:/dev/videoN",
    "opencv:/path/to/clip.mp4",
    "folder:/path/to/images",
)


class CameraError(OSError):
    """A camera or frame source that cannot be opened, or that was lost."""


class FrameSource(Protocol):
    """Where frames come from. ``start()`` before ``read()``; ``close()`` may be called twice."""

    name: str

    def start(self) -> None:
        """Open the source; raises CameraError when it cannot."""
        ...

    def read(self) -> Frame | None:
        """The next HxW uint8 grayscale frame, or None when no frame is available."""
        ...

    def close(self) -> None:
        """Release the source; calling it again does nothing."""
        ...


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

        _require_started(self._started, self.name)
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

        _require_started(self._capture is not None, self.name)
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return np.asarray(frame, dtype=np.uint8)

    def close(self) -> None:
        """Release the device or file."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __repr__(self) -> str:
        state = "open" if self._capture is not None else "closed"
        return f"<VideoCaptureSource {self.name} {state}>"


class Picamera2Source:
    """The Raspberry Pi camera through picamera2, read from its low-resolution YUV420 stream.

    The Y plane of the lores stream is used as the grayscale frame: no colour conversion, and
    YUV is the only lores format the Pi 4 / Zero 2 W allow. On the Pi install picamera2 with
    ``sudo apt install python3-picamera2`` and make the venv with ``--system-site-packages``.

    :param main_size: main stream ``(width, height)``; lores may not exceed it.
    :param lores_size: ``(width, height)`` of the frames returned by ``read()``.
    :param fps: frame rate asked of the sensor.
    :param autofocus: continuous fast autofocus when the camera has it (Camera Module 3).
    """

    name = "picamera2"

    def __init__(
        self,
        *,
        main_size: tuple[int, int] = (1280, 720),
        lores_size: tuple[int, int] = (640, 480),
        fps: int = 30,
        autofocus: bool = True,
    ) -> None:
        if lores_size[0] > main_size[0] or lores_size[1] > main_size[1]:
            raise ValueError(f"lores_size {lores_size} may not exceed main_size {main_size}")
        self.main_size = main_size
        self.lores_size = lores_size
        self.fps = fps
        self.autofocus = autofocus
        self._camera: Any = None

    def start(self) -> None:
        """Open and start the camera; raises CameraError if picamera2 or the camera is missing."""
        try:
            from picamera2 import Picamera2
        except ImportError as error:
            raise CameraError(
                f"{self.name}: picamera2 is not installed (on the Pi: sudo apt install "
                "python3-picamera2, venv created with --system-site-packages)"
            ) from error
        try:
            camera = Picamera2()
        except (IndexError, RuntimeError) as error:
            raise CameraError(f"{self.name}: no camera found ({error})") from error
        try:
            config = camera.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": self.fps},
                buffer_count=4,
            )
            camera.configure(config)
            camera.start()
            if self.autofocus and "AfMode" in camera.camera_controls:
                self._start_continuous_autofocus(camera)
        except Exception as error:
            camera.close()
            raise CameraError(f"{self.name}: cannot start the camera ({error})") from error
        self._camera = camera

    @staticmethod
    def _start_continuous_autofocus(camera: Any) -> None:
        from libcamera import controls

        camera.set_controls(
            {"AfMode": controls.AfModeEnum.Continuous, "AfSpeed": controls.AfSpeedEnum.Fast}
        )

    def read(self) -> Frame | None:
        """The Y (grayscale) plane of the next lores frame; raises CameraError if it fails."""
        _require_started(self._camera is not None, self.name)
        try:
            yuv = self._camera.capture_array("lores")
        except Exception as error:
            raise CameraError(f"{self.name}: capture failed ({error})") from error
        width, height = self.lores_size
        return np.asarray(yuv[:height, :width], dtype=np.uint8)

    def close(self) -> None:
        """Stop and release the camera."""
        if self._camera is not None:
            camera, self._camera = self._camera, None
            try:
                camera.stop()
            finally:
                camera.close()

    def __repr__(self) -> str:
        state = "open" if self._camera is not None else "closed"
        return f"<Picamera2Source lores={self.lores_size} fps={self.fps} {state}>"


class GeneratedFrameSource:
    """Simulated camera: frames showing whatever QR payload ``payload()`` returns right now.

    A blank grey frame is shown while ``payload()`` returns None. ``read()`` is paced to ``fps``
    with the injected ``clock`` and ``sleep``, like a real camera.

    :param payload: called once per frame; the bytes to show, or None for no code.
    :param size: frame ``(width, height)``.
    :param fps: frames per second delivered by ``read()``.
    :param clock: monotonic clock in seconds.
    :param sleep: waits the given number of seconds.
    """

    name = "generated"

    def __init__(
        self,
        payload: Callable[[], bytes | None],
        *,
        size: tuple[int, int] = (640, 480),
        fps: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._payload = payload
        self.size = size
        self.fps = fps
        self._clock = clock
        self._sleep = sleep
        self._frame_period = 1.0 / fps
        self._next_frame_at: float | None = None
        self._started = False
        self._blank: Frame | None = None
        self._cached_payload: bytes | None = None
        self._cached_frame: Frame | None = None

    def start(self) -> None:
        """Start delivering frames; the first ``read()`` returns at once."""
        self._started = True
        self._next_frame_at = None

    def read(self) -> Frame | None:
        """Wait for the next frame time, then return a read-only frame of the current payload."""
        _require_started(self._started, self.name)
        now = self._clock()
        if self._next_frame_at is not None and now < self._next_frame_at:
            self._sleep(self._next_frame_at - now)
            now = self._next_frame_at
        self._next_frame_at = now + self._frame_period
        return self._frame_for(self._payload())

    def _frame_for(self, payload: bytes | None) -> Frame:
        if payload is None:
            if self._blank is None:
                self._blank = _read_only(blank_frame(self.size))
            return self._blank
        if self._cached_frame is None or payload != self._cached_payload:
            module_px = _module_px_to_fit(payload, self.size)
            frame = render_qr_frame(payload, size=self.size, module_px=module_px)
            self._cached_payload, self._cached_frame = payload, _read_only(frame)
        return self._cached_frame

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


def _module_px_to_fit(payload: bytes, size: tuple[int, int]) -> int:
    import segno

    modules_with_quiet_zone = int(segno.make(payload, error="m", micro=False).symbol_size()[0])
    return max(1, min(6, min(size) * 3 // 4 // modules_with_quiet_zone))


def _read_only(frame: Frame) -> Frame:
    frame.setflags(write=False)
    return frame


def _require_started(started: bool, name: str) -> None:
    if not started:
        raise CameraError(f"{name}: not started (call start() first)")
