"""Serial 2D scanners on a real pseudo-terminal pair: pyserial opens the pty's slave end as the
scanner's port, the test writes what a scanner sends into the master end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from kiosk.cli.doctor_devices import check_scanner
from kiosk.config import ConfigError
from kiosk.decide.decision import Outcome
from kiosk.decide.privacy import Pseudonymizer
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.qr import ScanFilter
from kiosk.sensors.scanner import PayloadAssembler, ScannerError
from kiosk.sensors.scanner_serial import SerialScanner
from kiosk.sensors.simulation import Person
from kiosk.store.eventlog import read_events
from tests.support import SALT, make_config, running, wait_until
from tests.web_fakes import FakeStatus, login

RELAY, FEEDBACK = 17, 6


class Pty:
    """A pseudo-terminal: ``path`` is the port the scanner opens, :meth:`send` is the scanner."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)  # the pty lives while the master end is open

    def send(self, data: bytes) -> None:
        """Bytes from the scanner."""
        os.write(self.master, data)

    def unplug(self) -> None:
        """The scanner goes away: the master end closes and the port is gone."""
        os.close(self.master)


@contextlib.contextmanager
def pty() -> Iterator[Pty]:
    port = Pty()
    try:
        yield port
    finally:
        with contextlib.suppress(OSError):
            port.unplug()


@contextlib.contextmanager
def opened(reader: SerialScanner) -> Iterator[SerialScanner]:
    reader.open()
    try:
        yield reader
    finally:
        reader.close()


def scanner(
    path: str,
    *,
    terminator: bytes = b"\r",
    max_payload_bytes: int = 1024,
    char_timeout_s: float = 1.0,
    prefix: bytes = b"",
    suffix: bytes = b"",
) -> SerialScanner:
    assembler = PayloadAssembler(
        terminator,
        max_payload_bytes=max_payload_bytes,
        char_timeout_s=char_timeout_s,
        prefix=prefix,
        suffix=suffix,
    )
    return SerialScanner(path, 9600, assembler)


@pytest.mark.parametrize(
    ("terminator", "sent"),
    [
        (b"\r", b"S-0001\rS-0002\r"),
        (b"\n", b"S-0001\nS-0002\n"),
        (b"\r\n", b"S-0001\r\nS-0002\r\n"),
    ],
)
def test_codes_end_at_the_terminator(terminator: bytes, sent: bytes) -> None:
    with pty() as port, opened(scanner(port.path, terminator=terminator)) as reader:
        port.send(sent[:3])
        assert reader.read(0.1) is None  # not ended yet
        port.send(sent[3:])
        assert reader.read(5) == b"S-0001"
        assert reader.read(5) == b"S-0002"
        assert reader.detail.endswith("2 codes, 0 partial reads dropped")


def test_a_cr_scanner_sending_crlf_gives_the_same_codes() -> None:
    with pty() as port, opened(scanner(port.path, terminator=b"\r")) as reader:
        port.send(b"S-0001\r\nS-0002\r\n")
        assert [reader.read(5), reader.read(5)] == [b"S-0001", b"S-0002"]


def test_prefix_and_suffix_are_removed_when_present() -> None:
    with pty() as port, opened(scanner(port.path, prefix=b"]Q1", suffix=b"#")) as reader:
        port.send(b"]Q1S-0001#\rS-0002\r")
        assert [reader.read(5), reader.read(5)] == [b"S-0001", b"S-0002"]


def test_a_partial_line_is_dropped_not_merged_with_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pty() as port, opened(scanner(port.path, char_timeout_s=0.05)) as reader:
        port.send(b"S-00")
        assert reader.read(0.3) is None  # waits past the character timeout
        port.send(b"S-0002\r")
        assert reader.read(5) == b"S-0002"
        assert "1 partial reads dropped" in reader.detail
    assert "S-00" not in caplog.text  # counted, never logged with its content


def test_an_oversized_code_is_refused_like_the_cameras_and_the_next_one_reads() -> None:
    with pty() as port, opened(scanner(port.path, max_payload_bytes=16)) as reader:
        port.send(b"X" * 5000 + b"\rS-0001\r")
        oversized = reader.read(5)
        assert reader.read(5) == b"S-0001"
    assert oversized is not None
    (scan,) = ScanFilter(max_payload_bytes=16).feed([oversized], now=0.0)
    assert scan.too_large and scan.payload == b"X" * 16


def test_the_port_is_taken_exclusively() -> None:
    with pty() as port:
        first, second = scanner(port.path), scanner(port.path)
        first.open()
        try:
            with pytest.raises(ScannerError, match="cannot open"):
                second.open()
        finally:
            first.close()
        second.open()  # free again
        second.close()


def test_a_port_that_vanishes_is_lost_and_opens_again_when_back(tmp_path: Path) -> None:
    link = tmp_path / "usb-scanner"  # as /dev/serial/by-id/… points at the port of the moment
    with pty() as port:
        link.symlink_to(port.path)
        reader = scanner(str(link))
        reader.open()
        port.send(b"S-0001\r")
        assert reader.read(5) == b"S-0001"
        port.unplug()
        link.unlink()
        with pytest.raises(ScannerError, match="lost"):
            reader.read(5)
        reader.close()
        with pytest.raises(ScannerError, match="cannot open"):
            reader.open()
    with pty() as replugged:
        link.symlink_to(replugged.path)
        reader.open()
        try:
            replugged.send(b"S-0002\r")
            assert reader.read(5) == b"S-0002"
        finally:
            reader.close()


