"""People inside now (every user), and the daily list and the trace as forms that download a
file (admins): the same functions as ``kiosk central report`` and ``kiosk central trace``."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, render_template, request

from kiosk.central.settings import ReportFormat
from kiosk.central.web.auth import login_required
from kiosk.central.web.context import central_web
from kiosk.central.web.texts import language

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
    return render_template(
        "reports.html", sites=_sites(), today=date.today().isoformat(), downloads=DOWNLOADS
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
    return _download(
        render(listed, fmt, language()), MEDIA_TYPES[fmt], file_name(day.isoformat(), site, fmt)
    )


def _download(body: bytes, media_type: str, name: str) -> Response:
    response = Response(body, content_type=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
