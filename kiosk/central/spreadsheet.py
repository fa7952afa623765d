"""Cells that a spreadsheet must show, never run.

A roster name or unit comes from a file someone typed; a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is taken by Excel and LibreOffice as a formula (in CSV,
and in XLSX when written as a string that openpyxl reads as a formula). Such text gets a
leading apostrophe, which spreadsheets show as plain text (OWASP's advice on CSV injection).
"""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """``value`` as a cell: text that would start a formula gets a leading apostrophe;
    anything else (numbers, dates, None) is returned as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
