"""The kiosk's web interface: operator dashboard, gate display, JSON API, probes and metrics."""

from kiosk.web.app import create_app
from kiosk.web.auth import check_password, hash_password
from kiosk.web.interfaces import StatusSource, WebSettings

__all__ = [
    "StatusSource",
    "WebSettings",
    "check_password",
    "create_app",
    "hash_password",
]
