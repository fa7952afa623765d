"""``kiosk pass …`` and ``kiosk site-qr``: the organisation's side, run on an office machine.

The private keys never need to be on a kiosk: kiosks hold only the document-signing public
key (the trust anchor) and receive the signed trust and revocation lists.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import click

from kiosk.cli.common import EX_CANTCREAT, EX_DATAERR, EX_USAGE
from kiosk.cli.lists import (
    anchor_option,
    fail,
    key_option,
    private_key,
    register_option,
    register_path,
    revoke,
    trust,
)
from kiosk.credentials import issuing, office, register
from kiosk.credentials.documents import DocumentError, load_document
from kiosk.credentials.passes import PassClaims, PassVerifier, decode_pass

NOT_VALID = 1  # ``pass inspect``: the pass is not valid (its status says why)


def _zone(name: str | None) -> tzinfo:
    try:
        return office.site_zone(name)
    except ValueError as exc:
        fail(f"--tz: {exc}", EX_USAGE)


def _register(path: Path, passes: list[PassClaims]) -> None:
    """Record the passes before they are handed out; a pass that cannot be recorded is not."""
    try:
        register.append(path, passes)
    except OSError as exc:
        fail(
            f"{path}: cannot record the issued passes ({exc.strerror}); nothing issued",
            EX_CANTCREAT,
        )


def _write_pass(text: str, out: Path, claims: PassClaims, zone: tzinfo) -> issuing.QrInfo:
    out.mkdir(parents=True, exist_ok=True)
    name = claims.subject
    info = issuing.write_qr(text, out / f"{name}.png", out / f"{name}.svg")
    page = issuing.badge_page(
        text, kind=claims.kind, valid_until=claims.valid_until, subject=name, zone=zone
    )
    (out / f"{name}.html").write_text(page, encoding="utf-8")
    return info


@click.group("pass")
def pass_group() -> None:
    """Issue, revoke and inspect signed passes (KP1: QR codes verified offline)."""


pass_group.add_command(trust)
pass_group.add_command(revoke)


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
        fail(f"{exc.filename}: exists; refusing to overwrite a key")
    click.echo(f"private key {private} (keep it off the kiosks), public key {public}")


tz_option = click.option(
    "--tz",
    help="The site's time zone (IANA name, e.g. Asia/Ho_Chi_Minh; default: this machine's): "
    "dates and times without an offset are read in it and badges print it.",
)
out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where the QR codes (PNG, SVG) and badge pages go.",
)


@pass_group.command("issue")
@key_option
@click.option("--issuer", required=True, help="The organisation's id.")
@click.option("--subject", required=True, help="The holder reference (pseudonymous, never a name).")
@click.option("--kind", type=click.Choice(["staff", "visitor", "contractor"]), required=True)
@click.option("--valid-from", help="ISO date or date-time (default: now; a date: its start).")
@click.option("--valid-until", required=True, help="ISO date-time, or a date: through its end.")
@click.option("--sites", help="Site ids separated by commas, or * (default: every site).")
@click.option("--health-declared-at", help="Time of the holder's last health declaration.")
@click.option("--meeting", help="Meeting id, for check-in passes.")
@tz_option
@register_option
@out_option
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
    tz: str | None,
    register_file: Path | None,
    out: Path,
) -> None:
    """Sign one pass: record it in the register, print its text and id, write its QR code
    and a printable badge page."""
    zone = _zone(tz)
    try:
        text = issuing.issue_pass(
            private_key(key_path),
            subject=subject,
            kind=kind,
            valid_from=datetime.now(UTC)
            if valid_from is None
            else office.parse_moment(valid_from, "--valid-from", zone=zone),
            valid_until=office.parse_moment(
                valid_until, "--valid-until", zone=zone, end_of_day=True
            ),
            sites=None if sites is None else office.parse_sites(sites),
            issuer=issuer,
            health_declared_at=None
            if health_declared_at is None
            else office.parse_moment(health_declared_at, "--health-declared-at", zone=zone),
            meeting=meeting,
        )
    except ValueError as exc:
        fail(str(exc))
    claims = decode_pass(text).claims
    path = register_path(register_file, key_path)
    _register(path, [claims])
    info = _write_pass(text, out, claims, zone)
    click.echo(text)
    click.echo(
        f"pass id {claims.pass_id} ({kind} {subject}, valid until "
        f"{issuing.local_text(claims.valid_until, zone)}), recorded in {path}\n"
        f"QR version {info.version}-{info.error}, {info.chars} characters; "
        f"{out / subject}.png/.svg/.html",
        err=True,
    )


@pass_group.command("batch")
@key_option
@click.option("--issuer", required=True)
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@tz_option
@register_option
@out_option
def batch(
    key_path: Path,
    issuer: str,
    csv_file: Path,
    tz: str | None,
    register_file: Path | None,
    out: Path,
) -> None:
    """Issue a pass per CSV row; bad rows are listed by line and skipped.

    \b
    Columns (the header names them, in any order):
      subject, kind, valid_from, valid_until, sites
      meeting, health_declared_at            (optional)
    Times as in `kiosk pass issue`: an empty valid_from is now, a date in valid_until runs
    through the end of that day in the site's time zone (--tz). sites: site ids separated by
    commas (quote the cell), or * for every site. Lines starting with # are comments.
    Prints each holder reference with its pass id.
    """
    zone = _zone(tz)
    try:
        result = office.issue_batch(
            private_key(key_path), csv_file.read_text(encoding="utf-8"), issuer=issuer, zone=zone
        )
    except ValueError as exc:
        fail(f"{csv_file}: {exc}")
    issued = [(text, decode_pass(text).claims) for _, text in result.passes]
    path = register_path(register_file, key_path)
    if issued:
        _register(path, [claims for _, claims in issued])
    for text, claims in issued:
        _write_pass(text, out, claims, zone)
        click.echo(f"{claims.subject} {claims.pass_id}")
    for error in result.errors:
        click.echo(f"{csv_file}: {error}", err=True)
    click.echo(
        f"{len(issued)} passes written to {out} and recorded in {path}, "
        f"{len(result.errors)} rows refused",
        err=True,
    )
    if result.errors:
        sys.exit(EX_DATAERR)


@pass_group.command("inspect")
@click.argument("token")
@anchor_option
@click.option("--trust-list", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--revocation-list",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Check the pass against it too (needs --anchor and --trust-list).",
)
@click.option("--site", default="*", help="Check the pass as a kiosk of this site would.")
def inspect_pass(
    token: str,
    anchor: Path | None,
    trust_list: Path | None,
    revocation_list: Path | None,
    site: str,
) -> None:
    """Print a pass's claims and, given the anchor and trust list, its verdict (JSON).

    \b
    Exit status: 0 the pass is valid (without --anchor and --trust-list: it is readable, its
    claims shown unverified); 1 it is not valid (the status says why: expired, revoked,
    wrong_site, not_a_pass, ...); 64 options that do not go together; 65 a key or list
    that cannot be used.
    """
    verifier = None
    if (anchor is None) != (trust_list is None) or (revocation_list and anchor is None):
        fail("--anchor and --trust-list go together; --revocation-list needs both", EX_USAGE)
    if anchor is not None and trust_list is not None:
        try:
            public = issuing.read_public_key(anchor)
            document = load_document(
                trust_list.read_bytes(), public, expected_type="trust", current_version=None
            )
            revoked = frozenset[str]()
            if revocation_list is not None:
                revoked = load_document(
                    revocation_list.read_bytes(),
                    public,
                    expected_type="revocation",
                    current_version=None,
                ).revoked
        except (DocumentError, ValueError) as exc:
            fail(f"{exc}")
        verifier = PassVerifier(document.keys, site=site, revoked=revoked)
    report = issuing.inspect(token, verifier, datetime.now(UTC))
    click.echo(json.dumps(report, indent=1))
    if report["error"] is not None or report["status"] not in (None, "valid"):
        sys.exit(NOT_VALID)


@click.command("site-qr")
@click.option("--base-url", required=True, help="The check-in web address (https).")
@click.option("--site", required=True)
@click.option("--kiosk", help="Name one entrance in the code.")
@click.option("--site-name", default="", help="Shown on the poster.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
def site_qr(base_url: str, site: str, kiosk: str | None, site_name: str, out: Path) -> None:
    """Write the site's own check-in QR code and a poster to put up at the entrance (R2)."""
    from kiosk.credentials import sitecode

    try:
        payload = sitecode.site_checkin_payload(base_url, site, kiosk)
    except ValueError as exc:
        fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    sitecode.render_site_qr(payload, out / f"{site}-checkin.png", out / f"{site}-checkin.svg")
    (out / f"{site}-poster.html").write_text(
        sitecode.poster_html(payload, site_name=site_name or site), encoding="utf-8"
    )
    click.echo(f"{payload}\n{out}/{site}-checkin.png, .svg and {site}-poster.html")
