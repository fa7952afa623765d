"""The ``cmd`` messages operators and central send a kiosk, their HMAC signature, and the
kiosk's ``result`` for each. What a kiosk does with a command is :mod:`kiosk.operator.commands`.

Part of the wire contract that :mod:`kiosk.mqtt.protocol` publishes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from kiosk.mqtt.wire import SCHEMA_VERSION, ProtocolError, dumps, load_message, of_type

_COMMAND_FIELDS: dict[str, type] = {
    "id": str,
    "command": str,
    "args": dict,
    "issued_at_ms": int,
    "expires_at_ms": int,
}


@dataclass(frozen=True)
class Command:
    """A command as sent: a unique id (replays are refused), an expiry, optional signature."""

    id: str
    command: str
    args: dict[str, Any]
    issued_at_ms: int
    expires_at_ms: int
    sig: str | None = None

    def signed_fields(self) -> dict[str, Any]:
        """The fields the HMAC covers (everything but the signature)."""
        return {
            "v": SCHEMA_VERSION,
            "id": self.id,
            "command": self.command,
            "args": self.args,
            "issued_at_ms": self.issued_at_ms,
            "expires_at_ms": self.expires_at_ms,
        }


def canonical_json(value: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes an HMAC signs."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def command_signature(key: bytes, command: Command) -> str:
    """HMAC-SHA256 (hex) of the command's canonical JSON without its signature."""
    return hmac.new(key, canonical_json(command.signed_fields()), hashlib.sha256).hexdigest()


def encode_command(command: Command) -> bytes:
    """A command message (sign it first with :func:`command_signature` if the site requires)."""
    fields = command.signed_fields()
    if command.sig is not None:
        fields["sig"] = command.sig
    return dumps(fields)


def decode_command(payload: bytes) -> Command:
    """Parse a command message; ProtocolError names what is missing or wrong."""
    message = load_message(payload, "command")
    for name, kind in _COMMAND_FIELDS.items():
        if not of_type(message.get(name), kind):
            raise ProtocolError(f"command: {name} missing or of the wrong type")
    sig = message.get("sig")
    if sig is not None and not isinstance(sig, str):
        raise ProtocolError("command: sig must be a hex string")
    unknown = set(message) - {"v", "sig", *_COMMAND_FIELDS}
    if unknown:
        raise ProtocolError(f"command: unknown fields {sorted(unknown)}")
    return Command(
        message["id"],
        message["command"],
        message["args"],
        message["issued_at_ms"],
        message["expires_at_ms"],
        sig,
    )


def decode_result(payload: bytes) -> dict[str, Any]:
    """A kiosk's command result (bounded, strict); ProtocolError says what is wrong."""
    return load_message(payload, "command result")


def encode_result(
    kiosk: str,
    command_id: str | None,
    error: str | None,
    message: str,
    *,
    data: dict[str, Any] | None = None,
) -> bytes:
    """A command's result: ``error`` is None when it was carried out, else a stable code."""
    return dumps(
        {
            "v": SCHEMA_VERSION,
            "kiosk": kiosk,
            "id": command_id,
            "ok": error is None,
            "error": error,
            "message": message,
            "data": data or {},
        }
    )
