"""The public health declaration page, ``/s/<site>``: the address the site's poster prints
(:func:`kiosk.credentials.sitecode.site_checkin_payload`).

No login, and nothing of the dashboard: this blueprint reads only the site's config and writes
only the declarations table; its session holds nothing but the CSRF token, which no dashboard
view accepts as a login. What is typed to identify the person is turned into the site's
subject at once (:mod:`kiosk.central.declarations.form`; a photo of a pass or national-app
code, from the phone's camera, is decoded here first) and never kept, logged or put in a
URL: the form is POST only and answered in place. Submissions are rate limited per client
address (the dashboard's login limiter counting every submission).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from kiosk.central.declarations import store as declarations
from kiosk.central.declarations.form import (
    SYMPTOMS,
    Answers,
    IdentityError,
    IdentityKind,
    subject_of,
)
from kiosk.central.web.context import central_web
from kiosk.central.web.declare_texts import text
from kiosk.credentials.declarations import DeclarationStatus
from kiosk.decide.privacy import SecretFileError, read_salt_file
from kiosk.decide.texts import Language
from kiosk.sensors.imagesize import TOO_MANY_PIXELS
from kiosk.sensors.qr import decode_image_file, make_decoder
from kiosk.web.auth import LoginLimiter

log = logging.getLogger(__name__)
bp = Blueprint("declare", __name__)
LIMITER = "kiosk.central.web.declare"  # app.extensions key
#: Declarations allowed per client address and minute (a site's guest Wi-Fi is one address).
DECLARATIONS_PER_MINUTE = 30
PHOTO_DECODER = "zxing-cpp"
#: The largest photo accepted, in bytes and in pixels (a phone camera's 12 MP fits both).
MAX_PHOTO_BYTES = 4 * 1024 * 1024
MAX_PHOTO_PIXELS = 20_000_000
PRIVACY_NOTICE = Path(__file__).parents[3] / "deploy" / "privacy-notice.md"


def init_app(app: Flask, limiter: LoginLimiter) -> None:
    """Register the page on ``app`` with its own submission ``limiter``."""
    app.extensions[LIMITER] = limiter
    app.register_blueprint(bp)


def _language() -> Language:
    return "en" if request.values.get("lang") == "en" else "vi"


def _render(site: str, template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    lang = _language()
    other: Language = "vi" if lang == "en" else "en"
    context = central_web()
    page = render_template(
        f"declare/{template}",
        d=lambda key, **fields: text(key, lang).format(**fields),
        o=lambda key: text(key, other),  # the other language, for the result
        lang=lang,
        other=other,
        site=site,
        site_name=context.config.site(site).name or site,
        hours=f"{context.config.declarations.validity_h:g}",
        symptoms=SYMPTOMS,
        kinds=[kind.value for kind in IdentityKind],
        **values,
    )
    return page, status


def _salt(site: str) -> bytes | None:
    path = central_web().config.site(site).subject_salt_file
    if not path:
        return None
    try:
        return read_salt_file(Path(path))
    except SecretFileError as error:
        log.error("site %s: the declaration page cannot use its subject salt: %s", site, error)
        return None


@bp.route("/s/<site>", methods=["GET", "POST"])
def declare(site: str) -> Any:
    """The form (GET) and its result (POST); 404 for a site central does not know."""
    context = central_web()
    if site not in context.config.sites:
        abort(404)
    salt = _salt(site)
    if salt is None:
        return _render(site, "unavailable.html", 503)
    if request.method == "GET":
        return _render(site, "form.html", form=MultiDict(), error=None)
    limiter: LoginLimiter = current_app.extensions[LIMITER]
    address = request.remote_addr or "unknown"
    wait = limiter.retry_after(address)
    if wait:
        raise TooManyRequests("Too many declarations from this address.", retry_after=wait)
    limiter.failed(address)  # every submission counts
    form = request.form
    answers, kind = _answers(form), form.get("kind", "")
    if answers is None or kind not in set(IdentityKind) or form.get("consent") != "yes":
        return _render(site, "form.html", 400, form=form, error="error.missing")
    try:
        typed = _photo_text(request.files.get("photo")) or form.get("value", "")
        subject = subject_of(IdentityKind(kind), typed, salt)
    except IdentityError as error:
        return _render(site, "form.html", 400, form=form, error=f"error.{error}")
    settings = context.config.declarations
    declared_ms = context.now_ms() // 1000 * 1000  # the document carries whole seconds
    minimum = answers.minimum() if settings.keep_answers else None
    declarations.record(context.store, site, subject, declared_ms, answers.status, minimum)
    log.info("declaration at site %s: %s", site, answers.status.name.lower())
    zone = ZoneInfo(context.config.site(site).timezone)
    declared = datetime.fromtimestamp(declared_ms / 1000, UTC).astimezone(zone)
    until = declared + timedelta(hours=settings.validity_h)
    return _render(
        site,
        "result.html",
        declared=declared.strftime("%H:%M %d/%m/%Y"),
        until=until.strftime("%H:%M %d/%m/%Y"),
        refer=answers.status is DeclarationStatus.REFER,
    )


def _photo_text(photo: FileStorage | None) -> str | None:
    """The text of the QR code in a photo of the person's pass or national-app screen (the
    form's camera button), decoded here and not kept; None when no photo was sent.

    :raises IdentityError: ``photo_large`` when the photo is over :data:`MAX_PHOTO_BYTES` or
        :data:`MAX_PHOTO_PIXELS` (read from its header, before it is decoded), ``photo`` when it
        shows no readable QR code.
    """
    if photo is None or not photo.filename:
        return None
    data = photo.stream.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise IdentityError("photo_large")
    with tempfile.TemporaryDirectory(prefix="declare-") as folder:
        path = Path(folder) / "photo"
        path.write_bytes(data)
        decoder = make_decoder(PHOTO_DECODER)
        decoded = decode_image_file(path, decoder, max_pixels=MAX_PHOTO_PIXELS)
    if TOO_MANY_PIXELS in (decoded["error"] or ""):
        raise IdentityError("photo_large")
    texts = [code["text"] for code in decoded["codes"] if code["text"]]
    if not texts:
        raise IdentityError("photo")
    text: str = texts[0]
    return text


def _answers(form: Any) -> Answers | None:
    """The answers, or None when a yes/no question is unanswered."""
    contact, travel = form.get("contact"), form.get("travel")
    if contact not in ("yes", "no") or travel not in ("yes", "no"):
        return None
    symptoms = frozenset(form.getlist("symptom")) & set(SYMPTOMS)
    return Answers(symptoms, contact == "yes", travel == "yes")


@bp.get("/s/<site>/privacy")
def privacy(site: str) -> Response:
    """The privacy notice: [declarations] privacy_url, else the one shipped in deploy/."""
    context = central_web()
    if site not in context.config.sites:
        abort(404)
    if context.config.declarations.privacy_url:
        return redirect(context.config.declarations.privacy_url)
    if not PRIVACY_NOTICE.is_file():
        abort(404)
    notice = PRIVACY_NOTICE.read_text(encoding="utf-8")
    return Response(notice, content_type="text/plain; charset=utf-8")
