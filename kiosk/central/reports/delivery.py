"""Delivery of the daily list: each site's previous local day, made at ``[report] daily_at``
(the site's local time), written to ``[report] folder`` and mailed to ``[report] recipients``
over SMTP (``[report.smtp]``; STARTTLS by default; the password from
``KIOSK_CENTRAL_SMTP_PASSWORD``) with the file attached.

Every attempt is recorded in the ``deliveries`` table, one row per site and day, so a restart
neither skips a day (the days after the last recorded one, up to :data:`CATCH_UP_DAYS`, are
made when central comes back) nor repeats one (a day done is never made again by the job). A
failed attempt is logged, shows in ``kiosk central status`` (:func:`delivery_alerts`) and is
retried with a doubling delay until it succeeds or the next day becomes due; a day given up
can be delivered by hand (``kiosk central report deliver``). A mail sent whose record was
then lost (a crash between the two) is sent again: delivery is at least once. Logs carry
site ids, days and counts; never a name or an address.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from kiosk.central.jobs import Job
from kiosk.central.reports.daily import daily_list, known_sites
from kiosk.central.reports.export import MEDIA_TYPES, file_name, render, summary_text
from kiosk.central.reports.words import label
from kiosk.central.settings import SMTP_PASSWORD_ENV, CentralConfig
from kiosk.central.store import Store
from kiosk.store.durable import write_whole

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 7  # days missed while central was down that are still made; alerts last as long
_ADDRESS = re.compile(r"\S+@\S+")
_COLUMNS = "site, day, status, attempts, last_ms, next_ms, error, file"


@dataclass(frozen=True)
class Delivery:
    """The record of one site's list of one day: done, or failed (with when to try again)."""

    site: str
    day: date
    status: Literal["done", "failed"]
    attempts: int
    last_ms: int  # the last attempt
    next_ms: int | None  # failed: the next try, if the day is still due then
    error: str | None  # failed: what went wrong, without names or addresses
    file: str | None  # done: the file written to the folder, if any


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: ``first_s``, doubling, at most ``max_s``."""

    first_s: float = 60.0
    max_s: float = 3600.0

    def delay_ms(self, attempts: int) -> int:
        """The delay after the ``attempts``-th failure."""
        return int(min(self.first_s * 2 ** (attempts - 1), self.max_s) * 1000)


def mails(config: CentralConfig) -> bool:
    """Whether the list is mailed: recipients and an SMTP server are configured."""
    return bool(config.report.recipients and config.smtp.host)


def is_configured(config: CentralConfig) -> bool:
    """Whether there is anything to deliver to: a folder, or mail."""
    return bool(config.report.folder) or mails(config)


def due_day(local_now: datetime, daily_at: str) -> date:
    """The latest day whose list is due at ``local_now``: yesterday once today's
    ``daily_at`` has passed, else the day before."""
    hours, minutes = (int(part) for part in daily_at.split(":"))
    passed = (local_now.hour, local_now.minute) >= (hours, minutes)
    return local_now.date() - timedelta(days=1 if passed else 2)


def next_run_s(local_now: datetime, daily_at: str) -> float:
    """Epoch seconds of the next ``daily_at`` after ``local_now`` (in its zone)."""
    hours, minutes = (int(part) for part in daily_at.split(":"))
    at = local_now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    if at <= local_now:
        at = datetime.combine(local_now.date() + timedelta(days=1), at.timetz())
    return at.timestamp()


def describe(exc: BaseException) -> str:
    """What went wrong, for the log and the status: the SMTP reply code and text or the
    error, with any e-mail address blanked."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        text = f"the server refused all {len(exc.recipients)} recipients"
    elif isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        text = f"the server answered {exc.smtp_code} {reply}".strip()
    else:
        text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {_ADDRESS.sub('<address>', text)}"[:300]


