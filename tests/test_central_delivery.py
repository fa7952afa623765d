"""Delivery of the daily list: to a real local SMTP server (aiosmtpd, STARTTLS with a
certificate made here, a login), the attachment read back with openpyxl; a refused mail shown
by ``kiosk central status`` and retried with backoff; restarts that neither repeat nor skip a
day; and ``kiosk central run`` delivering in its own thread. SQLite and PostgreSQL."""

from __future__ import annotations

import email
import io
import logging
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from openpyxl import load_workbook

from kiosk.central import Store, open_store, print_status
from kiosk.central.cli import PASSWORD_ENV
from kiosk.central.reports.deliveries import Delivery, delivery_alerts, record, recorded
from kiosk.central.reports.delivery import Backoff, DeliveryJob, attempt
from kiosk.central.settings import SMTP_PASSWORD_ENV, CentralConfig, load_central_config
from kiosk.cli.main import cli
from tests.broker import HOST, Broker, free_port, make_pki
from tests.central_reports_support import ZONE, a_day, local_ms, name_people
from tests.central_support import SITE
from tests.support import wait_until

pytest_plugins = ("tests.central_fixtures",)

DAY = date(2026, 12, 6)
USER, PASSWORD = "kiosk-central", "mail-secret"
RECIPIENTS = ["office@example.org", "director@example.org"]


class Mailbox:
    """What the SMTP server received; it answers 451 to the next ``refuse`` messages."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.over_tls: list[bool] = []
        self.logins: list[str] = []
        self.attempts = 0
        self.refuse = 0
        self.unknown: set[str] = set()

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address in self.unknown:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.attempts += 1
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 Try again later"
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        self.over_tls.append(session.ssl is not None)
        return "250 OK"

    def authenticate(self, _s: Any, _session: Any, _e: Any, _m: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok)


@pytest.fixture
def mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a free port that requires STARTTLS and a login; its CA is the one
    this process trusts (SSL_CERT_FILE), as a site's own mail server's would be."""
    certs = tmp_path / "certs"
    certs.mkdir()
    make_pki(certs)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.crt", certs / "server.key")
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))
    monkeypatch.setenv(SMTP_PASSWORD_ENV, PASSWORD)
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname=HOST,
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=box.authenticate,
    )
    controller.start()
    yield box, port
    controller.stop()


def write_config(tmp_path: Path, port: int, *, daily_at: str = "07:00", mail: bool = True) -> Path:
    folder = tmp_path / "lists"
    smtp = (
        f'recipients = {RECIPIENTS!r}\n[report.smtp]\nhost = "{HOST}"\nport = {port}\n'
        f'username = "{USER}"\nsender = "kiosk@example.org"\n'
        if mail
        else ""
    )
    path = tmp_path / "central.toml"
    path.write_text(
        f'[sites.{SITE}]\nname = "Trụ sở"\ntimezone = "Asia/Ho_Chi_Minh"\n'
        f'[report]\nfolder = "{folder}"\ndaily_at = "{daily_at}"\nlanguage = "en"\n{smtp}'.replace(
            "'", '"'
        ),
        encoding="utf-8",
    )
    return path


def kiosk_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the kiosk's own loggers wrote (not the test SMTP server's)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kiosk"))


def attachment(message: EmailMessage) -> tuple[str, bytes]:
    (part,) = list(message.iter_attachments())
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return str(part.get_filename()), payload


def names_in(xlsx: bytes) -> list[str]:
    sheet = load_workbook(io.BytesIO(xlsx))["Entries"]
    return [str(row[4]) for row in sheet.iter_rows(min_row=2, values_only=True)]


