"""``kiosk central run|status`` and ``kiosk central config example|check``."""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kiosk.cli.central.options import (
    central_config,
    db_option,
    given,
    remember_config,
    store_url,
)
from kiosk.cli.command import Broker, broker_options

if TYPE_CHECKING:
    from kiosk.central.nats import NatsSettings
    from kiosk.central.settings import CentralConfig


@click.command("run")
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
    help="Delete events and quarantine rows received longer ago than this, daily (0: keep all).",
)
@click.pass_context
def central_run(
    ctx: click.Context,
    db_url: str | None,
    broker: Broker,
    client_id: str,
    group: str,
    gap_grace_s: float,
    retention_days: float,
) -> None:
    """Store every kiosk's events idempotently and send receipts, until SIGTERM.

    Options given here override the config file's [mqtt] and [store]. The retention runs at
    start and then daily; the daily list is delivered at [report] daily_at when [report]
    names a folder or recipients. The MQTT password comes from KIOSK_CENTRAL_MQTT_PASSWORD.
    With [central] transport = "nats" the events come from the [nats] JetStream cluster
    (password: KIOSK_CENTRAL_NATS_PASSWORD) and any number of these may run.
    The resend commands that ask a kiosk for a gap are signed with KIOSK_CENTRAL_COMMAND_KEY,
    the kiosks' mqtt.command_key; without it they go unsigned, and kiosks with a command key
    refuse them.
    """
    from kiosk.central.cli import run_central
    from kiosk.central.ingest import IngestSettings
    from kiosk.run.logs import setup_logging

    config = central_config(ctx)
    flags: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "ca_file": broker.ca_file,
        "cert_file": broker.cert_file,
        "key_file": broker.key_file,
        "username": broker.username,
        "client_id": client_id,
        "group": group,
        "gap_grace_s": gap_grace_s,
    }
    mqtt = dataclasses.replace(config.mqtt, **{name: flags[name] for name in given(ctx, flags)})
    policy = config.store
    if given(ctx, ["retention_days"]):
        policy = dataclasses.replace(policy, retention_days=retention_days)
    setup_logging(mqtt.client_id)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = IngestSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=mqtt.client_id,
        share_group=mqtt.group,
        ca_file=mqtt.ca_file or None,
        cert_file=mqtt.cert_file or None,
        key_file=mqtt.key_file or None,
        username=mqtt.username or None,
        password=broker.password,
        gap_grace_s=mqtt.gap_grace_s,
    )
    nats = nats_settings(config, mqtt.client_id) if config.central.transport == "nats" else None
    run_central(settings, store_url(ctx, db_url), stop, policy=policy, reports=config, nats=nats)


def nats_settings(config: CentralConfig, name: str) -> NatsSettings:
    """The JetStream worker's settings from [nats]; the password from the environment."""
    import os

    from kiosk.central.cli import NATS_PASSWORD_ENV
    from kiosk.central.nats import NatsSettings

    section = config.nats
    return NatsSettings(
        servers=section.servers,
        durable=section.durable,
        batch_max=section.batch_max,
        ack_wait_s=section.ack_wait_s,
        user=section.user or None,
        password=os.environ.get(NATS_PASSWORD_ENV) or None,
        creds_file=section.creds_file or None,
        ca_file=section.ca_file or None,
        name=name,
    )


@click.command("status")
@db_option
@click.pass_context
def central_status(ctx: click.Context, db_url: str | None) -> None:
    """Print each kiosk (online or not, last seen, backlog, gaps), then the quarantine."""
    from kiosk.central.cli import print_status

    print_status(store_url(ctx, db_url))


@click.group("config")
def central_config_group() -> None:
    """Central's configuration file (central.toml)."""


@central_config_group.command("example")
def config_example() -> None:
    """Print an example central.toml with every key, its default and description."""
    from kiosk.central.settings import example_toml

    click.echo(example_toml())


@central_config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def config_check(ctx: click.Context, file: Path) -> None:
    """Validate FILE; exit 78 naming the file, line and key of the first problem."""
    remember_config(ctx, file)
    config = central_config(ctx)
    sites = ", ".join(config.sites) or "none"
    click.echo(f"{file}: OK (sites: {sites})")