def test_a_serial_scanner_needs_its_device(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scanner\.device"):
        make_config(tmp_path, scanner={"type": "serial"})


def test_kiosk_grants_a_badge_from_a_serial_scanner_logged_before_the_relay_moves(
    tmp_path: Path,
) -> None:
    """End to end: a code from the scanner, the thermometer, the log, then the relay."""
    factory = MockFactory()
    factory.pin(RELAY, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK))
    feedback = DigitalInputDevice(FEEDBACK, pull_up=None, active_state=False, pin_factory=factory)
    with pty() as port:
        config = make_config(tmp_path, scanner={"type": "serial", "device": port.path})
        seen_at_energise: list[list[dict[str, object]]] = []
        feedback.when_activated = lambda: seen_at_energise.append(
            [event.data for event in read_events(config.log_path, type="decision")]
        )
        with running(config, pin_factory=factory) as kiosk:
            wait_until(lambda: "baud" in kiosk.kiosk.state()["scanner"]["detail"])  # opened
            kiosk.scene.step_up(Person("staff", None, sim.person(36.6), "grant"))  # no code shown
            port.send(b"S-0001\r")
            record = kiosk.next_decision()
            wait_until(lambda: not kiosk.kiosk.gate.state().relay_energised)
    feedback.close()
    assert record.decision.outcome is Outcome.GRANT and record.event is not None
    assert seen_at_energise == [[record.event.data]]


def test_the_scanner_part_fails_when_unplugged_and_recovers_when_back(tmp_path: Path) -> None:
    link = tmp_path / "usb-scanner"
    with pty() as port:
        link.symlink_to(port.path)
        config = make_config(
            tmp_path,
            scanner={"type": "serial", "device": str(link)},
            thermometer={"enabled": False},
        )
        with running(config) as kiosk:
            wait_until(lambda: "baud" in kiosk.kiosk.state()["scanner"]["detail"])  # opened
            port.unplug()
            link.unlink()
            wait_until(lambda: not kiosk.kiosk.state()["scanner"]["ok"])
            assert "scanner" in kiosk.kiosk.health().degraded
            with pty() as replugged:
                link.symlink_to(replugged.path)
                wait_until(lambda: kiosk.kiosk.state()["scanner"]["ok"])
                replugged.send(b"S-0002\r")
                record = kiosk.next_decision()
                health = [e.data for e in read_events(config.log_path, 100, type="health")]
    assert record.decision.outcome is Outcome.GRANT
    assert [h["ok"] for h in health if h["part"] == "scanner"] == [False, True]


def test_the_doctor_opens_the_port_and_names_the_fix_when_it_cannot(tmp_path: Path) -> None:
    assert check_scanner(make_config(tmp_path)).detail == "none configured (scanner.type = none)"
    with pty() as port:
        found = check_scanner(
            make_config(tmp_path, scanner={"type": "serial", "device": port.path})
        )
        with opened(scanner(port.path)):
            taken = check_scanner(
                make_config(tmp_path, scanner={"type": "serial", "device": port.path})
            )
    assert (found.status, found.detail) == ("ok", f"serial:{port.path} at 9600 baud: port opened")
    assert taken.status == "fail" and "dialout" in taken.fix and "systemctl stop kiosk" in taken.fix


def test_the_dashboard_shows_the_scanner_where_one_is_configured(
    make_app: Any, status: FakeStatus
) -> None:
    client = make_app().test_client()
    assert login(client).status_code == 302
    assert "Code scanner" not in client.get("/").text  # none configured: no card
    status.document["scanner"] = {"ok": False, "detail": "serial:/dev/ttyACM0: lost: I/O error"}
    page = client.get("/").text
    assert "Code scanner" in page and 'data-ok="scanner.ok"' in page
    assert '<span data-k="scanner.detail">serial:/dev/ttyACM0: lost: I/O error</span>' in page


def test_a_code_the_camera_and_the_scanner_both_read_is_one_decision(tmp_path: Path) -> None:
    with pty() as port:
        config = make_config(
            tmp_path,
            scanner={"type": "serial", "device": port.path},
            thermometer={"enabled": False},
        )
        with running(config) as kiosk:
            wait_until(lambda: "baud" in kiosk.kiosk.state()["scanner"]["detail"])  # opened
            kiosk.scene.step_up(Person("staff", b"S-0001", sim.nobody(), "grant"))
            kiosk.next_decision()  # the camera's
            port.send(b"S-0001\r")  # the same phone under the scanner: the same scan
            wait_until(lambda: "1 codes" in kiosk.kiosk.state()["scanner"]["detail"])
            port.send(b"S-0002\r")
            second = kiosk.next_decision()
    assert second.event is not None
    assert second.event.data["subject"] == Pseudonymizer(SALT.encode()).subject("S-0002")
