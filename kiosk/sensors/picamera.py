"""The Raspberry Pi camera as a frame source, through picamera2 (imported in ``start()``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiosk.sensors.framesource import CameraError, Frame, require_started


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
        require_started(self._camera is not None, self.name)
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
