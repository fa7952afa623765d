"""The decision core: pure functions from facts to a decision. No I/O, no clocks.

Checks run in a fixed order and the first failure wins:

1. lockdown (the entrance is closed by an operator; exits stay free);
2. the credential (gate and checkin modes): too large, malformed, unknown, bad signature,
   not yet valid, expired, wrong site, revoked, an EU DCC's refusal (``dcc_*``); an unsigned
   national-app code or DCC is granted, referred to reception or denied as configured;
3. the entry rules (:mod:`kiosk.decide.rules`, entries only): health declaration (missing or
   too old → deny, saying how to declare; ``refer`` → refer to the guard), visitor hours and
   cap, anti-passback, occupancy;
4. the temperature (entries in gate mode with a thermometer, and screen mode):
   sensor fault → refer to the guard; nobody at the sensor → deny, try again;
   confirmed fever → deny and alarm;
5. otherwise grant (checkin mode: checked in once per pass, the relay never moves).

Each outcome carries stable reason codes (for events, counters and the MQTT
stream) and a message in Vietnamese and English for the person at the door.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiosk.credentials import CredentialCheck, CredentialStatus
from kiosk.decide.rules import RuleRefusal
from kiosk.decide.texts import pair
from kiosk.sensors.measurement import Measurement, TemperatureStatus


class Outcome(StrEnum):
    """What happens to the person."""

    GRANT = "grant"
    DENY = "deny"
    REFER = "refer"  # sent to the guard: the kiosk cannot decide safely


class Reason(StrEnum):
    """Stable, machine-readable reason codes. Never rename one: central servers count them."""

    OK = "ok"
    CHECKED_IN = "checked_in"
    LOCKDOWN = "lockdown"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    MALFORMED_CREDENTIAL = "malformed_credential"
    UNKNOWN_CREDENTIAL = "unknown_credential"
    EXPIRED_CREDENTIAL = "expired_credential"
    NOT_YET_VALID = "not_yet_valid"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_SITE = "wrong_site"
    REVOKED = "revoked"
    UNSIGNED_CREDENTIAL = "unsigned_credential"
    HEALTH_DECLARATION_MISSING = "health_declaration_missing"
    HEALTH_DECLARATION_STALE = "health_declaration_stale"
    HEALTH_DECLARATION_REFER = "health_declaration_refer"
    VISITOR_OUTSIDE_HOURS = "visitor_outside_hours"
    VISITOR_CAP_REACHED = "visitor_cap_reached"
    ALREADY_INSIDE = "already_inside"
    OCCUPANCY_FULL = "occupancy_full"
    ALREADY_CHECKED_IN = "already_checked_in"
    SENSOR_FAULT = "sensor_fault"
    NO_PERSON_AT_SENSOR = "no_person_at_sensor"
    FEVER = "fever"
    LOG_UNAVAILABLE = "log_unavailable"
    # EU DCC (HC1:) codes: docs/dcc.md, At the gate
    DCC_MALFORMED = "dcc_malformed"
    DCC_NOT_TRUSTED = "dcc_not_trusted"
    DCC_SIGNATURE = "dcc_signature"
    DCC_EXPIRED = "dcc_expired"
    DCC_NOT_YET_VALID = "dcc_not_yet_valid"
    DCC_SCHEMA = "dcc_schema"
    DCC_KEY_USAGE = "dcc_key_usage"
    DCC_RULE_TYPE = "dcc_rule_type"
    DCC_RULE_COUNTRY = "dcc_rule_country"
    DCC_RULE_INCOMPLETE = "dcc_rule_incomplete"
    DCC_RULE_TOO_RECENT = "dcc_rule_too_recent"
    DCC_RULE_TEST_POSITIVE = "dcc_rule_test_positive"
    DCC_RULE_TEST_TOO_OLD = "dcc_rule_test_too_old"
    DCC_RULE_RECOVERY_NOT_VALID = "dcc_rule_recovery_not_valid"
    DCC_REQUIRED = "dcc_required"  # with_pass: a valid pass, now the certificate
    DCC_PASS_REQUIRED = "dcc_pass_required"  # with_pass: a valid certificate, now the pass


@dataclass(frozen=True)
class DeclarationAdvice:
    """What a person without a recent enough health declaration is told: the rule's age and
    the short address of the site's declaration page (the poster's QR; may be empty)."""

    max_age_h: float = 24.0
    url: str = ""


_DECLARE_AGAIN = frozenset({Reason.HEALTH_DECLARATION_MISSING, Reason.HEALTH_DECLARATION_STALE})


def messages(
    reason: Reason, *, exiting: bool = False, advice: DeclarationAdvice | None = None
) -> tuple[str, str]:
    """The (Vietnamese, English) words for the person: a granted exit says goodbye; a missing
    or stale declaration says how to declare (``advice``, else 24 h and no address)."""
    if exiting and reason is Reason.OK:
        return pair("exit.ok")
    vi, en = pair(f"reason.{reason.value}")
    if reason not in _DECLARE_AGAIN:
        return vi, en
    advice = advice or DeclarationAdvice()
    hours, url = f"{advice.max_age_h:g}", f": {advice.url}" if advice.url else ""
    return vi.format(hours=hours, url=url), en.format(hours=hours, url=url)


#: What the display says for each reason, (Vietnamese, English), from :mod:`kiosk.decide.texts`
#: (a missing or stale declaration as :func:`messages` words it without advice).
MESSAGES: dict[Reason, tuple[str, str]] = {reason: messages(reason) for reason in Reason}


_CREDENTIAL_REASONS: dict[CredentialStatus, Reason] = {
    CredentialStatus.TOO_LARGE: Reason.PAYLOAD_TOO_LARGE,
    CredentialStatus.MALFORMED: Reason.MALFORMED_CREDENTIAL,
    CredentialStatus.UNKNOWN: Reason.UNKNOWN_CREDENTIAL,
    CredentialStatus.EXPIRED: Reason.EXPIRED_CREDENTIAL,
    CredentialStatus.NOT_YET_VALID: Reason.NOT_YET_VALID,
    CredentialStatus.UNSUPPORTED_ALGORITHM: Reason.UNSUPPORTED_ALGORITHM,
    CredentialStatus.UNKNOWN_KEY: Reason.UNKNOWN_KEY,
    CredentialStatus.BAD_SIGNATURE: Reason.BAD_SIGNATURE,
    CredentialStatus.WRONG_SITE: Reason.WRONG_SITE,
    CredentialStatus.REVOKED: Reason.REVOKED,
    # every DCC status is the reason of the same name
    **{status: Reason(status.value) for status in CredentialStatus if status.startswith("dcc_")},
}


@dataclass(frozen=True)
class Decision:
    """The result of one decision: outcome, reason code and the words for the person."""

    outcome: Outcome
    reason: Reason
    opens_gate: bool
    advice: DeclarationAdvice | None = None  # for a missing or stale health declaration

    @property
    def message_vi(self) -> str:
        """The Vietnamese message for the display."""
        return messages(self.reason, advice=self.advice)[0]

    @property
    def message_en(self) -> str:
        """The English message for the display."""
        return messages(self.reason, advice=self.advice)[1]


def decide(
    mode: str,
    credential: CredentialCheck | None,
    temperature: Measurement | None,
    *,
    lockdown: bool = False,
    rule: RuleRefusal | None = None,
    unsigned_policy: str = "refer",
    exiting: bool = False,
    checked_in_before: bool = False,
    advice: DeclarationAdvice | None = None,
) -> Decision:
    """Decide for one person.

    ``credential`` is None in screen mode; ``temperature`` is None when no
    measurement is required (checkin mode, exits, a kiosk without a thermometer) or
    when an earlier check already failed. ``rule`` is the entry rules' refusal, if any;
    ``unsigned_policy`` (grant, refer, deny) says what an unsigned national-app code gets;
    ``advice`` goes with a missing or stale health declaration (a ``refer`` one refers).
    A gate or checkin decision without a credential, or a screen decision without a
    temperature, is a programming error and raises ValueError.
    """
    if mode not in ("gate", "screen", "checkin"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode != "screen" and credential is None:
        raise ValueError(f"{mode} mode decides on a credential")
    if mode == "screen" and temperature is None:
        raise ValueError("screen mode decides on a temperature")
    if lockdown and mode != "checkin" and not exiting:
        return Decision(Outcome.DENY, Reason.LOCKDOWN, opens_gate=False)
    if credential is not None and credential.status is not CredentialStatus.VALID:
        return Decision(Outcome.DENY, _CREDENTIAL_REASONS[credential.status], opens_gate=False)
    if credential is not None and credential.unsigned and unsigned_policy != "grant":
        outcome = Outcome.REFER if unsigned_policy == "refer" else Outcome.DENY
        return Decision(outcome, Reason.UNSIGNED_CREDENTIAL, opens_gate=False)
    if mode == "checkin":
        reason = Reason.ALREADY_CHECKED_IN if checked_in_before else Reason.CHECKED_IN
        return Decision(Outcome.GRANT, reason, opens_gate=False)
    if rule is not None and not exiting:
        reason = Reason(rule.value)
        if reason is Reason.HEALTH_DECLARATION_REFER:
            return Decision(Outcome.REFER, reason, opens_gate=False)
        return Decision(
            Outcome.DENY,
            reason,
            opens_gate=False,
            advice=advice if reason in _DECLARE_AGAIN else None,
        )
    if temperature is not None:
        if temperature.status is TemperatureStatus.FAULT:
            return Decision(Outcome.REFER, Reason.SENSOR_FAULT, opens_gate=False)
        if temperature.status is TemperatureStatus.NO_PERSON:
            return Decision(Outcome.DENY, Reason.NO_PERSON_AT_SENSOR, opens_gate=False)
        if temperature.status is TemperatureStatus.FEVER:
            return Decision(Outcome.DENY, Reason.FEVER, opens_gate=False)
    return Decision(Outcome.GRANT, Reason.OK, opens_gate=True)


def when_log_unavailable() -> Decision:
    """The decision that replaces any other when it cannot be written durably."""
    return Decision(Outcome.REFER, Reason.LOG_UNAVAILABLE, opens_gate=False)
