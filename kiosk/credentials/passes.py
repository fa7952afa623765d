"""Signed passes: ``KP1:`` + Base45(zlib(COSE_Sign1(CWT claims))), Ed25519, verified offline.

The shape follows the EU Digital COVID Certificate ("HC1:"): the payload is a COSE_Sign1
structure (RFC 9052, CBOR tag 18) whose protected header is ``{1: -8 (EdDSA), 4: kid}``; kid is
the first 8 bytes of SHA-256 of the raw 32-byte public key. The claims use the CWT integer keys
of RFC 8392 (1 iss, 4 exp, 5 nbf, 6 iat, 7 cti) plus short private text keys: ``sub``
(pseudonymous subject id, never a name), ``knd``, ``sit`` (site ids; absent = every site),
``hdt`` (last health declaration) and ``mtg`` (meeting id).

The COSE_Sign1 and Base45 encoding, shared with the signed lists, is in
:mod:`kiosk.credentials.cose`; this module holds the claims and the ``KP1:`` text.
``PassVerifier.verify`` is pure (time is passed in, no I/O) and never raises: it returns one
stable ``PassStatus``. Only ``valid`` lets a person in.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.credentials.allowlist import KINDS
from kiosk.credentials.cose import (
    CBOR_ERRORS,
    EDDSA,
    Sign1,
    b45decode,
    b45encode,
    decode_sign1,
    encode_sign1,
    is_int,
)
from kiosk.ids import TOKEN

PREFIX = "KP1:"
MAX_TEXT_CHARS = 1024  # the whole QR payload, prefix included
MAX_COSE_BYTES = 2048  # after decompression
PASS_ID_BYTES = range(8, 17)
IDENTIFIER = TOKEN  # iss, sub, site, meeting
MAX_SITES = 32

_ISS, _EXP, _NBF, _IAT, _CTI = 1, 4, 5, 6, 7
_LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z, so every NumericDate fits a datetime
_PREFIX_BYTES = PREFIX.encode("ascii")


class PassStatus(StrEnum):
    """The verdict on a scanned pass, in the order the checks run. Never rename a code.

    The text length is checked first; the inflated size only once Base45 decodes.
    """

    NOT_A_PASS = "not_a_pass"  # no KP1: prefix: the kiosk tries other credential kinds
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_SITE = "wrong_site"
    REVOKED = "revoked"
    VALID = "valid"


@dataclass(frozen=True)
class PassClaims:
    """What a pass says. Times are timezone-aware UTC; ``sites`` None means every site."""

    issuer: str
    subject: str
    kind: str
    pass_id: str  # lowercase hex of the cti claim; revocation lists name passes by it
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    sites: tuple[str, ...] | None = None
    health_declared_at: datetime | None = None
    meeting: str | None = None


@dataclass(frozen=True)
class PassCheck:
    """The result of one verification.

    ``claims`` is set only once the signature is verified; ``kid`` as soon as it was read.
    """

    status: PassStatus
    claims: PassClaims | None = None
    kid: bytes | None = None


class PassFormatError(ValueError):
    """A payload that cannot be decoded; ``status`` is not_a_pass, too_large or malformed."""

    def __init__(self, status: PassStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class DecodedPass:
    """A pass decoded without checking trust: for the verifier and for ``kiosk pass inspect``."""

    message: Sign1
    claims: PassClaims
    text_chars: int
    cose_bytes: int


def encode_claims(claims: PassClaims) -> bytes:
    """The CBOR CWT claims of a pass; ValueError if the claims would not verify."""
    if any(
        moment.tzinfo is None
        for moment in (claims.issued_at, claims.valid_from, claims.valid_until)
        + ((claims.health_declared_at,) if claims.health_declared_at else ())
    ):
        raise ValueError("times must be timezone-aware")
    try:
        cti = bytes.fromhex(claims.pass_id)
    except ValueError:
        raise ValueError("pass id must be hex") from None
    cwt: dict[int | str, Any] = {
        _ISS: claims.issuer,
        _IAT: int(claims.issued_at.timestamp()),
        _NBF: int(claims.valid_from.timestamp()),
        _EXP: int(claims.valid_until.timestamp()),
        _CTI: cti,
        "sub": claims.subject,
        "knd": claims.kind,
    }
    if claims.sites is not None:
        cwt["sit"] = list(claims.sites)
    if claims.health_declared_at is not None:
        cwt["hdt"] = int(claims.health_declared_at.timestamp())
    if claims.meeting is not None:
        cwt["mtg"] = claims.meeting
    payload = cbor2.dumps(cwt)
    _parse_claims(payload)  # the one set of rules, shared with the verifier
    return payload


def sign_pass(private_key: Ed25519PrivateKey, claims: PassClaims) -> str:
    """The QR text of a pass: ``KP1:`` + Base45(zlib(COSE_Sign1)); ValueError on bad claims."""
    cose = encode_sign1(private_key, encode_claims(claims))
    text = PREFIX + b45encode(zlib.compress(cose, 9))
    if len(text) > MAX_TEXT_CHARS or len(cose) > MAX_COSE_BYTES:
        raise ValueError(f"the pass is too large ({len(text)} characters)")
    return text


def decode_pass(text: str | bytes) -> DecodedPass:
    """Decode a pass without checking its signature or trust; PassFormatError if unreadable."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    if not raw.startswith(_PREFIX_BYTES):
        raise PassFormatError(PassStatus.NOT_A_PASS, f"no {PREFIX} prefix")
    if len(raw) > MAX_TEXT_CHARS:
        raise PassFormatError(PassStatus.TOO_LARGE, f"more than {MAX_TEXT_CHARS} characters")
    try:
        compressed = b45decode(raw[len(_PREFIX_BYTES) :])
        inflater = zlib.decompressobj()
        cose = inflater.decompress(compressed, MAX_COSE_BYTES + 1)
    except (ValueError, zlib.error) as error:
        raise PassFormatError(PassStatus.MALFORMED, str(error)) from None
    if len(cose) > MAX_COSE_BYTES:
        raise PassFormatError(PassStatus.TOO_LARGE, f"more than {MAX_COSE_BYTES} bytes inflated")
    if not inflater.eof or inflater.unused_data:
        raise PassFormatError(PassStatus.MALFORMED, "incomplete or trailing zlib data")
    try:
        message = decode_sign1(cose)
        claims = _parse_claims(message.payload)
    except ValueError as error:
        raise PassFormatError(PassStatus.MALFORMED, str(error)) from None
    return DecodedPass(message, claims, len(raw), len(cose))


