"""The application factory: one independent Flask app per call, nothing at module level."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException, InternalServerError

from kiosk.operator.actions import Operator
from kiosk.web import api, auth, dashboard, display, i18n
from kiosk.web.auth import LoginLimiter, csrf_protect, csrf_token
from kiosk.web.context import KEY, WebContext
from kiosk.web.interfaces import StatusSource, WebSettings
from kiosk.web.sessions import Sessions

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    source: StatusSource,
    operator: Operator,
    settings: WebSettings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Flask:
    """Build the kiosk's web app.

    :param source: the kiosk's read-only status.
    :param operator: carries out the operator actions (logs each, then acts).
    :param settings: password, keys and limits.
    :param registry: what ``/metrics`` serves (an empty registry if None).
    :param clock: monotonic seconds, for the login rate limit and session expiry.
    """
    app = Flask(__name__)
    harden(
        app,
        secret_key=settings.secret_key,
        cookie_name="kiosk_session",
        secure_cookie=settings.secure_cookie,
        max_content_length=16 * 1024,
    )
    app.extensions[KEY] = WebContext(
        source=source,
        operator=operator,
        settings=settings,
        registry=registry if registry is not None else CollectorRegistry(),
        limiter=LoginLimiter(settings.login_attempts_per_minute, clock),
        sessions=Sessions(settings.session_idle_s, clock),
    )
    for blueprint in (auth.bp, dashboard.bp, display.bp, api.bp, i18n.bp):
        app.register_blueprint(blueprint)
    app.jinja_env.globals.update(i18n.template_globals())
    return app


def harden(
    app: Flask, *, secret_key: bytes, cookie_name: str, secure_cookie: bool, max_content_length: int
) -> None:
    """The security habits every page of the project shares (the kiosk's, central's): a
    strict session cookie, the CSRF check before every POST (before any view: none can forget
    it), ``csrf_token()`` in templates, security headers, and error pages (``error.html``)
    that never show a traceback."""
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME=cookie_name,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure_cookie,
        MAX_CONTENT_LENGTH=max_content_length,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.before_request(csrf_protect)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.after_request(_secure_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _secure_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _http_error(error: HTTPException) -> Response:
    """JSON under /api, a short HTML page elsewhere; keeps Allow and Retry-After headers."""
    code = error.code or 500
    message = error.description or error.name
    if request.path.startswith("/api/"):
        response = jsonify(error=error.name.lower().replace(" ", "_"), message=message)
    else:
        response = Response(
            render_template("error.html", code=code, name=error.name, message=message),
            content_type="text/html; charset=utf-8",
        )
    response.status_code = code
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unexpected_error(error: Exception) -> Response:
    """Log the traceback; the client sees only that something went wrong."""
    log.exception("web request %s %s failed", request.method, request.path, exc_info=error)
    return _http_error(InternalServerError("The server could not answer this request."))
