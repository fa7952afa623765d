"""The decision core: every combination of credential × temperature × mode."""

from __future__ import annotations

import itertools

import pytest

from kiosk.credentials import CredentialCheck, CredentialStatus
from kiosk.decide.decision import (
    MESSAGES,
    Decision,
    Outcome,
    Reason,
    decide,
    when_log_unavailable,
)
from kiosk.decide.rules import RuleRefusal
from kiosk.sensors.measurement import Measurement, TemperatureStatus

CREDENTIALS = {
    status: CredentialCheck(status, "S-1" if status != "malformed" else None)
    for status in CredentialStatus
}
CREDENTIAL_REASON = {
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
    CredentialStatus.DCC_MALFORMED: Reason.DCC_MALFORMED,
    CredentialStatus.DCC_NOT_TRUSTED: Reason.DCC_NOT_TRUSTED,
    CredentialStatus.DCC_SIGNATURE: Reason.DCC_SIGNATURE,
    CredentialStatus.DCC_EXPIRED: Reason.DCC_EXPIRED,
    CredentialStatus.DCC_NOT_YET_VALID: Reason.DCC_NOT_YET_VALID,
    CredentialStatus.DCC_SCHEMA: Reason.DCC_SCHEMA,
    CredentialStatus.DCC_KEY_USAGE: Reason.DCC_KEY_USAGE,
    CredentialStatus.DCC_RULE_TYPE: Reason.DCC_RULE_TYPE,
    CredentialStatus.DCC_RULE_COUNTRY: Reason.DCC_RULE_COUNTRY,
    CredentialStatus.DCC_RULE_INCOMPLETE: Reason.DCC_RULE_INCOMPLETE,
    CredentialStatus.DCC_RULE_TOO_RECENT: Reason.DCC_RULE_TOO_RECENT,
    CredentialStatus.DCC_RULE_TEST_POSITIVE: Reason.DCC_RULE_TEST_POSITIVE,
    CredentialStatus.DCC_RULE_TEST_TOO_OLD: Reason.DCC_RULE_TEST_TOO_OLD,
    CredentialStatus.DCC_RULE_RECOVERY_NOT_VALID: Reason.DCC_RULE_RECOVERY_NOT_VALID,
    CredentialStatus.DCC_REQUIRED: Reason.DCC_REQUIRED,
    CredentialStatus.DCC_PASS_REQUIRED: Reason.DCC_PASS_REQUIRED,
}
TEMPERATURE_DECISION = {
    TemperatureStatus.NORMAL: Decision(Outcome.GRANT, Reason.OK, opens_gate=True),
    TemperatureStatus.FEVER: Decision(Outcome.DENY, Reason.FEVER, opens_gate=False),
    TemperatureStatus.FAULT: Decision(Outcome.REFER, Reason.SENSOR_FAULT, opens_gate=False),
    TemperatureStatus.NO_PERSON: Decision(
        Outcome.DENY, Reason.NO_PERSON_AT_SENSOR, opens_gate=False
    ),
}


def measurement(status: TemperatureStatus) -> Measurement:
    celsius = {TemperatureStatus.NORMAL: 36.6, TemperatureStatus.FEVER: 38.2}.get(status)
    return Measurement(
        status=status,
        celsius=celsius,
        ambient_c=24.0,
        samples=5,
        stable=True,
        retested=status is TemperatureStatus.FEVER,
        detail="",
        duration_s=0.5,
    )


TEMPERATURES: list[Measurement | None] = [None, *(measurement(s) for s in TemperatureStatus)]


def expected(
    mode: str, credential: CredentialCheck | None, temperature: Measurement | None, lockdown: bool
) -> Decision:
    """The rules written out as a table, independently of decide()'s control flow."""
    if lockdown and mode != "checkin":
        return Decision(Outcome.DENY, Reason.LOCKDOWN, opens_gate=False)
    if credential is not None and credential.status in CREDENTIAL_REASON:
        return Decision(Outcome.DENY, CREDENTIAL_REASON[credential.status], opens_gate=False)
    if mode == "checkin":
        return Decision(Outcome.GRANT, Reason.CHECKED_IN, opens_gate=False)
    if temperature is None:
        return Decision(Outcome.GRANT, Reason.OK, opens_gate=True)
    return TEMPERATURE_DECISION[temperature.status]


CASES = [
    (mode, credential, temperature, lockdown)
    for mode, credential, temperature, lockdown in itertools.product(
        ("gate", "checkin"), CREDENTIALS.values(), TEMPERATURES, (False, True)
    )
] + [("screen", None, t, lockdown) for t in TEMPERATURES[1:] for lockdown in (False, True)]


