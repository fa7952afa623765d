"""Login, sessions, CSRF tokens, the API's bearer token and the login rate limit.

There is one operator password (a werkzeug scrypt hash in the settings). A session records a
fingerprint of that hash, so setting a new password logs every browser out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast

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

from kiosk.web.context import web_context

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])
WINDOW_S = 60.0


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


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def logged_in() -> bool:
    """Whether this request's session belongs to an operator logged in with today's password."""
    password_hash = web_context().settings.password_hash
    return bool(password_hash) and session.get("operator") == _fingerprint(password_hash)


def csrf_token() -> str:
    """This session's CSRF token, made on first use (for hidden form fields)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """Refuse (400) a form whose ``csrf_token`` field is not this session's token."""
    expected = session.get("csrf")
    sent = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, "The form has expired or did not come from this page. Reload and try again.")


def no_password_page() -> tuple[str, int]:
    """The page shown instead of the dashboard while no password is set."""
    return render_template("no_password.html"), 503


def login_required(view: F) -> F:
    """Dashboard views: no password set → instructions; not logged in → the login page."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not web_context().settings.password_hash:
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


def _safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else goes to the dashboard."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; failures are rate limited per client address (429 with Retry-After)."""
    settings = web_context().settings
    if not settings.password_hash:
        return no_password_page()
    if request.method == "GET":
        return render_template("login.html", error=None)
    address = request.remote_addr or "unknown"
    limiter = web_context().limiter
    wait = limiter.retry_after(address)
    if wait:
        raise TooManyRequests(f"Too many failed logins. Try again in {wait} s.", retry_after=wait)
    check_csrf()
    if not check_password(settings.password_hash, request.form.get("password", "")):
        limiter.failed(address)
        return render_template("login.html", error="Wrong password."), 401
    limiter.succeeded(address)
    session.clear()
    session["operator"] = _fingerprint(settings.password_hash)
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> Response:
    """End the session."""
    check_csrf()
    session.clear()
    return redirect(url_for("auth.login"))
