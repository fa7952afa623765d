"""The pipe between the kiosk and its status page's process: what crosses it, and how often.

Each message is a frozen dataclass, sent as one JSON object (``encode``) and read back with
every field checked (``decode``). JSON rather than pickle: the page's process serves the
network, and the kiosk must not unpickle whatever that process sends. The kiosk sends
:class:`StatePush`, :class:`DecisionPush`, :class:`MetricsPush` and :class:`ActionDone`; the
page sends an :class:`~kiosk.operator.actions.ActionRequest`, checked again as it is decoded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk.operator.actions import ActionOutcome, ActionRequest, Source, request

MAX_REQUEST_BYTES = 64 * 1024  # an action request is a few hundred bytes


@dataclass(frozen=True)
class WebTiming:
    """How often the kiosk feeds and watches its web process, and how long each side waits.

    :param state_every_s: the kiosk pushes its state document this often.
    :param metrics_every_s: the kiosk pushes its metrics this often.
    :param action_timeout_s: the page waits this long for the kiosk to carry out an action.
    :param probe_every_s: the kiosk asks the page's ``/healthz`` this often.
    :param probe_timeout_s: one probe waits this long for an answer.
    :param probe_failures: misses in a row, after a first answer, that kill the page.
    :param start_timeout_s: a page that has not answered once within this of its start
        is killed (a Pi 3 under load takes seconds to import Flask: never kill a slow start).
    :param restart_after_s: a page that has exited is started again after this.
    :param exit_grace_s: once the kiosk stops feeding it, the page has this long to exit
        before it is killed (it holds nothing to save; the kiosk's stop is bounded).
    """

    state_every_s: float = 1.0
    metrics_every_s: float = 2.0
    action_timeout_s: float = 10.0
    probe_every_s: float = 30.0
    probe_timeout_s: float = 5.0
    probe_failures: int = 3
    start_timeout_s: float = 120.0
    restart_after_s: float = 5.0
    exit_grace_s: float = 1.0

    @property
    def state_stale_s(self) -> float:
        """The page reports the kiosk as gone quiet after this without a state document."""
        return 5 * self.state_every_s


@dataclass(frozen=True)
class StatePush:
    """The kiosk's state document, every ``state_every_s`` and before each action's answer."""

    state: dict[str, Any]


@dataclass(frozen=True)
class DecisionPush:
    """The newest decision as the display shows it (no subject, no pass id)."""

    decision: dict[str, Any]


@dataclass(frozen=True)
class MetricsPush:
    """The kiosk's metrics in Prometheus' text format."""

    text: str


@dataclass(frozen=True)
class ActionDone:
    """The kiosk's answer to the page's request ``request_id``."""

    request_id: str
    outcome: ActionOutcome


Message = StatePush | DecisionPush | MetricsPush | ActionDone | ActionRequest


class MalformedMessageError(ValueError):
    """Bytes from the pipe that are not one of its messages; the text names no content."""


def encode(message: Message) -> bytes:
    """``message`` as one JSON object tagged with its type."""
    match message:
        case StatePush(state):
            body: dict[str, Any] = {"type": "state", "state": state}
        case DecisionPush(decision):
            body = {"type": "decision", "decision": decision}
        case MetricsPush(text):
            body = {"type": "metrics", "text": text}
        case ActionDone(request_id, outcome):
            body = {
                "type": "done",
                "request_id": request_id,
                "message": outcome.message,
                "error": outcome.error,
                "data": outcome.data,
            }
        case ActionRequest():
            body = {
                "type": "action",
                "action": message.action.value,
                "args": dict(message.args),
                "operator": message.operator,
                "source": message.source.value,
                "request_id": message.request_id,
            }
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


def decode(raw: bytes) -> Message:
    """The message in ``raw``; :class:`MalformedMessageError` if it is none (an action request
    whose arguments fail the actions' own checks included)."""
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise TypeError("not an object")
        return _DECODERS[body.pop("type")](body)
    except (ValueError, KeyError, TypeError) as exc:  # ArgumentError is a ValueError
        raise MalformedMessageError(f"not a message of the pipe ({type(exc).__name__})") from None


def _fields(body: dict[str, Any], **types: type | tuple[type, ...]) -> list[Any]:
    """The values of exactly the fields ``types`` names, each of its type, in that order."""
    if set(body) != set(types):
        raise KeyError("fields")
    for name, wanted in types.items():
        if not isinstance(body[name], wanted):
            raise TypeError(name)
    return [body[name] for name in types]


def _action(body: dict[str, Any]) -> ActionRequest:
    action, args, operator, source, request_id = _fields(
        body, action=str, args=dict, operator=str, source=str, request_id=str
    )
    return request(action, args, operator=operator, source=Source(source), request_id=request_id)


def _done(body: dict[str, Any]) -> ActionDone:
    request_id, message, error, data = _fields(
        body, request_id=str, message=str, error=(str, type(None)), data=dict
    )
    return ActionDone(request_id, ActionOutcome(message, error, data))


_DECODERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "state": lambda body: StatePush(*_fields(body, state=dict)),
    "decision": lambda body: DecisionPush(*_fields(body, decision=dict)),
    "metrics": lambda body: MetricsPush(*_fields(body, text=str)),
    "done": _done,
    "action": _action,
}
