"""Operator commands: every refusal code, every command's effect, and the result payload."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from kiosk.credentials import parse_allowlist
from kiosk.mqtt.protocol import Command, command_signature, encode_command
from kiosk.operator.commands import (
    CLOCK_SKEW_MS,
    MAX_LIFETIME_MS,
    CommandError,
    CommandOutcome,
    CommandProcessor,
)
from kiosk.store.eventlog import LogWriteError

NOW = 1_700_000_000_000
KEY = b"site-command-key"
GOOD_LIST = "id,kind,valid_until\nA1,staff,\nB2,visitor,\n"
BAD_LIST = "id,kind,valid_until\nA1,staff,\nB2,alien,\n"


class RecordingKiosk:
    """Stands for the kiosk: records every call in order, with a log and allowlist that can fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.log_works = True
        self.allowlist_file = GOOD_LIST
        self.allowlist = parse_allowlist(GOOD_LIST)

    def record_command(self, command: Command) -> None:
        if not self.log_works:
            raise LogWriteError("events.db: append: disk full")
        self.calls.append(("record", command.id))

    def set_lockdown(self, on: bool) -> None:
        self.calls.append(("lockdown", on))

    def emergency_open(self, on: bool) -> None:
        self.calls.append(("emergency_open", on))

    def reload_allowlist(self) -> int:
        self.allowlist = parse_allowlist(self.allowlist_file, "allowlist.csv")
        self.calls.append(("reload_allowlist", len(self.allowlist)))
        return len(self.allowlist)

    def set_fever_threshold(self, celsius: float) -> None:
        self.calls.append(("fever_threshold", celsius))

    def resend_from(self, seq: int) -> None:
        self.calls.append(("resend", seq))


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
    kiosk: RecordingKiosk,
    *,
    key: bytes | None = None,
    allow_emergency_open: bool = True,
    seen_ids: tuple[str, ...] = (),
    remember: int = 10_000,
) -> CommandProcessor:
    return CommandProcessor(
        kiosk,
        kiosk_id="k1",
        key=key,
        allow_emergency_open=allow_emergency_open,
        now_ms=lambda: NOW,
        seen_ids=seen_ids,
        remember=remember,
    )


def send(proc: CommandProcessor, cmd: Command) -> CommandOutcome:
    return proc.handle(encode_command(cmd))


@pytest.fixture
def kiosk() -> RecordingKiosk:
    return RecordingKiosk()


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
    kiosk: RecordingKiosk, payload: bytes
) -> None:
    proc = processor(kiosk)
    outcome = proc.handle(payload)
    assert (outcome.error, outcome.command, kiosk.calls) == (CommandError.MALFORMED, None, [])
    result = json.loads(proc.encode(outcome))
    assert (result["id"], result["ok"], result["error"]) == (None, False, "malformed")


def test_unsigned_command_is_refused_when_a_key_is_configured(kiosk: RecordingKiosk) -> None:
    outcome = send(processor(kiosk, key=KEY), command())
    assert (outcome.error, kiosk.calls) == (CommandError.UNSIGNED, [])


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
def test_bad_signature_is_refused(kiosk: RecordingKiosk, cmd: Command) -> None:
    outcome = send(processor(kiosk, key=KEY), cmd)
    assert (outcome.error, kiosk.calls) == (CommandError.BAD_SIGNATURE, [])


def test_signed_command_is_carried_out(kiosk: RecordingKiosk) -> None:
    outcome = send(processor(kiosk, key=KEY), signed(command()))
    assert outcome.ok
    assert kiosk.calls == [("record", "cmd-1"), ("lockdown", True)]


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
    kiosk: RecordingKiosk, issued: int, expires: int, error: CommandError
) -> None:
    outcome = send(processor(kiosk), command(issued=issued, expires=expires))
    assert (outcome.error, kiosk.calls) == (error, [])


def test_clock_skew_and_full_lifetime_are_tolerated(kiosk: RecordingKiosk) -> None:
    proc = processor(kiosk)
    skewed = command(id="a", issued=NOW + CLOCK_SKEW_MS, expires=NOW + CLOCK_SKEW_MS + 1000)
    assert send(proc, skewed).ok
    assert send(proc, command(id="b", issued=NOW - 1, expires=NOW - 1 + MAX_LIFETIME_MS)).ok


