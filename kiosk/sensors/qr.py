"""QR decoding of grayscale camera frames, and turning a stream of decodes into scans.

Two decoders are available behind one protocol: ``zxing-cpp`` and ``pyzbar`` (libzbar0). Both
return the raw payload bytes of standard QR codes only. The decoder libraries are imported when
a decoder is made, never when this module is imported.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kiosk.sensors.imagesize import size_refusal

logger = logging.getLogger(__name__)

DECODER_NAMES = ("zxing-cpp", "pyzbar")

_ZBAR_ALL_SYMBOLOGIES = 0
_ZBAR_CFG_ENABLE = 0
_ZBAR_CFG_BINARY = 4
_ZBAR_FOURCC_GREY = 0x30303859  # "Y800"


class DecoderUnavailableError(ImportError):
    """The decoder's library (or the system library it needs) is not installed."""


class QRDecoder(Protocol):
    """Finds QR codes in a frame."""

    name: str

    def decode(self, gray: npt.NDArray[np.uint8]) -> list[bytes]:
        """Raw payload bytes of every QR code found in a HxW uint8 frame, [] if none."""
        ...


class ZxingCppDecoder:
    """QR decoder backed by zxing-cpp (``pip install zxing-cpp``; no wheels for 32-bit ARM)."""

    name = "zxing-cpp"

    def __init__(self) -> None:
        try:
            import zxingcpp
        except ImportError as error:
            raise DecoderUnavailableError(
                "the zxing-cpp decoder needs the zxing-cpp package: pip install zxing-cpp "
                "(no wheels for 32-bit ARM; use the pyzbar decoder there)"
            ) from error
        self._zxingcpp: Any = zxingcpp
        formats = zxingcpp.BarcodeFormat
        self._formats = (formats.QRCodeModel2, formats.QRCodeModel1)

    def decode(self, gray: npt.NDArray[np.uint8]) -> list[bytes]:
        """Raw payload bytes of every QR code found in a HxW uint8 frame, [] if none."""
        _check_gray(gray)
        barcodes = self._zxingcpp.read_barcodes(
            gray, formats=self._formats, try_rotate=False, try_downscale=True, try_invert=True
        )
        return [bytes(barcode.bytes) for barcode in barcodes]

    def __repr__(self) -> str:
        return "<ZxingCppDecoder QR>"


class PyzbarDecoder:
    """QR decoder backed by zbar through pyzbar (``sudo apt install libzbar0``).

    zbar is set to return the payload's bytes as they are (``ZBAR_CFG_BINARY``, libzbar 0.23+);
    without it zbar guesses a character set and re-encodes non-ASCII payloads, which changes the
    bytes. With an older libzbar the guess cannot be switched off and a warning is logged.
    """

    name = "pyzbar"

    def __init__(self) -> None:
        try:
            from pyzbar import wrapper
        except ImportError as error:
            raise DecoderUnavailableError(
                "the pyzbar decoder needs pyzbar and the zbar library: "
                "sudo apt install libzbar0 && pip install pyzbar"
            ) from error
        self._zbar: Any = wrapper
        self._qr_symbology = int(wrapper.ZBarSymbol.QRCODE)
        self._warned_binary_unsupported = False

    def decode(self, gray: npt.NDArray[np.uint8]) -> list[bytes]:
        """Raw payload bytes of every QR code found in a HxW uint8 frame, [] if none."""
        _check_gray(gray)
        zbar = self._zbar
        pixels = np.ascontiguousarray(gray)
        height, width = pixels.shape
        scanner = zbar.zbar_image_scanner_create()
        try:
            self._configure(scanner)
            image = zbar.zbar_image_create()
            try:
                zbar.zbar_image_set_format(image, _ZBAR_FOURCC_GREY)
                zbar.zbar_image_set_size(image, width, height)
                zbar.zbar_image_set_data(
                    image, pixels.ctypes.data_as(ctypes.c_void_p), pixels.nbytes, None
                )
                if zbar.zbar_scan_image(scanner, image) < 0:
                    raise ValueError("zbar rejected the frame format")
                return self._payloads(image)
            finally:
                zbar.zbar_image_destroy(image)
        finally:
            zbar.zbar_image_scanner_destroy(scanner)

    def _configure(self, scanner: Any) -> None:
        set_config = self._zbar.zbar_image_scanner_set_config
        set_config(scanner, _ZBAR_ALL_SYMBOLOGIES, _ZBAR_CFG_ENABLE, 0)
        set_config(scanner, self._qr_symbology, _ZBAR_CFG_ENABLE, 1)
        binary_refused = set_config(scanner, self._qr_symbology, _ZBAR_CFG_BINARY, 1)
        if binary_refused and not self._warned_binary_unsupported:
            self._warned_binary_unsupported = True
            logger.warning(
                "this libzbar cannot return raw bytes; non-ASCII QR payloads may be re-encoded"
            )

    def _payloads(self, image: Any) -> list[bytes]:
        zbar = self._zbar
        payloads = []
        symbol = zbar.zbar_image_first_symbol(image)
        while symbol:
            data = zbar.zbar_symbol_get_data(symbol)
            payloads.append(ctypes.string_at(data, zbar.zbar_symbol_get_data_length(symbol)))
            symbol = zbar.zbar_symbol_next(symbol)
        return payloads

    def __repr__(self) -> str:
        return "<PyzbarDecoder QR>"


