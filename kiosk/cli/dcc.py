"""``kiosk dcc``: verify EU DCC (``HC1:``) codes, and sign the DCC trust list kiosks load."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kiosk.cli.common import EX_USAGE
from kiosk.cli.lists import anchor_option, fail, key_option, private_key, version_option
from kiosk.credentials import issuing
from kiosk.credentials.dcc import Dsc, DscList, verify
from kiosk.credentials.dcc.trustlist import (
    MAX_GATEWAY_BYTES,
    encode_trust_list,
    load_trust_list,
    parse_gateway_list,
)
from kiosk.credentials.documents import DocumentError
from kiosk.store.durable import write_whole

TOPIC = "kiosk/v1/<site>/site/dcc-trust"


@click.group("dcc")
def dcc_group() -> None:
    """EU Digital COVID Certificates (HC1: codes): verify them, sign their trust list."""


@dcc_group.command("verify")
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A trust list: a gateway's JSON list, or a signed list (give --anchor).",
)
@click.option(
    "--dsc",
    "dsc_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A DSC certificate (PEM or DER) to trust (repeatable).",
)
@anchor_option
@click.option("--at", "at_text", help="Verify at this ISO 8601 time (default: now).")
@click.argument("codes", nargs=-1)
def verify_command(
    trust_file: Path | None,
    dsc_files: tuple[Path, ...],
    anchor: Path | None,
    at_text: str | None,
    codes: tuple[str, ...],
) -> None:
    """Print one JSON object per code (valid, reason, type, country, step); codes are read
    from stdin, one a line, when none is given. Exit 0 when every code is valid, 1 if not."""
    if trust_file is None and not dsc_files:
        fail("give --trust FILE or --dsc CERT.pem: the signers to trust", EX_USAGE)
    at = _time(at_text)
    dscs = [_read_dsc(path) for path in dsc_files]
    if trust_file is not None:
        dscs += _read_trust(trust_file, anchor)
    trust = DscList(dscs)
    lines = codes or tuple(line.strip() for line in sys.stdin if line.strip())
    if not lines:
        fail("no code given", EX_USAGE)
    results = [verify(code, trust, at) for code in lines]
    for result in results:
        click.echo(json.dumps(result.summary()))
    sys.exit(0 if all(result.valid for result in results) else 1)


@dcc_group.group("trust")
def trust_group() -> None:
    """The DCC trust list: the document signers (DSCs) kiosks accept."""


@trust_group.command("import")
@click.argument("gateway_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@key_option
@click.option("--org", required=True)
@version_option
@click.option(
    "--country",
    "countries",
    multiple=True,
    help="Import only this country's DSCs (repeatable; ISO 3166 alpha-2, e.g. VN).",
)
@anchor_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def import_command(
    gateway_file: Path,
    key_path: Path,
    org: str,
    version: int,
    countries: tuple[str, ...],
    anchor: Path | None,
    out: Path,
) -> None:
    """Sign the DSCs of a gateway's JSON list (base64 DER certificate, kid, country) as the
    site's DCC trust list."""
    key = private_key(key_path)
    if anchor is not None:
        try:
            problem = issuing.document_key_problem(key, anchor=issuing.read_public_key(anchor))
        except ValueError as exc:
            fail(str(exc))
        if problem is not None:
            fail(f"{problem}; nothing written")
    try:
        dscs, skipped = parse_gateway_list(
            _read_bounded(gateway_file), frozenset(countries) if countries else None
        )
        for line in skipped:
            click.echo(f"kiosk: skipped {line}", err=True)
        document = encode_trust_list(
            dscs, org=org, version=version, issued_at=datetime.now(UTC), signing_key=key
        )
    except ValueError as exc:
        fail(f"{gateway_file}: {exc}")
    try:
        write_whole(out, document)
    except OSError as exc:
        fail(f"{out}: cannot write it ({exc.strerror})")
    click.echo(
        f"DCC trust list v{version} with {len(DscList(dscs))} DSCs: {out}; publish it retained "
        f"on {TOPIC}"
    )


def _time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not an ISO 8601 time", EX_USAGE)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_dsc(path: Path) -> Dsc:
    data = path.read_bytes()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return Dsc.from_der(data)
    except ValueError as exc:
        fail(f"{path}: not a DSC certificate ({exc})")


def _read_trust(path: Path, anchor: Path | None) -> list[Dsc]:
    data = _read_bounded(path)
    if anchor is None:
        try:
            dscs, skipped = parse_gateway_list(data)
        except ValueError as exc:
            fail(f"{path}: {exc} (a signed list needs --anchor)")
        for line in skipped:
            click.echo(f"kiosk: skipped {line}", err=True)
        return dscs
    try:
        signed = load_trust_list(data, issuing.read_public_key(anchor), current_version=None)
    except (DocumentError, ValueError) as exc:
        fail(f"{path}: {exc}")
    return list(signed.dscs)


def _read_bounded(path: Path) -> bytes:
    if path.stat().st_size > MAX_GATEWAY_BYTES:
        fail(f"{path}: over {MAX_GATEWAY_BYTES} bytes")
    return path.read_bytes()
