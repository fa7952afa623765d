"""``kiosk central run|status``: the reference central server, over :mod:`kiosk.central.cli`."""

from __future__ import annotations

import signal
import threading

import click

from kiosk.cli.command import Broker, broker_options


@click.group()
def central() -> None:
    """The reference central server: ingest events from the kiosks, show the fleet."""


db_option = click.option(
    "--db",
    "db_url",
    default="central.db",
    show_default=True,
    help="sqlite:///path, a file path, or postgresql://… (psycopg).",
)


@central.command("run")
@db_option
@broker_options(username="central")
@click.option(
    "--client-id",
    default="central-ingest-1",
    show_default=True,
    help="Unique per ingest instance, stable across restarts.",
)
@click.option("--group", default="ingest", show_default=True, help="Shared-subscription group.")
@click.option(
    "--gap-grace-s",
    default=30.0,
    show_default=True,
    help="Ask a kiosk to resend a sequence gap older than this.",
)
@click.option(
    "--retention-days",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delete events and quarantine rows received longer ago than this (0: keep all).",
)
def central_run(
    db_url: str,
    broker: Broker,
    client_id: str,
    group: str,
    gap_grace_s: float,
    retention_days: float,
) -> None:
    """Store every kiosk's events idempotently and send receipts, until SIGTERM.

    The MQTT password comes from KIOSK_CENTRAL_MQTT_PASSWORD. The resend commands that ask a
    kiosk for a gap are signed with KIOSK_CENTRAL_COMMAND_KEY, the kiosks' mqtt.command_key;
    without it they go unsigned, and kiosks with a command key refuse them (unsigned).
    """
    from kiosk.central.cli import run_central
    from kiosk.central.ingest import IngestSettings
    from kiosk.run.logs import setup_logging

    setup_logging(client_id)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = IngestSettings(
        host=broker.host,
        port=broker.port,
        client_id=client_id,
        share_group=group,
        ca_file=broker.ca_file,
        cert_file=broker.cert_file,
        key_file=broker.key_file,
        username=broker.username,
        password=broker.password,
        gap_grace_s=gap_grace_s,
        retention_days=retention_days,
    )
    run_central(settings, db_url, stop)


@central.command("status")
@db_option
def central_status(db_url: str) -> None:
    """Print each kiosk (online or not, last seen, backlog, gaps), then the quarantine."""
    from kiosk.central.cli import print_status

    print_status(db_url)
