"""COSE_Sign1 (RFC 9052) with Ed25519, and Base45 (RFC 9285): the encoding that signed passes
and the signed trust and revocation lists share.

The protected header is ``{1: -8 (EdDSA), 4: kid}``, kid the first 8 bytes of SHA-256 of the
raw 32-byte public key; the unprotected header is empty, and only the one canonical encoding
is accepted, so no unsigned byte can change in a message that verifies.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

EDDSA = -8  # COSE algorithm id (RFC 9053)
KID_BYTES = 8
CBOR_ERRORS = (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError)

_COSE_SIGN1_TAG = 18
_ALG, _KID = 1, 4
_B45_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_INVALID = 0xFF
_B45_VALUES = bytes(
    _B45_ALPHABET.index(byte) if byte in _B45_ALPHABET else _B45_INVALID for byte in range(256)
)
_B45_CHARS = _B45_ALPHABET + bytes(256 - len(_B45_ALPHABET))  # digit → character


@dataclass(frozen=True)
class Sign1:
    """A decoded COSE_Sign1 message, not yet verified."""

    protected: bytes
    payload: bytes
    signature: bytes
    alg: int | str
    kid: bytes

    def verify(self, key: Ed25519PublicKey) -> bool:
        """Whether ``signature`` is ``key``'s Ed25519 signature over the Sig_structure."""
        try:
            key.verify(self.signature, _sig_structure(self.protected, self.payload))
        except InvalidSignature:
            return False
        return True


def key_id(public_key: Ed25519PublicKey) -> bytes:
    """The COSE kid of a public key: the first 8 bytes of SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:KID_BYTES]


def b45encode(data: bytes) -> str:
    """Base45 (RFC 9285): every 2 bytes become 3 characters, a last single byte 2."""
    digits = bytearray()
    for number in struct.unpack(f">{len(data) // 2}H", data[: len(data) & ~1]):
        rest, c = divmod(number, 45)
        e, d = divmod(rest, 45)
        digits += bytes((c, d, e))
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        digits += bytes((c, d))
    return digits.translate(_B45_CHARS).decode("ascii")


def b45decode(text: str | bytes) -> bytes:
    """Decode Base45 (RFC 9285); ValueError on a character or chunk that is not canonical."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    values = raw.translate(_B45_VALUES)
    if len(values) % 3 == 1 or _B45_INVALID in values:
        raise ValueError("not Base45")
    full = len(values) - len(values) % 3
    numbers = [
        values[start] + values[start + 1] * 45 + values[start + 2] * 2025
        for start in range(0, full, 3)
    ]
    tail = [values[-2] + values[-1] * 45] if full < len(values) else []
    if (numbers and max(numbers) > 0xFFFF) or (tail and tail[0] > 0xFF):
        raise ValueError("Base45 chunk out of range")
    return struct.pack(f">{len(numbers)}H{len(tail)}B", *numbers, *tail)


def encode_sign1(private_key: Ed25519PrivateKey, payload: bytes) -> bytes:
    """A COSE_Sign1 message (tagged CBOR) signing ``payload`` with an Ed25519 key."""
    protected = cbor2.dumps({_ALG: EDDSA, _KID: key_id(private_key.public_key())})
    signature = private_key.sign(_sig_structure(protected, payload))
    return cbor2.dumps(cbor2.CBORTag(_COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def decode_sign1(data: bytes) -> Sign1:
    """Parse a COSE_Sign1 message; ValueError unless it is exactly in the form we produce."""
    try:
        message = cbor2.loads(data)
    except CBOR_ERRORS:
        raise ValueError("not CBOR") from None
    if not isinstance(message, cbor2.CBORTag) or message.tag != _COSE_SIGN1_TAG:
        raise ValueError("not a COSE_Sign1 message")
    parts = message.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise ValueError("COSE_Sign1 must have 4 parts")
    protected, unprotected, payload, signature = parts
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)):
        raise ValueError("COSE_Sign1 parts have the wrong types")
    if not isinstance(unprotected, Mapping) or unprotected:
        raise ValueError("the unprotected header must be empty")
    # Only one encoding is accepted, so no unsigned byte can change in a message that verifies.
    if cbor2.dumps(cbor2.CBORTag(_COSE_SIGN1_TAG, [protected, {}, payload, signature])) != data:
        raise ValueError("COSE_Sign1 is not in its canonical encoding")
    try:
        header = cbor2.loads(protected)
    except CBOR_ERRORS:
        raise ValueError("protected header is not CBOR") from None
    if not isinstance(header, Mapping) or not set(header) <= {_ALG, _KID}:
        raise ValueError("protected header must be a map of alg and kid")
    alg, kid = header.get(_ALG), header.get(_KID)
    if not (isinstance(alg, str) or is_int(alg)) or not isinstance(kid, bytes):
        raise ValueError("protected header alg or kid has the wrong type")
    return Sign1(protected, payload, signature, alg, kid)


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def is_int(value: object) -> TypeGuard[int]:
    """An integer that is not a bool (CBOR tells them apart; Python does not)."""
    return isinstance(value, int) and not isinstance(value, bool)
