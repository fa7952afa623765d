"""The roster: who holds which subject at a site, kept in the central store and nowhere else.

Kiosks and MQTT carry pseudonymous subjects only; the roster links a subject back to a person
(name, unit, kind, phone) so that central's reports and traces can name people. Each row
records where it came from (``import``: a roster file; ``register``: the office's register of
issued passes), who imported it and when. Importing a file again replaces the rows that came
from the same source at that site, in one transaction; where a roster file and the register
name the same subject, the roster file's row is kept. Names never go to a log.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from kiosk.central.rosterfile import Holder
from kiosk.central.store import Store

Source = Literal["import", "register"]
_COLUMNS = "site, subject, name, unit, kind, phone, source, imported_by, imported_at_ms"


class Person(NamedTuple):  # a tuple: a trace makes thousands, quickly
    """Who a subject is, as far as reports need to say."""

    name: str
    unit: str
    kind: str


@dataclass(frozen=True)
class Entry:
    """One roster row."""

    site: str
    subject: str
    name: str
    unit: str
    kind: str
    phone: str | None
    source: str
    imported_by: str
    imported_at_ms: int


def search_key(text: str) -> str:
    """``text`` as a name search compares it: without accents or case, so that "Đức", "duc"
    and a decomposed "Đức" all match (combining marks dropped after NFD; đ is d)."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.replace("đ", "d").replace("Đ", "D").casefold()


def name_matches(name: str, text: str) -> bool:
    """Whether ``name`` contains ``text``, ignoring accents and case (:func:`search_key`)."""
    return search_key(text) in search_key(name)


def replace(
    store: Store, site: str, source: Source, holders: Sequence[Holder], by: str, now_ms: int
) -> int:
    """Replace the site's rows from ``source`` by ``holders`` in one transaction; returns how
    many rows ``holders`` now hold (a register row never overwrites a roster file's)."""
    param = store.dialect.param
    values = ", ".join(param for _ in _COLUMNS.split(", "))
    keep = (
        "DO NOTHING"
        if source == "register"
        else "DO UPDATE SET name = excluded.name, unit = excluded.unit, kind = excluded.kind,"
        " phone = excluded.phone, source = excluded.source,"
        " imported_by = excluded.imported_by, imported_at_ms = excluded.imported_at_ms"
    )
    insert = f"INSERT INTO roster ({_COLUMNS}) VALUES ({values}) ON CONFLICT (site, subject) {keep}"
    rows = [(site, h.subject, h.name, h.unit, h.kind, h.phone, source, by, now_ms) for h in holders]

    def work(cur: Any) -> int:
        cur.execute(f"DELETE FROM roster WHERE site = {param} AND source = {param}", (site, source))
        cur.executemany(insert, rows)
        cur.execute(
            f"SELECT count(*) FROM roster WHERE site = {param} AND source = {param}",
            (site, source),
        )
        return int(cur.fetchone()[0])

    return int(store.transaction(work))


def remove(store: Store, site: str, subject: str) -> bool:
    """Delete one person's row; False if the site's roster has no such subject."""
    param = store.dialect.param

    def work(cur: Any) -> int:
        cur.execute(
            f"DELETE FROM roster WHERE site = {param} AND subject = {param}", (site, subject)
        )
        return int(cur.rowcount)

    return bool(store.transaction(work))


def entries(store: Store, site: str | None = None) -> list[Entry]:
    """Every row, or a site's, by site, unit and name."""
    param = store.dialect.param
    where, params = (f" WHERE site = {param}", (site,)) if site else ("", ())

    def work(cur: Any) -> list[Entry]:
        cur.execute(f"SELECT {_COLUMNS} FROM roster{where} ORDER BY site, unit, name", params)
        return [
            Entry(site, subject, name, unit, kind, phone, source, by, int(at_ms))
            for site, subject, name, unit, kind, phone, source, by, at_ms in cur.fetchall()
        ]

    result: list[Entry] = store.transaction(work)
    return result


def people(source: Store | Any, site: str, subjects: Iterable[str]) -> dict[str, Person]:
    """The roster's person for each of ``subjects`` that it knows, in one query however many
    there are. ``source`` is a :class:`Store`, or a cursor inside one of its transactions
    (:meth:`Store.transaction`)."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    if isinstance(source, Store):
        found: dict[str, Person] = source.transaction(lambda cur: people(cur, site, wanted))
        return found
    # The subjects as one JSON array (a list of thousands is slow to pass as an array)
    if isinstance(source, sqlite3.Cursor):
        match = "site = ? AND subject IN (SELECT value FROM json_each(?))"
    else:
        match = "site = %s AND subject IN (SELECT json_array_elements_text(%s::json))"
    params = (site, json.dumps(wanted))
    source.execute(f"SELECT subject, name, unit, kind FROM roster WHERE {match}", params)
    return {subject: Person(name, unit, kind) for subject, name, unit, kind in source.fetchall()}
