"""What the web app needs from the kiosk (read-only status; operator actions are an
:class:`kiosk.operator.actions.Operator`) and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from kiosk.decide.texts import LANGUAGES, Language


class StatusSource(Protocol):
    """Read-only view of a running kiosk; every method is called from web server threads."""

    def state(self) -> dict[str, Any]:
        """The retained state document (``kiosk.run.health.state_document``, maybe ``mqtt``)."""
        ...

    def events(
        self,
        *,
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        type: str | None,
        outcome: str | None,
    ) -> list[dict[str, Any]]:
        """Logged events newest first, each ``{"seq", "ts_ms", "type", "data"}``.

        ``before_seq``/``after_seq`` bound ``seq`` exclusively; ``outcome`` keeps only decisions
        with that outcome.
        """
        ...

    def hourly(self, day: date) -> list[dict[str, Any]]:
        """24 rows ``{"hour", "granted", "denied", "referred", "fevers"}`` for a local day."""
        ...

    def last_decision(self) -> dict[str, Any] | None:
        """The newest decision: ``{"seq", "ts_ms", "outcome", "reason", "message_vi",
        "message_en", "temperature_c"}``, or None before the first."""
        ...

    def fever_threshold_c(self) -> float:
        """The fever threshold in force."""
        ...


@dataclass(frozen=True)
class WebSettings:
    """How the web app is secured and what it allows.

    :param password_hash: the operator password as ``hash_password()`` made it; empty: the
        content of ``password_file``, or no password, which turns the dashboard off (it
        explains how to set one).
    :param secret_key: signs the session cookie; at least 16 bytes.
    :param display_public: serve ``/display`` to any address, not only this machine.
    :param api_token: a bearer token for ``/api/v1/*`` besides login; empty = none.
    :param login_attempts_per_minute: failed logins allowed per client address and minute.
    :param display_clear_s: how long the display shows a decision.
    :param secure_cookie: send the session cookie over HTTPS only (behind a TLS proxy).
    :param password_file: where ``kiosk web set-password`` saves the hash; read at every
        check, so a new password takes effect (and ends every session) at once.
    :param session_idle_s: an operator session not used for this long has ended.
    :param language: the dashboard's language until an operator switches (``vi`` or ``en``).
    :param mode: the kiosk's mode (gate, screen, checkin): what the idle display asks for.
    :param direction: entry, exit or toggle: an exit kiosk's idle display asks to scan out.
    :param meeting: checkin mode: the meeting's name, shown on the idle display.
    :param thermometer: whether people stand at a thermometer (the idle display says so).
    """

    password_hash: str
    secret_key: bytes
    display_public: bool = False
    api_token: str = ""
    login_attempts_per_minute: int = 5
    display_clear_s: float = 5.0
    secure_cookie: bool = False
    password_file: Path | None = None
    session_idle_s: float = 900.0
    language: Language = "vi"
    mode: str = "gate"
    direction: str = "entry"
    meeting: str = ""
    thermometer: bool = True

    def __post_init__(self) -> None:
        if len(self.secret_key) < 16:
            raise ValueError("web secret_key must be at least 16 bytes")
        if self.login_attempts_per_minute < 1:
            raise ValueError("web login_attempts_per_minute must be at least 1")
        if self.display_clear_s <= 0:
            raise ValueError("web display_clear_s must be positive")
        if self.session_idle_s <= 0:
            raise ValueError("web session_idle_s must be positive")
        if self.language not in LANGUAGES:
            raise ValueError(f"web language must be one of {', '.join(LANGUAGES)}")
