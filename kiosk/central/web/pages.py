"""The pages every user sees (fleet, alerts with acknowledgement, roster counts), the roster
upload (admins), the probes and the metrics."""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response as WerkzeugResponse

from kiosk.central import roster
from kiosk.central.fleet import age_parts, fleet_row
from kiosk.central.rows import KioskStatus
from kiosk.central.web import alerts
from kiosk.central.web.auth import login_required
from kiosk.central.web.context import central_web
from kiosk.central.web.texts import t

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)
PARTS = ("camera", "thermometer", "log", "operator_state")
TODAY = ("granted", "denied", "referred", "fevers")


def local_time(at_ms: int, site: str | None) -> str:
    """``at_ms`` as the site's local time (the first site's zone for an alert of no site)."""
    config = central_web().config
    zone = config.site(site or next(iter(config.sites), "")).timezone
    return datetime.fromtimestamp(at_ms / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def age_text(seconds: float | None) -> str:
    """An age in the page's language (``5 phút``, ``5m``); ``-`` when unknown."""
    if seconds is None:
        return "-"
    number, unit = age_parts(seconds)
    return t(f"age.{unit}").format(n=number)


def alert_detail(alert: alerts.Alert) -> str:
    """An alert's detail in the page's language where it is one of the dashboard's sentences,
    else as recorded (a kiosk's part message, a quarantine reason, a mail server's answer)."""
    if alert.words is None:
        return alert.detail
    key, fields = alert.words
    return t(key).format(**dict(fields))


def kiosk_view(status: KioskStatus, now_ms: int) -> dict[str, Any]:
    """What the fleet page shows of one kiosk."""
    site, kiosk, availability, _seen, backlog, _oldest, _count, gaps = fleet_row(status, now_ms)
    state = status.state
    log_state = part if isinstance(part := state.get("log"), dict) else {}
    oldest = log_state.get("oldest_unconfirmed_age_s")
    seen = None if status.last_seen_ms is None else (now_ms - status.last_seen_ms) / 1000
    gate, today = (
        part if isinstance(part := state.get(name), dict) else {} for name in ("gate", "today")
    )
    failing = [
        part
        for part in PARTS
        if isinstance(state.get(part), dict) and state[part].get("ok") is False
    ]
    return {
        "site": site,
        "kiosk": kiosk,
        "availability": availability,
        "seen": "-" if seen is None else t("fleet.ago").format(age=age_text(seen)),
        "version": state.get("version", "-"),
        "clock_synced": state.get("clock_synced"),
        "failing": [t(f"part.{part}") for part in failing],
        "lockdown": bool(gate.get("lockdown")),
        "backlog": backlog,
        "oldest": age_text(oldest if isinstance(oldest, int | float) else None),
        "gaps": gaps,
        "today": {name: today.get(name, 0) for name in TODAY},
    }


@bp.get("/")
@login_required()
def fleet() -> str:
    """Every kiosk: online or not, last seen, version, clock, parts, backlog, today."""
    context = central_web()
    now_ms = context.now_ms()
    kiosks = [kiosk_view(status, now_ms) for status in context.store.fleet()]
    return render_template("fleet.html", kiosks=kiosks)


@bp.get("/alerts")
@login_required()
def alert_feed() -> str:
    """The alerts of the last days, newest first, acknowledged or not."""
    context = central_web()
    return render_template(
        "alerts.html",
        alerts=alerts.feed(context.store, context.now_ms()),
        local_time=local_time,
        detail=alert_detail,
    )


@bp.post("/alerts/ack")
@login_required()
def acknowledge() -> WerkzeugResponse:
    """Acknowledge one alert of the feed as the logged-in user (viewers too: the facilities
    staff on duty are the ones who see to it); any other key is refused."""
    key = request.form.get("alert", "")
    context = central_web()
    now_ms = context.now_ms()
    if key not in {alert.key for alert in alerts.feed(context.store, now_ms)}:
        abort(400, "No such alert in the feed.")
    alerts.acknowledge(context.store, key, g.user.name, now_ms)
    return redirect(url_for("pages.alert_feed"))


def _roster_counts() -> dict[str, int]:
    def work(cur: Any) -> dict[str, int]:
        cur.execute("SELECT site, count(*) FROM roster GROUP BY site ORDER BY site")
        return {site: int(count) for site, count in cur.fetchall()}

    counts: dict[str, int] = central_web().store.transaction(work)
    return counts


def _roster(imported: tuple[str, int] | None = None, error: str | None = None) -> str:
    """The roster page: people per site; the sites an admin may upload for (those whose
    subject salt the config names)."""
    sites = [
        site for site, section in central_web().config.sites.items() if section.subject_salt_file
    ]
    return render_template(
        "roster.html", counts=_roster_counts(), config_sites=sites, imported=imported, error=error
    )


@bp.get("/roster")
@login_required()
def roster_page() -> str:
    """How many people each site's roster names; admins may upload a roster file."""
    return _roster()


@bp.post("/roster")
@login_required(admin=True)
def roster_upload() -> Any:
    """Import an uploaded roster CSV for a site, as ``kiosk central roster import`` does."""
    from kiosk.central.rosterfile import RosterFileError, read_roster
    from kiosk.decide.privacy import Pseudonymizer, SecretFileError, read_salt_file

    context = central_web()
    site = request.form.get("site", "")
    upload = request.files.get("file")
    salt_file = context.config.sites[site].subject_salt_file if site in context.config.sites else ""
    if upload is None or not salt_file:
        return _roster(error=t("roster.no_salt")), 400
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "roster.csv"
        upload.save(path)
        try:
            holders = read_roster(path, Pseudonymizer(read_salt_file(Path(salt_file))))
        except (RosterFileError, SecretFileError) as exc:
            return _roster(error=str(exc).replace(str(path), "roster.csv")), 400
    roster.replace(context.store, site, "import", holders, g.user.name, context.now_ms())
    log.info("roster: %d holders uploaded for site %s by %s", len(holders), site, g.user.name)
    return _roster(imported=(site, len(holders)))


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    """200 while the store answers, else 503; no login."""
    try:
        kiosks = len(central_web().store.fleet())
    except Exception:
        log.exception("healthz: the store does not answer")
        return {"ok": False}, 503
    return {"ok": True, "kiosks": kiosks}, 200


@bp.get("/metrics")
def metrics() -> Response:
    """Central's Prometheus metrics; no login (scraped on the server's network)."""
    return Response(generate_latest(central_web().registry), content_type=CONTENT_TYPE_LATEST)
