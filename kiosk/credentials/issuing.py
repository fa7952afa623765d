"""Issuing passes and signed documents: plain functions behind the ``kiosk pass …`` commands.

These run in the organisation's office, never on a kiosk: only they need a private key. Files go
in and out here; the formats live in ``passes`` and ``documents``.
"""

from __future__ import annotations

import html
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import cbor2
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from kiosk.credentials.allowlist import KINDS
from kiosk.credentials.cose import decode_sign1, key_id
from kiosk.credentials.documents import RevocationList, TrustList, encode_document
from kiosk.credentials.passes import (
    IDENTIFIER,
    PassClaims,
    PassFormatError,
    PassVerifier,
    decode_pass,
    sign_pass,
)

PASS_ID_BYTES = 8  # 64 random bits: small in the QR code, no realistic collision
QR_ERROR = "m"
QR_BORDER = 4  # modules of quiet zone, as the QR standard asks
KIND_LABELS = {
    "staff": ("Nhân viên", "Staff"),
    "visitor": ("Khách", "Visitor"),
    "contractor": ("Nhà thầu", "Contractor"),
}


@dataclass(frozen=True)
class QrInfo:
    """The QR symbol a pass needs: version (1-40), error correction level, size in modules."""

    version: int
    error: str
    modules: int
    chars: int


