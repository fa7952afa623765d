"""The daily list as a file: XLSX (a header row, a frozen pane, column widths and a Summary
sheet), CSV (UTF-8 with a byte-order mark, so Excel shows Vietnamese; the rows only) or JSON
(the rows and the summary), with Vietnamese or English words."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from kiosk.central.reports.daily import DailyList, DailyRow
from kiosk.central.reports.words import (
    column_names,
    kind_word,
    label,
    outcome_word,
    reason_word,
)
from kiosk.central.settings import ReportFormat
from kiosk.central.spreadsheet import inert
from kiosk.decide.texts import Language

MEDIA_TYPES: dict[str, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "json": "application/json",
}
_WIDTHS = (20, 16, 14, 10, 28, 22, 12, 12, 40, 16)  # characters, per column
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def file_name(day_text: str, site: str | None, fmt: ReportFormat) -> str:
    """``entries-<site>-<day>.<fmt>``; ``entries-<day>.<fmt>`` for every site."""
    return f"entries-{site}-{day_text}.{fmt}" if site else f"entries-{day_text}.{fmt}"


def cells(row: DailyRow, language: Language) -> list[Any]:
    """A row's cells in column order; the time as a local ``datetime`` without its zone; text
    that a spreadsheet would run as a formula made inert."""
    values = [
        row.local_time.replace(tzinfo=None),
        row.site_name,
        row.kiosk,
        row.area,
        row.name if row.name is not None else (row.subject or ""),
        row.unit or "",
        kind_word(row.kind, language),
        outcome_word(row.outcome, language),
        reason_word(row.reason, language),
        row.celsius,
    ]
    return [inert(value) for value in values]


def summary_lines(daily: DailyList, language: Language) -> list[tuple[str, str | int]]:
    """The summary as (label, value) lines: the day, the sites, the counts, then one line per
    reason of denial."""
    summary = daily.summary
    lines: list[tuple[str, str | int]] = [
        (label("day", language), daily.day.isoformat()),
        (label("sites", language), ", ".join(daily.sites)),
        (label("decisions", language), summary.decisions),
        (label("entries", language), summary.entries),
        (label("people", language), summary.people),
        (label("fevers", language), summary.fevers),
        (label("referrals", language), summary.referrals),
    ]
    denied = label("denials", language)
    for reason, count in summary.denials.items():
        lines.append((f"{denied}: {reason_word(reason, language) or reason}", count))
    return lines


def render(daily: DailyList, fmt: ReportFormat, language: Language) -> bytes:
    """The list as the bytes of a file in ``fmt``."""
    if fmt == "csv":
        return _csv(daily, language)
    if fmt == "json":
        return _json(daily, language)
    return _xlsx(daily, language)


def _csv(daily: DailyList, language: Language) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(column_names(language))
    for row in daily.rows:
        values = cells(row, language)
        values[0] = local_time_text(values[0])
        writer.writerow("" if value is None else value for value in values)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _json(daily: DailyList, language: Language) -> bytes:
    summary = daily.summary
    document = {
        "day": daily.day.isoformat(),
        "sites": list(daily.sites),
        "language": language,
        "columns": column_names(language),
        "rows": [
            {
                "time": row.local_time.isoformat(timespec="seconds"),
                "site": row.site,
                "site_name": row.site_name,
                "kiosk": row.kiosk,
                "area": row.area,
                "subject": row.subject,
                "name": row.name,
                "unit": row.unit,
                "kind": row.kind,
                "outcome": row.outcome,
                "reason": row.reason,
                "outcome_text": outcome_word(row.outcome, language),
                "reason_text": reason_word(row.reason, language),
                "celsius": row.celsius,
            }
            for row in daily.rows
        ],
        "summary": {
            "decisions": summary.decisions,
            "entries": summary.entries,
            "people": summary.people,
            "denials": summary.denials,
            "fevers": summary.fevers,
            "referrals": summary.referrals,
        },
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _xlsx(daily: DailyList, language: Language) -> bytes:
    """XlsxWriter in constant-memory mode (rows streamed to a temporary file as written);
    text goes through ``write_string``, which never makes a formula."""
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"constant_memory": True})
    bold = book.add_format({"bold": True})
    moment = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet = book.add_worksheet(label("list_sheet", language))
    sheet.freeze_panes(1, 0)
    for index, width in enumerate(_WIDTHS):
        sheet.set_column(index, index, width)
    for col, name in enumerate(column_names(language)):
        sheet.write_string(0, col, name, bold)
    for number, row in enumerate(daily.rows, start=1):
        for col, value in enumerate(cells(row, language)):
            if isinstance(value, str) and value:  # empty text: an empty cell
                sheet.write_string(number, col, value)
            elif isinstance(value, datetime):
                sheet.write_datetime(number, col, value, moment)
            elif isinstance(value, int | float):
                sheet.write_number(number, col, value)
    summary = book.add_worksheet(label("sheet", language))
    summary.set_column(0, 0, 44)
    summary.set_column(1, 1, 24)
    summary.write_string(0, 0, label("title", language), bold)
    for number, (name, value) in enumerate(summary_lines(daily, language), start=1):
        summary.write_string(number, 0, name)
        if isinstance(value, str):
            summary.write_string(number, 1, value)
        else:
            summary.write_number(number, 1, value)
    book.close()
    return out.getvalue()


def summary_text(daily: DailyList, language: Language) -> str:
    """The summary as plain text lines ``label: value`` (the terminal, the mail's body)."""
    return "\n".join(f"{name}: {value}" for name, value in summary_lines(daily, language))


def local_time_text(moment: datetime) -> str:
    """A local time as the CSV writes it."""
    return moment.strftime(_TIME_FORMAT)
