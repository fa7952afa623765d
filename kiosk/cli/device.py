"""``kiosk run``, ``demo``, ``decode``, ``doctor`` and ``relay-safe``: the commands that drive
the kiosk's devices (or their simulation). Each imports what it drives only when it runs."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import click
from gpiozero import GPIOZeroError, PinFactoryFallback

from kiosk.cli.common import EX_UNAVAILABLE, config_option
from kiosk.config import ConfigError, load_config, parse_config


@click.command()
@config_option
@click.option("--simulate", is_flag=True, help="Use simulated camera, thermometer and GPIO.")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(config_path: Path, simulate: bool, verbose: bool) -> None:
    """Run the kiosk until SIGTERM or Ctrl-C (relay released, log closed, exit 0; a stop that
    hangs is cut short: relay released, exit 70)."""
    from kiosk.cli.preflight import check_setup, policy_warnings
    from kiosk.run.logs import setup_logging
    from kiosk.run.runtime import open_kiosk
    from kiosk.run.simcontrol import serve_simulation
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
        with open_kiosk(config, simulate=simulate) as kiosk, contextlib.ExitStack() as control:
            if simulate:  # `kiosk sim …` drives it through a socket only its user may use
                control.enter_context(serve_simulation(kiosk))
            kiosk.run(stop, stop_deadline_s=STOP_DEADLINE_S)
    except CameraError as exc:
        click.echo(f"kiosk: camera unavailable: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)


@click.command()
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


@click.command()
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


@click.command("relay-safe")
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


@click.command()
@config_option
@click.option("--simulate", is_flag=True, help="Check the simulated hardware (on a PC).")
def doctor(config_path: Path, simulate: bool) -> None:
    """Check the kiosk's setup, one line per part with a fix; exit 1 if anything blocks."""
    from kiosk.cli.doctor import exit_code, format_report, run_checks

    checks = run_checks(config_path, simulate=simulate)
    click.echo(format_report(checks))
    sys.exit(exit_code(checks))
