"""``kiosk central web``: serve the fleet dashboard; ``kiosk central web set-password``."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from pathlib import Path

import click

from kiosk.cli.central.options import central_config, db_option, store_url
from kiosk.cli.common import EX_USAGE


@click.group("web", invoke_without_command=True)
@db_option
@click.option("--host", help="Address to listen on (default: [web] host).")
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port (default: [web] port).")
@click.pass_context
def web_group(ctx: click.Context, db_url: str | None, host: str | None, port: int | None) -> None:
    """Serve the fleet dashboard until SIGTERM (users: `kiosk central web set-password`).

    Commands are signed with KIOSK_CENTRAL_COMMAND_KEY and sent over [mqtt] (password from
    KIOSK_CENTRAL_MQTT_PASSWORD); without the key the dashboard sends none.
    """
    if ctx.invoked_subcommand is not None:
        return
    from kiosk.central.web.server import serve
    from kiosk.run.logs import setup_logging

    config = central_config(ctx)
    web = config.web
    if host is not None:
        web = dataclasses.replace(web, host=host)
    if port is not None:
        web = dataclasses.replace(web, port=port)
    setup_logging("central-web")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve(dataclasses.replace(config, web=web), store_url(ctx, db_url), stop)


@web_group.command("set-password")
@click.argument("user")
@click.option("--role", type=click.Choice(["viewer", "admin"]), required=True)
@click.pass_context
def set_password(ctx: click.Context, user: str, role: str) -> None:
    """Add USER to [web] users_file, or give them a new password and ROLE (ends their
    sessions at once)."""
    from kiosk.central.web.users import UsersFileError
    from kiosk.central.web.users import set_password as save

    path = Path(central_config(ctx).web.users_file)
    password = click.prompt(f"New password for {user}", hide_input=True, confirmation_prompt=True)
    try:
        save(path, user, "admin" if role == "admin" else "viewer", password)
    except UsersFileError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_USAGE)
    click.echo(f"{user} ({role}) saved (password hashed) in {path}")