@pytest.mark.parametrize(("mode", "credential", "temperature", "lockdown"), CASES)
def test_every_combination(
    mode: str, credential: CredentialCheck | None, temperature: Measurement | None, lockdown: bool
) -> None:
    assert decide(mode, credential, temperature, lockdown=lockdown) == expected(
        mode, credential, temperature, lockdown
    )


def test_checkin_never_opens_the_gate() -> None:
    assert not any(
        decide("checkin", c, t).opens_gate for c in CREDENTIALS.values() for t in TEMPERATURES
    )


def test_only_a_grant_opens_the_gate() -> None:
    for mode, credential, temperature, lockdown in CASES:
        decision = decide(mode, credential, temperature, lockdown=lockdown)
        if decision.opens_gate:
            assert decision.outcome is Outcome.GRANT and decision.reason is Reason.OK


@pytest.mark.parametrize(
    ("mode", "credential", "temperature"),
    [
        ("gate", None, None),
        ("checkin", None, None),
        ("screen", None, None),
        ("turbo", CREDENTIALS[CredentialStatus.VALID], None),
    ],
)
def test_impossible_inputs_are_programming_errors(
    mode: str, credential: CredentialCheck | None, temperature: Measurement | None
) -> None:
    with pytest.raises(ValueError):
        decide(mode, credential, temperature)


def test_log_failure_refers_to_the_guard() -> None:
    decision = when_log_unavailable()
    assert (decision.outcome, decision.reason, decision.opens_gate) == (
        Outcome.REFER,
        Reason.LOG_UNAVAILABLE,
        False,
    )
    assert decision.message_en == "System fault: please see the guard"


def test_every_reason_has_both_languages() -> None:
    assert set(MESSAGES) == set(Reason)
    for vietnamese, english in MESSAGES.values():
        assert vietnamese and english and vietnamese != english
    fever = decide(
        "gate", CREDENTIALS[CredentialStatus.VALID], measurement(TemperatureStatus.FEVER)
    )
    assert (fever.message_vi, fever.message_en) == (
        "Nhiệt độ cao: vui lòng gặp bảo vệ",
        "Fever: please see the guard",
    )


VALID = CredentialCheck(CredentialStatus.VALID, "S-1", "staff")
NORMAL = measurement(TemperatureStatus.NORMAL)


@pytest.mark.parametrize("rule", list(RuleRefusal))
def test_an_entry_rule_refusal_denies_with_its_own_reason(rule: RuleRefusal) -> None:
    """A declaration with a symptom or a contact sends the person to the guard; the others deny."""
    decision = decide("gate", VALID, NORMAL, rule=rule)
    referred = rule is RuleRefusal.HEALTH_DECLARATION_REFER
    assert (decision.outcome, decision.reason.value, decision.opens_gate) == (
        Outcome.REFER if referred else Outcome.DENY,
        rule.value,
        False,
    )


def test_rules_and_lockdown_never_trap_anyone_inside() -> None:
    for rule in RuleRefusal:
        assert decide("gate", VALID, None, rule=rule, lockdown=True, exiting=True).opens_gate


def test_a_bad_credential_is_refused_on_the_way_out_too() -> None:
    expired = CredentialCheck(CredentialStatus.EXPIRED, "S-1", "staff")
    assert decide("gate", expired, None, exiting=True).reason is Reason.EXPIRED_CREDENTIAL


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [("grant", Outcome.GRANT), ("refer", Outcome.REFER), ("deny", Outcome.DENY)],
)
def test_unsigned_national_codes_follow_the_configured_policy(
    policy: str, outcome: Outcome
) -> None:
    national = CredentialCheck(
        CredentialStatus.VALID, "n-1", "visitor", credential_type="national", unsigned=True
    )
    decision = decide("gate", national, NORMAL, unsigned_policy=policy)
    assert decision.outcome is outcome
    assert decision.reason is (Reason.OK if policy == "grant" else Reason.UNSIGNED_CREDENTIAL)


def test_checkin_records_attendance_once() -> None:
    assert decide("checkin", VALID, None).reason is Reason.CHECKED_IN
    again = decide("checkin", VALID, None, checked_in_before=True)
    assert (again.outcome, again.reason, again.opens_gate) == (
        Outcome.GRANT,
        Reason.ALREADY_CHECKED_IN,
        False,
    )
