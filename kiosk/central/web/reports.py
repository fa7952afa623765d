"""People inside now (every user), and the daily list and the trace as forms that download a
file (admins): the same functions as ``kiosk central report`` and ``kiosk central trace``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, request

from kiosk.central.settings import ReportFormat
from kiosk.central.web.auth import login_required
from kiosk.central.web.context import central_web
from kiosk.central.web.texts import language

if TYPE_CHECKING:
    from kiosk.central.roster import Entry

bp = Blueprint("reports", __name__)
DOWNLOADS: tuple[ReportFormat, ...] = ("csv", "xlsx")


def _sites() -> list[str]:
    from kiosk.central.reports.daily import known_sites

    context = central_web()
    return known_sites(context.store, context.config)


@bp.get("/inside")
@login_required()
def inside() -> str:
    """Who is inside each area now, with names where the roster has them."""
    from kiosk.central.presence import inside as people_inside

    context = central_web()
    areas = people_inside(context.store, context.config, now_s=context.now_ms() / 1000)
    return render_template("inside.html", areas=areas)


@bp.get("/reports")
@login_required(admin=True)
def index() -> str:
    """The forms: the daily list of a day, the trace of a person."""
    return _forms()


def _forms(
    matches: Sequence[Entry] = (),
    query: Mapping[str, str] | None = None,
    error: str | None = None,
) -> str:
    """The forms page; ``error`` is a text key shown above the trace form."""
    today = date.today().isoformat()
    return render_template(
        "reports.html",
        sites=_sites(),
        today=today,
        downloads=DOWNLOADS,
        matches=matches,
        query=dict(query or {}),
        error=error,
    )


@bp.get("/reports/daily")
@login_required(admin=True)
def daily() -> Response:
    """The daily list of ``date`` for ``site`` (empty: every site) as ``format``."""
    from kiosk.central.reports.daily import UnknownSiteError, daily_list
    from kiosk.central.reports.export import MEDIA_TYPES, file_name, render

    context = central_web()
    fmt = next((f for f in DOWNLOADS if f == request.args.get("format", "xlsx")), None)
    site = request.args.get("site") or None
    try:
        day = date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        abort(400, "The date must be YYYY-MM-DD.")
    if fmt is None:
        abort(400, "The format must be csv or xlsx.")
    try:
        listed = daily_list(context.store, context.config, day, site)
    except UnknownSiteError:
        abort(400, "Unknown site.")
    except OverflowError:  # the day after 9999-12-31
        abort(400, "The date is out of range.")
    return _download(
        render(listed, fmt, language()), MEDIA_TYPES[fmt], file_name(day.isoformat(), site, fmt)
    )


@bp.get("/reports/trace")
@login_required(admin=True)
def trace() -> Any:
    """The trace of a subject, or of the one person whose roster name contains ``name``
    (several: the page lists them to choose from), between ``from`` and ``to`` as CSV."""
    from kiosk.central.people_formats import file_bytes, trace_text
    from kiosk.central.trace import find_people
    from kiosk.central.trace import trace as trace_of
    from kiosk.credentials.office import parse_moment

    context = central_web()
    site, subject = request.args.get("site", ""), request.args.get("subject", "")
    if site not in _sites():
        abort(400, "Unknown site.")
    zone = ZoneInfo(context.config.site(site).timezone)
    try:
        start = parse_moment(request.args.get("from", ""), "from", zone=zone)
        end = parse_moment(request.args.get("to", ""), "to", zone=zone, end_of_day=True)
        window = timedelta(minutes=float(request.args.get("window", "15")))
    except (ValueError, OverflowError) as exc:  # OverflowError: the end of 9999-12-31
        abort(400, str(exc))
    if not subject:
        name = request.args.get("name", "").strip()
        if not name:
            return _forms(query=request.args, error="reports.name_empty"), 400
        matches = find_people(context.store, site, name)
        if len(matches) != 1:
            return _forms(matches, request.args), 200 if matches else 404
        subject = matches[0].subject
    now = datetime.fromtimestamp(context.now_ms() / 1000, UTC)
    found = trace_of(context.store, site, subject, start, end, zone, window, now=now)
    name = f"trace-{site}-{start.date().isoformat()}.csv"
    return _download(file_bytes(trace_text(found, "csv"), "csv"), "text/csv", name)


def _download(body: bytes, media_type: str, name: str) -> Response:
    response = Response(body, content_type=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
