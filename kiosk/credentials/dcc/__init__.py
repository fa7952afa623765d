"""EU Digital COVID Certificates (``HC1:`` codes): offline verification against a list of
trusted document signers (DSCs), and that list as a signed site document.

``verify(text, trust, at)`` returns a ``DccResult``; ``DscList`` holds the trusted signers.
"""

from kiosk.credentials.dcc.dsc import Dsc, DscList, key_id
from kiosk.credentials.dcc.result import (
    STEPS,
    CertificateType,
    DccResult,
    DiagnosticTest,
    Entry,
    Holder,
    Recovery,
    Vaccination,
)
from kiosk.credentials.dcc.verify import MAX_PAYLOAD_BYTES, MAX_TEXT_CHARS, verify

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT_CHARS",
    "STEPS",
    "CertificateType",
    "DccResult",
    "DiagnosticTest",
    "Dsc",
    "DscList",
    "Entry",
    "Holder",
    "Recovery",
    "Vaccination",
    "key_id",
    "verify",
]
