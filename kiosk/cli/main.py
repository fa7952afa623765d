"""The ``kiosk`` command: one thin function per subcommand.

Longer than most modules because each subcommand's options and help live next to it; the
work is in the modules they call (``kiosk pass`` in issuer_cli, ``kiosk command`` in
command_cli).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import click
from gpiozero import GPIOZeroError, PinFactoryFallback

from kiosk import __version__
from kiosk.cli.command import Broker, broker_options, command_group
from kiosk.cli.issuer import pass_group, site_qr
from kiosk.config import (
    DEFAULT_CONFIG_PATH,
    EX_CONFIG,
    ConfigError,
    KioskConfig,
    load_config,
    parse_config,
)
from kiosk.credentials import AllowlistError
from kiosk.events import EventType

EX_USAGE = 64  # sysexits.h: the command was used incorrectly
EX_SOFTWARE = 70  # sysexits.h: an internal error
EX_UNAVAILABLE = 69  # sysexits.h: a required device or service is unavailable


def main() -> None:
    """Entry point: run the CLI, turning errors into one clear line and an exit code.

    A traceback is shown only with ``KIOSK_DEBUG=1``; the relay was already released by
    the kiosk's own clean-up before an error reaches this point.
    """
    try:
        cli(standalone_mode=True)
    except (ConfigError, AllowlistError) as exc:
        click.echo(f"kiosk: configuration error: {exc}", err=True)
        sys.exit(EX_CONFIG)
    except GPIOZeroError as exc:
        click.echo(f"kiosk: GPIO unavailable ({exc}); on a PC use --simulate", err=True)
        sys.exit(EX_UNAVAILABLE)
    except Exception as exc:
        if os.environ.get("KIOSK_DEBUG"):
            raise
        click.echo(
            f"kiosk: {type(exc).__name__}: {exc} (KIOSK_DEBUG=1 shows the traceback)", err=True
        )
        sys.exit(EX_SOFTWARE)


@click.group()
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Entrance kiosk: QR pass and temperature at a turnstile, with a durable event log."""


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="Configuration file (TOML).",
)


@cli.command()
@config_option
@click.option("--simulate", is_flag=True, help="Use simulated camera, thermometer and GPIO.")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(config_path: Path, simulate: bool, verbose: bool) -> None:
    """Run the kiosk until SIGTERM or Ctrl-C (relay released, log closed, exit 0; a stop that
    hangs is cut short: relay released, exit 70)."""
    from kiosk.cli.preflight import check_setup, policy_warnings
    from kiosk.run.logs import setup_logging
    from kiosk.run.runtime import open_kiosk
    from kiosk.run.systemd import STOP_DEADLINE_S
    from kiosk.sensors.frames import CameraError

    config = load_config(config_path)
    check_setup(config)  # every problem the configuration causes: exit 78, not 70 in a loop
    setup_logging(config.kiosk.id, level=logging.DEBUG if verbose else logging.INFO)
    for warning in policy_warnings(config):
        logging.getLogger("kiosk").warning("%s", warning)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with open_kiosk(config, simulate=simulate) as kiosk:
            kiosk.run(stop, stop_deadline_s=STOP_DEADLINE_S)
    except CameraError as exc:
        click.echo(f"kiosk: camera unavailable: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per decision.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's event log here (default: a temporary directory).",
)
def demo(as_json: bool, state_dir: Path | None) -> None:
    """Run a scripted queue of people through a kiosk on simulated hardware."""
    from kiosk.run.demo import PersonResult, run_demo
    from kiosk.run.logs import setup_logging
    from kiosk.sensors.simulation import DEMO_ALLOWLIST, demo_queue

    setup_logging("demo-1", level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as scratch:
        directory = state_dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        allowlist = directory / "allowlist.csv"
        allowlist.write_text(DEMO_ALLOWLIST, encoding="utf-8")
        config = parse_config(
            {
                "kiosk": {"id": "demo-1", "site": "demo", "state_dir": str(directory)},
                "credentials": {
                    "allowlist": str(allowlist),
                    "subject_salt": "demo-salt-not-for-production",
                },
                "web": {"enabled": False},
            },
            source="<demo>",
        )

        def emit(result: PersonResult) -> None:
            click.echo(
                json.dumps(result.as_json(), ensure_ascii=False) if as_json else result.as_line()
            )

        started = time.monotonic()
        summary = run_demo(config, demo_queue(), emit)
        if as_json:
            click.echo(json.dumps(summary.as_json()))
        else:
            counts = ", ".join(f"{n} {o}" for o, n in sorted(summary.outcomes.items()))
            click.echo(
                f"\n{summary.people} people in {time.monotonic() - started:.1f} s "
                f"({counts}); median {summary.median_seconds:.2f} s per person; "
                f"{summary.unexpected} unexpected"
            )
            if state_dir:
                click.echo(f"event log: {summary.log_path}")
    if summary.unexpected:
        sys.exit(1)


def event_log_path(config_path: Path, db: Path | None) -> Path:
    """The event log ``--db`` names, else the one the config names; exit with a how-to when
    neither can be found (the command runs on a PC, or before the kiosk ever ran)."""
    if db is None:
        if not config_path.exists():
            click.echo(
                f"kiosk: no configuration at {config_path} to find the event log from: give "
                "--config FILE (the kiosk's kiosk.toml) or --db FILE (its event log, "
                "<kiosk.state_dir>/events.db unless log.path says otherwise)",
                err=True,
            )
            sys.exit(EX_CONFIG)
        config = load_config(config_path)
        db = config.log_path
        key = "log.path" if config.log.path else "kiosk.state_dir"
        hint = (
            f" ({key} in {config_path}): the kiosk has not run with this configuration on "
            "this machine yet; give --db FILE to read a log copied from a kiosk"
        )
    else:
        hint = ""
    if not db.exists():
        click.echo(f"kiosk: no event log at {db}{hint}", err=True)
        sys.exit(EX_UNAVAILABLE)
    return db


db_file_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Event log file (default: the one --config names).",
)


