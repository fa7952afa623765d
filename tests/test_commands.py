"""Operator commands: every refusal code, what reaches the operator, and the result payload."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from kiosk.mqtt.protocol import Command, command_signature, encode_command
from kiosk.operator.actions import ActionError, ActionOutcome, ActionRequest, Source
from kiosk.operator.commands import (
    CLOCK_SKEW_MS,
    MAX_LIFETIME_MS,
    CommandError,
    CommandOutcome,
    CommandProcessor,
)
from kiosk.store.eventlog import EventLogError

NOW = 1_700_000_000_000
KEY = b"site-command-key"


class RecordingOperator:
    """Stands for the kiosk's operator: keeps each request it is handed, gives ``answer``."""

    def __init__(self) -> None:
        self.requests: list[ActionRequest] = []
        self.answer = ActionOutcome("done", data={"done": True})

    def perform(self, request: ActionRequest) -> ActionOutcome:
        self.requests.append(request)
        return self.answer

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r.action.value, dict(r.args)) for r in self.requests]


def command(
    name: str = "lockdown",
    args: dict[str, Any] | None = None,
    *,
    id: str = "cmd-1",
    issued: int = NOW,
    expires: int = NOW + 30_000,
) -> Command:
    return Command(id, name, {"on": True} if args is None else args, issued, expires)


def signed(cmd: Command, key: bytes = KEY) -> Command:
    return dataclasses.replace(cmd, sig=command_signature(key, cmd))


def processor(
    operator: RecordingOperator,
    *,
    key: bytes | None = None,
    allow_emergency_open: bool = True,
    seen_ids: tuple[str, ...] = (),
    load_seen_ids: Callable[[], list[str]] | None = None,
    remember: int = 10_000,
) -> CommandProcessor:
    return CommandProcessor(
        operator,
        kiosk_id="k1",
        key=key,
        allow_emergency_open=allow_emergency_open,
        now_ms=lambda: NOW,
        seen_ids=seen_ids,
        load_seen_ids=load_seen_ids,
        remember=remember,
    )


def send(proc: CommandProcessor, cmd: Command) -> CommandOutcome:
    return proc.handle(encode_command(cmd))


@pytest.fixture
def operator() -> RecordingOperator:
    return RecordingOperator()


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"v":2,"id":"a","command":"lockdown","args":{"on":true},'
        b'"issued_at_ms":1,"expires_at_ms":2}',
        b'{"v":1,"id":"a","command":"lockdown","args":{"on":true},"issued_at_ms":1}',
        b'{"v":1,"id":"a","command":"lockdown","args":[],"issued_at_ms":1,"expires_at_ms":2}',
        b'{"v":1,"id":"a","command":"lockdown","args":{},"issued_at_ms":1,"expires_at_ms":2,'
        b'"extra":1}',
        encode_command(command(id="")),
        encode_command(command(id="x" * 129)),
    ],
    ids=["not-json", "not-object", "version", "missing", "args-type", "extra", "empty-id", "long"],
)
def test_malformed_messages_are_refused_without_acting(
    operator: RecordingOperator, payload: bytes
) -> None:
    proc = processor(operator)
    outcome = proc.handle(payload)
    assert (outcome.error, outcome.command, operator.calls) == (CommandError.MALFORMED, None, [])
    result = json.loads(proc.encode(outcome))
    assert (result["id"], result["ok"], result["error"]) == (None, False, "malformed")


def test_unsigned_command_is_refused_when_a_key_is_configured(operator: RecordingOperator) -> None:
    outcome = send(processor(operator, key=KEY), command())
    assert (outcome.error, operator.calls) == (CommandError.UNSIGNED, [])


@pytest.mark.parametrize(
    "cmd",
    [
        signed(command(), b"another-key"),
        dataclasses.replace(signed(command(args={"on": False})), args={"on": True}),
        dataclasses.replace(signed(command()), expires_at_ms=NOW + 60_000),
        dataclasses.replace(command(), sig="é" * 64),
    ],
    ids=["wrong-key", "tampered-args", "tampered-expiry", "non-ascii"],
)
def test_bad_signature_is_refused(operator: RecordingOperator, cmd: Command) -> None:
    outcome = send(processor(operator, key=KEY), cmd)
    assert (outcome.error, operator.calls) == (CommandError.BAD_SIGNATURE, [])


def test_signed_command_is_carried_out(operator: RecordingOperator) -> None:
    outcome = send(processor(operator, key=KEY), signed(command()))
    assert outcome.ok
    assert operator.calls == [("lockdown", {"on": True})]


