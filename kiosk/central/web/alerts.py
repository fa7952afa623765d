"""The dashboard's alerts feed and its acknowledgements (table ``alert_acks``).

An alert is, newest first: an event the kiosk's own alert rules flag (fever, sensor fault,
tailgating, fire alarm, refused list: :func:`kiosk.events.alert_for`), a lockdown an operator
turned on (a ``command`` event), a quarantined message, or a failed delivery of the daily
list. Each has a stable key, so acknowledging one (who, when) lasts across restarts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from kiosk.central.reports.deliveries import delivery_alerts
from kiosk.central.store import Store
from kiosk.events import EventType, alert_for, alert_pretests
from kiosk.operator.actions import Action

#: Alerts from events received within this many days.
FEED_DAYS = 7
FEED_LIMIT = 200


@dataclass(frozen=True)
class Alert:
    """One line of the feed; ``name`` is a key of ``alert.*`` in the dashboard's texts."""

    key: str
    at_ms: int
    site: str | None
    kiosk: str | None
    name: str
    detail: str
    acked_by: str | None = None
    acked_at_ms: int | None = None
    #: The detail as a key of the dashboard's texts and its fields, shown in the page's
    #: language instead of ``detail`` (None: ``detail`` is a recorded message, shown as is).
    words: tuple[str, tuple[tuple[str, object], ...]] | None = None


#: Alerts whose detail is always the same sentence (``alert_detail.<name>`` in the texts).
FIXED_DETAILS = frozenset({"fever", "tailgating", "fire_alarm", "lockdown"})


class _Logged(NamedTuple):
    type: str
    data: Mapping[str, Any]


def _event_alert(row: tuple[Any, ...]) -> Alert | None:
    site, kiosk, seq, ts_ms, kind, data = row
    parsed = json.loads(data) if isinstance(data, str) else data
    if not isinstance(parsed, dict):
        return None
    key = f"event:{site}/{kiosk}/{seq}"
    if kind == EventType.COMMAND.value:
        args = parsed.get("args")
        on = isinstance(args, dict) and args.get("on") is True
        if parsed.get("command") != Action.LOCKDOWN or not on:
            return None
        found: tuple[str, str] | None = ("lockdown", "lockdown on")
    else:
        found = alert_for(_Logged(kind, parsed))
    if found is None:
        return None
    name, detail = found
    words = (f"alert_detail.{name}", ()) if name in FIXED_DETAILS else None
    return Alert(key, int(ts_ms), site, kiosk, name, detail, words=words)


def feed(store: Store, now_ms: int) -> list[Alert]:
    """The alerts of the last :data:`FEED_DAYS` days, newest first, at most
    :data:`FEED_LIMIT`, each with its acknowledgement if any."""
    p = store.dialect.param
    words = {**alert_pretests(), EventType.COMMAND.value: Action.LOCKDOWN.value}
    match = " OR ".join(f"(type = {p} AND CAST(data AS TEXT) LIKE {p})" for _ in words)
    params: list[object] = [now_ms - FEED_DAYS * 86_400_000]
    for kind, word in words.items():
        params += [kind, f"%{word}%"]

    def work(cur: Any) -> tuple[list[Any], list[Any], dict[str, tuple[str, int]]]:
        cur.execute(
            f"SELECT site, kiosk, seq, ts_ms, type, data FROM events WHERE ts_ms >= {p}"
            f" AND ({match}) ORDER BY ts_ms DESC LIMIT {FEED_LIMIT}",
            params,
        )
        events = list(cur.fetchall())
        cur.execute(
            "SELECT last_ms, topic, site, kiosk, reason, digest FROM quarantine"
            f" ORDER BY last_ms DESC LIMIT {FEED_LIMIT}"
        )
        quarantined = list(cur.fetchall())
        cur.execute(
            f"SELECT alert, acked_by, acked_at_ms FROM alert_acks WHERE acked_at_ms >= {p}",
            params[:1],
        )
        acks = {key: (by, int(at)) for key, by, at in cur.fetchall()}
        return events, quarantined, acks

    events, quarantined, acks = store.transaction(work)
    alerts = [a for a in map(_event_alert, events) if a is not None]
    for last_ms, topic, site, kiosk, reason, key in quarantined:
        at_ms = int(last_ms)
        alerts.append(
            Alert(f"quarantine:{key}", at_ms, site, kiosk, "quarantined", f"{topic}: {reason}")
        )
    for failed in delivery_alerts(store, now_ms):
        key = f"delivery:{failed.site}/{failed.day}/{failed.last_ms}"
        error = failed.error or ""
        detail = f"{failed.day}: {failed.attempts} attempts: {error}"
        fields = (("day", failed.day), ("attempts", failed.attempts), ("error", error))
        said = ("alert_detail.delivery_failed", fields)
        alert = Alert(key, failed.last_ms, failed.site, None, "delivery_failed", detail, words=said)
        alerts.append(alert)
    alerts.sort(key=lambda a: a.at_ms, reverse=True)
    return [
        replace(a, acked_by=acks[a.key][0], acked_at_ms=acks[a.key][1]) if a.key in acks else a
        for a in alerts[:FEED_LIMIT]
    ]


def acknowledge(store: Store, key: str, by: str, now_ms: int) -> None:
    """Record that ``by`` acknowledged the alert ``key`` (the first acknowledgement stays)."""
    p = store.dialect.param
    store.transaction(
        lambda cur: cur.execute(
            f"INSERT INTO alert_acks (alert, acked_by, acked_at_ms) VALUES ({p}, {p}, {p})"
            " ON CONFLICT (alert) DO NOTHING",
            (key, by, now_ms),
        )
    )
