"""Verify an EU Digital COVID Certificate (``HC1:`` QR text) offline.

``HC1:`` → Base45 → zlib → COSE_Sign1 (optionally in a CWT tag; ES256 or PS256; the kid in the
protected header, else the unprotected one) → CWT claims (1 issuer country, 6 issued at, 4
expiry, -260 → 1 the hcert) → the hcert against the DCC JSON schema. The signer must be in the
trust list, valid when it signed (iat within its validity) and allowed for the type.

Bounds, so that hostile input is refused quickly: at most ``MAX_TEXT_CHARS`` characters (a
version 40 QR code holds 4,296), ``MAX_PAYLOAD_BYTES`` after decompression (a zlib bomb stops
there), CBOR nested at most as Python's recursion limit lets cbor2 go (a RecursionError is a
malformed code), times within year 9999, hcert values as deep as the schema needs and integers
within 2^53.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kiosk.credentials.cose import CBOR_ERRORS, b45decode, is_int
from kiosk.credentials.dcc.dsc import Dsc, DscList
from kiosk.credentials.dcc.result import (
    NOT_YET_VALID,
    REASONS,
    STEPS,
    TYPES,
    CertificateType,
    DccResult,
    DiagnosticTest,
    Entry,
    Holder,
    Recovery,
    Vaccination,
)
from kiosk.credentials.dcc.schema import SchemaError, check_hcert

PREFIX = "HC1:"
MAX_TEXT_CHARS = 8192
MAX_PAYLOAD_BYTES = 64 * 1024
ES256, PS256 = -7, -37
_MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z
_COSE_SIGN1, _CWT = 18, 61
_ALG, _KID = 1, 4
_ISS, _EXP, _IAT, _HCERT = 1, 4, 6, -260


class _StepFailedError(Exception):
    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class _Run:
    """One verification's step outcomes; ``fail`` ends it at a step that others depend on."""

    def __init__(self) -> None:
        self.steps: dict[str, bool] = {}
        self.reason_override: str | None = None

    def record(self, step: str, passed: bool) -> bool:
        self.steps[step] = passed
        return passed

    def require(self, step: str, passed: bool) -> None:
        if not self.record(step, passed):
            raise _StepFailedError(step)


def verify(text: str, trust: DscList, at: datetime) -> DccResult:
    """Verify one ``HC1:`` code at time ``at`` (timezone-aware) against ``trust``."""
    run = _Run()
    fields: dict[str, Any] = {}
    with contextlib.suppress(_StepFailedError):
        _verify(text, trust, at, run, fields)
    failed = next((step for step in STEPS if run.steps.get(step) is False), None)
    if failed is None:
        return DccResult(True, "ok", None, MappingProxyType(run.steps), **fields)
    reason = run.reason_override if failed == "expiry" and run.reason_override else REASONS[failed]
    fields.pop("entry", None)
    fields.pop("holder", None)
    return DccResult(False, reason, failed, MappingProxyType(run.steps), **fields)


def _verify(text: str, trust: DscList, at: datetime, run: _Run, fields: dict[str, Any]) -> None:
    if at.tzinfo is None:
        raise ValueError("the validation time must be timezone-aware")
    run.require("size", len(text) <= MAX_TEXT_CHARS)
    run.require("prefix", text.startswith(PREFIX))
    try:
        compressed = b45decode(text[len(PREFIX) :])
    except (ValueError, UnicodeEncodeError):
        compressed = None
    run.require("base45", compressed is not None)
    assert compressed is not None
    cose = _inflate(compressed)
    run.require("zlib", cose is not None)
    assert cose is not None
    parts = _sign1(cose)
    run.require("cose", parts is not None)
    assert parts is not None
    protected_bytes, header, payload, signature = parts
    claims = _claims(payload)
    run.require("cwt", claims is not None)
    assert claims is not None
    country, issued, expires, hcert = claims
    fields.update(
        country=country,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        kid=header.get("kid"),
    )
    kind = _kind(hcert)
    fields["type"] = kind
    signer = _signer(trust, header, protected_bytes, payload, signature, run)
    if signer is not None:
        run.record("dsc_validity", signer.not_before <= fields["issued_at"] <= signer.not_after)
    now = at.timestamp()
    if now < issued:
        run.reason_override = NOT_YET_VALID
    run.record("expiry", issued <= now <= expires)
    try:
        document = check_hcert(hcert)
    except SchemaError:
        document = None
    run.record("schema", document is not None)
    if signer is not None and kind is not None:
        run.record("key_usage", signer.allows(kind))
    if document is not None and kind is not None:
        fields["schema_version"] = document["ver"]
        fields["entry"] = _entry(kind, document[kind][0])
        name = document["nam"]
        fields["holder"] = Holder(name.get("fnt", ""), name.get("gnt", ""), document["dob"])


