"""``kiosk pass …`` and ``kiosk site-qr``: the organisation's side, run on an office machine.

The private keys never need to be on a kiosk: kiosks hold only the document-signing public
key (the trust anchor) and receive the signed trust and revocation lists.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from kiosk.credentials import issuing
from kiosk.credentials.documents import DocumentError, load_document
from kiosk.credentials.passes import PassVerifier, decode_pass

EX_DATAERR = 65  # sysexits.h: the input data was incorrect


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fail(message: str, code: int = EX_DATAERR) -> None:
    click.echo(f"kiosk: {message}", err=True)
    sys.exit(code)


def _write_pass(
    text: str, out: Path, name: str, *, kind: str, valid_until: datetime, subject: str
) -> issuing.QrInfo:
    out.mkdir(parents=True, exist_ok=True)
    info = issuing.write_qr(text, out / f"{name}.png", out / f"{name}.svg")
    page = issuing.badge_page(text, kind=kind, valid_until=valid_until, subject=subject)
    (out / f"{name}.html").write_text(page, encoding="utf-8")
    return info


@click.group("pass")
def pass_group() -> None:
    """Issue, revoke and inspect signed passes (KP1: QR codes verified offline)."""


@pass_group.command("keygen")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name",
    default="signing",
    show_default=True,
    help="File name: 'issuer' signs passes, 'documents' signs the lists.",
)
def keygen(directory: Path, name: str) -> None:
    """Create an Ed25519 key pair: NAME.key (private, 0600) and NAME.pub."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        private, public = issuing.generate_keypair(directory, name)
    except FileExistsError as exc:
        _fail(f"{exc.filename}: exists; refusing to overwrite a key")
    click.echo(f"private key {private} (keep it off the kiosks), public key {public}")


