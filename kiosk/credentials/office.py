"""What the office types, read the way the site means it: times in the site's time zone,
lists of sites, and the CSV of a batch of passes.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.credentials.issuing import issue_pass

BATCH_COLUMNS = ("subject", "kind", "valid_from", "valid_until", "sites")
BATCH_OPTIONAL = ("meeting", "health_declared_at")
ALL_SITES = "*"
SITE_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class BatchResult:
    """Passes issued from a CSV as (subject, text), and one message per refused row."""

    passes: list[tuple[str, str]]
    errors: list[str]


def site_zone(name: str | None) -> tzinfo:
    """The site's time zone: an IANA name (``Asia/Ho_Chi_Minh``), or None for this machine's
    own (``TZ`` or ``/etc/localtime``); ValueError for an unknown name."""
    if name is None:
        name = os.environ.get("TZ", "").lstrip(":")
        if not name and os.path.islink("/etc/localtime"):
            name = os.readlink("/etc/localtime").partition("zoneinfo/")[2]
        try:
            return ZoneInfo(name) if name else _fixed_local_zone()
        except (ZoneInfoNotFoundError, ValueError):
            return _fixed_local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone name (such as Asia/Ho_Chi_Minh)") from None


def parse_moment(text: str, label: str, *, zone: tzinfo, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; ValueError naming ``label`` if it is neither.

    A date alone is the start of that day in ``zone`` (the site's time zone), or with
    ``end_of_day`` its last second; a date-time without a UTC offset is in ``zone`` too.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{label} must be an ISO date or date-time (got {text!r})") from None
    if len(text.strip()) == 10 and end_of_day:  # a plain date: through the end of that day
        parsed += timedelta(days=1, seconds=-1)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def parse_sites(text: str) -> tuple[str, ...] | None:
    """Site ids separated by commas (or spaces, semicolons); ``*`` is every site (None).

    ValueError when there is none.
    """
    if text.strip() == ALL_SITES:
        return None
    sites = tuple(site for site in SITE_SEPARATORS.split(text) if site)
    if not sites:
        raise ValueError(f"no site given; write {ALL_SITES} for every site")
    return sites


def issue_batch(
    private_key: Ed25519PrivateKey,
    csv_text: str,
    *,
    issuer: str,
    zone: tzinfo,
    issued_at: datetime | None = None,
) -> BatchResult:
    """Issue one pass per CSV row; a bad row is reported with its line number and skipped.

    The header names the columns: ``subject,kind,valid_from,valid_until,sites`` and optionally
    ``meeting,health_declared_at``. Times read as in :func:`parse_moment`, in the site's time
    ``zone``; an empty ``valid_from`` is the time of issue. ``sites`` as in
    :func:`parse_sites`, and never empty. Lines starting with ``#`` are comments. ValueError
    when the header is missing a column.
    """
    issued_at = issued_at if issued_at is not None else datetime.now(UTC)
    reader = csv.reader(io.StringIO(csv_text))
    header: list[str] | None = None
    passes: list[tuple[str, str]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for row in reader:
        if not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if header is None:
            missing = [name for name in BATCH_COLUMNS if name not in cells]
            if missing:
                raise ValueError(f"line {reader.line_num}: header lacks {', '.join(missing)}")
            header = cells
            continue
        if len(cells) != len(header):
            errors.append(f"line {reader.line_num}: expected {len(header)} columns")
            continue
        fields = dict(zip(header, cells, strict=True))
        try:
            if fields["subject"] in seen:
                raise ValueError(f"subject {fields['subject']} already has a pass in this batch")
            text = _issue_row(private_key, fields, issuer=issuer, zone=zone, issued_at=issued_at)
        except ValueError as error:
            errors.append(f"line {reader.line_num}: {error}")
            continue
        seen.add(fields["subject"])
        passes.append((fields["subject"], text))
    return BatchResult(passes, errors)


def _fixed_local_zone() -> tzinfo:
    return datetime.now(UTC).astimezone().tzinfo or UTC


def _issue_row(
    private_key: Ed25519PrivateKey,
    fields: dict[str, str],
    *,
    issuer: str,
    zone: tzinfo,
    issued_at: datetime,
) -> str:
    if not fields["sites"]:
        raise ValueError(f"sites is empty; write {ALL_SITES} for every site")
    declared = fields.get("health_declared_at") or None
    return issue_pass(
        private_key,
        subject=fields["subject"],
        kind=fields["kind"],
        valid_from=parse_moment(fields["valid_from"], "valid_from", zone=zone)
        if fields["valid_from"]
        else issued_at,
        valid_until=parse_moment(fields["valid_until"], "valid_until", zone=zone, end_of_day=True),
        sites=parse_sites(fields["sites"]),
        issuer=issuer,
        health_declared_at=None
        if declared is None
        else parse_moment(declared, "health_declared_at", zone=zone),
        meeting=fields.get("meeting") or None,
        issued_at=issued_at,
    )