def test_deliver_by_hand_mails_the_list_over_starttls_and_writes_it_to_the_folder(
    tmp_path: Path,
    mailbox: tuple[Mailbox, int],
    db_url: str,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    box, port = mailbox
    a_day(store, SITE, DAY)
    name_people(store, SITE)
    config = write_config(tmp_path, port)
    args = ["central", "--config", str(config), "report", "deliver", "--date", "2026-12-06"]
    result = CliRunner().invoke(cli, [*args, "--db", db_url])
    assert result.exit_code == 0, result.output
    assert (box.logins, box.over_tls, box.recipients) == ([USER], [True], [RECIPIENTS])
    (message,) = box.messages
    assert message["Subject"] == "Daily entry list: Trụ sở, 2026-12-06"
    assert "Entries granted: 4" in message.get_body().get_content()  # type: ignore[union-attr]
    name, data = attachment(message)
    assert name == f"entries-{SITE}-2026-12-06.xlsx"
    assert names_in(data)[:3] == ["Nguyễn Thị Hằng", "Trần Văn Đức", "Trần Văn Đức"]
    assert len(names_in(data)) == 8
    assert (tmp_path / "lists" / name).read_bytes() == data
    again = CliRunner().invoke(cli, [*args, "--db", db_url])
    assert again.exit_code == 0 and "already delivered" in again.output
    assert len(box.messages) == 1
    forced = CliRunner().invoke(cli, [*args, "--again", "--db", db_url])
    assert forced.exit_code == 0 and len(box.messages) == 2
    logged = kiosk_log(caplog)
    assert "delivered: 8 rows, mailed to 2 recipients" in logged
    assert "Hằng" not in logged and "example.org" not in logged


def test_a_refused_mail_is_shown_and_retried_with_backoff_until_the_next_day(
    tmp_path: Path,
    mailbox: tuple[Mailbox, int],
    store: Store,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    box, port = mailbox
    box.refuse = 1
    a_day(store, SITE, DAY)
    name_people(store, SITE)
    job = DeliveryJob(store, load_central_config(write_config(tmp_path, port)), backoff=Backoff(60))
    now = local_ms(DAY + timedelta(days=1), 8, 0) / 1000  # after 07:00: DAY is due
    assert job.run_pending(now) == 60  # look again when the retry is due
    (alert,) = delivery_alerts(store, int(now * 1000))
    assert (alert.site, alert.day, alert.attempts) == (SITE, DAY, 1)
    assert alert.error == "SMTPDataError: the server answered 451 4.3.0 Try again later"
    out = io.StringIO()
    print_status(db_url, out)
    assert f"daily lists failing: 1\n  {SITE} 2026-12-06: 1 attempts" in out.getvalue()
    assert "attempt 1 failed" in kiosk_log(caplog) and "example.org" not in kiosk_log(caplog)

    assert job.run_pending(now + 30) == pytest.approx(30)  # not yet
    assert box.attempts == 1 and not box.messages
    job.run_pending(now + 61)
    assert len(box.messages) == 1 and delivery_alerts(store, int(now * 1000)) == []
    assert recorded(store, SITE, [DAY])[DAY].attempts == 2
    assert job.run_pending(now + 3600) == 22 * 3600  # done: the next look is at 07:00
    assert len(box.messages) == 1
    box.refuse = 1
    job.run_pending(now + 86_400)  # the next day: its own list; it fails once
    assert [a.day for a in delivery_alerts(store, int((now + 86_400) * 1000))] == [
        DAY + timedelta(days=1)
    ]


def test_a_mail_some_recipients_refused_is_a_failure_retried_that_names_none(
    tmp_path: Path, mailbox: tuple[Mailbox, int], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    box.unknown = {RECIPIENTS[1]}
    a_day(store, SITE, DAY)
    job = DeliveryJob(store, load_central_config(write_config(tmp_path, port)), backoff=Backoff(60))
    now = local_ms(DAY + timedelta(days=1), 8, 0) / 1000
    assert job.run_pending(now) == 60
    assert box.recipients == [RECIPIENTS[:1]]
    (alert,) = delivery_alerts(store, int(now * 1000))
    assert alert.error == "RecipientsRefusedError: the server refused 1 of 2 recipients"
    assert "example.org" not in kiosk_log(caplog)
    box.unknown = set()
    job.run_pending(now + 61)
    assert box.recipients[-1] == RECIPIENTS and delivery_alerts(store, int(now * 1000)) == []


def test_a_day_given_up_is_not_retried_once_the_next_day_is_due(
    tmp_path: Path, store: Store
) -> None:
    config = load_central_config(write_config(tmp_path, 1, mail=False))
    failed = Delivery(SITE, DAY, "failed", 3, 0, 0, "SMTPDataError: 451", None)
    record(store, failed)
    job = DeliveryJob(store, config)
    job.run_pending(local_ms(DAY + timedelta(days=2), 8, 0) / 1000)  # DAY + 1 is due
    assert recorded(store, SITE, [DAY])[DAY] == failed
    assert (
        recorded(store, SITE, [DAY + timedelta(days=1)])[DAY + timedelta(days=1)].status == "done"
    )


def test_a_restart_makes_the_days_missed_while_down_and_not_the_ones_done(
    tmp_path: Path, store: Store
) -> None:
    config = load_central_config(write_config(tmp_path, 1, mail=False))
    config = CentralConfig(
        **{**config.__dict__, "sites": {**config.sites, "s2": config.sites[SITE]}}
    )
    record(store, Delivery(SITE, DAY - timedelta(days=3), "done", 1, 0, None, None, None))
    DeliveryJob(store, config).run_pending(local_ms(DAY + timedelta(days=1), 8, 0) / 1000)
    made = sorted(path.name for path in (tmp_path / "lists").iterdir())
    assert made == [
        f"entries-{SITE}-2026-12-04.xlsx",
        f"entries-{SITE}-2026-12-05.xlsx",
        f"entries-{SITE}-2026-12-06.xlsx",
        "entries-s2-2026-12-06.xlsx",  # a site never delivered: only the day due
    ]


def test_a_missing_smtp_password_is_a_failure_that_names_the_variable(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SMTP_PASSWORD_ENV, raising=False)
    config = load_central_config(write_config(tmp_path, 1))
    result = attempt(store, config, SITE, DAY, password=None, now_ms=0)
    assert result.status == "failed"
    assert (
        result.error
        == f"RuntimeError: {SMTP_PASSWORD_ENV} is not set but [report.smtp] username is"
    )


def test_the_running_job_retries_and_a_restart_does_not_send_twice(
    tmp_path: Path, mailbox: tuple[Mailbox, int], store: Store
) -> None:
    box, port = mailbox
    box.refuse = 1
    yesterday = datetime.now(ZONE).date() - timedelta(days=1)
    a_day(store, SITE, yesterday)
    config = load_central_config(write_config(tmp_path, port, daily_at="00:00"))
    job = DeliveryJob(store, config, backoff=Backoff(0.05))
    job.start()
    try:
        wait_until(lambda: len(box.messages) == 1)
    finally:
        job.stop()
    restarted = DeliveryJob(store, config, backoff=Backoff(0.05))
    restarted.start()
    try:
        wait_until(lambda: restarted.passes >= 1)
    finally:
        restarted.stop()
    assert (box.attempts, len(box.messages)) == (2, 1)
    assert len(names_in(attachment(box.messages[0])[1])) == 8


def test_central_run_delivers_the_list_in_its_own_thread(broker: Broker, tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    store = open_store(str(db))
    yesterday = datetime.now(ZONE).date() - timedelta(days=1)
    a_day(store, SITE, yesterday)
    config = write_config(tmp_path, 1, daily_at="00:00", mail=False)
    with config.open("a", encoding="utf-8") as extra:
        extra.write(f'[store]\ndb = "{db}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n')
    env = {
        **os.environ,
        PASSWORD_ENV: broker.password("central"),
        "KIOSK_CENTRAL_CONFIG": str(config),
    }
    command = [sys.executable, "-c", "from kiosk.cli.main import main; main()", "central", "run"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (tmp_path / "lists").exists() and any((tmp_path / "lists").iterdir()))
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    (made,) = (tmp_path / "lists").iterdir()
    assert len(names_in(made.read_bytes())) == 8
    assert recorded(store, SITE, [yesterday])[yesterday].status == "done"
    store.close()
