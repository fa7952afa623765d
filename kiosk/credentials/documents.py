"""Signed documents a kiosk loads: the trust list (pass-signing keys) and the revocation list.

Each is a COSE_Sign1 message (the same code path as passes, not compressed) whose payload is a
CBOR map ``{"typ": "trust" | "revocation", "ver": int, "iat": int, "org": str, ...}``:

* trust: ``"keys": [raw 32-byte Ed25519 public key, ...]`` (each key's kid is derived from it);
* revocation: ``"ids": [pass id bytes, ...]``.

Documents are signed by the organisation's document-signing key; its public key is the kiosk's
trust anchor (config). ``load_document`` checks everything before it returns a frozen object, so
a refused document never replaces the one in use, not even in part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeGuard, overload

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk.credentials.cose import CBOR_ERRORS, EDDSA, decode_sign1, encode_sign1, key_id
from kiosk.credentials.passes import IDENTIFIER, PASS_ID_BYTES

MAX_DOCUMENT_BYTES = 1 << 20  # about 55,000 revoked 16-byte pass ids
DocumentType = Literal["trust", "revocation"]


class DocumentError(ValueError):
    """A document that must not be used; the message says why. Keep the current document."""


@dataclass(frozen=True)
class TrustList:
    """The pass-signing keys an organisation's kiosks accept, by kid."""

    org: str
    version: int
    issued_at: datetime
    keys: Mapping[bytes, Ed25519PublicKey]


@dataclass(frozen=True)
class RevocationList:
    """Pass ids (lowercase hex) that kiosks refuse."""

    org: str
    version: int
    issued_at: datetime
    revoked: frozenset[str]


Document = TrustList | RevocationList


