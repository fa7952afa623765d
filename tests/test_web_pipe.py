"""The pipe between the kiosk and its page (kiosk.web.pipe) and the page's end of it
(kiosk.web.child.Mirror), over a real multiprocessing pipe."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from kiosk.operator.actions import Action, ActionError, ActionOutcome, Source, request
from kiosk.web.child import Mirror
from kiosk.web.pipe import (
    ActionDone,
    DecisionPush,
    MalformedMessageError,
    Message,
    MetricsPush,
    StatePush,
    WebTiming,
    decode,
    encode,
)
from tests.support import wait_until

LOCKDOWN = request(
    Action.LOCKDOWN, {"on": True}, operator="guard-anh", source=Source.WEB, request_id="web-1"
)


@pytest.mark.parametrize(
    "message",
    [
        StatePush({"gate": {"lockdown": False}, "fps": 14.8, "mqtt": None}),
        DecisionPush({"outcome": "grant", "message_vi": "Mời vào", "temperature_c": 36.6}),
        MetricsPush('kiosk_decisions_total{outcome="grant"} 3.0\n'),
        ActionDone("web-1", ActionOutcome("lockdown on", data={"lockdown": True})),
        ActionDone("web-2", ActionOutcome("relay not released", ActionError.NOT_ALLOWED)),
        LOCKDOWN,
        request(
            Action.SET_FEVER_THRESHOLD,
            {"celsius": 37.8},
            operator="guard-anh",
            source=Source.WEB,
            request_id="web-3",
        ),
    ],
)
def test_every_message_crosses_the_pipe_unchanged(message: Message) -> None:
    assert decode(encode(message)) == message


SECRET = "guard-private-words"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b'["state", {}]',
        b'{"state": {}}',
        b'{"type": "nope", "state": {}}',
        b'{"type": "state"}',
        b'{"type": "state", "state": {}, "extra": 1}',
        f'{{"type": "state", "state": "{SECRET}"}}'.encode(),
        b'{"type": "metrics", "text": 3}',
        b'{"type": "done", "request_id": "web-1", "message": "ok", "error": 5, "data": {}}',
        b'{"type": "action", "action": "self_destruct", "args": {}, "operator": "a",'
        b' "source": "web", "request_id": "web-1"}',
        b'{"type": "action", "action": "set_fever_threshold", "args": {"celsius": 45},'
        b' "operator": "a", "source": "web", "request_id": "web-1"}',
        b'{"type": "action", "action": "lockdown", "args": {"on": true}, "operator": "a",'
        b' "source": "sms", "request_id": "web-1"}',
    ],
)
def test_what_is_not_a_message_is_refused_without_its_content(raw: bytes) -> None:
    with pytest.raises(MalformedMessageError) as refused:
        decode(raw)
    assert SECRET not in str(refused.value) and "celsius" not in str(refused.value)


@contextlib.contextmanager
def mirrored(timing: WebTiming) -> Iterator[tuple[Mirror, Connection]]:
    """A mirror following its end of a real pipe; the test holds the kiosk's end."""
    kiosk, page = multiprocessing.Pipe()
    mirror = Mirror(page, timing, fever_threshold_c=37.5)
    follower = threading.Thread(target=mirror.follow, daemon=True)
    follower.start()
    try:
        yield mirror, kiosk
    finally:
        kiosk.close()
        follower.join(timeout=5)
    assert not follower.is_alive()


def test_the_page_skips_what_it_cannot_read_and_keeps_following(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with mirrored(WebTiming()) as (mirror, kiosk):
        kiosk.send_bytes(f'{{"type": "state", "state": "{SECRET}"}}'.encode())
        kiosk.send_bytes(encode(LOCKDOWN))  # a request is the page's to send, not to receive
        kiosk.send_bytes(encode(StatePush({"fever_threshold_c": 38.0})))
        wait_until(lambda: mirror.fever_threshold_c == 38.0)
    assert "skipped a message from the kiosk: not a message of the pipe" in caplog.text
    assert "skipped a ActionRequest from the kiosk" in caplog.text
    assert SECRET not in caplog.text


def test_the_page_reports_the_configured_threshold_until_the_kiosk_speaks() -> None:
    with mirrored(WebTiming()) as (mirror, _):
        assert mirror.fever_threshold_c == 37.5


def test_a_request_is_answered_by_its_own_outcome() -> None:
    with mirrored(WebTiming()) as (mirror, kiosk):
        answer: list[ActionOutcome] = []
        asking = threading.Thread(target=lambda: answer.append(mirror.perform(LOCKDOWN)))
        asking.start()
        assert kiosk.poll(5)
        assert decode(kiosk.recv_bytes()) == LOCKDOWN
        kiosk.send_bytes(encode(ActionDone("web-other", ActionOutcome("not this one"))))
        kiosk.send_bytes(encode(ActionDone("web-1", ActionOutcome("lockdown on"))))
        asking.join(timeout=5)
    assert answer == [ActionOutcome("lockdown on")]


def test_a_kiosk_that_does_not_answer_is_an_error_outcome(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with mirrored(WebTiming(action_timeout_s=0.2)) as (mirror, kiosk):
        outcome = mirror.perform(LOCKDOWN)
        assert outcome.error == ActionError.FAILED
        assert outcome.message == "the kiosk did not answer lockdown in 0.2 s"
        kiosk.send_bytes(encode(ActionDone("web-1", ActionOutcome("lockdown on"))))  # too late
        kiosk.send_bytes(encode(StatePush({"late": True})))
        wait_until(lambda: mirror.state() != {})
    assert "skipped the answer to a request no longer waited for" in caplog.text
