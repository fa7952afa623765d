"""The screen beside the gate: instructions while idle, each decision in its colour.

Idle, it asks for what this kiosk needs: a scan and the thermometer at an entrance, a scan out
at an exit kiosk (``direction = "exit"``), a scan to check in with the meeting's name in
checkin mode, only the thermometer in screen mode. A decision shows green (grant), red (deny),
amber (refer: its words say whom to see), or red and blinking with the temperature large
(fever). The page polls ``/display/last.json`` every 0.5 s (static/display.js) and shows a
decision whose seq it has not seen, for ``display_clear_s``. It shows only the outcome, the
message and the temperature: never who it was. Served without login, but only to this machine unless
``display_public`` (a logged-in operator may preview it from anywhere).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, abort, render_template, request

from kiosk.web.auth import logged_in
from kiosk.web.context import web_context

bp = Blueprint("display", __name__, url_prefix="/display")

#: The only fields of a decision the display may show.
PUBLIC_FIELDS = ("seq", "outcome", "reason", "message_vi", "message_en", "temperature_c")


def is_local(address: str | None) -> bool:
    """Whether a client address is this machine (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@bp.before_request
def local_only() -> None:
    """Refuse other machines (403) unless the display is public or an operator is logged in."""
    allowed = web_context().settings.display_public or is_local(request.remote_addr)
    if not (allowed or logged_in()):
        abort(403, "The display is served to this machine only (web.display_public).")


def public_decision() -> dict[str, Any] | None:
    """The last decision reduced to what anyone in front of the gate may see."""
    decision = web_context().source.last_decision()
    if decision is None:
        return None
    return {name: decision.get(name) for name in PUBLIC_FIELDS}


@bp.get("")
def page() -> str:
    """The full-screen display."""
    last = public_decision()
    settings = web_context().settings
    return render_template(
        "display.html",
        last_seq=0 if last is None else last["seq"],
        clear_ms=round(settings.display_clear_s * 1000),
        settings=settings,
    )


@bp.get("/last.json")
def last() -> dict[str, Any]:
    """``{"decision": {...} | null}`` with only the public fields."""
    return {"decision": public_decision()}