class DocumentHeader(Protocol):
    """What every signed site document has: its organisation, version and time of issue."""

    @property
    def org(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def issued_at(self) -> datetime: ...


def encode_document(document: Document, signing_key: Ed25519PrivateKey) -> bytes:
    """Sign a document with the organisation's document-signing key; the bytes to distribute."""
    fields: dict[str, Any] = {}
    if isinstance(document, TrustList):
        fields["keys"] = [
            key.public_bytes(Encoding.Raw, PublicFormat.Raw) for key in document.keys.values()
        ]
        _keys(fields["keys"])
    else:
        fields["ids"] = [pass_id_bytes(pass_id) for pass_id in sorted(document.revoked)]
    kind = "trust" if isinstance(document, TrustList) else "revocation"
    return encode_signed(kind, document, fields, signing_key)


def encode_signed(
    kind: str, header: DocumentHeader, fields: Mapping[str, Any], signing_key: Ed25519PrivateKey
) -> bytes:
    """Sign a site document of type ``kind``: ``header``'s org, version and time, then
    ``fields``; ValueError when the header cannot be used."""
    if header.issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    if not IDENTIFIER.fullmatch(header.org) or header.version < 1:
        raise ValueError("org must be an id and version >= 1")
    payload = {
        "typ": kind,
        "ver": header.version,
        "iat": int(header.issued_at.timestamp()),
        "org": header.org,
        **fields,
    }
    return encode_sign1(signing_key, cbor2.dumps(payload))


def pass_id_bytes(text: str) -> bytes:
    """A pass id as ``inspect`` shows it (16-32 hex digits) in bytes; ValueError says why not."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) not in PASS_ID_BYTES:
        low, high = PASS_ID_BYTES[0] * 2, PASS_ID_BYTES[-1] * 2
        raise ValueError(
            f"{text!r} is not a pass id ({low}-{high} hex digits, as `kiosk pass inspect` shows)"
        )
    return raw


def same_content(first: Document, second: Document) -> bool:
    """Whether two documents say the same (organisation, keys or revoked ids), however signed."""
    if isinstance(first, TrustList) and isinstance(second, TrustList):
        return (first.org, set(first.keys)) == (second.org, set(second.keys))
    if isinstance(first, RevocationList) and isinstance(second, RevocationList):
        return (first.org, first.revoked) == (second.org, second.revoked)
    return False


@overload
def load_document(
    data: bytes,
    anchor: Ed25519PublicKey,
    *,
    expected_type: Literal["trust"],
    current_version: int | None,
) -> TrustList: ...
@overload
def load_document(
    data: bytes,
    anchor: Ed25519PublicKey,
    *,
    expected_type: Literal["revocation"],
    current_version: int | None,
) -> RevocationList: ...
def load_document(
    data: bytes,
    anchor: Ed25519PublicKey,
    *,
    expected_type: DocumentType,
    current_version: int | None,
) -> Document:
    """Verify and parse a signed document; DocumentError says why it cannot replace the current.

    ``current_version`` is the version in use (None when there is none): a document must be
    newer, so an old list cannot be replayed.
    """
    payload, version, issued_at, org = open_signed(
        data, anchor, expected_type=expected_type, current_version=current_version
    )
    if expected_type == "trust":
        return TrustList(org, version, issued_at, _keys(payload.get("keys")))
    return RevocationList(org, version, issued_at, _pass_ids(payload.get("ids")))


def open_signed(
    data: bytes,
    anchor: Ed25519PublicKey,
    *,
    expected_type: str,
    current_version: int | None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> tuple[Mapping[Any, Any], int, datetime, str]:
    """A signed site document's payload, version, time and organisation, once its size,
    signature (by ``anchor``), type and version are checked; DocumentError says why not.

    Each kind of document reads its own fields from the payload; this is what they share.
    """
    if len(data) > max_bytes:
        raise DocumentError(f"document is larger than {max_bytes} bytes")
    try:
        message = decode_sign1(data)
    except ValueError as error:
        raise DocumentError(f"malformed document: {error}") from None
    if message.alg != EDDSA:
        raise DocumentError(f"unsupported algorithm {message.alg!r}; only EdDSA (-8)")
    if message.kid != key_id(anchor):
        raise DocumentError(
            f"signed by key {message.kid.hex()}, not the trust anchor {key_id(anchor).hex()}"
        )
    if not message.verify(anchor):
        raise DocumentError("bad signature")
    try:
        payload = cbor2.loads(message.payload)
    except CBOR_ERRORS:
        raise DocumentError("malformed document: the payload is not CBOR") from None
    if not isinstance(payload, Mapping):
        raise DocumentError("malformed document: the payload is not a map")
    kind = payload.get("typ")
    if kind != expected_type:
        raise DocumentError(f"expected a {expected_type} document, got {kind!r}")
    version, issued, org = payload.get("ver"), payload.get("iat"), payload.get("org")
    if not _is_count(version) or not _is_count(issued) or issued > 253402300799:
        raise DocumentError("malformed document: ver and iat must be whole numbers")
    if not isinstance(org, str) or not IDENTIFIER.fullmatch(org):
        raise DocumentError("malformed document: org must be an id")
    if current_version is not None and version <= current_version:
        raise DocumentError(f"version {version} is not newer than {current_version}")
    return payload, version, datetime.fromtimestamp(issued, UTC), org


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _keys(raw_keys: object) -> Mapping[bytes, Ed25519PublicKey]:
    if not isinstance(raw_keys, list | tuple) or not raw_keys:
        raise DocumentError("malformed document: keys must be a non-empty list")
    keys: dict[bytes, Ed25519PublicKey] = {}
    for raw in raw_keys:
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise DocumentError("malformed document: each key must be 32 raw bytes")
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise DocumentError("malformed document: not an Ed25519 public key") from None
        keys[key_id(key)] = key
    return MappingProxyType(keys)


def _pass_ids(raw_ids: object) -> frozenset[str]:
    if not isinstance(raw_ids, list | tuple):
        raise DocumentError("malformed document: ids must be a list")
    if not all(isinstance(raw, bytes) and len(raw) in PASS_ID_BYTES for raw in raw_ids):
        raise DocumentError("malformed document: each pass id must be 8-16 bytes")
    return frozenset(raw.hex() for raw in raw_ids)