def test_a_replayed_command_is_refused_and_not_repeated(kiosk: RecordingKiosk) -> None:
    proc = processor(kiosk)
    assert send(proc, command()).ok
    outcome = send(proc, command())
    assert outcome.error is CommandError.REPLAYED
    assert kiosk.calls == [("record", "cmd-1"), ("lockdown", True)]


def test_ids_logged_before_a_restart_are_still_refused(kiosk: RecordingKiosk) -> None:
    outcome = send(processor(kiosk, seen_ids=("cmd-0", "cmd-1")), command())
    assert (outcome.error, kiosk.calls) == (CommandError.REPLAYED, [])


def test_a_refused_command_does_not_use_up_its_id(kiosk: RecordingKiosk) -> None:
    proc = processor(kiosk)
    assert send(proc, command(args={"on": "yes"})).error is CommandError.BAD_ARGUMENTS
    assert send(proc, command(args={"on": True})).ok


def test_only_the_most_recent_ids_are_remembered(kiosk: RecordingKiosk) -> None:
    proc = processor(kiosk, seen_ids=("a", "b"), remember=2)
    assert send(proc, command(id="c")).ok  # forgets "a"
    assert send(proc, command(id="a")).ok
    assert send(proc, command(id="c")).error is CommandError.REPLAYED


def test_unknown_command_is_refused(kiosk: RecordingKiosk) -> None:
    outcome = send(processor(kiosk), command("open_sesame", {}))
    assert (outcome.error, kiosk.calls) == (CommandError.UNKNOWN_COMMAND, [])
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
    kiosk: RecordingKiosk, name: str, args: dict[str, Any]
) -> None:
    outcome = send(processor(kiosk), command(name, args))
    assert (outcome.error, kiosk.calls) == (CommandError.BAD_ARGUMENTS, [])
    assert name in outcome.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_json_number_is_refused_as_malformed(kiosk: RecordingKiosk, value: float) -> None:
    outcome = send(processor(kiosk), command("set_fever_threshold", {"celsius": value}))
    assert (outcome.error, kiosk.calls) == (CommandError.MALFORMED, [])
    assert "not a JSON number" in outcome.message


@pytest.mark.parametrize("on", [True, False])
def test_emergency_open_is_refused_unless_allowed(kiosk: RecordingKiosk, on: bool) -> None:
    outcome = send(
        processor(kiosk, allow_emergency_open=False), command("emergency_open", {"on": on})
    )
    assert (outcome.error, kiosk.calls) == (CommandError.NOT_ALLOWED, [])


def test_a_command_that_cannot_be_logged_is_not_carried_out(kiosk: RecordingKiosk) -> None:
    kiosk.log_works = False
    proc = processor(kiosk)
    outcome = send(proc, command())
    assert (outcome.error, kiosk.calls) == (CommandError.LOG_UNAVAILABLE, [])
    kiosk.log_works = True  # the operator may send the same command again once the disk is fixed
    assert send(proc, command()).ok
    assert kiosk.calls == [("record", "cmd-1"), ("lockdown", True)]


def test_a_bad_allowlist_file_fails_and_keeps_the_old_list(kiosk: RecordingKiosk) -> None:
    kiosk.allowlist_file = BAD_LIST
    proc = processor(kiosk)
    outcome = send(proc, command("reload_allowlist", {}))
    assert outcome.error is CommandError.FAILED
    assert "allowlist.csv:3" in outcome.message
    assert len(kiosk.allowlist) == 2 and kiosk.allowlist.get("A1") is not None
    assert kiosk.calls == [("record", "cmd-1")]  # logged, so the id is used up
    assert send(proc, command("reload_allowlist", {})).error is CommandError.REPLAYED


def test_an_action_that_raises_unexpectedly_is_answered_as_failed(kiosk: RecordingKiosk) -> None:
    def broken(on: bool) -> None:
        raise RuntimeError("GPIO busy")

    kiosk.set_lockdown = broken  # type: ignore[method-assign]
    proc = processor(kiosk)
    outcome = send(proc, command())
    assert (outcome.error, outcome.message) == (
        CommandError.FAILED,
        "lockdown failed: RuntimeError",
    )
    result = json.loads(proc.encode(outcome))
    assert (result["id"], result["ok"], result["error"]) == ("cmd-1", False, "failed")
    assert kiosk.calls == [("record", "cmd-1")]


