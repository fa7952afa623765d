"""Keyboard layouts for keyboard-wedge scanners: Linux keycodes → the characters they type.

A USB HID scanner "types" a code as key presses, choosing the keys for the keyboard layout it
is set to (``scanner.layout``): ``us`` (US QWERTY, most scanners' default), ``de`` (German
QWERTZ) and ``fr`` (French AZERTY). Shift, Caps Lock and AltGr (right Alt) are followed; the
keypad's digits and signs type as digits and signs whatever Num Lock says. A dead key (``^``,
``´``, ``` ` ``` on ``de``; ``^``, ``¨``, ``~``, ``` ` ``` on ``fr``) types its accent and swallows
the space that follows it, as a scanner types a lone accent; it is not composed with a letter
(scanners type the letters of QR payloads as plain letters). Keycodes are the kernel's
(``linux/input-event-codes.h``), a stable interface, so this module needs no evdev.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

KEY_ESC, KEY_TAB, KEY_ENTER, KEY_SPACE = 1, 15, 28, 57
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_RIGHTALT, KEY_CAPSLOCK = 42, 54, 100, 58
KEY_KPENTER = 96
KEY_UP, KEY_DOWN = 0, 1  # an EV_KEY event's value; 2 is autorepeat

LAYOUTS: Final = ("us", "de", "fr")

# The main block's rows: (first keycode, unshifted, shifted, AltGr); a space in the AltGr
# string is "nothing". Keycodes run on within a row.
_ROWS: Final[dict[str, tuple[tuple[int, str, str, str], ...]]] = {
    "us": (
        (2, "1234567890-=", "!@#$%^&*()_+", ""),
        (16, "qwertyuiop[]", "QWERTYUIOP{}", ""),
        (30, "asdfghjkl;'`", 'ASDFGHJKL:"~', ""),
        (43, "\\", "|", ""),
        (44, "zxcvbnm,./", "ZXCVBNM<>?", ""),
        (86, "\\", "|", ""),
    ),
    "de": (
        (2, "1234567890ß´", '!"§$%&/()=?`', " ²³   {[]}\\"),
        (16, "qwertzuiopü+", "QWERTZUIOPÜ*", "@ €        ~"),
        (30, "asdfghjklöä^", "ASDFGHJKLÖÄ°", ""),
        (43, "#", "'", ""),
        (44, "yxcvbnm,.-", "YXCVBNM;:_", "      µ"),
        (86, "<", ">", "|"),
    ),
    "fr": (
        (2, "&é\"'(-è_çà)=", "1234567890°+", " ~#{[|`\\^@]}"),
        (16, "azertyuiop^$", "AZERTYUIOP¨£", "  €        ¤"),
        (30, "qsdfghjklmù²", "QSDFGHJKLM% ", ""),
        (43, "*", "µ", ""),
        (44, "wxcvbn,;:!", "WXCVBN?./§", ""),
        (86, "<", ">", ""),
    ),
}
# Dead keys: (keycode, which level: 0 plain, 1 shifted, 2 AltGr).
_DEAD: Final[dict[str, frozenset[tuple[int, int]]]] = {
    "us": frozenset(),
    "de": frozenset({(13, 0), (13, 1), (41, 0)}),
    "fr": frozenset({(26, 0), (26, 1), (3, 2), (8, 2)}),
}
# The keypad, the same in every layout.
_KEYPAD: Final = {
    71: "7", 72: "8", 73: "9", 74: "-", 75: "4", 76: "5", 77: "6", 78: "+",
    79: "1", 80: "2", 81: "3", 82: "0", 83: ".", 98: "/", 55: "*",
}  # fmt: skip
_LINE_KEYS: Final = {KEY_ENTER: "\r", KEY_KPENTER: "\r", KEY_TAB: "\t", KEY_SPACE: " "}


@dataclass(frozen=True)
class Keymap:
    """One layout: each keycode's characters without and with Shift, and with AltGr."""

    name: str
    levels: dict[int, tuple[str, str, str]]
    dead: frozenset[tuple[int, int]]


def keymap(layout: str) -> Keymap:
    """The keymap called ``layout`` (one of :data:`LAYOUTS`).

    :raises ValueError: for another name.
    """
    if layout not in _ROWS:
        raise ValueError(f"unknown keyboard layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    levels: dict[int, tuple[str, str, str]] = {}
    for first, plain, shifted, altgr in _ROWS[layout]:
        for i, char in enumerate(plain):
            extra = altgr[i] if i < len(altgr) and altgr[i] != " " else ""
            upper = shifted[i] if shifted[i] != " " else ""
            levels[first + i] = (char, upper, extra)
    return Keymap(layout, levels, _DEAD[layout])


@dataclass
class KeyTyper:
    """Turns one keyboard's key events into the characters typed, following the modifiers."""

    keys: Keymap
    _shift: set[int] = field(default_factory=set)
    _altgr: bool = False
    _caps: bool = False
    _after_dead: bool = False

    def key(self, code: int, value: int) -> str:
        """The text typed by one EV_KEY event (``value``: 1 down, 0 up, 2 repeat); "" if none."""
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            if value == KEY_DOWN:
                self._shift.add(code)
            elif value == KEY_UP:
                self._shift.discard(code)
            return ""
        if code == KEY_RIGHTALT:
            self._altgr = value != KEY_UP
            return ""
        if value != KEY_DOWN:
            return ""
        if code == KEY_CAPSLOCK:
            self._caps = not self._caps
            return ""
        after_dead, self._after_dead = self._after_dead, False
        if code in _LINE_KEYS:
            return "" if after_dead and code == KEY_SPACE else _LINE_KEYS[code]
        if code in _KEYPAD:
            return _KEYPAD[code]
        return self._typed(code)

    def reset(self) -> None:
        """Forget held modifiers and a pending dead key (a device reopened)."""
        self._shift.clear()
        self._altgr = self._caps = self._after_dead = False

    def _typed(self, code: int) -> str:
        chars = self.keys.levels.get(code)
        if chars is None:
            return ""
        plain, shifted, altgr = chars
        if self._altgr:
            level, char = 2, altgr
        else:
            shift = bool(self._shift)
            if self._caps and plain.isalpha():
                shift = not shift
            level, char = (1, shifted) if shift else (0, plain)
        self._after_dead = (code, level) in self.keys.dead
        return char
