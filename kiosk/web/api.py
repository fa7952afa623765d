"""JSON API (login or bearer token), the health probe and Prometheus metrics (no login)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kiosk.decide.decision import Outcome
from kiosk.events import EventType, Part
from kiosk.mqtt.wire import MAX_SEQ
from kiosk.web.auth import api_auth_required
from kiosk.web.context import web_context

bp = Blueprint("api", __name__)

MAX_EVENTS = 500
#: Days the hourly chart accepts: any day whose local hours the machine can compute.
DAY_MIN, DAY_MAX = date(1970, 1, 1), date(9998, 12, 31)
EVENT_TYPES = tuple(t.value for t in EventType)
OUTCOMES = tuple(o.value for o in Outcome)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_WHOLE = re.compile(r"-?\d{1,19}", re.ASCII)
#: How much of a refused value an error message repeats.
SHOWN = 40


def shown(raw: str) -> str:
    """A refused value as an error message repeats it: quoted and cut short."""
    return repr(raw if len(raw) <= SHOWN else raw[:SHOWN] + "…")


def int_arg(name: str, low: int, high: int = MAX_SEQ) -> int | None:
    """An optional integer query parameter within bounds (ASCII digits only); otherwise 400."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not _WHOLE.fullmatch(raw):
        abort(400, f"{name} must be a whole number from {low} to {high}, not {shown(raw)}")
    value = int(raw)
    if not low <= value <= high:
        abort(400, f"{name} must be {low} to {high}, not {shown(raw)}")
    return value


def choice_arg(name: str, allowed: tuple[str, ...]) -> str | None:
    """An optional query parameter from a fixed list; otherwise 400."""
    raw = request.args.get(name) or None
    if raw is not None and raw not in allowed:
        abort(400, f"{name} must be one of {', '.join(allowed)}, not {shown(raw)}")
    return raw


def day_arg() -> date:
    """``day=YYYY-MM-DD`` from ``DAY_MIN`` to ``DAY_MAX`` (default today); otherwise 400."""
    raw = request.args.get("day")
    if not raw:
        return date.today()
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400, f"day must be a date as YYYY-MM-DD, not {shown(raw)}")
    if not DAY_MIN <= day <= DAY_MAX:
        abort(400, f"day must be from {DAY_MIN} to {DAY_MAX}, not {shown(raw)}")
    return day


def query_events(limit: int) -> list[dict[str, Any]]:
    """Events selected by the request's ``before``, ``after``, ``type`` and ``outcome``."""
    return web_context().source.events(
        limit=limit,
        before_seq=int_arg("before", 1),
        after_seq=int_arg("after", 0),
        type=choice_arg("type", EVENT_TYPES),
        outcome=choice_arg("outcome", OUTCOMES),
    )


@bp.get("/api/v1/status")
@api_auth_required
def status() -> Response:
    """The kiosk's state document."""
    return jsonify(web_context().source.state())


@bp.get("/api/v1/events")
@api_auth_required
def events() -> Response:
    """Logged events, newest first: ``limit`` 1–500 (50), ``before``/``after`` a seq,
    ``type``, ``outcome``."""
    return jsonify(query_events(int_arg("limit", 1, MAX_EVENTS) or 50))


@bp.get("/api/v1/hourly")
@api_auth_required
def hourly() -> Response:
    """Decisions and fevers per hour of ``day``."""
    return jsonify(web_context().source.hourly(day_arg()))


def problems(state: dict[str, Any]) -> list[str]:
    """The parts a probe should alarm on: the kiosk itself (no recent state), camera,
    thermometer, log."""
    found = []
    if "stale_s" in state:
        found.append(f"kiosk: no state from the kiosk for {state['stale_s']} s")
    for part in (Part.CAMERA, Part.THERMOMETER, Part.LOG):
        info = state.get(part) or {}
        if not info.get("ok", False):
            found.append(f"{part}: {info.get('detail', 'not working')}")
    return found


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    """``{"ok", "problems"}``: 200 when the kiosk reports and camera, thermometer and log
    work, else 503."""
    try:
        found = problems(web_context().source.state())
    except Exception as exc:  # the kiosk cannot even report its state: that is the problem
        found = [f"state: {type(exc).__name__}"]
    return {"ok": not found, "problems": found}, 503 if found else 200


@bp.get("/metrics")
def metrics() -> Response:
    """The registry handed to ``create_app``, in Prometheus text format."""
    return Response(generate_latest(web_context().registry), content_type=CONTENT_TYPE_LATEST)