def test_the_first_failed_check_wins(kiosk: RecordingKiosk) -> None:
    proc = processor(kiosk, key=KEY, allow_emergency_open=False, seen_ids=("cmd-1",))
    stale_unsigned = command("emergency_open", {"on": "x"}, expires=NOW)
    assert send(proc, stale_unsigned).error is CommandError.UNSIGNED
    assert send(proc, signed(stale_unsigned)).error is CommandError.EXPIRED
    fresh = signed(command("emergency_open", {"on": "x"}))
    assert send(proc, fresh).error is CommandError.REPLAYED
    fresh_id = signed(command("emergency_open", {"on": "x"}, id="cmd-2"))
    assert send(proc, fresh_id).error is CommandError.BAD_ARGUMENTS


# --- carried out --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "call", "data"),
    [
        ("lockdown", {"on": True}, ("lockdown", True), {"lockdown": True}),
        ("lockdown", {"on": False}, ("lockdown", False), {"lockdown": False}),
        ("emergency_open", {"on": True}, ("emergency_open", True), {"emergency_open": True}),
        ("emergency_open", {"on": False}, ("emergency_open", False), {"emergency_open": False}),
        ("reload_allowlist", {}, ("reload_allowlist", 2), {"badges": 2}),
        (
            "set_fever_threshold",
            {"celsius": 37.8},
            ("fever_threshold", 37.8),
            {"fever_threshold_c": 37.8},
        ),
        (
            "set_fever_threshold",
            {"celsius": 38},
            ("fever_threshold", 38.0),
            {"fever_threshold_c": 38.0},
        ),
        (
            "set_fever_threshold",
            {"celsius": 37.0},
            ("fever_threshold", 37.0),
            {"fever_threshold_c": 37.0},
        ),
        (
            "set_fever_threshold",
            {"celsius": 39.0},
            ("fever_threshold", 39.0),
            {"fever_threshold_c": 39.0},
        ),
        ("resend", {"from_seq": 1}, ("resend", 1), {"from_seq": 1}),
        ("resend", {"from_seq": 4711}, ("resend", 4711), {"from_seq": 4711}),
    ],
)
def test_each_command_is_logged_then_carried_out(
    kiosk: RecordingKiosk,
    name: str,
    args: dict[str, Any],
    call: tuple[str, Any],
    data: dict[str, Any],
) -> None:
    proc = processor(kiosk)
    outcome = send(proc, command(name, args))
    assert kiosk.calls == [("record", "cmd-1"), call]
    assert type(kiosk.calls[1][1]) is type(call[1])  # an int threshold arrives as a float
    assert json.loads(proc.encode(outcome)) == {
        "v": 1,
        "kiosk": "k1",
        "id": "cmd-1",
        "ok": True,
        "error": None,
        "message": outcome.message,
        "data": data,
    }
    assert outcome.message


def test_a_refusal_result_names_the_command_and_the_code(kiosk: RecordingKiosk) -> None:
    proc = processor(kiosk)
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


def test_ids_used_before_a_start_with_the_log_down_stay_refused_after_the_first_command(
    tmp_path: Path,
) -> None:
    """The ids could only be read at the first command; a replay of an older signed command
    must be refused at the second and every later one too."""
    from kiosk.run.runtime import CommandActions
    from tests.support import make_config, running

    with running(make_config(tmp_path)) as door:
        for old_id in ("old-1", "old-2"):
            door.kiosk.record_command(Command(old_id, "lockdown", {"on": False}, NOW, NOW))
        actions = CommandActions(door.kiosk, sync=None, seen_ids_loaded=False)  # type: ignore[arg-type]
        proc = CommandProcessor(
            actions, kiosk_id="k1", key=None, allow_emergency_open=True, now_ms=lambda: NOW
        )
        assert send(proc, command("lockdown", {"on": True}, id="new-1")).ok
        replayed = [
            send(proc, command("lockdown", {"on": False}, id=i)) for i in ("old-1", "old-2")
        ]
    assert [outcome.ok for outcome in replayed] == [False, False]
    assert door.kiosk.state()["gate"]["lockdown"] is True
