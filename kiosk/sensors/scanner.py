"""2D code scanners beside the camera: what the kiosk needs of one, and the framing they share.

A scanner sends each code it reads as a run of characters ended by a terminator: key presses
from a USB keyboard-wedge scanner (:mod:`kiosk.sensors.scanner_hid`) or bytes on a serial port
(:mod:`kiosk.sensors.scanner_serial`). :class:`PayloadAssembler` cuts that stream into codes
the same way for both: the terminator ends a code; a configured prefix and suffix are removed
when present; a code whose next character does not come within ``char_timeout_s`` is a partial
read and is dropped (counted, never logged with its content), so it is not merged with the
next; a code longer than the camera's ``max_payload_bytes`` is kept to one byte over the limit,
so that the scan filter refuses it as too large, as it refuses a camera's.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kiosk.config.schema import ScannerSection

log = logging.getLogger(__name__)

TERMINATORS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n", "tab": b"\t"}
_LINE_ENDS = b"\r\n"
POLL_S = 0.05  # longest wait for the device before looking at the clock again


class ScannerError(Exception):
    """The scanner cannot be read: not there, unplugged, or held by another program."""


class CodeReader(Protocol):
    """A scanner the kiosk reads codes from, in a thread of its own."""

    name: str

    def open(self) -> None:
        """Open (or reopen) the device.

        :raises ScannerError: it is not there or cannot be used.
        """

    def read(self, timeout_s: float) -> bytes | None:
        """The next code read, or None when none came within ``timeout_s``.

        :raises ScannerError: the device went away (unplugged, port gone).
        """

    def close(self) -> None:
        """Release the device (idempotent); :meth:`open` may be called again."""

    @property
    def where(self) -> str:
        """Which device this is (and, open, what it calls itself)."""

    @property
    def detail(self) -> str:
        """:attr:`where`, and how it has been doing, for the ``scanner`` health part."""


class PayloadAssembler:
    """Cuts a scanner's stream of bytes into codes (see the module's docstring). Pure: the
    time each byte arrived comes in with it."""

    def __init__(
        self,
        terminator: bytes,
        *,
        max_payload_bytes: int,
        char_timeout_s: float,
        prefix: bytes = b"",
        suffix: bytes = b"",
    ) -> None:
        if not terminator:
            raise ValueError("a terminator is needed to tell one code from the next")
        self.terminator = terminator
        self.prefix, self.suffix = prefix, suffix
        self.char_timeout_s = char_timeout_s
        self._keep = max_payload_bytes + 1 + len(prefix) + len(suffix) + len(terminator)
        self._buffer = bytearray()
        self._last_at = 0.0
        self.partial_reads = 0  # codes dropped because their next character came too late
        self.codes = 0

    def feed(self, data: bytes, at: float) -> list[bytes]:
        """Add ``data`` that arrived at ``at`` (seconds, the caller's clock); the codes ended."""
        self.expire(at)
        codes = []
        for byte in data:
            self._buffer.append(byte)
            if self._buffer.endswith(self.terminator):
                del self._buffer[-len(self.terminator) :]
                code = self._strip(bytes(self._buffer))
                self._buffer.clear()
                if code:
                    self.codes += 1
                    codes.append(code)
            elif len(self._buffer) > self._keep:  # far too long: keep the start only
                del self._buffer[self._keep - len(self.terminator) : -len(self.terminator)]
        if data:
            self._last_at = at
        return codes

    def expire(self, now: float) -> None:
        """Drop a partial code whose next character is overdue at ``now``."""
        if self._buffer and now - self._last_at > self.char_timeout_s:
            self.partial_reads += 1
            log.info(
                "scanner: dropped a partial read of %d bytes (%d so far)",
                len(self._buffer),
                self.partial_reads,
            )
            self._buffer.clear()

    def reset(self) -> None:
        """Forget a partial code (the device was closed)."""
        self._buffer.clear()

    def _strip(self, code: bytes) -> bytes:
        code = code.strip(_LINE_ENDS)  # a CR or LF the terminator does not name
        if self.prefix and code.startswith(self.prefix):
            code = code[len(self.prefix) :]
        if self.suffix and code.endswith(self.suffix):
            code = code[: -len(self.suffix)]
        return code


class AssemblingReader:
    """The read loop both kinds of scanner share: wait for bytes, cut them into codes, hand
    them out one per :meth:`read`. A subclass opens the device and says how to wait for bytes.

    :param clock: the clock the device's byte times are on (seconds).
    """

    name = "scanner"

    def __init__(
        self, assembler: PayloadAssembler, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._assembler = assembler
        self._clock = clock
        self._ready: deque[bytes] = deque()

    def read(self, timeout_s: float) -> bytes | None:
        """The next code read, or None when none came within ``timeout_s``.

        :raises ScannerError: the device went away.
        """
        deadline = self._clock() + timeout_s
        while not self._ready:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            for data, at in self._receive(min(remaining, POLL_S)):
                self._ready.extend(self._assembler.feed(data, at))
            self._assembler.expire(self._clock())
        return self._ready.popleft()

    def close(self) -> None:
        """Release the device and forget a partial code (idempotent)."""
        self._assembler.reset()
        self._release()

    @property
    def detail(self) -> str:
        """Where the device is and what it has read, for the ``scanner`` health part."""
        a = self._assembler
        return f"{self.where}: {a.codes} codes, {a.partial_reads} partial reads dropped"

    def _receive(self, timeout_s: float) -> Iterable[tuple[bytes, float]]:
        """Wait up to ``timeout_s`` for bytes; each run of bytes with the time it came."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    @property
    def where(self) -> str:
        """Which device this is (and, open, what it calls itself)."""
        raise NotImplementedError


def assembler_for(
    settings: ScannerSection, max_payload_bytes: int, terminator: bytes | None = None
) -> PayloadAssembler:
    """The assembler ``settings`` describe (``terminator`` overrides the configured one)."""
    return PayloadAssembler(
        terminator if terminator is not None else TERMINATORS[settings.terminator],
        max_payload_bytes=max_payload_bytes,
        char_timeout_s=settings.char_timeout_s,
        prefix=settings.prefix.encode(),
        suffix=settings.suffix.encode(),
    )


def open_code_reader(settings: ScannerSection, max_payload_bytes: int) -> CodeReader | None:
    """The configured scanner, not yet opened (None when ``scanner.type`` is ``none``).

    Building one opens nothing, so a scanner missing at start is a failed health part that the
    scanner thread keeps trying to open, never a kiosk that does not start.
    """
    if settings.type == "hid":
        from kiosk.sensors.scanner_hid import HidScanner

        return HidScanner.from_settings(settings, max_payload_bytes)
    if settings.type == "serial":
        from kiosk.sensors.scanner_serial import SerialScanner

        return SerialScanner.from_settings(settings, max_payload_bytes)
    return None