class PassVerifier:
    """Verifies passes at one site, offline, against the currently trusted signing keys.

    Several kids may be trusted at once (key rotation; ``key_id`` is in :mod:`.cose`)::

        verifier = PassVerifier({key_id(public): public}, site="hq")
        check = verifier.verify(scanned_bytes, now=datetime.now(UTC))
        check.status is PassStatus.VALID

    :param trusted: kid → public key of every pass-signing key the kiosk accepts now.
    :param site: this kiosk's site id, matched against a pass's site list.
    :param clock_skew_s: tolerance either side of the validity window, in seconds.
    :param revoked: pass ids (lowercase hex) that are refused.
    """

    def __init__(
        self,
        trusted: Mapping[bytes, Ed25519PublicKey],
        *,
        site: str,
        clock_skew_s: int = 300,
        revoked: frozenset[str] = frozenset(),
    ) -> None:
        if clock_skew_s < 0:
            raise ValueError("clock_skew_s must be >= 0")
        self._trusted = dict(trusted)
        self._site = site
        self._skew = clock_skew_s
        self._revoked = revoked

    def verify(self, text: str | bytes, now: datetime) -> PassCheck:
        """Check a scanned payload at ``now`` (timezone-aware); never raises."""
        try:
            decoded = decode_pass(text)
        except PassFormatError as error:
            return PassCheck(error.status)
        message, claims = decoded.message, decoded.claims
        if message.alg != EDDSA:
            return PassCheck(PassStatus.UNSUPPORTED_ALGORITHM, kid=message.kid)
        key = self._trusted.get(message.kid)
        if key is None:
            return PassCheck(PassStatus.UNKNOWN_KEY, kid=message.kid)
        if not message.verify(key):
            return PassCheck(PassStatus.BAD_SIGNATURE, kid=message.kid)
        return PassCheck(self._status(claims, now), claims, message.kid)

    def _status(self, claims: PassClaims, now: datetime) -> PassStatus:
        moment = now.timestamp()
        if moment < claims.valid_from.timestamp() - self._skew:
            return PassStatus.NOT_YET_VALID
        if moment > claims.valid_until.timestamp() + self._skew:
            return PassStatus.EXPIRED
        if claims.sites is not None and self._site not in claims.sites:
            return PassStatus.WRONG_SITE
        if claims.pass_id in self._revoked:
            return PassStatus.REVOKED
        return PassStatus.VALID


def _parse_claims(payload: bytes) -> PassClaims:
    try:
        cwt = cbor2.loads(payload)
    except CBOR_ERRORS:
        raise ValueError("claims are not CBOR") from None
    if not isinstance(cwt, Mapping):
        raise ValueError("claims must be a map")
    sites = cwt.get("sit")
    if sites is not None and (
        not isinstance(sites, list | tuple)
        or not 1 <= len(sites) <= MAX_SITES
        or not all(isinstance(site, str) and IDENTIFIER.fullmatch(site) for site in sites)
    ):
        raise ValueError(f"sit must be a list of 1-{MAX_SITES} site ids")
    cti = cwt.get(_CTI)
    if not isinstance(cti, bytes) or len(cti) not in PASS_ID_BYTES:
        raise ValueError("cti must be 8-16 bytes")
    kind = cwt.get("knd")
    if kind not in KINDS:
        raise ValueError(f"knd must be one of {', '.join(KINDS)}")
    meeting = cwt.get("mtg")
    valid_from, valid_until = _time(cwt, _NBF), _time(cwt, _EXP)
    if valid_until < valid_from:
        raise ValueError("exp is before nbf")
    return PassClaims(
        issuer=_identifier(cwt, _ISS),
        subject=_identifier(cwt, "sub"),
        kind=kind,
        pass_id=cti.hex(),
        issued_at=_time(cwt, _IAT),
        valid_from=valid_from,
        valid_until=valid_until,
        sites=None if sites is None else tuple(sites),
        health_declared_at=None if "hdt" not in cwt else _time(cwt, "hdt"),
        meeting=None if meeting is None else _identifier(cwt, "mtg"),
    )


def _identifier(cwt: Mapping[Any, Any], key: int | str) -> str:
    value = cwt.get(key)
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ValueError(f"claim {key} must be 1-64 of A-Z a-z 0-9 . _ : -")
    return value


def _time(cwt: Mapping[Any, Any], key: int | str) -> datetime:
    value = cwt.get(key)
    if not is_int(value) or not 0 <= value <= _LATEST_TIME:
        raise ValueError(f"claim {key} must be a NumericDate (whole seconds)")
    return datetime.fromtimestamp(value, UTC)
