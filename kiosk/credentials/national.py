"""The personal QR code of Vietnam's national COVID-19 apps, read defensively and forgotten fast.

Bluezone, NCovi, PC-Covid (and the chip ID card, CCCD) show a personal QR code that is reported
to be a plain, **unsigned** string of ``|``-separated fields: an ID number (CMND, 9 digits, or
CCCD, 12 digits), the full name, the date of birth, and depending on the app and its version a
gender, an address, a declaration type and a date. No published specification was found; the
layouts below are what this module accepts, not a standard::

    ID|[second ID or empty|]NAME|[gender|]BIRTH DATE|...anything else...
    APP|ID|NAME|BIRTH DATE|...            (a leading app marker, e.g. "PC-COVID")
    CCCD|CMND or empty|NAME|BIRTH|GENDER|ADDRESS|ISSUE DATE   (the chip ID card's own code)

**Such a code proves nothing.** Anyone can type one into a QR generator: it is not signed, not
bound to the person holding it, and says nothing reliable about health. The kiosk may use it
only as configured by ``NationalPolicy``, and every event it causes must be marked as an
unsigned credential (``EVENT_CREDENTIAL``), so that central never mistakes it for a badge.

The point of this module is to keep personal data out of the kiosk's records. A parsed code
(``NationalQr``) keeps the ID number only in a private slot, to hash it with the organisation's
secret salt (``subject_hash``), plus the app, the declaration type and the declaration time when
they can be recognised (``declared_at``: the date and, where the code carries one, the time of
day, read in Vietnam's time zone; a date alone counts from the start of that day, so a
declaration is never taken for newer than it is). The name, birth date, gender and address
are checked for shape while parsing and then dropped: they are never attributes and never in
``repr()``. Callers must not log or store the raw payload either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import ClassVar, Final, NoReturn

MAX_PAYLOAD_BYTES: Final = 512
MIN_FIELDS: Final = 3
MAX_FIELDS: Final = 12
MAX_FIELD_CHARS: Final = 200
EVENT_CREDENTIAL: Final = "national-unsigned"
"""The credential kind events must carry for a decision based on a national code."""

EARLIEST_DECLARATION: Final = date(2020, 1, 1)
"""Dates before this cannot be a COVID-19 declaration and are not reported as one."""

_ID_NUMBER = re.compile(r"[0-9]{9}|[0-9]{12}")
_DATE_FORMATS = (
    re.compile(r"(?P<d>[0-9]{2})(?P<m>[0-9]{2})(?P<y>[0-9]{4})"),
    re.compile(r"(?P<d>[0-9]{1,2})[/.-](?P<m>[0-9]{1,2})[/.-](?P<y>[0-9]{4})"),
    re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"),
)
_TIME_SUFFIX = re.compile(r"(?:[ T](?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2}))?)?")
VIETNAM = timezone(timedelta(hours=7), "ICT")
"""The national apps' clock: Vietnam's time (UTC+7, no daylight saving)."""
_YEAR = re.compile(r"[0-9]{4}")
_NAME_PUNCTUATION = frozenset(".'-")
_GENDERS = frozenset({"nam", "nu", "male", "female", "m", "f", "khac", "other"})


class NationalPolicy(StrEnum):
    """How a kiosk handles a national app code; it proves nothing, so the site decides.

    ``grant`` opens the gate (the code is recorded as an unsigned credential), ``refer`` sends
    the person to reception without opening, ``deny`` refuses it like an unknown code.
    """

    GRANT = "grant"
    REFER = "refer"
    DENY = "deny"


class NationalApp(StrEnum):
    """Which app (or card) the code came from, when it says so or its layout shows it."""

    BLUEZONE = "bluezone"
    NCOVI = "ncovi"
    PC_COVID = "pc-covid"
    VHD = "vhd"
    CCCD_CARD = "cccd-card"


class DeclarationType(StrEnum):
    """The kind of declaration a code carries, when one of the known markers is present."""

    HEALTH = "health"
    DOMESTIC = "domestic"
    ENTRY = "entry"
    MOVEMENT = "movement"


_APP_MARKERS: Final = {
    "bluezone": NationalApp.BLUEZONE,
    "ncovi": NationalApp.NCOVI,
    "pccovid": NationalApp.PC_COVID,
    "vhd": NationalApp.VHD,
    "vietnamhealthdeclaration": NationalApp.VHD,
}
_DECLARATION_MARKERS: Final = {
    "kbyt": DeclarationType.HEALTH,
    "khaibaoyte": DeclarationType.HEALTH,
    "healthdeclaration": DeclarationType.HEALTH,
    "noidia": DeclarationType.DOMESTIC,
    "khaibaonoidia": DeclarationType.DOMESTIC,
    "domestic": DeclarationType.DOMESTIC,
    "nhapcanh": DeclarationType.ENTRY,
    "khaibaonhapcanh": DeclarationType.ENTRY,
    "entry": DeclarationType.ENTRY,
    "dichuyen": DeclarationType.MOVEMENT,
    "dichuyennoidia": DeclarationType.MOVEMENT,
    "khaibaodichuyen": DeclarationType.MOVEMENT,
    "movement": DeclarationType.MOVEMENT,
}


class NationalQr:
    """What the kiosk may keep from a national app code: never the name or the birth date.

    The ID number is held privately, only to be hashed; it is not shown by ``repr()``.
    """

    __slots__ = ("__app", "__declaration", "__declared_at", "__id_number")
    signed: ClassVar[bool] = False
    """Always False: nothing in the code proves who issued it."""

    def __init__(
        self,
        id_number: str,
        *,
        app: NationalApp | None = None,
        declaration: DeclarationType | None = None,
        declared_at: datetime | None = None,
    ) -> None:
        if not _ID_NUMBER.fullmatch(id_number):
            raise ValueError("an ID number has 9 (CMND) or 12 (CCCD) digits")
        self.__id_number = id_number
        self.__app = app
        self.__declaration = declaration
        if declared_at is not None and declared_at.tzinfo is None:
            raise ValueError("declared_at must be timezone-aware")
        self.__declared_at = declared_at

    @property
    def app(self) -> NationalApp | None:
        """The app (or the chip ID card) the code came from, when recognisable."""
        return self.__app

    @property
    def declaration(self) -> DeclarationType | None:
        """The declaration type, when the code carries a known marker."""
        return self.__declaration

    @property
    def declared_at(self) -> datetime | None:
        """When the declaration was made, only next to an app or declaration marker: the
        code's time of day, or the start of its day (Vietnam's time), timezone-aware."""
        return self.__declared_at

    @property
    def declared_on(self) -> date | None:
        """The declaration's day in Vietnam's time, only next to an app or declaration marker."""
        return None if self.__declared_at is None else self.__declared_at.astimezone(VIETNAM).date()

    @property
    def id_kind(self) -> str:
        """``cmnd`` for a 9-digit ID number, ``cccd`` for a 12-digit one."""
        return "cmnd" if len(self.__id_number) == 9 else "cccd"

    def subject_hash(self, salt: bytes) -> str:
        """The pseudonymous subject id: ``n-`` and 20 hex digits of HMAC-SHA256 of the ID.

        ID numbers are few (about 10⁹ CMNDs), so without a secret salt of at least 16 bytes
        the hash could be reversed by trying them all.
        """
        if len(salt) < 16:
            raise ValueError("the subject salt must be at least 16 bytes")
        digest = hmac.new(salt, self.__id_number.encode("ascii"), hashlib.sha256).hexdigest()
        return "n-" + digest[:20]

    def __repr__(self) -> str:
        declared = self.declared_at.isoformat() if self.declared_at else None
        return (
            f"NationalQr(id_kind={self.id_kind!r}, app={self.app}, "
            f"declaration={self.declaration}, declared_at={declared}, signed=False)"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("a NationalQr holds an ID number and must not be pickled")


def parse_national_qr(payload: bytes) -> NationalQr | None:
    """The national app code in ``payload``, or None when it is not plausibly one.

    Refused: over ``MAX_PAYLOAD_BYTES``, not UTF-8, control or invisible formatting characters,
    fewer than ``MIN_FIELDS`` or more than ``MAX_FIELDS`` fields, an over-long field, no 9- or
    12-digit ID number first (after an optional app marker), no full name (two or more words of
    letters) after it, no valid birth date (or birth year) after the name.
    """
    fields = _split(payload)
    if fields is None:
        return None
    position = 0
    app = _APP_MARKERS.get(_marker(fields[0]))
    if app is not None:
        position = 1
    if position >= len(fields) or not _ID_NUMBER.fullmatch(fields[position]):
        return None
    id_number = fields[position]
    position += 1
    second = fields[position] if position < len(fields) else None
    if second == "" or (second and _ID_NUMBER.fullmatch(second)):
        position += 1  # the old CMND next to a CCCD, or its empty place
    if position >= len(fields) or not _is_name(fields[position]):
        return None
    position += 1
    if position < len(fields) and _marker(fields[position]) in _GENDERS:
        position += 1
    if position >= len(fields) or not _is_birth(fields[position]):
        return None
    rest = fields[position + 1 :]
    if app is None and _is_cccd_card(fields):
        return NationalQr(id_number, app=NationalApp.CCCD_CARD)
    declaration = None
    for value in rest:
        marker = _marker(value)
        app = app or _APP_MARKERS.get(marker)
        declaration = declaration or _DECLARATION_MARKERS.get(marker)
    declared_at = None
    if app is not None or declaration is not None:
        moments = [m for m in map(_parse_moment, rest) if m is not None]
        if moments and moments[-1].date() >= EARLIEST_DECLARATION:
            declared_at = moments[-1]
    return NationalQr(id_number, app=app, declaration=declaration, declared_at=declared_at)


def _split(payload: bytes) -> list[str] | None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = unicodedata.normalize("NFC", text.strip(" \r\n"))
    if any(unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn"} for char in text):
        return None
    fields = [field.strip() for field in text.split("|")]
    if not MIN_FIELDS <= len(fields) <= MAX_FIELDS:
        return None
    if any(len(field) > MAX_FIELD_CHARS for field in fields):
        return None
    return fields


def _marker(text: str) -> str:
    """Lower case, no accents (đ → d), letters and digits only: "PC-Covid" → "pccovid"."""
    stripped = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(char for char in stripped.lower() if char.isascii() and char.isalnum())


def _is_name(text: str) -> bool:
    words = text.split()
    if len(words) < 2 or len(text) > 100:
        return False
    for word in words:
        letters = [char for char in word if char not in _NAME_PUNCTUATION]
        if not letters or not all(unicodedata.category(char)[0] in "LM" for char in letters):
            return False
    return True


def _parse_date(text: str) -> date | None:
    moment = _parse_moment(text)
    return None if moment is None else moment.date()


def _parse_moment(text: str) -> datetime | None:
    """A date with an optional time of day, in Vietnam's time; a date alone: its start."""
    for pattern in _DATE_FORMATS:
        match = pattern.match(text)
        clock = _TIME_SUFFIX.fullmatch(text, match.end()) if match else None
        if match and clock:
            try:
                day = date(int(match["y"]), int(match["m"]), int(match["d"]))
                at = time(int(clock["H"] or 0), int(clock["M"] or 0), int(clock["S"] or 0))
            except ValueError:
                return None
            return datetime.combine(day, at, VIETNAM) if 1900 <= day.year <= 2100 else None
    return None


def _is_birth(text: str) -> bool:
    if _YEAR.fullmatch(text):
        return 1900 <= int(text) <= 2100
    return _parse_date(text) is not None


def _is_cccd_card(fields: list[str]) -> bool:
    """The chip ID card's layout: its last date is the card's issue date, not a declaration."""
    return (
        len(fields) == 7
        and len(fields[0]) == 12
        and (fields[1] == "" or len(fields[1]) == 9)
        and _marker(fields[4]) in _GENDERS
        and _parse_date(fields[6]) is not None
    )
