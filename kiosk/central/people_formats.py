"""Who is inside and the exposure trace as text, CSV and JSON (``report inside``, ``trace``).

Local times are ISO 8601 with the site's UTC offset; a subject the roster does not know has
empty name and unit. CSV has a header row; written to a file it gets a byte-order mark so
that Excel shows Vietnamese names (see :func:`file_bytes`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from kiosk.central.presence import AreaCount, Present
from kiosk.central.spreadsheet import inert
from kiosk.central.trace import Contact, Sighting, Trace

Format = Literal["text", "csv", "json"]
_INSIDE = ("site", "area", "subject", "name", "unit", "kind", "since", "kiosk")
_TRACE = (
    "record",
    "local_time",
    "subject",
    "name",
    "unit",
    "kind",
    "reason",
    "where",
    "index_time",
    "detail",
)


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([inert(value) for value in row] for row in rows)
    return out.getvalue()


def file_bytes(text: str, fmt: str) -> bytes:
    """What goes into a file: UTF-8, with a byte-order mark for CSV (Excel)."""
    return text.encode("utf-8-sig" if fmt == "csv" else "utf-8")


def _present_row(p: Present) -> list[str]:
    name, unit = (p.person.name, p.person.unit) if p.person else ("", "")
    return [p.site, p.area, p.subject, name, unit, p.kind, p.since.isoformat(), p.kiosk]


def inside_text(areas: Sequence[AreaCount], fmt: Format) -> str:
    """Who is inside, per site and area, in ``fmt``."""
    if fmt == "csv":
        return _csv(_INSIDE, [_present_row(p) for a in areas for p in a.people])
    if fmt == "json":
        return json.dumps(
            [
                {
                    "site": a.site,
                    "area": a.area,
                    "inside": len(a.people),
                    "people": [
                        dict(zip(_INSIDE[2:], _present_row(p)[2:], strict=True)) for p in a.people
                    ],
                }
                for a in areas
            ],
            ensure_ascii=False,
            indent=1,
        )
    lines = []
    for area in areas:
        lines.append(f"{area.site} / {area.area or '-'}: {len(area.people)} inside")
        for p in area.people:
            who = f"{p.person.name} ({p.person.unit})" if p.person else p.subject
            lines.append(f"  {p.since:%H:%M}  {p.kiosk:<12} {p.kind:<10} {who}")
    return "\n".join(lines or ["nobody has passed a kiosk today"]) + "\n"


def _sighting_row(trace: Trace, s: Sighting) -> list[str]:
    name, unit = (trace.person.name, trace.person.unit) if trace.person else ("", "")
    kind = trace.person.kind if trace.person else ""
    where = s.meeting or f"{s.kiosk} ({s.area}, {s.direction})"
    return ["index", s.at.isoformat(), trace.subject, name, unit, kind, s.outcome, where, "", ""]


def _contact_row(c: Contact) -> list[str]:
    name, unit = (c.person.name, c.person.unit) if c.person else ("", "")
    return [
        "contact",
        c.at.isoformat(),
        c.subject,
        name,
        unit,
        c.kind,
        c.reason,
        c.where,
        c.index_at.isoformat(),
        c.detail,
    ]


def trace_text(trace: Trace, fmt: Literal["csv", "json"]) -> str:
    """The trace in ``fmt``: the index person's passages, then the contacts. In CSV, an index
    row's ``reason`` is the decision's outcome and ``where`` the kiosk (area, direction) or
    the meeting."""
    rows = [_sighting_row(trace, s) for s in trace.sightings]
    rows += [_contact_row(c) for c in trace.contacts]
    if fmt == "csv":
        return _csv(_TRACE, rows)
    person = trace.person
    return json.dumps(
        {
            "site": trace.site,
            "subject": trace.subject,
            "name": person.name if person else None,
            "unit": person.unit if person else None,
            "from": trace.start.isoformat(),
            "to": trace.end.isoformat(),
            "window_min": trace.window.total_seconds() / 60,
            "passages": [
                {
                    "local_time": s.at.isoformat(),
                    "kiosk": s.kiosk,
                    "area": s.area,
                    "direction": s.direction,
                    "outcome": s.outcome,
                    "meeting": s.meeting,
                }
                for s in trace.sightings
            ],
            "contacts": [
                dict(zip(_TRACE[1:], _contact_row(c)[1:], strict=True)) for c in trace.contacts
            ],
        },
        ensure_ascii=False,
        indent=1,
    )