@pytest.mark.parametrize(
    ("issued", "expires", "error"),
    [
        (NOW - 60_000, NOW, CommandError.EXPIRED),
        (NOW - 60_000, NOW - 1, CommandError.EXPIRED),
        (NOW + CLOCK_SKEW_MS + 1, NOW + CLOCK_SKEW_MS + 30_000, CommandError.NOT_YET_VALID),
        (NOW, NOW + MAX_LIFETIME_MS + 1, CommandError.TOO_LONG_LIVED),
    ],
    ids=["expires-now", "expired", "future", "too-long"],
)
def test_commands_outside_their_validity_window_are_refused(
    operator: RecordingOperator, issued: int, expires: int, error: CommandError
) -> None:
    outcome = send(processor(operator), command(issued=issued, expires=expires))
    assert (outcome.error, operator.calls) == (error, [])


def test_clock_skew_and_full_lifetime_are_tolerated(operator: RecordingOperator) -> None:
    proc = processor(operator)
    skewed = command(id="a", issued=NOW + CLOCK_SKEW_MS, expires=NOW + CLOCK_SKEW_MS + 1000)
    assert send(proc, skewed).ok
    assert send(proc, command(id="b", issued=NOW - 1, expires=NOW - 1 + MAX_LIFETIME_MS)).ok


def test_a_replayed_command_is_refused_and_not_repeated(operator: RecordingOperator) -> None:
    proc = processor(operator)
    assert send(proc, command()).ok
    outcome = send(proc, command())
    assert outcome.error is CommandError.REPLAYED
    assert operator.calls == [("lockdown", {"on": True})]


def test_ids_logged_before_a_restart_are_still_refused(operator: RecordingOperator) -> None:
    outcome = send(processor(operator, seen_ids=("cmd-0", "cmd-1")), command())
    assert (outcome.error, operator.calls) == (CommandError.REPLAYED, [])


def test_a_refused_command_does_not_use_up_its_id(operator: RecordingOperator) -> None:
    proc = processor(operator)
    assert send(proc, command(args={"on": "yes"})).error is CommandError.BAD_ARGUMENTS
    assert send(proc, command(args={"on": True})).ok


def test_only_the_most_recent_ids_are_remembered(operator: RecordingOperator) -> None:
    proc = processor(operator, seen_ids=("a", "b"), remember=2)
    assert send(proc, command(id="c")).ok  # forgets "a"
    assert send(proc, command(id="a")).ok
    assert send(proc, command(id="c")).error is CommandError.REPLAYED


def test_unknown_command_is_refused(operator: RecordingOperator) -> None:
    outcome = send(processor(operator), command("open_sesame", {}))
    assert (outcome.error, operator.calls) == (CommandError.UNKNOWN_COMMAND, [])
    assert "lockdown" in outcome.message  # names the known commands


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("lockdown", {}),
        ("lockdown", {"on": "yes"}),
        ("lockdown", {"on": 1}),
        ("lockdown", {"on": True, "reason": "drill"}),
        ("emergency_open", {"on": None}),
        ("reload_allowlist", {"force": True}),
        ("set_fever_threshold", {}),
        ("set_fever_threshold", {"celsius": 45.0}),
        ("set_fever_threshold", {"celsius": 36.9}),
        ("set_fever_threshold", {"celsius": True}),
        ("set_fever_threshold", {"celsius": "38"}),
        ("resend", {"from_seq": 0}),
        ("resend", {"from_seq": 1.5}),
        ("resend", {"from_seq": True}),
        ("resend", {"seq": 5}),
    ],
)
def test_bad_arguments_are_refused_without_logging(
    operator: RecordingOperator, name: str, args: dict[str, Any]
) -> None:
    outcome = send(processor(operator), command(name, args))
    assert (outcome.error, operator.calls) == (CommandError.BAD_ARGUMENTS, [])
    assert name in outcome.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_json_number_is_refused_as_malformed(
    operator: RecordingOperator, value: float
) -> None:
    outcome = send(processor(operator), command("set_fever_threshold", {"celsius": value}))
    assert (outcome.error, operator.calls) == (CommandError.MALFORMED, [])
    assert "not a JSON number" in outcome.message


@pytest.mark.parametrize(
    ("name", "args"),
    [("emergency_open", {"on": True}), ("emergency_open", {"on": False}), ("test_relay", {})],
)
def test_releasing_the_gate_is_refused_unless_allowed(
    operator: RecordingOperator, name: str, args: dict[str, Any]
) -> None:
    outcome = send(processor(operator, allow_emergency_open=False), command(name, args))
    assert (outcome.error, operator.calls) == (CommandError.NOT_ALLOWED, [])


