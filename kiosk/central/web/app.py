"""The fleet dashboard's application factory: one independent Flask app per call.

The security habits are the kiosk page's own (:func:`kiosk.web.app.harden`: strict cookie,
CSRF before every POST, security headers, error pages); its stylesheet is the kiosk page's
too (``kiosk/base.html``, ``style.css``), with central's additions in ``central.css``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Flask
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader
from prometheus_client import CollectorRegistry
from werkzeug.middleware.proxy_fix import ProxyFix

from kiosk.central.rosterfile import MAX_FILE_BYTES
from kiosk.central.settings import CentralConfig
from kiosk.central.store import Store
from kiosk.central.web import auth, commands, declare, pages, reports, texts
from kiosk.central.web.context import KEY, CentralWeb, Publisher
from kiosk.central.web.metrics import central_registry
from kiosk.web.app import harden
from kiosk.web.auth import LoginLimiter
from kiosk.web.sessions import Sessions

#: The kiosk page's stylesheet and page skeleton (``kiosk/base.html``) are the dashboard's too.
KIOSK_WEB = Path(__file__).parent.parent.parent / "web"
#: Failed logins allowed per client address and minute.
LOGINS_PER_MINUTE = 5
#: The largest request: a roster CSV as large as ``kiosk central roster import`` reads, and
#: the form around it (a bigger one gets the 413 page, which names the file limit).
MAX_UPLOAD = MAX_FILE_BYTES + 64 * 1024


def create_central_app(
    store: Store,
    config: CentralConfig,
    *,
    publisher: Publisher | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> Flask:
    """Build the dashboard over ``store``.

    :param config: central's config: ``[web]`` (users file, session minutes, the proxies in
        front whose forwarded client address and scheme are believed, the cookie's Secure flag),
        the sites.
    :param publisher: sends signed commands (None: no command key, commands are refused).
    :param registry: what ``/metrics`` serves (default: the fleet's gauges).
    :param clock: monotonic seconds, for the login rate limit and session expiry.
    :param now_ms: wall-clock milliseconds, for ages and acknowledgements.
    """
    app = Flask(__name__, static_folder=str(KIOSK_WEB / "static"))
    app.jinja_loader = ChoiceLoader(
        [
            FileSystemLoader(Path(__file__).parent / "templates"),
            PrefixLoader({"kiosk": FileSystemLoader(KIOSK_WEB / "templates")}),
        ]
    )
    harden(
        app,
        secret_key=secrets.token_bytes(32),  # sessions live in memory: a restart ends them
        cookie_name="central_session",
        secure_cookie=config.web.cookie_secure(),
        max_content_length=MAX_UPLOAD,
    )
    app.config[texts.DEFAULT_LANGUAGE] = texts.default_language(
        site.language for site in config.sites.values()
    )
    app.extensions[KEY] = CentralWeb(
        store=store,
        config=config,
        users_file=Path(config.web.users_file),
        publisher=publisher,
        registry=registry if registry is not None else central_registry(store, config),
        limiter=LoginLimiter(LOGINS_PER_MINUTE, clock),
        sessions=Sessions(config.web.session_minutes * 60.0, clock),
        now_ms=now_ms,
    )
    assets = Blueprint("assets", __name__, static_folder="static", static_url_path="/assets")
    for blueprint in (auth.bp, pages.bp, reports.bp, texts.bp, assets):
        app.register_blueprint(blueprint)
    commands.init_app(app)
    declare.init_app(app, LoginLimiter(declare.DECLARATIONS_PER_MINUTE, clock))
    app.jinja_env.globals.update(texts.template_globals(), upload_mib=MAX_FILE_BYTES // 1048576)
    if config.web.trusted_proxies:
        proxies = config.web.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    return app


__all__ = ["create_central_app"]
