"""The operator's dashboard: health, today's counts, recent events, actions.

Live updates poll ``/api/v1/status`` and ``/api/v1/events?after=`` every 2 s
(static/dashboard.js) rather than using server-sent events: polling needs no long-lived
connection per browser (waitress serves with a few threads), survives proxies that buffer
responses, and recovers by itself when the kiosk restarts.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from kiosk.config import FEVER_MAX_C, FEVER_MIN_C
from kiosk.decide.decision import Reason
from kiosk.events import EventType
from kiosk.operator.actions import Action, ArgumentError, Source
from kiosk.operator.actions import request as request_action
from kiosk.web.api import EVENT_TYPES, OUTCOMES, day_arg, query_events
from kiosk.web.auth import login_required
from kiosk.web.chart import hourly_svg
from kiosk.web.context import web_context
from kiosk.web.i18n import t, words

log = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__)

PAGE = 50


@bp.app_template_filter("fmt")
def fmt(value: Any) -> str:
    """A state value as the dashboard shows it (same rules as dashboard.js)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return t("dash.yes") if value else t("dash.no")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    return str(value)


@bp.app_template_filter("decision_class")
def decision_class(decision: dict[str, Any] | None) -> str:
    """The colour class of a decision (same rules as display.js): fever, grant, deny, refer."""
    if decision is None:
        return "none"
    return "fever" if decision.get("reason") == Reason.FEVER else str(decision.get("outcome"))


def login_name() -> str:
    """The login name of this session's operator, for the kiosk's log of the action."""
    return str(session.get("operator") or "")


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a table row: decisions by outcome, reason and pseudonymous subject only."""
    data = event.get("data") or {}
    row = {
        "seq": event["seq"],
        "ts_ms": event["ts_ms"],
        "time": f"{datetime.fromtimestamp(event['ts_ms'] / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC",
        "type": event["type"],
        "outcome": "",
        "reason": "",
        "subject": "",
        "celsius": "",
        "details": "",
    }
    if event["type"] == EventType.DECISION:
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
        last=context.source.last_decision(),
        reasons=words("reason."),
        operator=login_name(),
        fever_min_c=FEVER_MIN_C,
        fever_max_c=FEVER_MAX_C,
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
    svg = hourly_svg(web_context().source.hourly(day), f"{t('dash.chart')}, {day}")
    return Response(svg, content_type="image/svg+xml")


def _act(action: Action, args: dict[str, Any], done: str) -> Response:
    """Ask the kiosk to carry out ``action`` for this operator; flash what was done (``done``,
    a catalogue key) or why not, then back to the dashboard, which shows the kiosk's state
    after the action. Arguments the action refuses are a 400 that says why."""
    try:
        asked = request_action(
            action, args, operator=login_name(), source=Source.WEB, request_id=f"web-{uuid4()}"
        )
    except ArgumentError as exc:  # the one check of every action's arguments (actions.py)
        abort(400, f"{action} refused: {exc}. Nothing was done; the settings were not changed.")
    outcome = web_context().operator.perform(asked)
    if outcome.ok:
        flash(t(done), "ok")
    else:  # the kiosk refused or failed: tell the operator, keep serving
        log.warning("web action %s failed: %s", action, outcome.error)
        flash(f"{t('dash.failed_action')}: {outcome.message}", "error")
    return redirect(url_for("dashboard.index"))


def _on_off() -> bool:
    value = request.form.get("on")
    if value not in ("1", "0"):
        abort(400, "on must be 1 or 0")
    return value == "1"


def _confirmed() -> bool:
    """Whether this POST carries ``confirm=1``: the operator has answered the confirmation
    page (:func:`_confirm_page`), which works without JavaScript."""
    return request.form.get("confirm") == "1"


def _confirm_page(question: str) -> str:
    """A page that asks ``question`` (a catalogue key) and posts the same action again with
    ``confirm=1``; Cancel goes back without acting."""
    return render_template("confirm.html", question=question, action=request.path)


@bp.post("/actions/test-relay")
@login_required
def test_relay() -> Response:
    """Pulse the relay."""
    return _act(Action.TEST_RELAY, {}, "dash.done.test_relay")


@bp.post("/actions/emergency-open")
@login_required
def emergency_open() -> Response | str:
    """Hold the gate open (``on=1``, after confirmation) or end it (``on=0``)."""
    on = _on_off()
    if on and not _confirmed():
        return _confirm_page("dash.confirm_emergency_open")
    done = "dash.done.emergency_open_on" if on else "dash.done.emergency_open_off"
    return _act(Action.EMERGENCY_OPEN, {"on": on}, done)


@bp.post("/actions/lockdown")
@login_required
def lockdown() -> Response | str:
    """Lock the entrance (``on=1``, after confirmation) or open it again (``on=0``)."""
    on = _on_off()
    if on and not _confirmed():
        return _confirm_page("dash.confirm_lockdown")
    done = "dash.done.lockdown_on" if on else "dash.done.lockdown_off"
    return _act(Action.LOCKDOWN, {"on": on}, done)


@bp.post("/actions/fever-threshold")
@login_required
def fever_threshold() -> Response:
    """Set the fever threshold (``celsius``) within FEVER_MIN_C..FEVER_MAX_C; else 400."""
    raw = request.form.get("celsius", "")
    try:
        celsius: float | str = round(float(raw), 2)
    except ValueError:
        celsius = raw  # not a number: the action's own check refuses it
    return _act(Action.SET_FEVER_THRESHOLD, {"celsius": celsius}, "dash.done.fever_threshold")
