"""Every kind of credential a kiosk accepts, tried in order on each scanned payload:

1. a signed pass (``KP1:`` prefix), verified offline against the trusted issuer keys;
2. a national-app personal code (unsigned: proves nothing; handled by policy);
3. an EU Digital COVID Certificate (``HC1:`` prefix) when ``[dcc]`` is enabled, verified
   offline and held to the site's rules (:mod:`kiosk.credentials.dcc.gate`);
4. a legacy badge id on the local allowlist (when one is configured).

Pure and thread-safe: the trust material is swapped whole when new documents arrive.
"""

from __future__ import annotations

import threading
from datetime import datetime

from kiosk.credentials.allowlist import (
    Allowlist,
    CredentialCheck,
    CredentialStatus,
    check_payload,
)
from kiosk.credentials.dcc.gate import DccCheck, is_dcc
from kiosk.credentials.national import parse_national_qr
from kiosk.credentials.passes import PREFIX, PassStatus, PassVerifier


class Credentials:
    """The kiosk's credential checker; swap its parts with the ``replace_*`` methods."""

    def __init__(
        self,
        *,
        allowlist: Allowlist | None,
        verifier: PassVerifier | None,
        national_salt: bytes,
        dcc: DccCheck | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._allowlist = allowlist
        self._verifier = verifier
        self._national_salt = national_salt
        self._dcc = dcc

    def replace_allowlist(self, allowlist: Allowlist | None) -> None:
        """Use a newly loaded allowlist (or none)."""
        with self._lock:
            self._allowlist = allowlist

    def replace_verifier(self, verifier: PassVerifier | None) -> None:
        """Use new trusted keys or a new revocation list."""
        with self._lock:
            self._verifier = verifier

    @property
    def verifier(self) -> PassVerifier | None:
        """The pass verifier in force."""
        return self._verifier

    def check(self, payload: bytes, now: datetime, *, too_large: bool) -> CredentialCheck:
        """The verdict on one scanned payload at ``now``; never raises."""
        if too_large:
            return CredentialCheck(CredentialStatus.TOO_LARGE)
        with self._lock:
            allowlist, verifier = self._allowlist, self._verifier
        if payload.startswith(PREFIX.encode()):
            return self._check_pass(verifier, payload, now)
        if self._dcc is not None and is_dcc(payload):
            return self._dcc.check(payload, now)
        national = parse_national_qr(payload)
        if national is not None:
            return CredentialCheck(
                CredentialStatus.VALID,
                national.subject_hash(self._national_salt),
                "visitor",
                credential_type="national",
                unsigned=True,
                health_declared_at=national.declared_at,
            )
        if allowlist is None:
            return CredentialCheck(CredentialStatus.UNKNOWN)
        return check_payload(payload, allowlist, now)

    @staticmethod
    def _check_pass(
        verifier: PassVerifier | None, payload: bytes, now: datetime
    ) -> CredentialCheck:
        if verifier is None:
            return CredentialCheck(CredentialStatus.UNKNOWN_KEY, credential_type="pass")
        result = verifier.verify(payload, now)
        claims = result.claims
        if result.status is PassStatus.NOT_A_PASS:
            return CredentialCheck(CredentialStatus.MALFORMED, credential_type="pass")
        if claims is None:
            return CredentialCheck(CredentialStatus(result.status.value), credential_type="pass")
        return CredentialCheck(
            CredentialStatus(result.status.value),
            claims.subject,
            claims.kind,
            credential_type="pass",
            pass_id=claims.pass_id,
            health_declared_at=claims.health_declared_at,
            meeting=claims.meeting,
        )
