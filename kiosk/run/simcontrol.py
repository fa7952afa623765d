"""The control socket of a simulated kiosk, through which ``kiosk sim`` drives it.

Only ``kiosk run --simulate`` opens it: an AF_UNIX stream socket, ``simulate.sock`` in the
kiosk's ``state_dir``, mode 0600 (only the user the kiosk runs as may connect), replacing one a
crashed kiosk left behind, removed when the kiosk stops. The protocol is one JSON object per
line each way, parsed with :func:`kiosk.mqtt.boundedjson.loads`: a request
``{"command": NAME, …}`` is answered ``{"ok": true, "said": TEXT, …}`` or
``{"ok": false, "error": TEXT}``. A request that is too long, nested too deep, not JSON or
not known gets an error answer; nothing a client sends stops the kiosk. The commands are
:mod:`kiosk.run.simcommands`'; this module holds the socket, on both sides.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.config import KioskConfig
from kiosk.mqtt.boundedjson import JSONLimitError, loads

if TYPE_CHECKING:
    from kiosk.run.engine import Kiosk

log = logging.getLogger(__name__)

SOCKET_NAME = "simulate.sock"
MAX_REQUEST_BYTES = 16 * 1024  # one request line; a code is at most a few KiB
MAX_ANSWER_BYTES = 1024 * 1024
MAX_DEPTH = 4  # a request is a flat object
MAX_CLIENTS = 4  # connections served at once; more are told the kiosk is busy
IDLE_TIMEOUT_S = 30.0  # a connection that sends nothing for this long is closed
ACCEPT_POLL_S = 0.2  # how often the accept loop looks at the stop event
SUN_PATH_MAX = 107  # bytes of a socket's path (sockaddr_un.sun_path, less its NUL)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(OSError):
    """The control socket cannot be opened or reached; the text says why and what to do."""


class RequestError(ValueError):
    """A request the kiosk refuses; the text becomes the answer's ``error``."""


def socket_path(config: KioskConfig) -> Path:
    """Where the control socket of a simulated kiosk with ``config`` lives."""
    return Path(config.kiosk.state_dir) / SOCKET_NAME


@contextlib.contextmanager
def serve_simulation(kiosk: Kiosk) -> Iterator[Path]:
    """Open the control socket of the simulated ``kiosk`` and serve it while the kiosk runs
    (a background loop of :meth:`Kiosk.run`); close and remove it on exit."""
    from kiosk.run.simcommands import SimulationCommands

    path = socket_path(kiosk.config)
    handlers = SimulationCommands(kiosk).handlers
    server = ControlServer(bind_socket(path), handlers)
    kiosk.add_background(server.serve)
    log.info("simulation control socket at %s (kiosk sim …)", path)
    try:
        yield path
    finally:
        server.close()
        _remove_if_ours(path, server.inode)


