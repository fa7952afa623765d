"""A USB CDC or RS-232 2D scanner read through pyserial.

The port (``scanner.device``: ``/dev/ttyACM0``, better ``/dev/serial/by-id/…``, which stays the
same when the scanner is plugged into another USB socket) is opened exclusively at
``scanner.baud``, 8N1. Codes end with ``scanner.terminator`` (CR, LF or CRLF); a port that
disappears (the scanner unplugged) is a :class:`~kiosk.sensors.scanner.ScannerError`, and the
scanner thread opens it again once it is back.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterable
from typing import Any

from kiosk.config.schema import ScannerSection
from kiosk.sensors.scanner import AssemblingReader, PayloadAssembler, ScannerError, assembler_for


class SerialScanner(AssemblingReader):
    """A scanner on a serial port (see the module's docstring)."""

    def __init__(
        self,
        port: str,
        baud: int,
        assembler: PayloadAssembler,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(assembler, clock)
        self.port, self.baud = port, baud
        self.name = f"serial:{port}"
        self._serial: Any = None

    @classmethod
    def from_settings(cls, settings: ScannerSection, max_payload_bytes: int) -> SerialScanner:
        """The scanner the ``[scanner]`` section describes."""
        return cls(settings.device, settings.baud, assembler_for(settings, max_payload_bytes))

    def open(self) -> None:
        """Open the port exclusively.

        :raises ScannerError: no such port, or another program has it.
        """
        import serial

        self.close()
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScannerError(f"{self.name}: cannot open: {_reason(exc)}") from None

    def _receive(self, timeout_s: float) -> Iterable[tuple[bytes, float]]:
        import serial

        port = self._serial
        if port is None:
            raise ScannerError(f"{self.name}: not open")
        try:
            ready, _, _ = select.select([port.fileno()], [], [], timeout_s)
            data = port.read(max(1, port.in_waiting)) if ready else b""
        except (serial.SerialException, OSError) as exc:
            raise ScannerError(f"{self.name}: lost: {_reason(exc)}") from None
        return [(data, self._clock())] if data else []

    def _release(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    @property
    def where(self) -> str:
        return f"{self.name} at {self.baud} baud"


def _reason(exc: BaseException) -> str:
    """A short reason for an error from pyserial, which often wraps an OSError's text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
