"""Signed lockdown commands from the dashboard (admins only), and what became of each.

A command goes to one kiosk or to every kiosk of a site, built, signed with central's one
command key (``KIOSK_CENTRAL_COMMAND_KEY``, the same for every site) and published exactly as
``kiosk command send`` does (:func:`kiosk.cli.command.build_command`,
:func:`kiosk.cli.command.send`), one connection per kiosk at once. A command to a whole site
first shows a confirmation page that lists every kiosk it reaches; only the form on that page
sends it. Sending runs in the background (:class:`Sends`, at most :data:`MAX_RUNNING` at once)
and the request answers at once with a page that reloads itself until every kiosk's answer is
in, then lists them.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from kiosk.central.web.auth import login_required
from kiosk.central.web.context import CommandSent, Publisher, central_web
from kiosk.cli.command import Broker, SendError, build_command, send
from kiosk.cli.common import EX_TEMPFAIL
from kiosk.mqtt.protocol import KioskTopics
from kiosk.operator.actions import Action

log = logging.getLogger(__name__)
bp = Blueprint("commands", __name__)

#: The kiosk refuses a command it gets later than this (the broker keeps it until then).
COMMAND_TTL_S = 300.0
#: Commands being sent at once; one more is refused (503) until one of them ends.
MAX_RUNNING = 4
#: Commands whose status page can be shown; beyond it the oldest finished one is forgotten.
KEEP_SENT = 32
#: Seconds between reloads of the page of a command still being sent.
RELOAD_S = 2
SENDS = "kiosk.central.web.commands"  # app.extensions key


@dataclass(frozen=True)
class Sending:
    """One command sent in the background: lockdown on or off, and what became of each kiosk."""

    on: bool
    result: Future[list[CommandSent]]


class Sends:
    """The commands the dashboard sends in the background, each found by a random id."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(MAX_RUNNING, thread_name_prefix="central-command")
        self._sending: dict[str, Sending] = {}
        self._lock = threading.Lock()

    def start(
        self, publisher: Publisher, on: bool, targets: Sequence[tuple[str, str]]
    ) -> str | None:
        """Send lockdown ``on`` to ``targets`` in the background; its id, or None when
        :data:`MAX_RUNNING` commands are still being sent."""
        with self._lock:
            if sum(not s.result.done() for s in self._sending.values()) >= MAX_RUNNING:
                return None
            result = self._pool.submit(publisher, Action.LOCKDOWN.value, {"on": on}, targets)
            key = secrets.token_urlsafe(16)
            self._sending[key] = Sending(on, result)
            finished = [k for k, s in self._sending.items() if s.result.done()]
            for old in finished[: max(0, len(self._sending) - KEEP_SENT)]:
                del self._sending[old]
            return key

    def get(self, key: str) -> Sending | None:
        """The command of id ``key``, if it is still kept."""
        with self._lock:
            return self._sending.get(key)


def init_app(app: Flask) -> None:
    """Register the commands' pages on ``app`` with their own background :class:`Sends`."""
    app.extensions[SENDS] = Sends()
    app.register_blueprint(bp)


def broker_publisher(broker: Broker, key: bytes, answer_within_s: float) -> Publisher:
    """A publisher that signs with ``key`` and waits ``answer_within_s`` for each result."""

    def one(name: str, args: dict[str, Any], site: str, kiosk: str) -> CommandSent:
        now_ms = time.time_ns() // 1_000_000
        command = build_command(Action(name), args, key, COMMAND_TTL_S, now_ms)
        try:
            result = send(broker, KioskTopics(site, kiosk), command, answer_within_s)
        except SendError as exc:
            if exc.code != EX_TEMPFAIL:
                return CommandSent(site, kiosk, "failed", str(exc))
            return CommandSent(site, kiosk, "pending" if broker.v5 else "unanswered", "")
        if result.get("ok"):
            return CommandSent(site, kiosk, "done", str(result.get("message", "")))
        return CommandSent(
            site, kiosk, "refused", f"{result.get('error')}: {result.get('message')}"
        )

    def publish(
        name: str, args: dict[str, Any], targets: Sequence[tuple[str, str]]
    ) -> list[CommandSent]:
        if not targets:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            return list(pool.map(lambda target: one(name, args, *target), targets))

    return publish


def _kiosks() -> dict[str, list[str]]:
    """Each site's kiosks, as central knows them."""
    sites: dict[str, list[str]] = {}
    for status in central_web().store.fleet():
        sites.setdefault(status.site, []).append(status.kiosk)
    return sites


@bp.get("/commands")
@login_required(admin=True)
def index() -> str:
    """The lockdown form: a kiosk or a whole site, on or off."""
    return render_template(
        "commands.html", sites=_kiosks(), can_send=central_web().publisher is not None
    )


@bp.post("/commands/lockdown")
@login_required(admin=True)
def lockdown() -> Any:
    """Lock down (``on=1``) or release (``on=0``) the target; a whole site only with
    ``confirm=1``, which the confirmation page sends."""
    publisher = central_web().publisher
    if publisher is None:
        abort(503, "No command key is set (KIOSK_CENTRAL_COMMAND_KEY): nothing was sent.")
    sites = _kiosks()
    target, on = request.form.get("target", ""), request.form.get("on") == "1"
    site, _, kiosk = target.partition("/")
    if site not in sites or (kiosk and kiosk not in sites[site]):
        abort(400, "Unknown kiosk or site.")
    targets = [(site, kiosk)] if kiosk else [(site, k) for k in sites[site]]
    if not kiosk and request.form.get("confirm") != "1":
        return render_template("confirm.html", target=target, on=on, targets=targets)
    log.info(
        "user %s: lockdown %s for %s (%d kiosks)",
        g.user.name,
        "on" if on else "off",
        target,
        len(targets),
    )
    sends: Sends = current_app.extensions[SENDS]
    key = sends.start(publisher, on, targets)
    if key is None:
        abort(503, "Other commands are still being sent; try again in a moment.")
    return redirect(url_for("commands.sent", key=key), 303)


@bp.get("/commands/sent/<key>")
@login_required(admin=True)
def sent(key: str) -> ResponseReturnValue:
    """A command sent in the background: a page that reloads itself while it is being sent,
    then each kiosk's answer."""
    sending = current_app.extensions[SENDS].get(key)
    if sending is None:
        abort(404)
    if not sending.result.done():
        page = render_template("sending.html", on=sending.on)
        return page, 200, {"Refresh": str(RELOAD_S)}
    return render_template("sent.html", on=sending.on, deliveries=sending.result.result())
