"""Document signer certificates (DSCs): the keys that sign EU DCCs, as the verifier uses them.

A DSC is an X.509 certificate with an EC P-256 or RSA key, known by its kid (the first 8 bytes
of SHA-256 of its DER, as the EU gateway computes it, unless the gateway says otherwise) and its
issuing country. Its extended key usage may restrict the certificate types it signs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from kiosk.credentials.dcc.result import CertificateType

KID_BYTES = 8
# Extended key usage OIDs of the DCC specification, and the variant some issuers used.
_KINDS: tuple[tuple[str, CertificateType], ...] = (("1", "t"), ("2", "v"), ("3", "r"))
USAGE_OIDS: Mapping[str, CertificateType] = MappingProxyType(
    {
        f"{prefix}.{number}": kind
        for prefix in ("1.3.6.1.4.1.1847.2021.1", "1.3.6.1.4.1.0.1847.2021.1")
        for number, kind in _KINDS
    }
)
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class Dsc:
    """One trusted document signer: its kid, country, key, validity and allowed types."""

    kid: bytes
    country: str
    der: bytes
    key: PublicKey
    not_before: datetime
    not_after: datetime
    usages: frozenset[CertificateType] | None  # None: the certificate does not restrict

    @classmethod
    def from_der(cls, der: bytes, *, country: str | None = None, kid: bytes | None = None) -> Dsc:
        """A DSC from its DER certificate; ValueError when it cannot sign DCCs."""
        certificate = x509.load_der_x509_certificate(der)
        key = certificate.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
                raise ValueError(f"an EC key on {key.curve.name}, not a NIST P curve")
        elif not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"a {type(key).__name__}, not an EC P-256 or RSA key")
        if country is None:
            names = certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
            country = str(names[0].value) if names else ""
        return cls(
            kid=kid if kid is not None else key_id(der),
            country=country,
            der=der,
            key=key,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            usages=_usages(certificate),
        )

    def allows(self, kind: CertificateType) -> bool:
        """Whether this signer may sign certificates of type ``kind``."""
        return self.usages is None or kind in self.usages


def key_id(der: bytes) -> bytes:
    """The kid of a DSC: the first 8 bytes of SHA-256 of its DER encoding."""
    return hashlib.sha256(der).digest()[:KID_BYTES]


class DscList:
    """The trusted DSCs, found by kid (several may share one)."""

    def __init__(self, dscs: Iterable[Dsc]) -> None:
        index: dict[bytes, list[Dsc]] = {}
        for dsc in dscs:
            index.setdefault(dsc.kid, []).append(dsc)
        self._index = {kid: tuple(found) for kid, found in index.items()}

    def __len__(self) -> int:
        return sum(len(found) for found in self._index.values())

    def __iter__(self) -> Iterator[Dsc]:
        return (dsc for found in self._index.values() for dsc in found)

    def find(self, kid: bytes) -> tuple[Dsc, ...]:
        """The DSCs with this kid (none when it is not trusted)."""
        return self._index.get(kid, ())


def _usages(certificate: x509.Certificate) -> frozenset[CertificateType] | None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        # Some issuers' DSCs break DER elsewhere in their extensions (an encoded default, an
        # empty sequence), which cryptography refuses; the EU apps accept them. The DCC usage
        # OIDs occur in nothing but the extended key usage, so look for their encodings.
        tbs = certificate.tbs_certificate_bytes
        found = {kind for oid, kind in _OID_ENCODINGS.items() if oid in tbs}
        return frozenset(found) or None
    kinds = {
        USAGE_OIDS[oid.dotted_string] for oid in usage.value if oid.dotted_string in USAGE_OIDS
    }
    return frozenset(kinds) or None


def _oid_der(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray()
    for arc in (first * 40 + second, *rest):
        chunk = [arc & 0x7F]
        higher = arc >> 7
        while higher:
            chunk.append(0x80 | (higher & 0x7F))
            higher >>= 7
        body += bytes(reversed(chunk))
    return bytes((0x06, len(body))) + body


_OID_ENCODINGS: Mapping[bytes, CertificateType] = MappingProxyType(
    {_oid_der(oid): kind for oid, kind in USAGE_OIDS.items()}
)