def send_mail(
    config: CentralConfig,
    password: str | None,
    subject: str,
    body: str,
    attachment: Path | bytes,
    filename: str,
    media_type: str,
    timeout_s: float = 30.0,
) -> None:
    """Mail ``attachment`` to the recipients through ``[report.smtp]``; raises what fails."""
    smtp = config.smtp
    if smtp.username and not password:
        raise RuntimeError(f"{SMTP_PASSWORD_ENV} is not set but [report.smtp] username is")
    message = EmailMessage()
    message["From"] = smtp.sender or smtp.username or f"kiosk-central@{socket.getfqdn()}"
    message["To"] = ", ".join(config.report.recipients)
    message["Subject"] = subject
    message.set_content(body)
    data = attachment.read_bytes() if isinstance(attachment, Path) else attachment
    maintype, subtype = media_type.split("/")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
        client.ehlo()
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, password or "")
        client.send_message(message)


def deliver(
    store: Store, config: CentralConfig, site: str, day: date, password: str | None
) -> str | None:
    """Make the site's list of ``day``, write it to the folder and mail it, as configured;
    returns the file written (None: no folder). Raises what fails."""
    report = config.report
    daily = daily_list(store, config, day, site)
    data = render(daily, report.format, report.language)
    name = file_name(day.isoformat(), site, report.format)
    written = None
    if report.folder:
        folder = Path(report.folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = folder / name
        write_whole(written, data)
    if mails(config):
        site_name = config.site(site).name or site
        subject = f"{label('title', report.language)}: {site_name}, {day.isoformat()}"
        body = f"{summary_text(daily, report.language)}\n\n{label('attachment', report.language)}\n"
        send_mail(config, password, subject, body, data, name, MEDIA_TYPES[report.format])
    log.info(
        "daily list of site %s for %s delivered: %d rows%s",
        site,
        day,
        len(daily.rows),
        f", mailed to {len(report.recipients)} recipients" if mails(config) else "",
    )
    return str(written) if written else None


def attempt(
    store: Store,
    config: CentralConfig,
    site: str,
    day: date,
    *,
    password: str | None,
    now_ms: int,
    backoff: Backoff | None = None,
) -> Delivery:
    """Deliver the site's list of ``day`` once and record the outcome (a failure with the
    time of the next try)."""
    before = recorded(store, site, [day]).get(day)
    attempts = (before.attempts if before else 0) + 1
    try:
        written = deliver(store, config, site, day, password)
    except Exception as exc:  # whatever failed is recorded, shown and retried
        error = describe(exc)
        log.warning(
            "daily list of site %s for %s: attempt %d failed: %s", site, day, attempts, error
        )
        delay = (backoff or Backoff()).delay_ms(attempts)
        result = Delivery(site, day, "failed", attempts, now_ms, now_ms + delay, error, None)
    else:
        result = Delivery(site, day, "done", attempts, now_ms, None, None, written)
    record(store, result)
    return result


def record(store: Store, delivery: Delivery) -> None:
    """Store ``delivery``, replacing the row of its site and day."""
    p = store.dialect.param
    values = ", ".join(p for _ in _COLUMNS.split(", "))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[2:])
    sql = (
        f"INSERT INTO deliveries ({_COLUMNS}) VALUES ({values})"
        f" ON CONFLICT (site, day) DO UPDATE SET {updates}"
    )
    d = delivery
    row = (d.site, d.day.isoformat(), d.status, d.attempts, d.last_ms, d.next_ms, d.error, d.file)
    store.transaction(lambda cur: cur.execute(sql, row))


def _select(store: Store, where: str, params: Sequence[object]) -> list[Delivery]:
    def work(cur: Any) -> list[Delivery]:
        cur.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE {where} ORDER BY site, day", params)
        return [
            Delivery(site, date.fromisoformat(day), status, int(n), int(last), nxt, error, file)
            for site, day, status, n, last, nxt, error, file in cur.fetchall()
        ]

    found: list[Delivery] = store.transaction(work)
    return found