def _inflate(data: bytes) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_PAYLOAD_BYTES + 1)
    except zlib.error:
        return None
    if len(out) > MAX_PAYLOAD_BYTES or not inflater.eof:
        return None
    return out


def _sign1(data: bytes) -> tuple[bytes, dict[str, Any], bytes, bytes] | None:
    """The COSE_Sign1 parts (protected bytes, header {alg, kid}, payload, signature)."""
    try:
        message = cbor2.loads(data)
    except CBOR_ERRORS:
        return None
    for tag in (_CWT, _COSE_SIGN1):
        if isinstance(message, cbor2.CBORTag) and message.tag == tag:
            message = message.value
    if not isinstance(message, list | tuple) or len(message) != 4:
        return None
    protected_bytes, unprotected, payload, signature = message
    if not all(isinstance(part, bytes) for part in (protected_bytes, payload, signature)):
        return None
    try:
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
    except CBOR_ERRORS:
        return None
    if not isinstance(protected, Mapping) or not isinstance(unprotected, Mapping):
        return None
    alg = protected.get(_ALG, unprotected.get(_ALG))
    kid = protected.get(_KID, unprotected.get(_KID))
    if not is_int(alg) or not (kid is None or isinstance(kid, bytes)):
        return None
    return protected_bytes, {"alg": alg, "kid": kid}, payload, signature


def _claims(payload: bytes) -> tuple[str, int, int, object] | None:
    """Issuer country, issued at, expiry (whole seconds) and the raw hcert."""
    try:
        claims = cbor2.loads(payload)
    except CBOR_ERRORS:
        return None
    if not isinstance(claims, Mapping):
        return None
    country, issued, expires = claims.get(_ISS), _time(claims.get(_IAT)), _time(claims.get(_EXP))
    hcert = claims.get(_HCERT)
    if not isinstance(country, str) or issued is None or expires is None:
        return None
    if not isinstance(hcert, Mapping) or not isinstance(hcert.get(1), Mapping):
        return None
    return country, issued, expires, hcert[1]


def _time(value: object) -> int | None:
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if is_int(value) and 0 <= value <= _MAX_TIME:
        return value
    return None


def _kind(hcert: object) -> CertificateType | None:
    if not isinstance(hcert, Mapping):
        return None
    kinds = [kind for kind in TYPES if hcert.get(kind) is not None]
    return kinds[0] if len(kinds) == 1 else None


def _signer(
    trust: DscList,
    header: Mapping[str, Any],
    protected: bytes,
    payload: bytes,
    signature: bytes,
    run: _Run,
) -> Dsc | None:
    """The trusted DSC whose signature this is (recording the trust and signature steps)."""
    candidates = trust.find(header["kid"]) if header["kid"] is not None else ()
    if not run.record("trust", bool(candidates)):
        return None
    signed = cbor2.dumps(["Signature1", protected, b"", payload])
    signer = next(
        (dsc for dsc in candidates if _checks(dsc, header["alg"], signed, signature)), None
    )
    run.record("signature", signer is not None)
    return signer


def _checks(dsc: Dsc, alg: int, signed: bytes, signature: bytes) -> bool:
    key = dsc.key
    try:
        if alg == ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            half = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * half:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == PS256 and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
            key.verify(signature, signed, pss, hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False


def _entry(kind: CertificateType, raw: Mapping[str, Any]) -> Entry:
    if kind == "v":
        return Vaccination(
            raw["tg"], raw["mp"], raw["dn"], raw["sd"], _date(raw.get("dt")), raw["co"]
        )
    if kind == "t":
        return DiagnosticTest(raw["tg"], raw["tt"], raw["tr"], _datetime(raw.get("sc")), raw["co"])
    return Recovery(
        raw["tg"], _date(raw.get("fr")), _date(raw.get("df")), _date(raw.get("du")), raw["co"]
    )


def _date(text: object) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if isinstance(text, str) else None
    except ValueError:
        return None


def _datetime(text: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)
