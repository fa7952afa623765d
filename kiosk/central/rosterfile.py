"""Reading a roster file, and the office's register of issued passes, into holders with the
subjects kiosks record for them.

A roster CSV has a header row and the columns ``name``, ``unit``, ``kind`` (staff, visitor or
contractor), optionally ``phone``, and at least one of the identifier columns: ``badge`` (a
badge id as on the allowlist), ``pass`` (the holder reference written in a signed pass, the
``subject`` column of issued-passes.csv) or ``subject`` (a subject as kiosks record it, such as
the ``n-…`` of a national-app code). Each row fills exactly one identifier. UTF-8, with or
without a byte-order mark (as Excel saves it). Any wrong row refuses the whole file, naming
file, line and column; a name never appears in a log.

Subjects are computed exactly as the kiosks do (:meth:`kiosk.decide.entrance.Entrance._subject`):
``Pseudonymizer(salt).subject(badge_id)`` for a badge, ``subject("pass:" + holder_ref)`` for a
signed pass, with the site's salt.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiosk.credentials.allowlist import BADGE_ID, KINDS
from kiosk.credentials.office import ALL_SITES
from kiosk.credentials.passes import IDENTIFIER
from kiosk.credentials.register import COLUMNS as REGISTER_COLUMNS
from kiosk.decide.privacy import Pseudonymizer

#: The largest roster or register file, read by the CLI and uploaded on the dashboard alike
#: (20,000 people take about 2 MB).
MAX_FILE_BYTES = 8 * 1024 * 1024
ID_COLUMNS = ("badge", "pass", "subject")
COLUMNS = (*ID_COLUMNS, "name", "unit", "kind", "phone")
_REQUIRED = ("name", "unit", "kind")
_SUBJECT = re.compile(r"[sn]-[0-9a-f]{20}")
_PHONE = re.compile(r"[0-9+() .-]{3,32}")
_MAX_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RosterFileError(ValueError):
    """A roster or register file that cannot be imported; the message names file, line and
    column, never the holder's name."""


@dataclass(frozen=True)
class Holder:
    """One person of a roster file, with the subject kiosks record for them."""

    subject: str
    name: str
    unit: str
    kind: str
    phone: str | None
    line: int


def read_roster(path: Path, subjects: Pseudonymizer) -> list[Holder]:
    """Every holder of a roster CSV; :class:`RosterFileError` for the first wrong row."""
    rows = _rows(path)
    header = [cell.strip().lower() for cell in next(rows, (0, []))[1]]
    _check_header(path, header)
    holders = []
    for line, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if len(cells) != len(header):
            raise RosterFileError(
                f"{path}:{line}: {len(cells)} cells, the header has {len(header)}"
            )
        row = dict(zip(header, (cell.strip() for cell in cells), strict=True))
        holders.append(_holder(path, line, row, subjects))
    return _unique(path, holders)


def read_register(path: Path, subjects: Pseudonymizer, site: str) -> list[Holder]:
    """The pass holders of an issued-passes.csv whose passes are good at ``site``: one holder
    per holder reference, named by a ``name`` column where the file has one, else by the
    reference itself (the register never holds a name); ``unit`` and ``phone`` likewise."""
    rows = _rows(path)
    header = [cell.strip() for cell in next(rows, (0, []))[1]]
    if tuple(header[: len(REGISTER_COLUMNS)]) != REGISTER_COLUMNS:
        raise RosterFileError(f"{path}:1: not a register of issued passes (header)")
    by_reference: dict[str, Holder] = {}
    for line, cells in rows:
        if len(cells) != len(header):
            raise RosterFileError(
                f"{path}:{line}: {len(cells)} cells, the header has {len(header)}"
            )
        row = dict(zip(header, (cell.strip() for cell in cells), strict=True))
        sites = row["sites"].split(",")
        if ALL_SITES not in sites and site not in sites:
            continue
        reference = _text(path, line, "subject", row["subject"], IDENTIFIER)
        fields = {"name": row.get("name") or reference, "unit": row.get("unit", "")}
        named = {column: _text(path, line, column, value) for column, value in fields.items()}
        phone = _text(path, line, "phone", row.get("phone", ""), _PHONE) or None
        kind = _kind(path, line, row["kind"])
        subject = subjects.subject("pass:" + reference)
        by_reference[reference] = Holder(subject, named["name"], named["unit"], kind, phone, line)
    return list(by_reference.values())


