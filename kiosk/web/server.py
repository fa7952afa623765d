"""waitress for the status page, with idle connections bounded per client and timed out.

Stock waitress stops accepting at ``connection_limit`` open connections and closes idle ones
only after ``channel_timeout`` (120 s, checked every 30 s): 120 idle TCP connections from one
neighbour kept ``/healthz`` from answering for about 90 s, and the kiosk's watchdog then
restarted a healthy page. Here a connection that is serving nothing (no request being run or
answered) is *idle*, and:

- an idle connection is closed after ``idle_timeout_s`` (checked every ``check_every_s``);
- a client (an IP address) holds at most ``per_client`` connections: its next one closes its
  longest-idle one, or is itself closed if all of them are busy;
- at ``connection_limit`` a new connection closes the longest-idle one of any client; only
  when every connection is busy does the server stop accepting (the kernel queues the rest).

Browsers reopen a keep-alive connection that was closed, so an operator never notices.
This subclasses waitress's ``TcpWSGIServer`` (3.x): its ``readable`` and ``handle_accept``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections the page serves and how long an idle one may stay.

    :param threads: requests served at once.
    :param connection_limit: open connections at most, all clients together.
    :param per_client: open connections at most from one IP address.
    :param idle_timeout_s: an idle connection is closed after this (whole seconds, as
        waitress counts them).
    :param check_every_s: how often idle connections are looked for (whole seconds).
    """

    threads: int = 4
    connection_limit: int = 100
    per_client: int = 16
    idle_timeout_s: int = 30
    check_every_s: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.per_client <= self.connection_limit:
            raise ValueError("per_client must be from 1 to connection_limit")
        if self.threads < 1 or self.idle_timeout_s <= 0 or self.check_every_s <= 0:
            raise ValueError("threads and the timeouts must be positive")


def _idle(channel: Any) -> bool:
    return not channel.requests and not channel.total_outbufs_len


class BoundedServer(TcpWSGIServer):
    """A waitress TCP server that makes room for a new connection by closing idle ones."""

    next_channel_cleanup: float = 0.0

    def __init__(self, *args: Any, per_client: int, **kwargs: Any) -> None:
        self.per_client = per_client
        super().__init__(*args, **kwargs)

    def readable(self) -> bool:
        """Accept while there is room, or an idle connection to close for a new one."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        channels = self.active_channels.values()
        return len(channels) < self.adj.connection_limit or any(map(_idle, channels))

    def handle_accept(self) -> None:
        """Accept one connection, first closing an idle one if its client or the server is
        at its limit; close the new one if there is no room."""
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:  # the client left before it was accepted
            return
        client = addr[0]
        theirs = [c for c in self.active_channels.values() if c.addr[0] == client]
        if (len(theirs) >= self.per_client and not self._close_idlest(theirs)) or (
            len(self.active_channels) >= self.adj.connection_limit
            and not self._close_idlest(list(self.active_channels.values()))
        ):
            log.debug("no room for a new connection: every connection is busy")
            conn.close()
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    @staticmethod
    def _close_idlest(channels: Iterable[Any]) -> bool:
        idle = [c for c in channels if _idle(c)]
        if not idle:
            return False
        min(idle, key=lambda c: c.last_activity).handle_close()
        return True


def create_page_server(app: Any, host: str, port: int, limits: ConnectionLimits) -> Any:
    """A waitress server for ``app`` on ``host``:``port`` within ``limits``; ``run()`` it."""
    adj = Adjustments(
        host=host,
        port=port,
        threads=limits.threads,
        connection_limit=limits.connection_limit,
        channel_timeout=limits.idle_timeout_s,
        cleanup_interval=limits.check_every_s,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    sockets: dict[int, Any] = {}
    servers = [
        BoundedServer(
            app,
            sockets,
            dispatcher=dispatcher,
            adj=adj,
            sockinfo=sockinfo,
            per_client=limits.per_client,
        )
        for sockinfo in adj.listen
    ]
    if len(servers) == 1:
        return servers[0]
    listening = [(s.effective_host, s.effective_port) for s in servers]
    return MultiSocketServer(sockets, adj, listening, dispatcher, servers[0].log_info)


def serve_in_thread(server: Any, name: str) -> Callable[[], None]:
    """Run a server of :func:`create_page_server` in a daemon thread named ``name``; returns
    the function that stops it. The stop closes the sockets from the server's own loop (woken
    by its trigger): closing them from another thread raced the loop's ``select``, which then
    failed with EBADF and a traceback (seen once in a CI run's SIGTERM)."""
    sockets = server.map if isinstance(server, MultiSocketServer) else server._map
    wake = next(d for d in sockets.values() if isinstance(d, trigger))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()

    def stop(timeout_s: float = 10.0) -> None:
        wake.pull_trigger(lambda: wasyncore.close_all(sockets, ignore_all=True))
        thread.join(timeout_s)
        server.task_dispatcher.shutdown()

    return stop
