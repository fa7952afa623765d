"""EU Digital COVID Certificates (``HC1:`` codes): offline verification against a list of
trusted document signers (DSCs), and that list as a signed site document.

``verify(text, trust, at)`` returns a ``DccResult``; ``DscList`` holds the trusted signers.
"""

from kiosk.credentials.dcc.dsc import Dsc, DscList, key_id
from kiosk.credentials.dcc.result import (
    STEPS,
    CertificateType,
    DccResult,
    Entry,
    Holder,
    Recovery,
    TestEntry,
    Vaccination,
)
from kiosk.credentials.dcc.verify import MAX_PAYLOAD_BYTES, MAX_TEXT_CHARS, verify

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT_CHARS",
    "STEPS",
    "CertificateType",
    "DccResult",
    "Dsc",
    "DscList",
    "Entry",
    "Holder",
    "Recovery",
    "TestEntry",
    "Vaccination",
    "key_id",
    "verify",
]
