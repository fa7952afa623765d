"""A USB HID keyboard-wedge 2D scanner read through evdev (the Linux input layer).

The device (``scanner.device``) is a path, best ``/dev/input/by-id/usb-…-event-kbd`` (the same
whichever USB socket the scanner is in), or ``name:<text>``: the first input device whose name
contains the text (case-insensitive) and that has an Enter key. It is grabbed exclusively
(``EVIOCGRAB``), so the codes it types reach the kiosk only, never a console or the display's
browser. Key presses become text with the layout the scanner types in
(:mod:`kiosk.sensors.scanner_keymaps`); Enter (``cr``, ``lf`` or ``crlf``) or Tab (``tab``)
ends a code. An unplugged scanner is a :class:`~kiosk.sensors.scanner.ScannerError`; the scanner
thread finds it again (by path or name) once it is back. The service user needs read access to
the device: the ``input`` group.
"""

from __future__ import annotations

import contextlib
import errno
import select
import time
from collections.abc import Callable, Iterable
from typing import Any

from kiosk.config.schema import ScannerSection
from kiosk.sensors.scanner import AssemblingReader, PayloadAssembler, ScannerError, assembler_for
from kiosk.sensors.scanner_keymaps import KEY_ENTER, KeyTyper, keymap

EV_KEY = 1
NAME_PREFIX = "name:"


class HidScanner(AssemblingReader):
    """A keyboard-wedge scanner (see the module's docstring)."""

    def __init__(
        self,
        device: str,
        typer: KeyTyper,
        assembler: PayloadAssembler,
        clock: Callable[[], float] = time.time,  # the kernel stamps input events with it
    ) -> None:
        super().__init__(assembler, clock)
        self.device = device
        self.name = f"hid:{device}"
        self._typer = typer
        self._input: Any = None

    @classmethod
    def from_settings(cls, settings: ScannerSection, max_payload_bytes: int) -> HidScanner:
        """The scanner the ``[scanner]`` section describes."""
        terminator = b"\t" if settings.terminator == "tab" else b"\r"  # Enter types CR
        return cls(
            settings.device,
            KeyTyper(keymap(settings.layout)),
            assembler_for(settings, max_payload_bytes, terminator),
        )

    def open(self) -> None:
        """Find the device and grab it.

        :raises ScannerError: not there, not readable, or grabbed by another program.
        """
        import evdev

        self.close()
        path = find_device(self.device)
        try:
            device = evdev.InputDevice(path)
        except OSError as exc:
            raise ScannerError(f"{self.name}: cannot open {path}: {exc.strerror}") from None
        try:
            device.grab()
        except OSError as exc:
            device.close()
            reason = "another program grabbed it" if exc.errno == errno.EBUSY else exc.strerror
            raise ScannerError(f"{self.name}: cannot grab {path}: {reason}") from None
        self._typer.reset()
        self._input = device

    def _receive(self, timeout_s: float) -> Iterable[tuple[bytes, float]]:
        device = self._input
        if device is None:
            raise ScannerError(f"{self.name}: not open")
        try:
            ready, _, _ = select.select([device.fd], [], [], timeout_s)
            events = list(device.read()) if ready else []
        except BlockingIOError:
            return []
        except OSError as exc:
            raise ScannerError(f"{self.name}: lost: {exc.strerror}") from None
        typed = []
        for event in events:
            if event.type == EV_KEY:
                text = self._typer.key(event.code, event.value)
                if text:
                    typed.append((text.encode(), event.timestamp()))
        return typed

    def _release(self) -> None:
        device, self._input = self._input, None
        if device is not None:
            with contextlib.suppress(OSError):  # unplugged: nothing is grabbed any more
                device.ungrab()
            device.close()

    @property
    def where(self) -> str:
        device = self._input
        return self.name if device is None else f"{self.name} ({device.path}, {device.name})"


def find_device(device: str) -> str:
    """The event device path ``device`` names (a path, or ``name:<text>``).

    :raises ScannerError: no such device.
    """
    import evdev

    if not device.startswith(NAME_PREFIX):
        return device
    wanted = device[len(NAME_PREFIX) :].casefold()
    for path in evdev.list_devices():
        try:
            candidate = evdev.InputDevice(path)
        except OSError:
            continue  # gone, or not readable by this user
        try:
            keys = candidate.capabilities().get(EV_KEY, [])
            if wanted in candidate.name.casefold() and KEY_ENTER in keys:
                return str(path)
        finally:
            candidate.close()
    raise ScannerError(f"no input device named like {wanted!r} with an Enter key")
