"""An ``HC1:`` code scanned at the gate: verified, held to the ``[dcc]`` rules, and turned into a
credential check like any other.

Nothing of the certificate leaves this module but the outcome and a salted subject: an HMAC
of ``dcc:`` and the holder's standardised names and date of birth, with the site's subject salt
(the same person gets the same subject on every kiosk of the site, and it names nobody).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.config import KioskConfig
from kiosk.credentials.allowlist import CredentialCheck, CredentialStatus
from kiosk.credentials.dcc.dsc import DscList
from kiosk.credentials.dcc.result import Holder
from kiosk.credentials.dcc.rules import DccRules, check_rules
from kiosk.credentials.dcc.trustlist import DccTrustStore
from kiosk.credentials.dcc.verify import PREFIX, verify
from kiosk.decide.privacy import Pseudonymizer

log = logging.getLogger(__name__)

CREDENTIAL_TYPE = "dcc"
SAVED_TRUST_LIST = "dcc-trust.cose"  # in state_dir: the newest list accepted, for a restart


def is_dcc(payload: bytes) -> bool:
    """Whether ``payload`` is an ``HC1:`` code."""
    return payload.startswith(PREFIX.encode())


def dcc_rules(config: KioskConfig) -> DccRules:
    """The rules of the ``[dcc]`` section."""
    section = config.dcc
    return DccRules(
        types=section.types,
        days_after_dose=section.days_after_dose,
        test_max_age_h=section.test_max_age_h,
        countries=section.countries,
    )


class DccCheck:
    """Checks ``HC1:`` codes against the trusted DSCs in force and the site's rules."""

    def __init__(
        self, trusted: Callable[[], DscList], rules: DccRules, pseudonymizer: Pseudonymizer
    ) -> None:
        self._trusted = trusted
        self._rules = rules
        self._pseudonymizer = pseudonymizer

    def check(self, payload: bytes, now: datetime) -> CredentialCheck:
        """The verdict on one ``HC1:`` payload at ``now``, always an unsigned credential (it
        proves vaccination, test or recovery, not a right to enter); a valid one is a visitor's."""
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            return _refused(CredentialStatus.DCC_MALFORMED)
        result = verify(text, self._trusted(), now)
        if not result.valid or result.holder is None:
            return _refused(CredentialStatus(result.reason))
        refusal = check_rules(result, self._rules, now)
        subject = self._pseudonymizer.subject(_identity(result.holder))
        if refusal is not None:
            return _refused(CredentialStatus(refusal.value), subject)
        return CredentialCheck(
            CredentialStatus.VALID,
            subject,
            "visitor",
            credential_type=CREDENTIAL_TYPE,
            unsigned=True,
        )


def open_dcc_trust(config: KioskConfig, anchor: Ed25519PublicKey | None) -> DccTrustStore | None:
    """The DCC trust list in force: the newest of ``[dcc] trust_list_file`` and the copy saved
    in ``state_dir``, signed by the site's trust anchor; None without an anchor."""
    if anchor is None:
        log.error("[dcc] is enabled without credentials.trust_anchor: no certificate is trusted")
        return None
    store = DccTrustStore(anchor, Path(config.kiosk.state_dir) / SAVED_TRUST_LIST)
    configured = config.dcc.trust_list_file
    store.load(*([Path(configured)] if configured else []))
    return store


def build_dcc_check(
    config: KioskConfig, store: DccTrustStore | None, salt: bytes
) -> DccCheck | None:
    """The check of ``HC1:`` codes for ``config`` (None while ``[dcc]`` is off), trusting the
    DSCs ``store`` holds at each scan."""
    if not config.dcc.enabled:
        return None

    def trusted() -> DscList:
        return DscList(()) if store is None else store.dscs

    return DccCheck(trusted, dcc_rules(config), Pseudonymizer(salt))


def _refused(status: CredentialStatus, subject: str | None = None) -> CredentialCheck:
    return CredentialCheck(status, subject, credential_type=CREDENTIAL_TYPE, unsigned=True)


def _identity(holder: Holder) -> str:
    """``dcc:FAMILY|GIVEN|DOB``, names upper-cased with runs of blanks and ``<`` as one ``<``."""
    names = (
        "<".join(name.replace("<", " ").upper().split()) for name in (holder.family, holder.given)
    )
    return "dcc:" + "|".join((*names, holder.dob.strip()))
