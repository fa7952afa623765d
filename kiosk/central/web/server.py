"""``kiosk central web``'s server: the dashboard on waitress with bounded connections
(:mod:`kiosk.web.server`, the kiosk page's), until SIGTERM."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from kiosk.central.cli import COMMAND_KEY_ENV, PASSWORD_ENV
from kiosk.central.settings import CentralConfig
from kiosk.central.store import open_store
from kiosk.central.web.app import create_central_app
from kiosk.central.web.commands import broker_publisher
from kiosk.central.web.context import Publisher
from kiosk.cli.command import Broker
from kiosk.web.server import ConnectionLimits, create_page_server, serve_in_thread

log = logging.getLogger(__name__)

#: How long a command waits for each kiosk's result before the page says "sent".
ANSWER_WITHIN_S = 5.0


def publisher_from(config: CentralConfig, environ: Mapping[str, str]) -> Publisher | None:
    """Commands over ``[mqtt]`` signed with KIOSK_CENTRAL_COMMAND_KEY; None without a key."""
    key = environ.get(COMMAND_KEY_ENV, "").encode()
    if not key:
        log.warning("%s is not set: the dashboard cannot send commands", COMMAND_KEY_ENV)
        return None
    mqtt = config.mqtt
    broker = Broker(
        mqtt.host,
        mqtt.port,
        mqtt.ca_file or None,
        mqtt.cert_file or None,
        mqtt.key_file or None,
        mqtt.username,
        environ.get(PASSWORD_ENV),
        v5=config.speaks_mqtt_5,
    )
    return broker_publisher(broker, key, ANSWER_WITHIN_S)


def serve(config: CentralConfig, db_url: str, stop: threading.Event) -> None:
    """Serve the dashboard on ``[web] host`` and ``port`` until ``stop`` is set."""
    store = open_store(db_url)
    try:
        app = create_central_app(store, config, publisher=publisher_from(config, os.environ))
        server = create_page_server(app, config.web.host, config.web.port, ConnectionLimits())
        stop_server = serve_in_thread(server, "central-web")
        log.info("fleet dashboard on http://%s:%d/", config.web.host, config.web.port)
        stop.wait()
        stop_server()
    finally:
        store.close()
