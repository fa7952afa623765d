"""Login and roles of the fleet dashboard, on the kiosk page's own security parts.

The login limiter, the server-side sessions (:class:`kiosk.web.sessions.Sessions`), the CSRF
check before every POST and the safe ``next`` come from :mod:`kiosk.web`. What differs: each
user has a password and a role in ``[web] users_file`` (:mod:`kiosk.central.web.users`), read
again at every request, so a changed password or role ends that user's sessions at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from kiosk.central.web.context import central_web
from kiosk.central.web.users import User, UsersFileError, authenticate, read_users
from kiosk.web.auth import end_session, safe_next, start_session

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


def current_user() -> User | None:
    """The user of this request's open session, or None."""
    context = central_web()
    name = session.get("user")
    try:
        user = read_users(context.users_file).get(name) if isinstance(name, str) else None
    except UsersFileError:
        return None
    if user is None or not context.sessions.check(session.get("sid"), user.credential, touch=True):
        return None
    return user


def login_required(*, admin: bool = False) -> Callable[[F], F]:
    """Views for a logged-in user (else the login page); ``admin``: 403 for a viewer."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if admin and not user.is_admin:
                abort(403)
            g.user = user
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorate


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; failures are rate limited per client address (429 with Retry-After)."""
    context = central_web()
    try:
        no_users = not read_users(context.users_file)
    except UsersFileError as exc:
        log.error("the dashboard's users file cannot be used: %s", exc)
        no_users = True
    if no_users:
        return render_template("no_users.html", users_file=context.users_file), 503
    target = safe_next(request.args.get("next"))
    if request.method == "GET":
        return render_template("login.html", error=False, next=target, user="")
    address = request.remote_addr or "unknown"
    wait = context.limiter.retry_after(address)
    if wait:
        raise TooManyRequests(f"Too many failed logins. Try again in {wait} s.", retry_after=wait)
    name = request.form.get("user", "").strip()
    user = authenticate(context.users_file, name, request.form.get("password", ""))
    if user is None:
        context.limiter.failed(address)
        return render_template("login.html", error=True, next=target, user=name), 401
    context.limiter.succeeded(address)
    start_session(context.sessions, user.credential, user=user.name)
    return redirect(target or url_for("pages.fleet"))


@bp.post("/logout")
def logout() -> Response:
    """End the session on the server, not only in this browser."""
    end_session(central_web().sessions)
    return redirect(url_for("auth.login"))
