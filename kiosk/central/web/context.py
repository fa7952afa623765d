"""What the dashboard's views share, kept in ``app.extensions`` (one independent app per call)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kiosk.central.settings import CentralConfig
    from kiosk.central.store import Store
    from kiosk.web.auth import LoginLimiter
    from kiosk.web.sessions import Sessions

KEY = "kiosk.central.web"

#: Sends the command (name, args) to each (site, kiosk) and says what became of each.
Publisher = Callable[[str, dict[str, Any], Sequence[tuple[str, str]]], list["CommandSent"]]


@dataclass(frozen=True)
class CommandSent:
    """What became of a command sent to one kiosk: ``outcome`` is ``done``, ``refused``,
    ``pending`` (sent, no answer in time; the broker keeps it for the kiosk), ``unanswered``
    (the same on a NATS cluster, which does not keep it) or ``failed`` (not sent), ``detail``
    the why."""

    site: str
    kiosk: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class CentralWeb:
    """The dashboard's parts: the store, the config, the users file, the command publisher
    (None when no command key is set), metrics, login limiter and sessions, and the clock."""

    store: Store
    config: CentralConfig
    users_file: Path
    publisher: Publisher | None
    registry: CollectorRegistry
    limiter: LoginLimiter
    sessions: Sessions
    now_ms: Callable[[], int]


def central_web() -> CentralWeb:
    """The current app's parts (inside a request)."""
    context: CentralWeb = current_app.extensions[KEY]
    return context
