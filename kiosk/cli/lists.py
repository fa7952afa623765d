"""``kiosk pass trust`` and ``kiosk pass revoke``: the signed lists kiosks load, and the options
and error exits every ``kiosk pass`` command shares."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.cli.common import EX_CANTCREAT, EX_DATAERR, EX_USAGE
from kiosk.credentials import issuing, register
from kiosk.credentials.documents import pass_id_bytes
from kiosk.mqtt import boundedjson
from kiosk.store.durable import write_whole

STATE_MAX_BYTES = 16 * 1024 * 1024  # a revocation state file: ids of revoked passes


def fail(message: str, code: int = EX_DATAERR) -> NoReturn:
    """Say what is wrong on stderr and exit with ``code`` (no traceback)."""
    click.echo(f"kiosk: {message}", err=True)
    sys.exit(code)


def private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``, or exit 65 saying why it cannot be used."""
    try:
        return issuing.read_private_key(path)
    except ValueError as exc:
        fail(str(exc))


def register_path(register_option: Path | None, key_path: Path) -> Path:
    """The register of issued passes: as given, or next to the key."""
    return register_option or key_path.parent / register.FILE_NAME


key_option = click.option(
    "--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
register_option = click.option(
    "--register",
    "register_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The register of issued passes (default: {register.FILE_NAME} next to --key).",
)
anchor_option = click.option(
    "--anchor",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The kiosks' trust anchor: the document-signing public key (credentials.trust_anchor).",
)
version_option = click.option(
    "--version",
    type=click.IntRange(1),
    required=True,
    help="Must be higher than the list the kiosks hold.",
)
ANCHOR_FILE = "documents.pub"  # where `kiosk pass keygen --name documents` puts the anchor


def _anchor_beside(key_path: Path) -> Path | None:
    """The trust anchor keygen wrote next to the keys, checked against when --anchor is absent."""
    path = key_path.parent / ANCHOR_FILE
    return path if path.exists() else None


def _check_key(
    key: Ed25519PrivateKey,
    anchor: Path | None,
    trust_list: Path | None = None,
    previous_kid: str | None = None,
) -> str:
    """Refuse a key the kiosks would not trust; say what it was checked against."""
    try:
        problem = issuing.document_key_problem(
            key,
            anchor=None if anchor is None else issuing.read_public_key(anchor),
            trust_list=None if trust_list is None else trust_list.read_bytes(),
            previous_kid=previous_kid,
        )
    except ValueError as exc:
        fail(str(exc))
    if problem is not None:
        fail(f"{problem}; nothing written")
    checked = [
        name
        for name, given in (
            (f"the trust anchor {anchor}", anchor),
            ("the trust list's signer", trust_list),
            ("earlier versions", previous_kid),
        )
        if given is not None
    ]
    kid = issuing.key_id(key.public_key()).hex()
    if not checked:
        click.echo(
            "kiosk: warning: the signing key was not checked against the kiosks' trust anchor; "
            "give --anchor (or --trust-list) to be sure the kiosks will accept the list",
            err=True,
        )
        return f"; signed by key {kid}"
    return f"; signed by key {kid}, the same as {' and '.join(checked)}"


@click.command("trust")
@key_option
@click.option("--org", required=True)
@version_option
@click.argument(
    "public_keys",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
)
@anchor_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def trust(
    key_path: Path,
    org: str,
    version: int,
    public_keys: tuple[Path, ...],
    anchor: Path | None,
    out: Path,
) -> None:
    """Sign the trust list: the issuer keys kiosks accept (list old and new to rotate)."""
    key = private_key(key_path)
    try:
        issuer_keys = [issuing.read_public_key(path) for path in public_keys]
    except ValueError as exc:
        fail(str(exc))
    kid = issuing.key_id(key.public_key())
    if any(issuing.key_id(public) == kid for public in issuer_keys):
        fail("the trust list must be signed with the document-signing key, not an issuer key")
    signed = _check_key(key, anchor or _anchor_beside(key_path))
    try:
        document = issuing.trust_document(key, org=org, version=version, public_keys=issuer_keys)
    except ValueError as exc:
        fail(str(exc))
    _write_durably(out, document)
    click.echo(
        f"trust list v{version} with {len(public_keys)} keys: {out}{signed}; publish it "
        f"retained on kiosk/v1/<site>/site/trust"
    )


@click.command("revoke")
@key_option
@click.option("--org", required=True)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSON file keeping the revoked ids, the list's version and its signing key.",
)
@click.argument("pass_ids", nargs=-1)
@click.option(
    "--subject",
    "subjects",
    multiple=True,
    help="Revoke every current pass of this holder reference, from the register (repeatable).",
)
@register_option
@click.option(
    "--empty",
    is_flag=True,
    help="Add no pass: sign a new site's first, empty list, or the current list again as its "
    "next version (so kiosk doctor does not find it stale). It never un-revokes a pass.",
)
@anchor_option
@click.option(
    "--trust-list",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The site's trust list: the revocation list must be signed by the same key.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def revoke(
    key_path: Path,
    org: str,
    state: Path,
    pass_ids: tuple[str, ...],
    subjects: tuple[str, ...],
    register_file: Path | None,
    empty: bool,
    anchor: Path | None,
    trust_list: Path | None,
    out: Path,
) -> None:
    """Add passes (ids as `kiosk pass inspect` shows them, or --subject) to the revocation
    list and sign its next version."""
    if empty == bool(pass_ids or subjects):
        fail(
            "name the passes to revoke (pass ids, or --subject with a holder reference), "
            "or give --empty to add none",
            EX_USAGE,
        )
    try:
        added = {pass_id_bytes(pass_id.lower()).hex() for pass_id in pass_ids}
        if subjects:
            issued = register.read(register_path(register_file, key_path))
            now = datetime.now(UTC)
            for subject in subjects:
                found = register.pass_ids_of(issued, subject, now)
                if not found:
                    fail(f"no current pass of {subject!r} in the register")
                added.update(found)
        known = _read_state(state)
    except ValueError as exc:
        fail(str(exc))
    key = private_key(key_path)
    signed = _check_key(key, anchor or _anchor_beside(key_path), trust_list, known.get("kid"))
    revoked = sorted(set(known["revoked"]) | added)
    version = int(known["version"]) + 1
    try:
        document = issuing.revocation_document(key, org=org, version=version, pass_ids=revoked)
    except ValueError as exc:
        fail(str(exc))
    kid = issuing.key_id(key.public_key()).hex()
    # The state first: should writing the list fail, the next run skips a version, which is
    # harmless, instead of signing a different list under a version kiosks may already hold.
    state_text = json.dumps({"version": version, "revoked": revoked, "kid": kid}, indent=1)
    _write_durably(state, state_text.encode("utf-8"))
    _write_durably(out, document)
    new = len(added - set(known["revoked"]))
    click.echo(
        f"revocation list v{version} with {len(revoked)} passes ({new} added): {out}{signed}; "
        "publish it retained on kiosk/v1/<site>/site/revocation"
    )


def _read_state(path: Path) -> dict[str, Any]:
    """The revocation state file, or a new one; ValueError when it is damaged."""
    if not path.exists():
        return {"version": 0, "revoked": []}
    try:
        known = boundedjson.loads(path.read_bytes(), max_bytes=STATE_MAX_BYTES)
        for pass_id in known["revoked"]:
            pass_id_bytes(pass_id)
        if not isinstance(known["version"], int) or known["version"] < 0:
            raise ValueError("version")
        if not isinstance(known.get("kid", ""), str):
            raise ValueError("kid")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a revocation state file ({exc})") from None
    return dict(known)


def _write_durably(path: Path, data: bytes) -> None:
    try:
        write_whole(path, data)
    except OSError as exc:
        fail(f"{path}: cannot write it ({exc.strerror})", EX_CANTCREAT)
