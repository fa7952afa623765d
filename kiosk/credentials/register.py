"""The register of issued passes, kept in the office so that a pass can be revoked by holder.

``kiosk pass issue`` and ``kiosk pass batch`` append one CSV row per pass, and fsync it, before
the pass is handed out; nothing ever rewrites a row. A row holds what the pass itself says and
no more: when it was issued, the pass id, the holder reference the clerk typed (the pass's
pseudonymous subject, never a name), the kind, the validity, the sites and the issuer.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk.credentials.office import ALL_SITES
from kiosk.credentials.passes import PassClaims

FILE_NAME = "issued-passes.csv"
COLUMNS = (
    "issued_at",
    "pass_id",
    "subject",
    "kind",
    "valid_from",
    "valid_until",
    "sites",
    "issuer",
)
# Kiosks accept a pass up to credentials.clock_skew_s (at most an hour) after it expires.
GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Issued:
    """One row of the register."""

    pass_id: str
    subject: str
    valid_until: datetime


def append(path: Path, passes: Sequence[PassClaims]) -> None:
    """Append a row per pass (a header first in a new file, mode 0600), then fsync; OSError
    if it cannot be written."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for claims in passes:
        writer.writerow(
            (
                claims.issued_at.isoformat(),
                claims.pass_id,
                claims.subject,
                claims.kind,
                claims.valid_from.isoformat(),
                claims.valid_until.isoformat(),
                ALL_SITES if claims.sites is None else ",".join(claims.sites),
                claims.issuer,
            )
        )
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "ab") as file:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # two clerks issuing at once
        header = ",".join(COLUMNS) + "\n" if os.fstat(descriptor).st_size == 0 else ""
        file.write((header + rows.getvalue()).encode("utf-8"))
        file.flush()
        os.fsync(descriptor)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the file's name survives a power cut too
    finally:
        os.close(directory)


def read(path: Path) -> list[Issued]:
    """Every pass in the register; ValueError naming the file and line of a damaged row."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no register of issued passes here (see --register)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the register: {exc.strerror or exc}") from None
    try:
        return _parse(path, csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValueError(f"{path}: damaged register: {exc}") from None


def _parse(path: Path, reader: Any) -> list[Issued]:  # a csv.reader (no public type)
    if next(reader, None) != list(COLUMNS):
        raise ValueError(f"{path}:1: not a register of issued passes (header)")
    issued = []
    for row in reader:
        try:
            fields = dict(zip(COLUMNS, row, strict=True))
            until = datetime.fromisoformat(fields["valid_until"])
            if until.tzinfo is None:
                raise ValueError("valid_until without a UTC offset")
        except ValueError:
            raise ValueError(f"{path}:{reader.line_num}: damaged row") from None
        issued.append(Issued(fields["pass_id"], fields["subject"], until))
    return issued


def pass_ids_of(issued: Sequence[Issued], subject: str, now: datetime) -> list[str]:
    """The ids of ``subject``'s passes that a kiosk could still accept at ``now`` or later."""
    return [p.pass_id for p in issued if p.subject == subject and p.valid_until + GRACE > now]