def bind_socket(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600; a stale one is replaced, a live one or any
    other file there raises :class:`ControlError`."""
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ControlError(f"{path}: longer than {SUN_PATH_MAX} bytes, too long for a socket")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ControlError(f"{path} exists and is not a socket: move it away")
        if _answers(path):
            raise ControlError(
                f"{path}: another simulated kiosk with this state_dir is running; stop it first"
            )
        path.unlink()
        log.warning("replaced the control socket a stopped kiosk left at %s", path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)  # before listen(): until then nobody can connect
        listener.listen(MAX_CLIENTS)
        listener.settimeout(ACCEPT_POLL_S)
    except OSError:
        listener.close()
        raise
    return listener


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return False
    return True


def _remove_if_ours(path: Path, inode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.lstat(path).st_ino == inode:
            path.unlink()


class ControlServer:
    """Serves one listening socket: a thread per client (at most ``MAX_CLIENTS``), each
    request line answered by the handler its ``command`` names."""

    def __init__(self, listener: socket.socket, handlers: Mapping[str, Handler]) -> None:
        self._listener = listener
        self._handlers = handlers
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.inode = _inode(listener)  # removed on exit only if it is still this socket

    def serve(self, stop: threading.Event) -> None:
        """Accept clients until ``stop`` is set."""
        while not stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if not self._slots.acquire(blocking=False):
                with client:
                    _send(client, _error(f"busy: {MAX_CLIENTS} clients connected already"))
                continue
            threading.Thread(
                target=self._serve_client, args=(client, stop), name="sim-client", daemon=True
            ).start()

    def close(self) -> None:
        """Stop listening."""
        self._listener.close()

    def answer(self, line: bytes) -> dict[str, Any]:
        """The answer to one request line; never raises."""
        try:
            request = loads(line.strip(), max_bytes=MAX_REQUEST_BYTES, max_depth=MAX_DEPTH)
        except JSONLimitError as exc:
            return _error(f"not a request: {exc}")
        command = request.get("command") if isinstance(request, dict) else None
        if not isinstance(command, str):
            return _error('a request is a JSON object with a "command"')
        handler = self._handlers.get(command)
        if handler is None:
            known = ", ".join(self._handlers)
            return _error(f"unknown command {command[:40]!r}: use one of {known}")
        del request["command"]
        try:
            return handler(request)
        except RequestError as exc:
            return _error(str(exc))
        except Exception:
            log.exception("simulation command %s failed", command)
            return _error(f"{command} failed inside the kiosk: see its log")

    def _serve_client(self, client: socket.socket, stop: threading.Event) -> None:
        try:
            with client, client.makefile("rb") as lines:
                client.settimeout(IDLE_TIMEOUT_S)
                while not stop.is_set():
                    line = lines.readline(MAX_REQUEST_BYTES + 1)
                    if not line:
                        return
                    if len(line) > MAX_REQUEST_BYTES:
                        _send(client, _error(f"request longer than {MAX_REQUEST_BYTES} bytes"))
                        return
                    _send(client, self.answer(line))
        except OSError:  # the client went away, or sent nothing for IDLE_TIMEOUT_S
            return
        finally:
            self._slots.release()


def _inode(listener: socket.socket) -> int:
    return os.lstat(listener.getsockname()).st_ino


def _error(text: str) -> dict[str, Any]:
    return {"ok": False, "error": text}


def _send(client: socket.socket, answer: dict[str, Any]) -> None:
    client.sendall(json.dumps(answer, ensure_ascii=False).encode() + b"\n")


def ask(path: Path, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Send ``request`` to the simulated kiosk whose socket is ``path``; its answer.

    :raises ControlError: no kiosk is listening there, or it did not answer in time.
    """
    hint = "start one with `kiosk run --simulate` and the same --config"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        try:
            connection.connect(str(path))
        except FileNotFoundError:
            raise ControlError(
                f"no simulated kiosk is running: no socket at {path}; {hint}"
            ) from None
        except ConnectionRefusedError:
            raise ControlError(
                f"no simulated kiosk is running: {path} was left by one; {hint}"
            ) from None
        except PermissionError:
            raise ControlError(
                f"{path}: only the user the simulated kiosk runs as may drive it"
            ) from None
        try:
            _send(connection, request)
            with connection.makefile("rb") as lines:
                line = lines.readline(MAX_ANSWER_BYTES + 1)
        except TimeoutError:
            raise ControlError(
                f"the simulated kiosk did not answer within {timeout_s:g} s"
            ) from None
    if not line:
        raise ControlError("the simulated kiosk closed the connection without an answer")
    try:
        answer = loads(line, max_bytes=MAX_ANSWER_BYTES)
    except JSONLimitError as exc:
        raise ControlError(f"the simulated kiosk's answer is not readable: {exc}") from None
    if not isinstance(answer, dict):
        raise ControlError("the simulated kiosk's answer is not a JSON object")
    return answer
