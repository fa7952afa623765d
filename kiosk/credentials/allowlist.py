"""Allowlist credentials: a badge id printed in the QR code, looked up in a local list.

The list is a CSV (``id,kind,valid_until``)::

    # id,kind,valid_until   (valid_until: ISO date or date-time, UTC; empty = no expiry)
    S-0001,staff,
    V-7F3A,visitor,2026-12-01T18:00:00
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from kiosk.ids import TOKEN

BADGE_ID = TOKEN  # a badge id has the form of every token the kiosk handles
KINDS = ("staff", "visitor", "contractor")


class CredentialStatus(StrEnum):
    """The verdict on a scanned payload (signed passes use the same codes as PassStatus)."""

    VALID = "valid"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_SITE = "wrong_site"
    REVOKED = "revoked"
    # EU DCC (HC1:) codes: the verifier's reasons, the [dcc] rules', and with_pass's second scan
    DCC_MALFORMED = "dcc_malformed"
    DCC_NOT_TRUSTED = "dcc_not_trusted"
    DCC_SIGNATURE = "dcc_signature"
    DCC_EXPIRED = "dcc_expired"
    DCC_NOT_YET_VALID = "dcc_not_yet_valid"
    DCC_SCHEMA = "dcc_schema"
    DCC_KEY_USAGE = "dcc_key_usage"
    DCC_RULE_TYPE = "dcc_rule_type"
    DCC_RULE_COUNTRY = "dcc_rule_country"
    DCC_RULE_INCOMPLETE = "dcc_rule_incomplete"
    DCC_RULE_TOO_RECENT = "dcc_rule_too_recent"
    DCC_RULE_TEST_POSITIVE = "dcc_rule_test_positive"
    DCC_RULE_TEST_TOO_OLD = "dcc_rule_test_too_old"
    DCC_RULE_RECOVERY_NOT_VALID = "dcc_rule_recovery_not_valid"
    DCC_REQUIRED = "dcc_required"  # a valid pass; now the certificate
    DCC_PASS_REQUIRED = "dcc_pass_required"  # a valid certificate; now the pass


class AllowlistError(ValueError):
    """The allowlist file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class AllowlistEntry:
    """One badge: its id, holder kind and optional expiry (UTC)."""

    badge_id: str
    kind: str
    valid_until: datetime | None


@dataclass(frozen=True)
class CredentialCheck:
    """The result of checking one payload, whatever kind of credential it was.

    ``badge_id`` is the identifier the subject id is derived from (a legacy badge id, a
    pass's pseudonymous subject, or a national ID number's salted hash), set once the payload
    was well formed. ``unsigned`` marks a credential that proves nothing by itself.
    """

    status: CredentialStatus
    badge_id: str | None = None
    kind: str | None = None
    credential_type: str = "badge"  # badge, pass, national or dcc
    unsigned: bool = False
    pass_id: str | None = None
    health_declared_at: datetime | None = None
    meeting: str | None = None


class Allowlist:
    """Badge ids allowed through, keyed by id."""

    def __init__(self, entries: dict[str, AllowlistEntry]) -> None:
        self._entries = dict(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, badge_id: str) -> AllowlistEntry | None:
        """The entry for a badge id, or None."""
        return self._entries.get(badge_id)


def parse_allowlist(text: str, source: str = "<allowlist>") -> Allowlist:
    """Parse allowlist CSV text; raise AllowlistError naming the line of the first bad row."""
    entries: dict[str, AllowlistEntry] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 3:
            raise AllowlistError(f"{source}:{number}: expected 3 columns id,kind,valid_until")
        badge_id, kind, until = (cell.strip() for cell in row)
        if number == 1 and badge_id == "id":
            continue
        if not BADGE_ID.match(badge_id):
            raise AllowlistError(f"{source}:{number}: id must be 1-64 of A-Z a-z 0-9 . _ : -")
        if kind not in KINDS:
            raise AllowlistError(f"{source}:{number}: kind must be one of {', '.join(KINDS)}")
        if badge_id in entries:
            raise AllowlistError(f"{source}:{number}: id listed twice")
        entries[badge_id] = AllowlistEntry(badge_id, kind, _parse_until(until, source, number))
    return Allowlist(entries)


def _parse_until(text: str, source: str, number: int) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AllowlistError(
            f"{source}:{number}: valid_until must be an ISO date or date-time"
        ) from None
    if len(text) == 10:  # a plain date: valid through the end of that day
        parsed = parsed.replace(hour=23, minute=59, second=59)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_payload(
    payload: bytes, allowlist: Allowlist, now: datetime, *, too_large: bool = False
) -> CredentialCheck:
    """Check a scanned payload against the allowlist at time ``now`` (timezone-aware)."""
    if too_large:
        return CredentialCheck(CredentialStatus.TOO_LARGE)
    try:
        text = payload.decode("ascii").strip()
    except UnicodeDecodeError:
        return CredentialCheck(CredentialStatus.MALFORMED)
    if not BADGE_ID.match(text):
        return CredentialCheck(CredentialStatus.MALFORMED)
    entry = allowlist.get(text)
    if entry is None:
        return CredentialCheck(CredentialStatus.UNKNOWN, badge_id=text)
    if entry.valid_until is not None and now > entry.valid_until:
        return CredentialCheck(CredentialStatus.EXPIRED, badge_id=text, kind=entry.kind)
    return CredentialCheck(CredentialStatus.VALID, badge_id=text, kind=entry.kind)
