"""The kiosk's threads: the frame loop, the decision loop, background loops, and their supervision.

The frame loop reads and decodes camera frames and queues new scans (and reopens a camera that
failed or fell silent); the scanner loop, where a 2D scanner is fitted, does the same with the
codes it reads (and reopens a scanner unplugged, with a growing pause), through the same scan
filter: a code counts once, whichever of the two read it, until it has been away for
``camera.rearm_after_s``. A scanner sends a code once per trigger, or again and again while a
phone is held under it in presentation mode: either way the same code within the re-arm time
is one scan, as a code held in front of the camera is. The decision loop, in the caller's
thread, hands each scan (or, in screen mode, each person at the sensor) to the
:class:`~kiosk.decide.pipeline.Pipeline`.
Background loops (the MQTT sync, the status page, the systemd watchdog) run in threads of their
own and are started again when they crash. Nothing here decides anything.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from kiosk import __version__
from kiosk.decide.pipeline import Pipeline
from kiosk.events import EventType, Part
from kiosk.gate import Signal
from kiosk.hardware import Hardware
from kiosk.run.health import Health
from kiosk.run.metrics import KioskMetrics
from kiosk.run.parts import Monitor
from kiosk.run.systemd import StopDeadline, notify, watchdog_interval_s, watchdog_loop, where
from kiosk.sensors.frames import CameraError
from kiosk.sensors.measurement import is_present
from kiosk.sensors.qr import Scan, ScanFilter
from kiosk.sensors.scanner import CodeReader, ScannerError

log = logging.getLogger(__name__)

CAMERA_SILENCE_S = 3.0  # no frame for this long: the camera is lost, reopen it
STALE_SCAN_S = 5.0  # a queued scan older than this belongs to someone who has left
CAMERA_RETRY_S = 2.0
NO_FRAME_WAIT_S = 0.01  # a source with no frame ready is asked again after this
SCANNER_RETRY_S = 1.0  # a scanner that cannot be opened is tried again after this, then
SCANNER_RETRY_MAX_S = 30.0  # twice as long each time, up to this
SCANNER_READ_S = 0.5  # a scanner read returns at least this often, to see the stop
BACKGROUND_RESTART_S = 5.0  # a crashed background loop (the MQTT sync) starts again after this
JOIN_S = 5.0  # a stop waits this long in all for the kiosk's threads to end


class Loops:
    """Starts, runs and stops the kiosk's threads around one :class:`Pipeline`.

    :param health: the kiosk's health now (for the start event and systemd's status line).
    """

    def __init__(
        self,
        hardware: Hardware,
        pipeline: Pipeline,
        monitor: Monitor,
        metrics: KioskMetrics,
        health: Callable[[], Health],
        *,
        clock: Callable[[], float] = time.monotonic,
        camera_retry_s: float = CAMERA_RETRY_S,
        scanner_retry_s: float = SCANNER_RETRY_S,
    ) -> None:
        config = pipeline.config
        self._mode = config.kiosk.mode
        self._hardware = hardware
        self._pipeline = pipeline
        self._monitor = monitor
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._camera_retry_s = camera_retry_s
        self._scanner_retry_s = scanner_retry_s
        self._scans: queue.Queue[Scan] = queue.Queue(maxsize=8)
        self._scan_filter = ScanFilter(
            rearm_after_s=config.camera.rearm_after_s,
            max_payload_bytes=config.camera.max_payload_bytes,
        )
        self._filter_lock = threading.Lock()  # the camera's and the scanner's threads share it
        self._background: list[Callable[[threading.Event], None]] = []
        self._beats: dict[str, float] = {}

    def add_background(self, loop: Callable[[threading.Event], None]) -> None:
        """Run ``loop(stop)`` in its own thread while :meth:`run` runs (e.g. the MQTT sync)."""
        self._background.append(loop)

    def run(self, stop: threading.Event, *, stop_deadline_s: float | None = None) -> None:
        """Run until ``stop`` is set: see :meth:`kiosk.run.engine.Kiosk.run`."""
        gate = self._hardware.gate
        parts = {"decision loop": threading.current_thread()}
        if stop_deadline_s is not None:
            StopDeadline(
                stop_deadline_s, make_safe=gate.force_relay_off, parts=lambda: dict(parts)
            ).watch(stop)
        started = {"mode": self._mode, "version": __version__, "degraded": self._health().degraded}
        self._monitor.record(EventType.KIOSK_STARTED, started)
        if gate.state().fire_alarm:
            log.warning("fire alarm active at start: gate released")
            self._monitor.record(EventType.FIRE_ALARM, {"active": True})
        self._monitor.replay_today()
        threads = [
            threading.Thread(target=self.frame_loop, args=(stop,), name="frame-loop", daemon=True)
        ]
        background = list(self._background)
        if self._hardware.scanner is not None:
            background.append(self.scanner_loop)
        interval = watchdog_interval_s()
        if interval is not None:
            background.append(watchdog_loop(self.alive, interval))
        threads += [
            threading.Thread(
                target=_supervised,
                args=(loop, stop),
                name=getattr(loop, "__qualname__", "background").replace("<locals>.", ""),
                daemon=True,
            )
            for loop in background
        ]
        for thread in threads:
            parts[thread.name] = thread
            thread.start()
        degraded = self._health().degraded
        notify(
            "READY=1\nSTATUS="
            + (f"degraded: {', '.join(degraded)} not working" if degraded else "ready")
        )
        try:
            if self._mode == "screen":
                self._screen_loop(stop)
            else:
                self._scan_loop(stop)
        finally:
            notify("STOPPING=1")
            self._monitor.record(EventType.KIOSK_STOPPED, {})
            stop.set()
            _join_all(threads, min(JOIN_S, (stop_deadline_s or 2 * JOIN_S) / 2))

    def alive(self, max_age_s: float) -> bool:
        """Whether the frame loop and the decision loop both ran within ``max_age_s``."""
        now = self._clock()
        return all(now - self._beats.get(loop, -1e9) <= max_age_s for loop in ("frame", "decision"))

    def frame_loop(self, stop: threading.Event) -> None:
        """Read frames, decode them and queue each new scan, until ``stop`` is set."""
        source, decoder = self._hardware.frames, self._hardware.decoder
        frames = self._monitor.frames
        frames.last_frame_at = self._clock()
        while not stop.is_set():
            self._beat("frame")
            try:
                frame = source.read()
            except CameraError as exc:
                self._camera_lost(str(exc), stop)
                continue
            started = self._clock()
            if frame is None:
                if started - frames.last_frame_at > CAMERA_SILENCE_S:
                    self._camera_lost(f"no frames for {CAMERA_SILENCE_S:g} s", stop)
                stop.wait(NO_FRAME_WAIT_S)
                continue
            self._monitor.frame_seen(started)
            payloads = decoder.decode(frame)
            self._metrics.decoded(self._clock() - started)
            self._feed(payloads, started)

    def scanner_loop(self, stop: threading.Event) -> None:
        """Open the scanner and queue each new code it reads, until ``stop`` is set; reopen it,
        waiting longer each time (up to ``SCANNER_RETRY_MAX_S``), while it is gone."""
        reader = self._hardware.scanner
        if reader is None:
            return
        pause = self._scanner_retry_s
        while not stop.is_set():
            try:
                reader.open()
            except ScannerError as exc:
                self._monitor.set(Part.SCANNER, False, str(exc))
                stop.wait(pause)
                pause = min(2 * pause, SCANNER_RETRY_MAX_S)
                continue
            pause = self._scanner_retry_s
            self._monitor.set(Part.SCANNER, True, reader.detail)
            try:
                self._read_codes(reader, stop)
            except ScannerError as exc:
                self._monitor.set(Part.SCANNER, False, str(exc))
            finally:
                reader.close()

    def _read_codes(self, reader: CodeReader, stop: threading.Event) -> None:
        while not stop.is_set():
            code = reader.read(SCANNER_READ_S)
            if code is not None:
                self._feed([code], self._clock())
                self._monitor.set(Part.SCANNER, True, reader.detail)

    def _feed(self, payloads: list[bytes], at: float) -> None:
        with self._filter_lock:
            scans = self._scan_filter.feed(payloads, at)
        for scan in scans:
            self._queue_scan(scan)

    def _beat(self, loop: str) -> None:
        self._beats[loop] = self._clock()

    def _queue_scan(self, scan: Scan) -> None:
        try:
            self._scans.put_nowait(scan)
        except queue.Full:
            log.warning("scan queue full: dropped a scan (the person can scan again)")

    def _camera_lost(self, detail: str, stop: threading.Event) -> None:
        self._monitor.set(Part.CAMERA, False, detail)
        source = self._hardware.frames
        source.close()
        if stop.wait(self._camera_retry_s):
            return
        try:
            source.start()
        except CameraError as exc:
            self._monitor.set(Part.CAMERA, False, str(exc))
            return
        self._monitor.frames.last_frame_at = self._clock()

    def _scan_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._beat("decision")
            self._monitor.housekeeping()
            try:
                scan = self._scans.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._clock() - scan.seen_at > STALE_SCAN_S:
                log.info("dropped a stale scan (%.1f s old)", self._clock() - scan.seen_at)
                continue
            try:
                self._pipeline.handle_scan(scan)
            except Exception:
                log.exception("deciding for a scan failed: person referred to the guard")
                self._hardware.gate.show(Signal.REFER)

    def _screen_loop(self, stop: threading.Event) -> None:
        settings = self._pipeline.settings
        waiting_for_next_person = False
        while not stop.wait(settings.sample_interval_s):
            self._beat("decision")
            self._monitor.housekeeping()
            reading = self._pipeline.read_quietly()
            present = reading is not None and is_present(reading, settings)
            if present and not waiting_for_next_person:
                self._pipeline.handle_presence()
                waiting_for_next_person = True
            elif not present:
                waiting_for_next_person = False


def _join_all(threads: list[threading.Thread], within_s: float) -> None:
    """Join ``threads`` within ``within_s`` in all; name those still running and leave them."""
    deadline = time.monotonic() + within_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    running = [f"{t.name} in {where(t)}" for t in threads if t.is_alive()]
    if running:
        log.error("still running %g s after the stop: %s", within_s, "; ".join(running))


def _supervised(loop: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Run a background loop until ``stop``; if it crashes, log it and start it again."""
    while not stop.is_set():
        try:
            loop(stop)
        except Exception:
            log.exception(
                "%s crashed; restarting it in %.0f s",
                getattr(loop, "__qualname__", "a background loop"),
                BACKGROUND_RESTART_S,
            )
            stop.wait(BACKGROUND_RESTART_S)