@cli.command()
@config_option
@db_file_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--type",
    "event_type",
    type=click.Choice([t.value for t in EventType]),
    help="Only events of this type.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
def events(
    config_path: Path,
    db: Path | None,
    limit: int,
    event_type: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """List (or follow) the local event log, newest last: the file --db names, else the one
    the configuration names."""
    from kiosk.store.eventlog import LogOpenError, read_events

    path = event_log_path(config_path, db)
    try:
        batch = read_events(path, limit=limit, type=event_type)
        _print_events(batch, as_json)
        last = batch[-1].seq if batch else 0
        while follow:
            time.sleep(0.5)
            batch = read_events(path, limit=1000, after_seq=last, type=event_type)
            _print_events(batch, as_json)
            last = batch[-1].seq if batch else last
    except LogOpenError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    except KeyboardInterrupt:
        pass


def _print_events(batch: list[Any], as_json: bool) -> None:
    for event in batch:
        if as_json:
            click.echo(json.dumps(event.to_json_dict(), ensure_ascii=False))
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.ts_ms / 1000))
            clock = "" if event.clock_synced else " (clock not synchronised)"
            click.echo(
                f"{event.seq:>8} {stamp}Z {event.type:<13} "
                f"{json.dumps(event.data, ensure_ascii=False)}{clock}"
            )