def recorded(store: Store, site: str, days: Sequence[date]) -> dict[date, Delivery]:
    """The records of the site's ``days`` that exist."""
    p = store.dialect.param
    if not days:
        return {}
    marks = ", ".join(p for _ in days)
    rows = _select(
        store, f"site = {p} AND day IN ({marks})", [site, *(d.isoformat() for d in days)]
    )
    return {row.day: row for row in rows}


def last_recorded(store: Store, site: str) -> date | None:
    """The latest day recorded for the site, done or failed."""
    p = store.dialect.param
    found = store.transaction(
        lambda cur: cur.execute(
            f"SELECT max(day) FROM deliveries WHERE site = {p}", (site,)
        ).fetchone()
    )
    return date.fromisoformat(found[0]) if found and found[0] else None


def delivery_alerts(store: Store, now_ms: int | None = None) -> list[Delivery]:
    """The failed deliveries of the last :data:`CATCH_UP_DAYS` days not delivered since, by
    site and day: what ``kiosk central status`` and the dashboard show as alerts."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    since = datetime.fromtimestamp(now_ms / 1000, UTC).date() - timedelta(days=CATCH_UP_DAYS)
    p = store.dialect.param
    return _select(store, f"status = 'failed' AND day >= {p}", [since.isoformat()])


def format_alerts(alerts: Sequence[Delivery]) -> str:
    """``daily lists failing: N`` and one indented line per failed day; empty when none."""
    if not alerts:
        return ""
    lines = [f"daily lists failing: {len(alerts)}"]
    for alert in alerts:
        last = datetime.fromtimestamp(alert.last_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"  {alert.site} {alert.day}: {alert.attempts} attempts, last {last}Z: {alert.error}"
        )
    return "\n".join(lines)


class DeliveryJob(Job):
    """Delivers each known site's due day in its own thread, at ``[report] daily_at`` local
    time, retrying failures (:class:`Backoff`) while the day is due."""

    def __init__(
        self,
        store: Store,
        config: CentralConfig,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__("central-delivery")
        self._store, self._config = store, config
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._password = os.environ.get(SMTP_PASSWORD_ENV)
        self.passes = 0  # how many times the job has looked for due work

    def run_pending(self, now_s: float) -> float:
        """Attempt every day that is due and not done; returns the seconds until the job
        should look again (the next ``daily_at`` or the next retry)."""
        wake = []
        for site in known_sites(self._store, self._config):
            zone = ZoneInfo(self._config.site(site).timezone)
            local = datetime.fromtimestamp(now_s, zone)
            wake.append(next_run_s(local, self._config.report.daily_at))
            for failed in self._site_pending(
                site, due_day(local, self._config.report.daily_at), now_s
            ):
                if failed.next_ms is not None:
                    wake.append(failed.next_ms / 1000)
        return min(wake, default=now_s + 3600) - now_s

    def _site_pending(self, site: str, due: date, now_s: float) -> list[Delivery]:
        """Attempt the site's due day (and the days missed after its last record); returns
        the due day's failure if it still fails."""
        last = last_recorded(self._store, site)
        window = [due - timedelta(days=back) for back in range(CATCH_UP_DAYS - 1, -1, -1)]
        records = recorded(self._store, site, window)
        now_ms = int(now_s * 1000)
        failing = []
        for day in window:
            row = records.get(day)
            missed = row is None and (day == due or (last is not None and day > last))
            retry = row is not None and row.status == "failed" and day == due
            if retry and row is not None and (row.next_ms or 0) > now_ms:
                failing.append(row)
                continue
            if missed or retry:
                result = attempt(
                    self._store,
                    self._config,
                    site,
                    day,
                    password=self._password,
                    now_ms=now_ms,
                    backoff=self._backoff,
                )
                if result.status == "failed" and day == due:
                    failing.append(result)
        return failing

    def _loop(self) -> None:
        while True:
            try:
                delay = self.run_pending(self._clock())
            except Exception:
                log.exception("daily list delivery failed; looking again later")
                delay = self._backoff.first_s
            self.passes += 1
            if self._stop.wait(min(max(delay, 0.01), 600.0)):
                return
