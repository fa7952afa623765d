"""The operator's dashboard: health, today's counts, recent events, actions.

Live updates poll ``/api/v1/status`` and ``/api/v1/events?after=`` every 2 s
(static/dashboard.js) rather than using server-sent events: polling needs no long-lived
connection per browser (waitress serves with a few threads), survives proxies that buffer
responses, and recovers by itself when the kiosk restarts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kiosk.web.api import EVENT_TYPES, OUTCOMES, day_arg, query_events
from kiosk.web.auth import login_required
from kiosk.web.chart import hourly_svg
from kiosk.web.context import web_context

log = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__)

PAGE = 50


@bp.app_template_filter("fmt")
def fmt(value: Any) -> str:
    """A state value as the dashboard shows it (same rules as dashboard.js)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a table row: decisions by outcome, reason and pseudonymous subject only."""
    data = event.get("data") or {}
    row = {
        "seq": event["seq"],
        "ts_ms": event["ts_ms"],
        "time": datetime.fromtimestamp(event["ts_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "type": event["type"],
        "outcome": "",
        "reason": "",
        "subject": "",
        "celsius": "",
        "details": "",
    }
    if event["type"] == "decision":
        temperature = data.get("temperature") or {}
        row |= {
            "outcome": data.get("outcome", ""),
            "reason": data.get("reason", ""),
            "subject": data.get("subject") or "",
            "celsius": "" if temperature.get("celsius") is None else temperature["celsius"],
        }
    else:
        row["details"] = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return row


@bp.get("/")
@login_required
def index() -> str:
    """Health, counts, chart, actions and a page of events (``before``, ``type``, ``outcome``)."""
    context = web_context()
    rows = [event_row(e) for e in query_events(PAGE + 1)]
    older = rows[PAGE - 1]["seq"] if len(rows) > PAGE else None
    return render_template(
        "dashboard.html",
        state=context.source.state(),
        threshold=context.source.fever_threshold_c(),
        settings=context.settings,
        rows=rows[:PAGE],
        page=PAGE,
        older=older,
        before=request.args.get("before", ""),
        type=request.args.get("type", ""),
        outcome=request.args.get("outcome", ""),
        event_types=EVENT_TYPES,
        outcomes=OUTCOMES,
        today=date.today().isoformat(),
    )


@bp.get("/chart/hourly.svg")
@login_required
def chart() -> Response:
    """Passages and fevers per hour of ``day`` (default today) as SVG."""
    day = day_arg()
    svg = hourly_svg(web_context().source.hourly(day), f"Passages and fevers per hour, {day}")
    return Response(svg, content_type="image/svg+xml")


def _act(run: Callable[[], str], what: str) -> Response:
    """Run an action, flash its confirmation (or why it failed), back to the dashboard."""
    try:
        flash(run(), "ok")
    except Exception as exc:  # the kiosk refused or failed: tell the operator, keep serving
        log.exception("web action failed: %s", what)
        flash(f"{what} failed: {exc}", "error")
    return redirect(url_for("dashboard.index"))


def _on_off() -> bool:
    value = request.form.get("on")
    if value not in ("1", "0"):
        abort(400, "on must be 1 or 0")
    return value == "1"


@bp.post("/actions/test-relay")
@login_required
def test_relay() -> Response:
    """Pulse the relay."""
    return _act(web_context().actions.test_relay, "Relay test")


@bp.post("/actions/emergency-open")
@login_required
def emergency_open() -> Response:
    """Hold the gate open (``on=1``) or end it (``on=0``)."""
    on = _on_off()
    return _act(lambda: web_context().actions.emergency_open(on), "Emergency open")


@bp.post("/actions/lockdown")
@login_required
def lockdown() -> Response:
    """Lock the entrance (``on=1``) or open it again (``on=0``)."""
    on = _on_off()
    return _act(lambda: web_context().actions.set_lockdown(on), "Lockdown")


@bp.post("/actions/fever-threshold")
@login_required
def fever_threshold() -> Response:
    """Set the fever threshold (``celsius``) within the settings' bounds; else 400."""
    settings = web_context().settings
    raw = request.form.get("celsius", "")
    try:
        celsius = float(raw)
    except ValueError:
        celsius = float("nan")
    if not settings.fever_min_c <= celsius <= settings.fever_max_c:
        abort(
            400,
            f"Fever threshold {raw!r} refused: it must be a number from {settings.fever_min_c} "
            f"to {settings.fever_max_c} °C. The threshold was not changed.",
        )
    return _act(
        lambda: web_context().actions.set_fever_threshold(round(celsius, 2)), "Fever threshold"
    )