@cli.group("config")
def config_group() -> None:
    """Check or print the configuration."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--machine",
    is_flag=True,
    help="Fail (exit 78) when this machine lacks what FILE points at, as `kiosk run` does; "
    "use it on the kiosk itself.",
)
@click.option("--strict", is_flag=True, help="Fail (exit 78) on any warning; implies --machine.")
def config_check(file: Path, machine: bool, strict: bool) -> None:
    """Validate FILE without starting anything: exit 78 if the file is wrong.

    What FILE points at (directories, salt and TLS files, allowlist, trust anchor) is checked
    on this machine too; missing there is a warning, or an error with --machine or --strict.
    A file with which nobody can ever be granted is a warning (an error with --strict).
    """
    from kiosk.cli.preflight import policy_warnings, setup_problems

    config = load_config(file)
    problems = setup_problems(config)
    fatal = bool(problems) and (machine or strict)
    for problem in problems:
        label = "configuration error" if fatal else "warning: on this machine"
        click.echo(f"kiosk: {label}: {problem}", err=True)
    if fatal:
        sys.exit(EX_CONFIG)
    policy = policy_warnings(config)
    for warning in policy:
        click.echo(f"kiosk: {'configuration error' if strict else 'warning'}: {warning}", err=True)
    if strict and policy:
        sys.exit(EX_CONFIG)
    where = f"kiosk {config.kiosk.id} at {config.kiosk.site}, mode {config.kiosk.mode}"
    if problems:
        click.echo(
            f"{file}: valid ({where}); {len(problems)} "
            f"warning{'s' if len(problems) > 1 else ''} about this machine "
            "(--machine makes them errors)"
        )
    else:
        click.echo(f"{file}: ok ({where}, {_credentials_summary(config)})")


def _credentials_summary(config: KioskConfig) -> str:
    """The legacy badges and signed-pass documents a working setup would load."""
    from kiosk.credentials.trust import TrustStore
    from kiosk.run.runtime import load_allowlist

    allowlist = load_allowlist(config)
    badges = "no legacy badges" if allowlist is None else f"{len(allowlist)} legacy badges"
    trust = TrustStore.open(config)
    if not trust.enabled:
        return f"{badges}, signed passes off"
    documents = [
        f"{name} list v{version}" if version is not None else f"no {name} list"
        for name, version in trust.versions().items()
    ]
    return f"{badges}, signed passes: {', '.join(documents)}"


@config_group.command("example")
def config_example() -> None:
    """Print an example configuration with every key, its default and description."""
    from kiosk.config import example_toml

    click.echo(example_toml(), nl=False)


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option("--decoder", help="Decoder backend (default: the configured one).")
def decode(images: tuple[Path, ...], config_path: Path, decoder: str | None) -> None:
    """Print what the QR decoder reads in each image (one JSON object per image)."""
    from kiosk.sensors.qr import DecoderUnavailableError, decode_image_file, make_decoder

    if decoder is None:
        decoder = load_config(config_path).camera.decoder if config_path.exists() else None
    try:
        backend = make_decoder(decoder or "zxing-cpp")
    except (ValueError, DecoderUnavailableError) as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    failed = False
    for image in images:
        result = decode_image_file(image, backend)
        failed = failed or bool(result.get("error"))
        click.echo(json.dumps(result, ensure_ascii=False))
    if failed:
        sys.exit(1)


cli.add_command(pass_group)
cli.add_command(site_qr)
cli.add_command(command_group)


@cli.group()
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


@cli.group()
def checkin() -> None:
    """Meeting check-in (kiosks in checkin mode)."""


@checkin.command("report")
@click.argument("meeting")
@config_option
@db_file_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per attendee.")
def checkin_report(meeting: str, config_path: Path, db: Path | None, as_json: bool) -> None:
    """List who checked in to MEETING: one line per pass, in order of arrival."""
    from kiosk.store.eventlog import LogOpenError, read_events
    from kiosk.store.reports import attendance

    path = event_log_path(config_path, db)
    try:
        attendees = attendance(read_events(path, 1_000_000, type="decision"), meeting)
    except LogOpenError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    for attendee in attendees:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "subject": attendee.subject,
                        "kind": attendee.kind,
                        "credential": attendee.credential,
                        "first_seen": attendee.first_seen.isoformat(),
                    }
                )
            )
        else:
            click.echo(
                f"{attendee.first_seen:%Y-%m-%d %H:%M:%S}  {attendee.subject:<24} "
                f"{attendee.kind or '-':<10} {attendee.credential or '-'}"
            )
    if not as_json:
        click.echo(f"{len(attendees)} attended {meeting}")


@cli.group()
def web() -> None:
    """The status page."""


@web.command("set-password")
@config_option
def web_set_password(config_path: Path) -> None:
    """Set the dashboard password (stored hashed, 0600, in the state directory)."""
    import os

    from kiosk.run.statuspage import PASSWORD_FILE
    from kiosk.web import hash_password

    config = load_config(config_path)
    password = click.prompt("New dashboard password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        click.echo("kiosk: use at least 8 characters", err=True)
        sys.exit(EX_USAGE)
    path = Path(config.kiosk.state_dir) / PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(hash_password(password) + "\n")
    click.echo(f"password saved (hashed) in {path}; it ends every open dashboard session")
    if config.web.password_hash:
        click.echo("kiosk: web.password_hash in the config is used instead of it", err=True)


@cli.command("relay-safe")
@config_option
@click.option(
    "--pin", type=click.IntRange(2, 27), help="Relay GPIO (BCM) if the config is unusable."
)
@click.option(
    "--active-high/--active-low",
    "active_high",
    default=None,
    help="Relay polarity if the config is unusable.",
)
def relay_safe(config_path: Path, pin: int | None, active_high: bool | None) -> None:
    """Drive the turnstile relay to its de-energised level (systemd ExecStopPost).

    Needs only the relay's pin and polarity: from the config when it can be read, else from
    --pin and --active-high/--active-low, else the defaults (GPIO17, active low). It releases
    the relay even when the config is missing or invalid, and says where the wiring came from.
    It needs the Raspberry Pi's GPIO: on a PC it exits 69 saying so.
    """
    from kiosk.config import GateSection, read_relay_wiring
    from kiosk.gate import GatePins, force_relay_safe

    try:
        relay, high = read_relay_wiring(config_path)
        source = f"from {config_path}"
        if pin not in (None, relay) or active_high not in (None, high):
            source += " (it overrides --pin/--active-high/--active-low)"
    except ConfigError as exc:
        defaults = GateSection()
        relay = defaults.relay_pin if pin is None else pin
        high = defaults.relay_active_high if active_high is None else active_high
        given = pin is not None or active_high is not None
        source = f"{'from the options' if given else 'defaults'}: the config is unusable ({exc})"
    try:
        with warnings.catch_warnings():  # gpiozero warns once per pin library it cannot load
            warnings.simplefilter("ignore", PinFactoryFallback)
            force_relay_safe(GatePins(relay, high, None, None, None, None, True, None, True))
    except GPIOZeroError as exc:
        click.echo(
            f"kiosk: GPIO unavailable ({exc}): relay-safe drives the relay pin of the kiosk's "
            "Raspberry Pi; a PC has no relay (a kiosk run with --simulate releases its "
            "simulated relay when it stops)",
            err=True,
        )
        sys.exit(EX_UNAVAILABLE)
    polarity = "active high" if high else "active low"
    click.echo(f"relay on GPIO{relay} de-energised ({polarity}); wiring {source}")


@cli.command()
@config_option
@click.option("--simulate", is_flag=True, help="Check the simulated hardware (on a PC).")
def doctor(config_path: Path, simulate: bool) -> None:
    """Check the kiosk's setup, one line per part with a fix; exit 1 if anything blocks."""
    from kiosk.cli.doctor import exit_code, format_report, run_checks

    checks = run_checks(config_path, simulate=simulate)
    click.echo(format_report(checks))
    sys.exit(exit_code(checks))