key_option = click.option(
    "--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)


@pass_group.command("issue")
@key_option
@click.option("--issuer", required=True, help="The organisation's id.")
@click.option("--subject", required=True, help="Pseudonymous holder id (never a name).")
@click.option("--kind", type=click.Choice(["staff", "visitor", "contractor"]), required=True)
@click.option("--valid-from", help="ISO date-time (default: now).")
@click.option("--valid-until", required=True, help="ISO date-time.")
@click.option("--sites", help="Comma-separated site ids (default: every site).")
@click.option("--health-declared-at", help="Time of the holder's last health declaration.")
@click.option("--meeting", help="Meeting id, for check-in passes.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where the QR (PNG, SVG) and badge page go.",
)
def issue(
    key_path: Path,
    issuer: str,
    subject: str,
    kind: str,
    valid_from: str | None,
    valid_until: str,
    sites: str | None,
    health_declared_at: str | None,
    meeting: str | None,
    out: Path,
) -> None:
    """Sign one pass: print its text, write its QR code and a printable badge page."""
    until = _when(valid_until)
    assert until is not None
    try:
        text = issuing.issue_pass(
            issuing.read_private_key(key_path),
            subject=subject,
            kind=kind,
            valid_from=_when(valid_from) or datetime.now(UTC),
            valid_until=until,
            sites=sites.split(",") if sites else None,
            issuer=issuer,
            health_declared_at=_when(health_declared_at),
            meeting=meeting,
        )
    except ValueError as exc:
        _fail(str(exc))
    info = _write_pass(text, out, subject, kind=kind, valid_until=until, subject=subject)
    click.echo(text)
    click.echo(
        f"QR version {info.version}-{info.error}, {info.chars} characters; "
        f"{out / subject}.png/.svg/.html",
        err=True,
    )


@pass_group.command("batch")
@key_option
@click.option("--issuer", required=True)
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def batch(key_path: Path, issuer: str, csv_file: Path, out: Path) -> None:
    """Issue a pass per CSV row (subject,kind,valid_from,valid_until,sites); bad rows listed."""
    result = issuing.issue_batch(
        issuing.read_private_key(key_path), csv_file.read_text(encoding="utf-8"), issuer=issuer
    )
    for subject, text in result.passes:
        claims = decode_pass(text).claims
        _write_pass(
            text, out, subject, kind=claims.kind, valid_until=claims.valid_until, subject=subject
        )
    for error in result.errors:
        click.echo(f"{csv_file}: {error}", err=True)
    click.echo(f"{len(result.passes)} passes written to {out}, {len(result.errors)} rows refused")
    if result.errors:
        sys.exit(EX_DATAERR)


@pass_group.command("trust")
@key_option
@click.option("--org", required=True)
@click.option(
    "--version",
    type=click.IntRange(1),
    required=True,
    help="Must be higher than the list the kiosks hold.",
)
@click.argument(
    "public_keys",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def trust(key_path: Path, org: str, version: int, public_keys: tuple[Path, ...], out: Path) -> None:
    """Sign the trust list: the issuer keys kiosks accept (list old and new to rotate)."""
    document = issuing.trust_document(
        issuing.read_private_key(key_path),
        org=org,
        version=version,
        public_keys=[issuing.read_public_key(path) for path in public_keys],
    )
    out.write_bytes(document)
    click.echo(
        f"trust list v{version} with {len(public_keys)} keys: {out}; publish it "
        f"retained on kiosk/v1/<site>/site/trust"
    )


@pass_group.command("revoke")
@key_option
@click.option("--org", required=True)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSON file keeping the revoked ids and the list's version.",
)
@click.argument("pass_ids", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def revoke(key_path: Path, org: str, state: Path, pass_ids: tuple[str, ...], out: Path) -> None:
    """Add pass ids to the revocation list and sign its next version."""
    known: dict[str, Any] = {"version": 0, "revoked": []}
    if state.exists():
        known = json.loads(state.read_text(encoding="utf-8"))
    revoked = sorted(set(known["revoked"]) | {p.lower() for p in pass_ids})
    version = int(known["version"]) + 1
    out.write_bytes(
        issuing.revocation_document(
            issuing.read_private_key(key_path), org=org, version=version, pass_ids=revoked
        )
    )
    state.write_text(
        json.dumps({"version": version, "revoked": revoked}, indent=1), encoding="utf-8"
    )
    click.echo(
        f"revocation list v{version} with {len(revoked)} passes: {out}; publish it "
        f"retained on kiosk/v1/<site>/site/revocation"
    )


@pass_group.command("inspect")
@click.argument("token")
@click.option(
    "--anchor",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Trust anchor public key, to verify against --trust-list.",
)
@click.option("--trust-list", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--site", default="*", help="Check the pass as a kiosk of this site would.")
def inspect_pass(token: str, anchor: Path | None, trust_list: Path | None, site: str) -> None:
    """Print a pass's claims and, given the anchor and trust list, the verdict (JSON)."""
    verifier = None
    if anchor is not None and trust_list is not None:
        try:
            document = load_document(
                trust_list.read_bytes(),
                issuing.read_public_key(anchor),
                expected_type="trust",
                current_version=None,
            )
        except DocumentError as exc:
            _fail(f"{trust_list}: {exc}")
        verifier = PassVerifier(document.keys, site=site)
    click.echo(json.dumps(issuing.inspect(token, verifier, datetime.now(UTC)), indent=1))


@click.command("site-qr")
@click.option("--base-url", required=True, help="The check-in web address (https).")
@click.option("--site", required=True)
@click.option("--kiosk", help="Name one entrance in the code.")
@click.option("--site-name", default="", help="Shown on the poster.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
def site_qr(base_url: str, site: str, kiosk: str | None, site_name: str, out: Path) -> None:
    """Write the site's own check-in QR code and a poster to put up at the entrance (R2)."""
    from kiosk import sitecode

    try:
        payload = sitecode.site_checkin_payload(base_url, site, kiosk)
    except ValueError as exc:
        _fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    sitecode.render_site_qr(payload, out / f"{site}-checkin.png", out / f"{site}-checkin.svg")
    (out / f"{site}-poster.html").write_text(
        sitecode.poster_html(payload, site_name=site_name or site), encoding="utf-8"
    )
    click.echo(f"{payload}\n{out}/{site}-checkin.png, .svg and {site}-poster.html")
