"""Credentials: what a scanned QR payload proves. Pure: parses the bytes it is handed."""

from kiosk.credentials.allowlist import (
    BADGE_ID,
    KINDS,
    Allowlist,
    AllowlistEntry,
    AllowlistError,
    CredentialCheck,
    CredentialStatus,
    check_payload,
    parse_allowlist,
)

__all__ = [
    "BADGE_ID",
    "KINDS",
    "Allowlist",
    "AllowlistEntry",
    "AllowlistError",
    "CredentialCheck",
    "CredentialStatus",
    "check_payload",
    "parse_allowlist",
]
