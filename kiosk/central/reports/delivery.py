"""Delivery of the daily list: each site's previous local day, made at ``[report] daily_at``
(the site's local time), written to ``[report] folder`` and mailed to ``[report] recipients``
over SMTP (``[report.smtp]``; STARTTLS by default; the password from
``KIOSK_CENTRAL_SMTP_PASSWORD``) with the file attached.

Every attempt is recorded in the ``deliveries`` table, one row per site and day, so a restart
neither skips a day (the days after the last recorded one, up to :data:`CATCH_UP_DAYS`, are
made when central comes back) nor repeats one (a day done is never made again by the job). A
failed attempt is logged, shows in ``kiosk central status``
(:func:`~kiosk.central.reports.deliveries.delivery_alerts`) and is
retried with a doubling delay until it succeeds or the next day becomes due; a day given up
can be delivered by hand (``kiosk central report deliver``). A mail sent whose record was
then lost (a crash between the two) is sent again: delivery is at least once. Logs carry
site ids, days and counts; never a name or an address.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from kiosk.central.jobs import Job
from kiosk.central.reports.daily import daily_list, known_sites
from kiosk.central.reports.deliveries import Delivery, last_recorded, record, recorded
from kiosk.central.reports.export import MEDIA_TYPES, file_name, render, summary_text
from kiosk.central.reports.mail import describe, send_mail
from kiosk.central.reports.words import label
from kiosk.central.settings import SMTP_PASSWORD_ENV, CentralConfig
from kiosk.central.store import Store
from kiosk.store.durable import write_whole

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 7  # days missed while central was down that are still made


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


def delivery_job(store: Store, config: CentralConfig) -> DeliveryJob | None:
    """The job ``kiosk central run`` starts, or None when ``[report]`` names neither a folder
    nor recipients with an SMTP server (recipients without one are warned about)."""
    if config.report.recipients and not config.smtp.host:
        log.warning("[report] recipients are set but [report.smtp] host is not: no mail is sent")
    return DeliveryJob(store, config) if is_configured(config) else None
