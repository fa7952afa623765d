"""What a verification of an EU DCC (``HC1:``) says: the outcome, the failing step, and the
certificate's one entry for the rules that decide on it.

The holder's name and date of birth are kept out of ``repr`` so that logging a result logs no
personal data; they are there only to derive a salted subject id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Literal

CertificateType = Literal["v", "t", "r"]
TYPES: tuple[CertificateType, ...] = ("v", "t", "r")

# Steps in the order they run; the first failing one is the result's step and reason.
STEPS = (
    "size",
    "prefix",
    "base45",
    "zlib",
    "cose",
    "cwt",
    "trust",
    "signature",
    "dsc_validity",
    "expiry",
    "schema",
    "key_usage",
)
REASONS: Mapping[str, str] = MappingProxyType(
    {
        "size": "dcc_malformed",
        "prefix": "dcc_malformed",
        "base45": "dcc_malformed",
        "zlib": "dcc_malformed",
        "cose": "dcc_malformed",
        "cwt": "dcc_malformed",
        "trust": "dcc_not_trusted",
        "signature": "dcc_signature",
        "dsc_validity": "dcc_not_trusted",
        "expiry": "dcc_expired",
        "schema": "dcc_schema",
        "key_usage": "dcc_key_usage",
    }
)
NOT_YET_VALID = "dcc_not_yet_valid"  # the expiry step's reason when the clock is before iat


@dataclass(frozen=True)
class Holder:
    """The person named (ICAO-standardised names, date of birth as written). Never log it."""

    family: str = field(repr=False)
    given: str = field(repr=False)
    dob: str = field(repr=False)

    @property
    def initials(self) -> str:
        """Given and family name initials, the most a display may show (``"J.D."``)."""
        return "".join(f"{name[0]}." for name in (self.given, self.family) if name)


@dataclass(frozen=True)
class Vaccination:
    """A vaccination entry: dose ``dose`` of ``doses`` of product ``product`` on ``date``."""

    disease: str
    product: str
    dose: int
    doses: int
    date: date | None
    country: str


@dataclass(frozen=True)
class DiagnosticTest:
    """A test entry: type (``tt``, e.g. LP6464-4 NAAT), result (``tr``, 260415000 = negative),
    sample time."""

    disease: str
    test_type: str
    result: str
    sampled_at: datetime | None
    country: str


@dataclass(frozen=True)
class Recovery:
    """A recovery entry: first positive test, and the validity the issuer gave."""

    disease: str
    first_positive: date | None
    valid_from: date | None
    valid_until: date | None
    country: str


Entry = Vaccination | DiagnosticTest | Recovery


@dataclass(frozen=True)
class DccResult:
    """The outcome of verifying one ``HC1:`` code.

    ``reason`` is ``"ok"`` or a stable code (``dcc_malformed``, ``dcc_not_trusted``,
    ``dcc_signature``, ``dcc_expired``, ``dcc_not_yet_valid``, ``dcc_schema``,
    ``dcc_key_usage``); ``step`` names the first failing step (None when valid); ``steps`` has
    every step that ran and whether it passed (a step not run is absent). ``entry`` and
    ``holder`` are set only for a valid code.
    """

    valid: bool
    reason: str
    step: str | None
    steps: Mapping[str, bool]
    type: CertificateType | None = None
    country: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    kid: bytes | None = None
    schema_version: str | None = None
    entry: Entry | None = None
    holder: Holder | None = None

    def passed(self, step: str) -> bool:
        """Whether ``step`` ran and passed."""
        return self.steps.get(step, False)

    def summary(self) -> dict[str, object]:
        """The result without personal data, for ``kiosk dcc verify`` and logs."""
        return {
            "valid": self.valid,
            "reason": self.reason,
            "type": self.type,
            "country": self.country,
            "step": self.step,
        }
