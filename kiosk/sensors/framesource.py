"""What every frame source shares: the frame type, the protocol, the camera error.

Kept apart from :mod:`kiosk.sensors.frames` so that each kind of source can live in a module of
its own (:mod:`kiosk.sensors.picamera`); import these names from ``frames``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


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


def require_started(started: bool, name: str) -> None:
    """Raise CameraError when a source is read before ``start()``."""
    if not started:
        raise CameraError(f"{name}: not started (call start() first)")
