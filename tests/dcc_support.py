"""The EU DCC test vectors (dgc-testdata, Apache 2.0) in the shared data folder, read in place.

Each JSON file holds the QR text (``PREFIX``), the test context (``TESTCTX``: the signing
certificate as base64 DER, ``VALIDATIONCLOCK``) and ``EXPECTEDRESULTS``, a flag per step under
test. ``STEP_OF_FLAG`` maps those flags to the verifier's steps.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from kiosk.credentials.cose import b45encode
from kiosk.credentials.dcc import Dsc, DscList, key_id

REPO = Path(__file__).resolve().parents[1]
STEP_OF_FLAG = {
    "UNPREFIX": "prefix",
    "B45DECODE": "base45",
    "COMPRESSION": "zlib",
    "DECODE": "cwt",
    "VERIFY": "signature",
    "EXPIRATIONCHECK": "expiry",
    "SCHEMAVALIDATION": "schema",
    "KEYUSAGE": "key_usage",
}


def vectors_dir() -> Path | None:
    """The vectors' folder beside the project, else /work/shared; None when neither exists."""
    for candidate in (
        REPO.parent / "shared" / "data" / "dcc-testdata",
        Path("/work/shared/data/dcc-testdata"),
    ):
        if candidate.is_dir():
            return candidate
    return None


def vector_files() -> list[Path]:
    """Every vector: each country folder's and ``common/``'s JSON files."""
    root = vectors_dir()
    return sorted(root.rglob("*.json")) if root is not None else []


@dataclass(frozen=True)
class Vector:
    """One test vector: the code, its signer as a trust list, the clock, expected steps."""

    name: str
    text: str
    certificate: bytes | None
    clock: datetime
    expected: Mapping[str, bool]  # verifier step -> whether it passes

    def trust(self) -> DscList:
        """The vector's signing certificate as the only trusted DSC (none when there is no
        certificate, or one that cannot sign DCCs: then the signature step fails)."""
        try:
            return DscList([Dsc.from_der(self.certificate)] if self.certificate else [])
        except ValueError:
            return DscList([])


def load_vector(path: Path) -> Vector:
    """Read one vector file."""
    data = json.loads(path.read_text("utf-8"))
    context = data["TESTCTX"]
    clock = datetime.fromisoformat(context["VALIDATIONCLOCK"])
    expected = {
        STEP_OF_FLAG[flag.removeprefix("EXPECTED")]: value
        for flag, value in data.get("EXPECTEDRESULTS", {}).items()
        if flag.removeprefix("EXPECTED") in STEP_OF_FLAG
    }
    certificate = context.get("CERTIFICATE")
    root = vectors_dir()
    return Vector(
        name=str(path.relative_to(root)) if root else path.name,
        text=data.get("PREFIX", ""),
        certificate=base64.b64decode(certificate) if certificate else None,
        clock=clock if clock.tzinfo else clock.replace(tzinfo=UTC),
        expected=expected,
    )


# Codes of our own, signed by a test DSC, for the cases the vectors do not cover.

PRIVATE_KEY = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
ISSUED = datetime(2026, 3, 1, tzinfo=UTC)


def make_dsc(
    key: PRIVATE_KEY,
    *,
    usages: tuple[str, ...] = (),
    valid_from: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    valid_until: datetime = datetime(2028, 1, 1, tzinfo=UTC),
    country: str = "VN",
) -> bytes:
    """A self-signed DSC (DER) for ``key``, with the extended key usage OIDs given."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.COMMON_NAME, "Test DSC"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
    )
    if usages:
        eku = x509.ExtendedKeyUsage([x509.ObjectIdentifier(oid) for oid in usages])
        builder = builder.add_extension(eku, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def vaccination(**changes: object) -> dict[str, object]:
    """A schema-1.3.0 vaccination hcert (2 of 2 doses)."""
    return {
        "ver": "1.3.0",
        "nam": {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Văn An", "gnt": "VAN<AN"},
        "dob": "1990-04-01",
        "v": [vaccination_entry(**changes)],
    }


def vaccination_entry(**changes: object) -> dict[str, object]:
    """The entry of ``vaccination()``, with ``changes``."""
    entry: dict[str, object] = {
        "tg": "840539006",
        "vp": "1119349007",
        "mp": "EU/1/20/1528",
        "ma": "ORG-100030215",
        "dn": 2,
        "sd": 2,
        "dt": "2026-01-10",
        "co": "VN",
        "is": "Ministry of Health",
        "ci": "URN:UVCI:01:VN:TEST0001#X",
    }
    entry.update(changes)
    return entry


def make_code(
    key: PRIVATE_KEY,
    der: bytes,
    *,
    hcert: object = None,
    issued: datetime = ISSUED,
    days: int = 365,
    alg: int | None = None,
    kid_unprotected: bool = False,
    payload: bytes | None = None,
) -> str:
    """An ``HC1:`` code signed by ``key`` (ES256 for EC, PS256 for RSA unless ``alg``); the
    CWT claims are built from the arguments unless ``payload`` gives them encoded."""
    kid = key_id(der)
    alg = alg if alg is not None else (-7 if isinstance(key, ec.EllipticCurvePrivateKey) else -37)
    header: dict[int, object] = {1: alg} if kid_unprotected else {1: alg, 4: kid}
    protected = cbor2.dumps(header)
    if payload is None:
        claims = {
            1: "VN",
            6: int(issued.timestamp()),
            4: int(issued.timestamp()) + days * 86400,
            -260: {1: hcert if hcert is not None else vaccination()},
        }
        payload = cbor2.dumps(claims)
    signed = cbor2.dumps(["Signature1", protected, b"", payload])
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        signature = key.sign(signed, pss, hashes.SHA256())
    unprotected = {4: kid} if kid_unprotected else {}
    message = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))
    return wrap(message)


def wrap(cose: bytes) -> str:
    """COSE bytes as QR text: zlib, Base45, the ``HC1:`` prefix."""
    return "HC1:" + b45encode(zlib.compress(cose, 9))
