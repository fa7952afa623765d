"""The daily list by mail: one message through ``[report.smtp]`` (STARTTLS by default, a login
when a username is set) to ``[report] recipients``, with the list attached; and what went
wrong, told without an e-mail address."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.message import EmailMessage

from kiosk.central.settings import SMTP_PASSWORD_ENV, CentralConfig

_ADDRESS = re.compile(r"\S+@\S+")


class RecipientsRefusedError(Exception):
    """The server took the message for some recipients and refused the others: not delivered."""

    def __init__(self, refused: int, recipients: int) -> None:
        super().__init__(f"the server refused {refused} of {recipients} recipients")


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
    attachment: bytes,
    filename: str,
    media_type: str,
    timeout_s: float = 30.0,
) -> None:
    """Mail ``attachment`` to the recipients through ``[report.smtp]``; raises what fails.

    :raises RecipientsRefusedError: when the server refused any recipient (the message is sent
        again to all of them on the next attempt).
    """
    smtp = config.smtp
    if smtp.username and not password:
        raise RuntimeError(f"{SMTP_PASSWORD_ENV} is not set but [report.smtp] username is")
    message = EmailMessage()
    message["From"] = smtp.sender or smtp.username or f"kiosk-central@{socket.getfqdn()}"
    message["To"] = ", ".join(config.report.recipients)
    message["Subject"] = subject
    message.set_content(body)
    maintype, subtype = media_type.split("/")
    message.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=filename)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
        client.ehlo()
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, password or "")
        refused = client.send_message(message)
    if refused:
        raise RecipientsRefusedError(len(refused), len(config.report.recipients))