def test_a_command_that_cannot_be_logged_leaves_its_id_free(operator: RecordingOperator) -> None:
    operator.answer = ActionOutcome("not carried out: disk full", ActionError.LOG_UNAVAILABLE)
    proc = processor(operator)
    outcome = send(proc, command())
    assert (outcome.error, outcome.message) == (
        CommandError.LOG_UNAVAILABLE,
        "not carried out: disk full",
    )
    operator.answer = ActionOutcome("lockdown on")
    assert send(proc, command()).ok  # the same command again once the disk is fixed


@pytest.mark.parametrize("error", [ActionError.FAILED, ActionError.NOT_ALLOWED])
def test_a_logged_refusal_is_answered_with_its_code_and_uses_up_the_id(
    operator: RecordingOperator, error: ActionError
) -> None:
    operator.answer = ActionOutcome("relay not released: lockdown is on", error)
    proc = processor(operator)
    outcome = send(proc, command("test_relay", {}))
    result = json.loads(proc.encode(outcome))
    assert (result["id"], result["ok"], result["error"]) == ("cmd-1", False, error.value)
    assert result["message"] == "relay not released: lockdown is on"
    assert send(proc, command("test_relay", {})).error is CommandError.REPLAYED


def test_the_first_failed_check_wins(operator: RecordingOperator) -> None:
    proc = processor(operator, key=KEY, allow_emergency_open=False, seen_ids=("cmd-1",))
    stale_unsigned = command("emergency_open", {"on": "x"}, expires=NOW)
    assert send(proc, stale_unsigned).error is CommandError.UNSIGNED
    assert send(proc, signed(stale_unsigned)).error is CommandError.EXPIRED
    fresh = signed(command("emergency_open", {"on": "x"}))
    assert send(proc, fresh).error is CommandError.REPLAYED
    fresh_id = signed(command("emergency_open", {"on": "x"}, id="cmd-2"))
    assert send(proc, fresh_id).error is CommandError.BAD_ARGUMENTS


# --- handed to the operator ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "checked"),
    [
        ("lockdown", {"on": True}, {"on": True}),
        ("emergency_open", {"on": False}, {"on": False}),
        ("reload_allowlist", {}, {}),
        ("set_fever_threshold", {"celsius": 37.8}, {"celsius": 37.8}),
        ("set_fever_threshold", {"celsius": 38}, {"celsius": 38.0}),
        ("set_fever_threshold", {"celsius": 37.0}, {"celsius": 37.0}),
        ("set_fever_threshold", {"celsius": 39.0}, {"celsius": 39.0}),
        ("resend", {"from_seq": 4711}, {"from_seq": 4711}),
        ("test_relay", {}, {}),
    ],
)
def test_each_command_is_handed_to_the_operator_once_checked(
    operator: RecordingOperator, name: str, args: dict[str, Any], checked: dict[str, Any]
) -> None:
    proc = processor(operator)
    outcome = send(proc, command(name, args))
    [handed] = operator.requests
    assert (handed.action, dict(handed.args), handed.request_id) == (name, checked, "cmd-1")
    assert [type(v) for v in handed.args.values()] == [type(v) for v in checked.values()]
    assert handed.source is Source.MQTT
    assert json.loads(proc.encode(outcome)) == {
        "v": 1,
        "kiosk": "k1",
        "id": "cmd-1",
        "ok": True,
        "error": None,
        "message": "done",
        "data": {"done": True},
    }


def test_a_refusal_result_names_the_command_and_the_code(operator: RecordingOperator) -> None:
    proc = processor(operator)
    outcome = send(proc, command("set_fever_threshold", {"celsius": 45.0}))
    result = json.loads(proc.encode(outcome))
    assert result == {
        "v": 1,
        "kiosk": "k1",
        "id": "cmd-1",
        "ok": False,
        "error": "bad_arguments",
        "message": outcome.message,
        "data": {},
    }
    assert "37" in result["message"] and "39" in result["message"]


def test_ids_used_before_a_start_with_the_log_down_are_read_at_a_later_command(
    operator: RecordingOperator,
) -> None:
    """The ids could not be read at start: a command waits for them (log_unavailable), and
    once they are read a replay of an older signed command is refused, then and later."""
    log_open = False

    def used_ids() -> list[str]:
        if not log_open:
            raise EventLogError("events.db: cannot open: disk full")
        return ["old-1", "old-2"]

    proc = processor(operator, load_seen_ids=used_ids)
    assert send(proc, command(id="old-1")).error is CommandError.LOG_UNAVAILABLE
    log_open = True
    assert send(proc, command(id="new-1")).ok
    replayed = [send(proc, command(id=i)).error for i in ("old-1", "old-2")]
    assert replayed == [CommandError.REPLAYED, CommandError.REPLAYED]
    assert [r.request_id for r in operator.requests] == ["new-1"]
