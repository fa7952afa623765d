"""The signed declarations document: who at a site declared their health, when, with what result.

Central publishes it (:mod:`kiosk.central.declarations.publisher`); kiosks verify and merge it.
Same mechanism as the revocation list (:mod:`kiosk.credentials.documents`): a COSE_Sign1 message
signed with the organisation's document-signing key (the kiosks' trust anchor), whose payload is
the CBOR map::

    {"typ": "declarations", "org": str, "site": str, "ver": int, "iat": int,
     "kind": "snapshot" | "delta", "base": int,
     "entries": [[subject, declared_at (s, UTC), status (0 ok, 1 refer)], ...]}

A snapshot holds every declaration still valid (newest per subject) and ``base == ver``; a
delta holds every declaration received since the snapshot ``base`` was built. Pure: encoding,
verification and the merge rule only; storing and subscribing are the kiosk's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Literal, TypeGuard

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.credentials.cose import encode_sign1
from kiosk.credentials.documents import DocumentError, open_signed
from kiosk.credentials.passes import IDENTIFIER
from kiosk.ids import SEGMENT, TOKEN

TYPE = "declarations"
MAX_DECLARATIONS_BYTES = 4 << 20  # about 100,000 entries
#: Clock skew allowed between central and a kiosk for ``iat``.
SKEW = timedelta(minutes=5)
DocumentKind = Literal["snapshot", "delta"]


class DeclarationStatus(IntEnum):
    """A declaration's result: ``ok``, or ``refer`` (a symptom or a contact: see the guard)."""

    OK = 0
    REFER = 1


@dataclass(frozen=True)
class Declaration:
    """One subject's declaration: when (UTC, whole seconds) and its status."""

    declared_at: datetime
    status: DeclarationStatus


@dataclass(frozen=True)
class DeclarationsDocument:
    """A verified snapshot or delta; ``entries`` maps subject to its newest declaration."""

    org: str
    site: str
    version: int
    issued_at: datetime
    kind: DocumentKind
    base: int
    entries: Mapping[str, Declaration]


def encode_declarations(
    *,
    org: str,
    site: str,
    version: int,
    issued_at: datetime,
    kind: DocumentKind,
    base: int,
    entries: Iterable[tuple[str, datetime, DeclarationStatus]],
    signing_key: Ed25519PrivateKey,
) -> bytes:
    """Sign a snapshot (``base == version``) or delta; ValueError if it would not verify."""
    given = list(entries)
    if issued_at.tzinfo is None or any(when.tzinfo is None for _, when, _ in given):
        raise ValueError("times must be timezone-aware")
    rows = [[subject, int(when.timestamp()), int(status)] for subject, when, status in given]
    payload = {
        "typ": TYPE,
        "org": org,
        "site": site,
        "ver": version,
        "iat": int(issued_at.timestamp()),
        "kind": kind,
        "base": base,
        "entries": rows,
    }
    _check_header(payload)
    _entries(rows)
    data = encode_sign1(signing_key, cbor2.dumps(payload))
    if len(data) > MAX_DECLARATIONS_BYTES:
        raise ValueError(f"the document is larger than {MAX_DECLARATIONS_BYTES} bytes")
    return data


def load_declarations(
    data: bytes,
    anchor: Ed25519PublicKey,
    *,
    site: str,
    now: datetime,
) -> DeclarationsDocument:
    """Verify a signed declarations document; DocumentError says why it must not be used.

    Checks the size, the signature by the trust anchor, the type, that it is ``site``'s,
    that ``iat`` is not later than ``now`` + :data:`SKEW`, and every entry. Whether its version
    is new enough is the merge rule's (:func:`accepts`).
    """
    payload, _, issued_at, _ = open_signed(
        data, anchor, expected_type=TYPE, current_version=None, max_bytes=MAX_DECLARATIONS_BYTES
    )
    try:
        _check_header(payload)
    except ValueError as error:
        raise DocumentError(f"malformed document: {error}") from None
    if payload["site"] != site:
        raise DocumentError(f"for site {payload['site']!r}, not {site!r}")
    if issued_at > now + SKEW:
        raise DocumentError(f"issued in the future ({issued_at.isoformat()})")
    return DeclarationsDocument(
        org=payload["org"],
        site=payload["site"],
        version=payload["ver"],
        issued_at=issued_at,
        kind=payload["kind"],
        base=payload["base"],
        entries=MappingProxyType(_entries(payload.get("entries"))),
    )


def accepts(
    document: DeclarationsDocument, snapshot_version: int | None, delta_version: int | None
) -> bool:
    """Whether a kiosk holding that snapshot (and delta) version takes ``document``: a newer
    snapshot; a delta extending the snapshot held, newer than the delta held."""
    if document.kind == "snapshot":
        return snapshot_version is None or document.version > snapshot_version
    return document.base == snapshot_version and (
        delta_version is None or document.version > delta_version
    )


def merge(
    *sources: Mapping[str, Declaration], now: datetime, validity: timedelta
) -> dict[str, Declaration]:
    """The entries of snapshot then deltas as one map: per subject the newest ``declared_at``
    wins (a tie: the later source); declarations older than ``validity`` are left out."""
    merged: dict[str, Declaration] = {}
    oldest = now - validity
    for source in sources:
        for subject, declaration in source.items():
            if declaration.declared_at < oldest:
                continue
            held = merged.get(subject)
            if held is None or declaration.declared_at >= held.declared_at:
                merged[subject] = declaration
    return merged


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 253402300799


def _check_header(payload: Mapping[Any, Any]) -> None:
    org, site, kind = payload.get("org"), payload.get("site"), payload.get("kind")
    version, base, issued = payload.get("ver"), payload.get("base"), payload.get("iat")
    if not isinstance(org, str) or not IDENTIFIER.fullmatch(org):
        raise ValueError("org must be an id")
    if not isinstance(site, str) or not SEGMENT.match(site):
        raise ValueError("site must be a site id")
    if not _is_count(version) or not _is_count(base) or not _is_count(issued) or version < 1:
        raise ValueError("ver, base and iat must be whole numbers, ver at least 1")
    if kind == "snapshot" and base != version:
        raise ValueError("a snapshot's base is its own version")
    if kind == "delta" and not 1 <= base < version:
        raise ValueError("a delta's base is an older snapshot's version")
    if kind not in ("snapshot", "delta"):
        raise ValueError("kind must be snapshot or delta")


def _entries(rows: object) -> dict[str, Declaration]:
    if not isinstance(rows, list | tuple):
        raise DocumentError("malformed document: entries must be a list")
    entries: dict[str, Declaration] = {}
    for row in rows:
        if not (isinstance(row, list | tuple) and len(row) == 3):
            raise DocumentError("malformed document: each entry is [subject, declared_at, status]")
        subject, when, status = row
        if not isinstance(subject, str) or not TOKEN.match(subject):
            raise DocumentError("malformed document: a subject is not a token")
        if not _is_count(when) or status not in (0, 1) or isinstance(status, bool):
            raise DocumentError("malformed document: bad declared_at or status")
        declaration = Declaration(datetime.fromtimestamp(when, UTC), DeclarationStatus(status))
        held = entries.get(subject)
        if held is None or declaration.declared_at >= held.declared_at:
            entries[subject] = declaration
    return entries
