"""Login, sessions, CSRF tokens, the API's bearer token and the login rate limit.

There is one operator password (a werkzeug scrypt hash, from the settings or re-read from
the password file at every check); each operator logs in with it under their own login name,
which the kiosk records with every action they take. The session cookie only names a
server-side session (kiosk/web/sessions.py): logout, a new password and idle time end it for
good. Every POST needs the session's CSRF token (:func:`csrf_protect`, run before every view).
"""

from __future__ import annotations

import functools
import hmac
import math
import re
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from flask import (
    Blueprint,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from kiosk.ids import OPERATOR
from kiosk.web.context import web_context
from kiosk.web.sessions import Sessions

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])
WINDOW_S = 60.0
#: Endpoints a POST may reach without the CSRF token: none.
CSRF_EXEMPT: frozenset[str] = frozenset()
CSRF_HEADER = "X-CSRF-Token"
#: What open pages fetch by themselves (dashboard.js, display.js): not an operator's activity.
POLLED = ("/api/", "/display/last.json")
#: ``next`` after login: a path of this site, in plain URL characters (no backslash, space,
#: control character or ``#``), and not ``//`` or ``/\\``, which browsers read as another host.
_SAFE_NEXT = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*", re.ASCII)
MAX_NEXT = 512


def hash_password(plain: str) -> str:
    """A salted scrypt hash of ``plain`` for ``WebSettings.password_hash``."""
    if not plain:
        raise ValueError("the password must not be empty")
    return generate_password_hash(plain, method="scrypt")


def check_password(password_hash: str, plain: str) -> bool:
    """Whether ``plain`` matches ``password_hash`` (False for an empty or malformed hash)."""
    if not password_hash:
        return False
    try:
        return check_password_hash(password_hash, plain)
    except ValueError:
        return False


class LoginLimiter:
    """Failed logins per client address in a sliding minute, in memory.

    :param per_minute: failures allowed per address within 60 s.
    :param clock: monotonic seconds.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 if it may now."""
        now = self._clock()
        failures = self._recent(address, now)
        if len(failures) < self._per_minute:
            return 0
        return max(1, math.ceil(failures[0] + WINDOW_S - now))

    def failed(self, address: str) -> None:
        """Count a failed login from ``address`` (and forget addresses quiet for a minute)."""
        now = self._clock()
        for other in list(self._failures):
            self._recent(other, now)
        self._failures.setdefault(address, deque()).append(now)

    def succeeded(self, address: str) -> None:
        """Forget the failures of ``address``."""
        self._failures.pop(address, None)

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address, deque())
        while failures and failures[0] <= now - WINDOW_S:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures


def password_hash() -> str:
    """The operator password's hash in force: the settings' own, else the password file's
    content now (so ``kiosk web set-password`` takes effect at once); empty if none."""
    settings = web_context().settings
    if settings.password_hash or settings.password_file is None:
        return settings.password_hash
    try:
        return settings.password_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def logged_in() -> bool:
    """Whether this request comes from an open operator session for today's password; a
    request counts as the operator's activity unless it is one a page polls (``POLLED``)."""
    polled = request.path.startswith(POLLED)
    return web_context().sessions.check(session.get("sid"), password_hash(), touch=not polled)


def csrf_token() -> str:
    """This session's CSRF token, made on first use (for hidden form fields)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_protect() -> None:
    """Before every view: refuse (400) a POST (PUT, PATCH, DELETE) whose ``csrf_token`` field
    or ``X-CSRF-Token`` header is not this session's token, unless its endpoint is in
    ``CSRF_EXEMPT``; requests that match no route are left to their 404 or 405."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.routing_exception is not None:
        return
    if request.endpoint in CSRF_EXEMPT:
        return
    expected = session.get("csrf")
    sent = request.form.get("csrf_token") or request.headers.get(CSRF_HEADER, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, "The form has expired or did not come from this page. Reload and try again.")


def no_password_page() -> tuple[str, int]:
    """The page shown instead of the dashboard while no password is set."""
    return render_template("no_password.html"), 503


def login_required(view: F) -> F:
    """Dashboard views: no password set → instructions; not logged in → the login page."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not password_hash():
            return no_password_page()
        if not logged_in():
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def api_auth_required(view: F) -> F:
    """API views: a logged-in session or ``Authorization: Bearer <api_token>``, else 401."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        token = web_context().settings.api_token
        header = request.headers.get("Authorization", "")
        bearer = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if logged_in() or (token and bearer and hmac.compare_digest(token, bearer)):
            return view(*args, **kwargs)
        return (
            {"error": "unauthorized", "message": "log in or send Authorization: Bearer <token>"},
            401,
            {"WWW-Authenticate": 'Bearer realm="kiosk"'},
        )

    return cast(F, wrapped)


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path of this site to go to after login, else None.

    Checked again after percent-decoding (three times): ``/%2F%2Fhost`` must not become
    ``//host`` in a client that decodes before it resolves.
    """
    if not target or len(target) > MAX_NEXT or not _SAFE_NEXT.fullmatch(target):
        return None
    decoded = target
    for _ in range(3):
        decoded = unquote(decoded)
    if decoded.startswith(("//", "/\\")) or any(c == "\\" or not c.isprintable() for c in decoded):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; failures are rate limited per client address (429 with Retry-After)."""
    current = password_hash()
    if not current:
        return no_password_page()
    target = safe_next(request.args.get("next"))
    if request.method == "GET":
        return render_template("login.html", error=None, next=target, operator="")
    address = request.remote_addr or "unknown"
    limiter = web_context().limiter
    wait = limiter.retry_after(address)
    if wait:
        raise TooManyRequests(f"Too many failed logins. Try again in {wait} s.", retry_after=wait)
    operator = request.form.get("operator", "").strip()
    if not OPERATOR.fullmatch(operator):
        page = render_template("login.html", error="dash.bad_operator", next=target, operator="")
        return page, 400
    if not check_password(current, request.form.get("password", "")):
        limiter.failed(address)
        page = render_template(
            "login.html", error="dash.wrong_password", next=target, operator=operator
        )
        return page, 401
    limiter.succeeded(address)
    start_session(web_context().sessions, current, operator=operator)
    return redirect(target or url_for("dashboard.index"))


@bp.post("/logout")
def logout() -> Response:
    """End the session on the server, not only in this browser."""
    end_session(web_context().sessions)
    return redirect(url_for("auth.login"))


def start_session(sessions: Sessions, credential: str, **values: str) -> None:
    """A new session for who just logged in with ``credential`` (whose change ends it),
    holding ``values``; the session before it ends, its language choice stays."""
    sessions.close(session.get("sid"))
    language = session.get("lang")
    session.clear()
    session["sid"] = sessions.open(credential)
    session.update(values)
    if language is not None:
        session["lang"] = language


def end_session(sessions: Sessions) -> None:
    """End this browser's session on the server too (logout)."""
    sessions.close(session.get("sid"))
    session.clear()