def make_decoder(name: str) -> QRDecoder:
    """The decoder called ``name`` (one of ``DECODER_NAMES``).

    :raises ValueError: for an unknown name.
    :raises DecoderUnavailableError: when the decoder's library is not installed.
    """
    if name == ZxingCppDecoder.name:
        return ZxingCppDecoder()
    if name == PyzbarDecoder.name:
        return PyzbarDecoder()
    raise ValueError(f"unknown QR decoder {name!r}; choose one of: {', '.join(DECODER_NAMES)}")


class StillSceneDecoder:
    """A camera stream's decoder that does not decode a frame of a scene that has not changed.

    One pixel in every 8x8 block is compared with the same pixel of the frame before: the scene
    has moved when more than ``moved_share`` of them changed by more than ``threshold`` grey
    levels (sensor noise moves a few, a person or a phone coming into view moves hundreds). A
    frame is skipped, as showing no code, only when nothing has moved for ``settle_frames``
    frames, all of them decoded without a code; every frame is decoded while a code is in view
    (the scan filter must keep seeing a code held up), and one in ``max_skipped + 1`` anyway (a
    scene that changes too slowly to notice). Between people an entrance is still, so this saves
    most of the decoding the frame loop does there.

    :param decoder: the decoder that reads the frames that are not skipped.
    """

    def __init__(
        self,
        decoder: QRDecoder,
        *,
        threshold: int = 32,
        moved_share: float = 0.002,
        settle_frames: int = 3,
        max_skipped: int = 14,
    ) -> None:
        self._decoder = decoder
        self.name = decoder.name
        self._threshold = threshold
        self._moved_share = moved_share
        self._settle_frames = settle_frames
        self._max_skipped = max_skipped
        self._previous: npt.NDArray[np.int16] | None = None
        self._still = 0  # frames since the scene last moved
        self._skipped_in_a_row = 0
        self._code_in_view = False
        self.skipped = 0

    def decode(self, gray: npt.NDArray[np.uint8]) -> list[bytes]:
        """The codes in ``gray``, or [] without decoding it when the scene has not changed."""
        _check_gray(gray)
        samples = gray[4::8, 4::8].astype(np.int16)
        previous, self._previous = self._previous, samples
        if previous is None or previous.shape != samples.shape:
            moved = True
        else:
            changed = np.count_nonzero(np.abs(samples - previous) > self._threshold)
            moved = bool(changed > self._moved_share * samples.size)
        self._still = 0 if moved else self._still + 1
        if (
            not self._code_in_view
            and self._still > self._settle_frames
            and self._skipped_in_a_row < self._max_skipped
        ):
            self._skipped_in_a_row += 1
            self.skipped += 1
            return []
        self._skipped_in_a_row = 0
        payloads = self._decoder.decode(gray)
        self._code_in_view = bool(payloads)
        return payloads

    def __repr__(self) -> str:
        return f"<StillSceneDecoder {self._decoder!r}>"


def _check_gray(gray: npt.NDArray[Any]) -> None:
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(
            f"expected a HxW uint8 grayscale frame, got shape {gray.shape} dtype {gray.dtype}"
        )


@dataclass(frozen=True)
class Scan:
    """One QR code presented to the camera.

    :param payload: the code's bytes, cut to the filter's cap when ``too_large``.
    :param too_large: the code held more bytes than the cap; the kiosk must refuse it.
    :param seen_at: time of the frame where the code first appeared (caller's clock).
    """

    payload: bytes
    too_large: bool
    seen_at: float


