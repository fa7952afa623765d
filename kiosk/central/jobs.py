"""Central's background jobs: a loop in its own daemon thread that stops when asked."""

from __future__ import annotations

import threading


class Job:
    """Runs :meth:`_loop` in a thread named ``name``; the loop waits on ``self._stop``."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for a run in progress to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        raise NotImplementedError
