"""Allowlist credentials: valid, unknown, expired, malformed, too large."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiosk.credentials import (
    AllowlistError,
    CredentialCheck,
    CredentialStatus,
    check_payload,
    parse_allowlist,
)

ALLOWLIST = parse_allowlist(
    "id,kind,valid_until\n# a comment\nS-0001,staff,\nV-7F3A,visitor,2026-06-30\n"
    "C-1,contractor,2026-06-30T12:00:00+07:00\n"
)
NOW = datetime(2026, 6, 30, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "now", "expected"),
    [
        (b"S-0001", NOW, CredentialCheck(CredentialStatus.VALID, "S-0001", "staff")),
        (b"V-7F3A", NOW, CredentialCheck(CredentialStatus.VALID, "V-7F3A", "visitor")),
        (
            b"V-7F3A",
            datetime(2026, 7, 1, tzinfo=UTC),
            CredentialCheck(CredentialStatus.EXPIRED, "V-7F3A", "visitor"),
        ),
        (
            b"C-1",
            datetime(2026, 6, 30, 5, 1, tzinfo=UTC),
            CredentialCheck(CredentialStatus.EXPIRED, "C-1", "contractor"),
        ),
        (b"X-9999", NOW, CredentialCheck(CredentialStatus.UNKNOWN, "X-9999")),
        (b"https://example.com/?q=1", NOW, CredentialCheck(CredentialStatus.MALFORMED)),
        (b"\xff\xfe\x00", NOW, CredentialCheck(CredentialStatus.MALFORMED)),
        (b"", NOW, CredentialCheck(CredentialStatus.MALFORMED)),
        (b"S-0001\n", NOW, CredentialCheck(CredentialStatus.VALID, "S-0001", "staff")),
    ],
)
def test_payload_checks(payload: bytes, now: datetime, expected: CredentialCheck) -> None:
    assert check_payload(payload, ALLOWLIST, now) == expected


def test_too_large_is_refused_before_lookup() -> None:
    assert check_payload(b"S-0001", ALLOWLIST, NOW, too_large=True) == CredentialCheck(
        CredentialStatus.TOO_LARGE
    )


def test_plain_date_is_valid_through_that_day() -> None:
    late = datetime(2026, 6, 30, 23, 59, 0, tzinfo=UTC)
    assert check_payload(b"V-7F3A", ALLOWLIST, late).status is CredentialStatus.VALID


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("S-1,staff\n", "allow.csv:1: expected 3 columns"),
        ("S-1,staff,\nS 2,staff,\n", "allow.csv:2: id must be"),
        ("S-1,boss,\n", "allow.csv:1: kind must be one of staff, visitor, contractor"),
        ("S-1,staff,\nS-1,visitor,\n", "allow.csv:2: id listed twice"),
        ("S-1,staff,tomorrow\n", "allow.csv:1: valid_until must be an ISO date"),
    ],
)
def test_bad_allowlist_rows_name_the_line(text: str, message: str) -> None:
    with pytest.raises(AllowlistError) as excinfo:
        parse_allowlist(text, "allow.csv")
    assert str(excinfo.value).startswith(message)
