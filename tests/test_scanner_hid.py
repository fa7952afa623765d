"""USB keyboard-wedge scanners: keycodes to text in each layout, and a virtual keyboard made
with ``evdev.UInput`` typing codes into the real evdev reader (grab, partial reads, unplug).

The virtual keyboard needs ``/dev/uinput``, which a kernel built without ``CONFIG_INPUT_UINPUT``
cannot have (the VMs this project runs on are such kernels): those tests are skipped there
with that reason, and fail under CI on a kernel that has uinput but no usable device.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.sensors.scanner import PayloadAssembler, ScannerError
from kiosk.sensors.scanner_hid import HidScanner
from kiosk.sensors.scanner_keymaps import (
    KEY_ENTER,
    KEY_LEFTSHIFT,
    KEY_RIGHTALT,
    LAYOUTS,
    KeyTyper,
    keymap,
)
from tests.support import in_ci

evdev = pytest.importorskip("evdev")  # Linux only, like the scanners
e = evdev.ecodes
NAME = f"kiosk test scanner {os.getpid()}"
CODE = "KP1:6BF+X/N%T*3.D-$A 42"  # Base45's signs: each layout types them its own way


def typed(layout: str, keys: str) -> str:
    """What pressing ``keys`` types: chords split by spaces, the keys of one by ``+``, each key
    by its name without ``KEY_`` (``LEFTSHIFT+K``), modifiers first."""
    typer = KeyTyper(keymap(layout))
    text = ""
    for chord in keys.split():
        codes = [e.ecodes[f"KEY_{name}"] for name in chord.split("+")]
        for code in codes:
            text += typer.key(code, 1)
        for code in reversed(codes):
            text += typer.key(code, 0)
    return text


@pytest.mark.parametrize(
    ("layout", "keys", "text"),
    [
        ("us", "LEFTSHIFT+K P RIGHTSHIFT+SEMICOLON", "Kp:"),
        ("de", "Y Z LEFTSHIFT+DOT RIGHTALT+Q", "zy:@"),
        ("de", "LEFTSHIFT+7 SLASH RIGHTALT+MINUS", "/-\\"),
        ("fr", "Q LEFTSHIFT+1 DOT RIGHTALT+0", "a1:@"),
        ("fr", "1 4 LEFTSHIFT+APOSTROPHE", "&'%"),
        ("us", "CAPSLOCK A LEFTSHIFT+A 1", "Aa1"),
        ("us", "KP4 KPPLUS KPENTER TAB", "4+\r\t"),
        ("de", "GRAVE SPACE SPACE", "^ "),  # a dead key swallows the space after it
    ],
)
def test_keys_type_the_layouts_characters(layout: str, keys: str, text: str) -> None:
    assert typed(layout, keys) == text


def test_the_keycodes_are_the_kernels() -> None:
    assert (KEY_ENTER, KEY_LEFTSHIFT, KEY_RIGHTALT) == (
        e.KEY_ENTER,
        e.KEY_LEFTSHIFT,
        e.KEY_RIGHTALT,
    )
    assert keymap("us").levels[e.KEY_Q][0] == "q" and keymap("us").levels[e.KEY_M][0] == "m"


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="us, de, fr"):
        keymap("dvorak")


# --- a virtual keyboard through the kernel's input layer -------------------------------------


def _kernel_lacks_uinput() -> bool:
    try:
        config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        return False
    return "# CONFIG_INPUT_UINPUT is not set" in config


def need_uinput() -> None:
    """Skip (or, under CI on a kernel that has uinput, fail) without a usable /dev/uinput."""
    if os.access("/dev/uinput", os.R_OK | os.W_OK):
        return
    if _kernel_lacks_uinput():
        pytest.skip(
            "this kernel is built without uinput (CONFIG_INPUT_UINPUT): no virtual keyboard"
        )
    problem = "/dev/uinput is missing or not writable: run `modprobe uinput` as root"
    if in_ci():
        pytest.fail(problem)
    pytest.skip(problem)


def _chars(layout: str) -> dict[str, tuple[int, int]]:
    """Each character of ``layout`` → (keycode, 0 plain, 1 with Shift, 2 with AltGr)."""
    found: dict[str, tuple[int, int]] = {"\r": (e.KEY_ENTER, 0), " ": (e.KEY_SPACE, 0)}
    for code, levels in keymap(layout).levels.items():
        for level, char in enumerate(levels):
            if char and char not in found:
                found[char] = (code, level)
    return found


class Keyboard:
    """A virtual USB keyboard-wedge scanner."""

    def __init__(self) -> None:
        keys = list(range(1, 120))  # the main block, the keypad, the modifiers
        self.uinput = evdev.UInput({e.EV_KEY: keys}, name=NAME)

    @property
    def path(self) -> str:
        return str(self.uinput.device.path)

    def type(self, text: str, layout: str = "us") -> None:
        chars = _chars(layout)
        for char in text:
            code, level = chars[char]
            modifier = {0: None, 1: e.KEY_LEFTSHIFT, 2: e.KEY_RIGHTALT}[level]
            presses = [modifier, code] if modifier is not None else [code]
            for key in presses:
                self.uinput.write(e.EV_KEY, key, 1)
            for key in reversed(presses):
                self.uinput.write(e.EV_KEY, key, 0)
            self.uinput.syn()

    def unplug(self) -> None:
        self.uinput.close()


@contextlib.contextmanager
def keyboard() -> Iterator[Keyboard]:
    need_uinput()
    board = Keyboard()
    try:
        yield board
    finally:
        board.unplug()


def hid(device: str, layout: str = "us", char_timeout_s: float = 1.0) -> HidScanner:
    assembler = PayloadAssembler(b"\r", max_payload_bytes=1024, char_timeout_s=char_timeout_s)
    return HidScanner(device, KeyTyper(keymap(layout)), assembler)


@contextlib.contextmanager
def opened(reader: HidScanner) -> Iterator[HidScanner]:
    reader.open()
    try:
        yield reader
    finally:
        reader.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_code_typed_in_the_scanners_layout_reads_back(layout: str) -> None:
    with keyboard() as board, opened(hid(board.path, layout)) as reader:
        board.type(CODE + "\r", layout)
        assert reader.read(5) == CODE.encode()


def test_a_partial_read_is_dropped_not_merged_with_the_next() -> None:
    with keyboard() as board, opened(hid(board.path, char_timeout_s=0.05)) as reader:
        board.type("S-00")
        assert reader.read(0.3) is None  # waits past the character timeout
        board.type("S-0002\r")
        assert reader.read(5) == b"S-0002"
        assert "1 partial reads dropped" in reader.detail


def test_the_grabbed_scanner_types_into_nothing_else() -> None:
    with keyboard() as board:
        other = evdev.InputDevice(board.path)  # a console or the display's browser
        try:
            with opened(hid(board.path)) as reader:
                board.type("S-0001\r")
                assert reader.read(5) == b"S-0001"
                assert select.select([other.fd], [], [], 0.2)[0] == []
                with pytest.raises(ScannerError, match="grabbed"):
                    hid(board.path).open()
            board.type("S-0002\r")  # released: the other reader sees keys again
            assert select.select([other.fd], [], [], 5)[0] == [other.fd]
        finally:
            other.close()


def test_an_unplugged_scanner_is_found_again_by_name_when_plugged_back() -> None:
    reader = hid(f"name:{NAME.upper()}")
    with keyboard() as board:
        reader.open()
        assert board.path in reader.detail
        board.type("S-0001\r")
        assert reader.read(5) == b"S-0001"
    with pytest.raises(ScannerError, match="lost"):
        reader.read(5)
    reader.close()
    with pytest.raises(ScannerError, match="no input device named"):
        reader.open()
    with keyboard() as board, opened(reader):
        board.type("S-0002\r")
        assert reader.read(5) == b"S-0002"


def test_a_missing_scanner_is_an_error_that_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "usb-scanner-event-kbd"
    with pytest.raises(ScannerError, match=f"cannot open {missing}"):
        hid(str(missing)).open()
    with pytest.raises(ScannerError, match="no input device named like 'no such scanner'"):
        hid("name:No Such Scanner").open()