class ScanFilter:
    """Turns per-frame decodes into scans: one scan each time a code is presented.

    A code is reported when it first appears. While it stays in view, even if a few frames miss
    it, it is not reported again; it is reported again only once it has been out of view for at
    least ``rearm_after_s``. A different code is reported at once. Payloads longer than
    ``max_payload_bytes`` are reported (once, like any other) truncated and flagged ``too_large``.
    Pure: time comes in with every call.

    >>> scans = ScanFilter(rearm_after_s=2.0)
    >>> [s.payload for s in scans.feed([b"A"], now=0.0)], scans.feed([b"A"], now=0.5)
    ([b'A'], [])
    """

    def __init__(self, *, rearm_after_s: float = 2.0, max_payload_bytes: int = 1024) -> None:
        if rearm_after_s < 0:
            raise ValueError(f"rearm_after_s must not be negative, got {rearm_after_s}")
        if max_payload_bytes < 1:
            raise ValueError(f"max_payload_bytes must be at least 1, got {max_payload_bytes}")
        self.rearm_after_s = rearm_after_s
        self.max_payload_bytes = max_payload_bytes
        self._last_seen: dict[bytes, float] = {}

    def feed(self, payloads: Sequence[bytes], now: float) -> list[Scan]:
        """Record the codes decoded from one frame taken at ``now``; return the new scans."""
        self._forget_codes_absent_since(now - self.rearm_after_s)
        scans = []
        for payload in dict.fromkeys(payloads):
            if payload not in self._last_seen:
                scans.append(self._scan(payload, now))
            self._last_seen[payload] = now
        return scans

    def _forget_codes_absent_since(self, cutoff: float) -> None:
        for payload in [p for p, seen in self._last_seen.items() if seen <= cutoff]:
            del self._last_seen[payload]

    def _scan(self, payload: bytes, now: float) -> Scan:
        too_large = len(payload) > self.max_payload_bytes
        if too_large:
            logger.info(
                "QR payload of %d bytes exceeds the %d-byte cap",
                len(payload),
                self.max_payload_bytes,
            )
        return Scan(payload=payload[: self.max_payload_bytes], too_large=too_large, seen_at=now)


def decode_image_file(
    path: str | Path, decoder: QRDecoder, *, max_pixels: int | None = None
) -> dict[str, Any]:
    """Decode every QR code in an image file, as a JSON-ready dict (``kiosk decode IMAGE``).

    Shape, with every key always present::

        {"file": "badge.png", "decoder": "zxing-cpp",
         "codes": [{"text": "ID:42" or None, "hex": "49443a3432", "bytes": 5}, ...],
         "error": None or "cannot read image: <reason>"}

    ``text`` is the payload decoded as UTF-8, or ``None`` when it is not valid UTF-8; ``hex`` is
    the payload's bytes in lower-case hex; ``bytes`` its length. A missing or unreadable file gives
    ``codes: []`` and an ``error`` message instead of an exception.

    With ``max_pixels`` the size is read from the file's header first
    (:func:`kiosk.sensors.imagesize.size_refusal`) and an image larger than that, or of a format
    whose size is not known, is refused the same way without being decoded.
    """
    import cv2

    result: dict[str, Any] = {
        "file": str(path),
        "decoder": decoder.name,
        "codes": [],
        "error": None,
    }
    image_path = Path(path)
    if not image_path.is_file():
        reason = "is a directory" if image_path.is_dir() else "no such file"
        result["error"] = f"cannot read image: {reason}"
        return result
    try:
        encoded = np.fromfile(image_path, dtype=np.uint8)
    except OSError as error:
        result["error"] = f"cannot read image: {error.strerror or error}"
        return result
    if max_pixels is not None:
        refusal = size_refusal(encoded.tobytes(), max_pixels)
        if refusal:
            result["error"] = f"cannot read image: {refusal}"
            return result
    gray = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE) if encoded.size else None
    if gray is None:
        result["error"] = "cannot read image: not an image in a format OpenCV reads"
        return result
    frame = np.asarray(gray, dtype=np.uint8)
    result["codes"] = [_describe_payload(payload) for payload in decoder.decode(frame)]
    return result


def _describe_payload(payload: bytes) -> dict[str, Any]:
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"text": text, "hex": payload.hex(), "bytes": len(payload)}
