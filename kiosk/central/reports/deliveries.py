"""The record of the daily list's deliveries (table ``deliveries``): one row per site and
local day, done or failed with its attempts; the failures are the alerts that
``kiosk central status`` and the dashboard show."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from kiosk.central.store import Store

ALERT_DAYS = 7  # a failed day is shown this long, unless delivered since
_COLUMNS = "site, day, status, attempts, last_ms, next_ms, error, file"


@dataclass(frozen=True)
class Delivery:
    """The record of one site's list of one day: done, or failed (with when to try again)."""

    site: str
    day: date
    status: Literal["done", "failed"]
    attempts: int
    last_ms: int  # the last attempt
    next_ms: int | None  # failed: the next try, if the day is still due then
    error: str | None  # failed: what went wrong, without names or addresses
    file: str | None  # done: the file written to the folder, if any


def record(store: Store, delivery: Delivery) -> None:
    """Store ``delivery``, replacing the row of its site and day."""
    p = store.dialect.param
    values = ", ".join(p for _ in _COLUMNS.split(", "))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[2:])
    sql = (
        f"INSERT INTO deliveries ({_COLUMNS}) VALUES ({values})"
        f" ON CONFLICT (site, day) DO UPDATE SET {updates}"
    )
    d = delivery
    row = (d.site, d.day.isoformat(), d.status, d.attempts, d.last_ms, d.next_ms, d.error, d.file)
    store.transaction(lambda cur: cur.execute(sql, row))


def _select(store: Store, where: str, params: Sequence[object]) -> list[Delivery]:
    def work(cur: Any) -> list[Delivery]:
        cur.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE {where} ORDER BY site, day", params)
        return [
            Delivery(site, date.fromisoformat(day), status, int(n), int(last), nxt, error, file)
            for site, day, status, n, last, nxt, error, file in cur.fetchall()
        ]

    found: list[Delivery] = store.transaction(work)
    return found


def recorded(store: Store, site: str, days: Sequence[date]) -> dict[date, Delivery]:
    """The records of the site's ``days`` that exist."""
    p = store.dialect.param
    if not days:
        return {}
    marks = ", ".join(p for _ in days)
    rows = _select(
        store, f"site = {p} AND day IN ({marks})", [site, *(d.isoformat() for d in days)]
    )
    return {row.day: row for row in rows}


def last_recorded(store: Store, site: str) -> date | None:
    """The latest day recorded for the site, done or failed."""
    p = store.dialect.param
    found = store.transaction(
        lambda cur: cur.execute(
            f"SELECT max(day) FROM deliveries WHERE site = {p}", (site,)
        ).fetchone()
    )
    return date.fromisoformat(found[0]) if found and found[0] else None


def delivery_alerts(store: Store, now_ms: int | None = None) -> list[Delivery]:
    """The failed deliveries of the last :data:`ALERT_DAYS` days not delivered since, by
    site and day: what ``kiosk central status`` and the dashboard show as alerts."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    since = datetime.fromtimestamp(now_ms / 1000, UTC).date() - timedelta(days=ALERT_DAYS)
    p = store.dialect.param
    return _select(store, f"status = 'failed' AND day >= {p}", [since.isoformat()])


def format_alerts(alerts: Sequence[Delivery]) -> str:
    """``daily lists failing: N`` and one indented line per failed day; empty when none."""
    if not alerts:
        return ""
    lines = [f"daily lists failing: {len(alerts)}"]
    for alert in alerts:
        last = datetime.fromtimestamp(alert.last_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"  {alert.site} {alert.day}: {alert.attempts} attempts, last {last}Z: {alert.error}"
        )
    return "\n".join(lines)