def generate_keypair(
    directory: Path, name: str = "signing", *, passphrase: bytes | None = None
) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as ``<name>.key`` (PKCS#8 PEM, mode 0600) and ``<name>.pub``.

    Raises FileExistsError rather than overwrite a key.
    """
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    directory.mkdir(parents=True, exist_ok=True)
    _write_new(
        private_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption), 0o600
    )
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    _write_new(public_path, public_pem, 0o644)
    return private_path, public_path


def read_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PEM file; ValueError if it cannot be used."""
    try:
        key = load_pem_private_key(path.read_bytes(), passphrase)
    except TypeError as error:  # a passphrase missing, or given for an unencrypted key
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def read_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a PEM file; ValueError for any other kind of key."""
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def issue_pass(
    private_key: Ed25519PrivateKey,
    *,
    subject: str,
    kind: str,
    valid_from: datetime,
    valid_until: datetime,
    sites: Sequence[str] | None,
    issuer: str,
    health_declared_at: datetime | None = None,
    meeting: str | None = None,
    pass_id: str | None = None,
    issued_at: datetime | None = None,
) -> str:
    """Sign a pass and return its QR text. ``sites`` None = every site; ValueError if invalid.

    ``subject`` is a pseudonymous id (never a name); ``pass_id`` (hex) is random by default.
    """
    for label, value in (("subject", subject), ("issuer", issuer), ("meeting", meeting)):
        if value is not None and not IDENTIFIER.fullmatch(value):
            raise ValueError(f"{label} must be 1-64 of A-Z a-z 0-9 . _ : - (got {value!r})")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if sites is not None and (not sites or not all(IDENTIFIER.fullmatch(s) for s in sites)):
        raise ValueError("sites must be None (every site) or a non-empty list of site ids")
    moments = (valid_from, valid_until, health_declared_at, issued_at)
    if any(moment is not None and moment.tzinfo is None for moment in moments):
        raise ValueError("times must be timezone-aware")
    if valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    claims = PassClaims(
        issuer=issuer,
        subject=subject,
        kind=kind,
        pass_id=pass_id if pass_id is not None else secrets.token_hex(PASS_ID_BYTES),
        issued_at=issued_at if issued_at is not None else datetime.now(UTC),
        valid_from=valid_from,
        valid_until=valid_until,
        sites=None if sites is None else tuple(sites),
        health_declared_at=health_declared_at,
        meeting=meeting,
    )
    return sign_pass(private_key, claims)


def qr_code(text: str) -> segno.QRCode:
    """The QR symbol for a pass: error correction M, the smallest version that fits."""
    return segno.make(text, error=QR_ERROR, boost_error=False, micro=False)


def qr_info(text: str) -> QrInfo:
    """Version, error level and size of the QR symbol a pass needs."""
    code = qr_code(text)
    return QrInfo(int(code.version), str(code.error), int(code.symbol_size(border=0)[0]), len(text))


def write_qr(text: str, png_path: Path, svg_path: Path, *, scale: int = 8) -> QrInfo:
    """Write the pass as a PNG (``scale`` pixels a module) and an SVG, with a quiet zone."""
    code = qr_code(text)
    code.save(str(png_path), kind="png", scale=scale, border=QR_BORDER)
    code.save(str(svg_path), kind="svg", scale=scale, border=QR_BORDER)
    return qr_info(text)


def local_text(moment: datetime, zone: tzinfo) -> str:
    """``moment`` as the site reads it: ``2026-12-31 23:59 +07``."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local:%Z}"


def badge_page(text: str, *, kind: str, valid_until: datetime, subject: str, zone: tzinfo) -> str:
    """A printable HTML badge: the QR code inline, the kind, the validity (in the site's time
    ``zone``) and the subject id."""
    if kind not in KIND_LABELS or valid_until.tzinfo is None:
        raise ValueError("kind must be known and valid_until timezone-aware")
    svg = qr_code(text).svg_inline(omitsize=True, border=QR_BORDER)
    kind_vi, kind_en = KIND_LABELS[kind]
    until = html.escape(local_text(valid_until, zone))
    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>{html.escape(kind_en)} pass</title>
<style>
  @page {{ size: 86mm 54mm; margin: 0; }}
  body {{ margin: 0; font-family: sans-serif; }}
  .badge {{ width: 86mm; height: 54mm; display: flex; align-items: center; gap: 3mm;
           box-sizing: border-box; padding: 2mm; }}
  .badge svg {{ width: 50mm; height: 50mm; flex: none; }}
  .kind {{ font-size: 16pt; font-weight: bold; }}
  .small {{ font-size: 8pt; }}
</style>
</head>
<body>
<div class="badge">
{svg}
<div>
<div class="kind">{html.escape(kind_vi)}<br>{html.escape(kind_en)}</div>
<p>Hiệu lực đến / Valid until<br><strong>{until}</strong></p>
<p class="small">ID {html.escape(subject)}</p>
</div>
</div>
</body>
</html>
"""


def document_key_problem(
    key: Ed25519PrivateKey,
    *,
    anchor: Ed25519PublicKey | None = None,
    trust_list: bytes | None = None,
    previous_kid: str | None = None,
) -> str | None:
    """Why kiosks would refuse a list signed with ``key``, or None when it matches what they
    trust: the trust ``anchor``, the key that signed the site's ``trust_list``, and the key
    that signed the list's earlier versions (``previous_kid``, hex)."""
    kid = key_id(key.public_key()).hex()
    expected: list[tuple[str, str]] = []
    if anchor is not None:
        expected.append((key_id(anchor).hex(), "the kiosks' trust anchor is"))
    if trust_list is not None:
        try:
            signer = decode_sign1(trust_list).kid.hex()
        except ValueError as error:
            return f"the trust list cannot be read: {error}"
        expected.append((signer, "the site's trust list is signed by"))
    if previous_kid is not None:
        expected.append((previous_kid, "earlier versions of this list were signed by"))
    for wanted, whose in expected:
        if wanted != kid:
            hint = " (a pass-signing key)" if trust_list and _lists_key(trust_list, kid) else ""
            return (
                f"{whose} key {wanted}, but this key{hint} is {kid}: kiosks would refuse "
                "the list; sign it with the organisation's document-signing key"
            )
    return None


def trust_document(
    signing_key: Ed25519PrivateKey,
    *,
    org: str,
    version: int,
    public_keys: Iterable[Ed25519PublicKey],
    issued_at: datetime | None = None,
) -> bytes:
    """A signed trust list of the pass-signing keys kiosks accept (list old and new to rotate)."""
    keys = {key_id(key): key for key in public_keys}
    moment = issued_at if issued_at is not None else datetime.now(UTC)
    return encode_document(TrustList(org, version, moment, keys), signing_key)


def revocation_document(
    signing_key: Ed25519PrivateKey,
    *,
    org: str,
    version: int,
    pass_ids: Iterable[str],
    issued_at: datetime | None = None,
) -> bytes:
    """A signed revocation list of pass ids (hex, as ``inspect`` shows them)."""
    revoked = frozenset(pass_id.lower() for pass_id in pass_ids)
    moment = issued_at if issued_at is not None else datetime.now(UTC)
    return encode_document(RevocationList(org, version, moment, revoked), signing_key)


def inspect(text: str | bytes, verifier: PassVerifier | None, now: datetime) -> dict[str, Any]:
    """What a pass says and, given a verifier, its verdict at ``now``; ready for json.dumps.

    Without a verifier the claims are shown unverified (``status`` is None).
    """
    try:
        decoded = decode_pass(text)
    except PassFormatError as error:
        return {"status": str(error.status), "error": str(error), "kid": None, "claims": None}
    claims = decoded.claims
    return {
        "status": None if verifier is None else str(verifier.verify(text, now).status),
        "error": None,
        "kid": decoded.message.kid.hex(),
        "algorithm": decoded.message.alg,
        "text_chars": decoded.text_chars,
        "cose_bytes": decoded.cose_bytes,
        "claims": {
            "issuer": claims.issuer,
            "subject": claims.subject,
            "kind": claims.kind,
            "pass_id": claims.pass_id,
            "issued_at": claims.issued_at.isoformat(),
            "valid_from": claims.valid_from.isoformat(),
            "valid_until": claims.valid_until.isoformat(),
            "sites": None if claims.sites is None else list(claims.sites),
            "health_declared_at": None
            if claims.health_declared_at is None
            else claims.health_declared_at.isoformat(),
            "meeting": claims.meeting,
        },
    }


def _lists_key(trust_list: bytes, kid: str) -> bool:
    """Whether the trust list names the key ``kid`` among its pass-signing keys (unverified)."""
    try:
        raw_keys = cbor2.loads(decode_sign1(trust_list).payload).get("keys", [])
        return any(key_id(Ed25519PublicKey.from_public_bytes(raw)).hex() == kid for raw in raw_keys)
    except (ValueError, TypeError, AttributeError, cbor2.CBORDecodeError):
        return False


def _write_new(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(data)
