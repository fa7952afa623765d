"""Per-app state, kept in ``app.extensions`` so that every app built is independent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kiosk.operator.actions import Operator
    from kiosk.web.auth import LoginLimiter
    from kiosk.web.interfaces import StatusSource, WebSettings
    from kiosk.web.sessions import Sessions

KEY = "kiosk.web"


@dataclass(frozen=True)
class WebContext:
    """What the views of one app use: the kiosk's status, the operator that carries out
    actions, settings, limiter, open sessions."""

    source: StatusSource
    operator: Operator
    settings: WebSettings
    registry: CollectorRegistry
    limiter: LoginLimiter
    sessions: Sessions


def web_context() -> WebContext:
    """The current app's context (inside a request)."""
    context: WebContext = current_app.extensions[KEY]
    return context
