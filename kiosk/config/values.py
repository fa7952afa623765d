"""Checks for the kinds of string and number a key may hold: ids, opening hours, secrets, GPIO
pins and frame sources. Each returns what is wrong with a value, or None."""

from __future__ import annotations

import re

from kiosk.config.keys import Check
from kiosk.ids import SEGMENT

MIN_SALT_CHARS = 16  # the subject salt is an HMAC key (kiosk.decide.privacy.Pseudonymizer)
MIN_TOKEN_CHARS = 20  # API tokens and command keys: about 120 bits when random
RESERVED_IDS = ("central", "operator", "homeassistant", "site")  # broker users and topics
BCM_PINS = range(2, 28)  # GPIO2..GPIO27 on the 40-pin header; 0 and 1 are the HAT EEPROM bus


def id_check(value: str) -> str | None:
    """A kiosk, site or area id: short, lower case, usable in MQTT topics."""
    if SEGMENT.match(value):
        return None
    return "must be 1-32 characters of a-z, 0-9 and '-', starting with a letter or digit"


def kiosk_id_check(value: str) -> str | None:
    """An id that is not one of the broker's own users."""
    if value in RESERVED_IDS:
        return f"is reserved for the broker's {value} user; choose another kiosk id"
    return id_check(value)


def hours_check(value: str) -> str | None:
    """``HH:MM-HH:MM`` in local time, or empty."""
    if not value:
        return None
    match = re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value)
    return None if match else "must be HH:MM-HH:MM (local time), or empty"


def secret_check(minimum: int) -> Check:
    """A secret of at least ``minimum`` characters, or empty."""

    def check(value: str) -> str | None:
        if not value or len(value) >= minimum:
            return None
        return (
            f"is too short ({len(value)} characters): use at least {minimum} random characters,"
            " e.g. `openssl rand -base64 32`"
        )

    return check


def pin_check(value: int | bool) -> str | None:
    """A BCM GPIO number on the header, or false (not fitted)."""
    if value is False or value in BCM_PINS:
        return None
    return f"must be a BCM GPIO number from {BCM_PINS.start} to {BCM_PINS.stop - 1}, or false"


def source_check(value: str) -> str | None:
    """A frame source the camera code can open."""
    if value == "picamera2" or (value.split(":", 1)[0] in ("opencv", "folder") and ":" in value):
        return None
    return "must be 'picamera2', 'opencv:<index, /dev/videoN or file>' or 'folder:<path>'"


def certificate_types_check(value: tuple[str, ...]) -> str | None:
    """EU DCC certificate types: v (vaccination), t (test), r (recovery), at least one."""
    unknown = [kind for kind in value if kind not in ("v", "t", "r")]
    if unknown or not value:
        return f"must list some of 'v', 't', 'r' (got {', '.join(map(repr, unknown)) or 'none'})"
    return None


def country_codes_check(value: tuple[str, ...]) -> str | None:
    """ISO 3166-1 alpha-2 country codes (two letters; compared without regard to case)."""
    wrong = [code for code in value if len(code) != 2 or not code.isascii() or not code.isalpha()]
    if wrong:
        return f"must be two letters each, such as 'VN' (got {', '.join(map(repr, wrong))})"
    return None
