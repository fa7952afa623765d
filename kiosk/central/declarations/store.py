"""The declarations table and each site's document versions (schema version 7).

A declaration row is the subject, the time, the status and (only with [declarations]
keep_answers) the answers' minimum; nothing that names the person. Rows are numbered in the
order they are stored: the document's delta is every row after the snapshot's last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiosk.central.store import Store
from kiosk.credentials.declarations import DeclarationStatus

Entry = tuple[str, datetime, DeclarationStatus]


@dataclass(frozen=True)
class DocumentState:
    """The site's last published document: its version, the snapshot it extends (``base``),
    the last declaration row in that snapshot and when the snapshot was built."""

    version: int
    base: int
    base_id: int
    built_at_ms: int


def record(
    store: Store,
    site: str,
    subject: str,
    declared_at_ms: int,
    status: DeclarationStatus,
    answers: str | None,
) -> None:
    """Store one declaration."""
    p = store.dialect.param
    store.transaction(
        lambda cur: cur.execute(
            "INSERT INTO declarations (site, subject, declared_at_ms, status, answers)"
            f" VALUES ({p}, {p}, {p}, {p}, {p})",
            (site, subject, declared_at_ms, int(status), answers),
        )
    )


def entries_after(store: Store, site: str, after_id: int, since_ms: int) -> tuple[list[Entry], int]:
    """The site's declarations stored after row ``after_id`` and made at or after
    ``since_ms``, newest per subject, and the last row id (``after_id`` when none)."""
    p = store.dialect.param

    def work(cur: Any) -> tuple[list[Any], Any]:
        cur.execute(
            "SELECT subject, declared_at_ms, status FROM declarations"
            f" WHERE site = {p} AND id > {p} AND declared_at_ms >= {p}"
            " ORDER BY declared_at_ms, id",
            (site, after_id, since_ms),
        )
        rows = list(cur.fetchall())
        cur.execute(f"SELECT max(id) FROM declarations WHERE site = {p}", (site,))
        return rows, cur.fetchone()[0]

    rows, last = store.transaction(work)
    newest: dict[str, Entry] = {}
    for subject, at_ms, status in rows:  # in time order: the newest per subject stays
        newest[subject] = (
            subject,
            datetime.fromtimestamp(at_ms / 1000, UTC),
            DeclarationStatus(status),
        )
    return list(newest.values()), max(after_id, int(last or 0))


def document_state(store: Store, site: str) -> DocumentState | None:
    """The site's last published document, or None."""
    p = store.dialect.param

    def work(cur: Any) -> Any:
        cur.execute(
            "SELECT version, base, base_id, built_at_ms FROM declaration_documents"
            f" WHERE site = {p}",
            (site,),
        )
        return cur.fetchone()

    row = store.transaction(work)
    return None if row is None else DocumentState(*(int(value) for value in row))


def save_document_state(store: Store, site: str, state: DocumentState) -> None:
    """Remember the site's last published document."""
    p = store.dialect.param
    store.transaction(
        lambda cur: cur.execute(
            "INSERT INTO declaration_documents (site, version, base, base_id, built_at_ms)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (site) DO UPDATE SET"
            " version = excluded.version, base = excluded.base, base_id = excluded.base_id,"
            " built_at_ms = excluded.built_at_ms",
            (site, state.version, state.base, state.base_id, state.built_at_ms),
        )
    )


def prune(store: Store, before_ms: int) -> int:
    """Delete the declarations made before ``before_ms`` (answers with them); how many."""
    p = store.dialect.param

    def work(cur: Any) -> int:
        cur.execute(f"DELETE FROM declarations WHERE declared_at_ms < {p}", (before_ms,))
        return int(cur.rowcount)

    deleted: int = store.transaction(work)
    return deleted