def subject_of(identifier: str, column: str, subjects: Pseudonymizer) -> str:
    """The subject kiosks record for a ``badge`` id, a ``pass`` holder reference or a
    ``subject`` given as it is."""
    if column == "badge":
        return subjects.subject(identifier)
    if column == "pass":
        return subjects.subject("pass:" + identifier)
    return identifier


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RosterFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise RosterFileError(f"{path}: larger than {MAX_FILE_BYTES // 1048576} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RosterFileError(f"{path}:{line}: not UTF-8 (save the file as CSV UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise RosterFileError(f"{path}:{reader.line_num}: damaged CSV: {exc}") from None


def _check_header(path: Path, header: Sequence[str]) -> None:
    unknown = [column for column in header if column not in COLUMNS]
    if unknown:
        raise RosterFileError(
            f"{path}:1: column {unknown[0]!r} is unknown; allowed: {', '.join(COLUMNS)}"
        )
    missing = [column for column in _REQUIRED if column not in header]
    if missing or not any(column in header for column in ID_COLUMNS):
        wanted = ", ".join(missing) if missing else " or ".join(ID_COLUMNS)
        raise RosterFileError(f"{path}:1: the header needs the column {wanted}")
    twice = [column for column in header if header.count(column) > 1]
    if twice:
        raise RosterFileError(f"{path}:1: column {twice[0]!r} appears twice")


def _holder(path: Path, line: int, row: dict[str, str], subjects: Pseudonymizer) -> Holder:
    given = [column for column in ID_COLUMNS if row.get(column)]
    if len(given) != 1:
        present = " or ".join(column for column in ID_COLUMNS if column in row)
        raise RosterFileError(f"{path}:{line}: fill exactly one of the columns {present}")
    (column,) = given
    pattern = {"badge": BADGE_ID, "pass": IDENTIFIER, "subject": _SUBJECT}[column]
    identifier = _text(path, line, column, row[column], pattern)
    name = _text(path, line, "name", row["name"])
    if not name:
        raise RosterFileError(f"{path}:{line}: column 'name' is empty")
    return Holder(
        subject_of(identifier, column, subjects),
        name,
        _text(path, line, "unit", row["unit"]),
        _kind(path, line, row["kind"]),
        _text(path, line, "phone", row.get("phone", ""), _PHONE) or None,
        line,
    )


def _text(
    path: Path, line: int, column: str, value: str, pattern: re.Pattern[str] | None = None
) -> str:
    if pattern is not None and value and not pattern.fullmatch(value):
        raise RosterFileError(f"{path}:{line}: column {column!r} is not a valid {column}")
    if len(value) > _MAX_TEXT or _CONTROL.search(value):
        problem = "is too long" if len(value) > _MAX_TEXT else "has control characters"
        raise RosterFileError(f"{path}:{line}: column {column!r} {problem}")
    return unicodedata.normalize("NFC", value)


def _kind(path: Path, line: int, value: str) -> str:
    if value not in KINDS:
        raise RosterFileError(f"{path}:{line}: column 'kind' must be one of {', '.join(KINDS)}")
    return value


def _unique(path: Path, holders: list[Holder]) -> list[Holder]:
    first: dict[str, int] = {}
    for holder in holders:
        if holder.subject in first:
            raise RosterFileError(
                f"{path}:{holder.line}: the same person as line {first[holder.subject]}"
            )
        first[holder.subject] = holder.line
    return holders
