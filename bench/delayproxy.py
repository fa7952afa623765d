"""A user-space TCP delay proxy for the 50 ms RTT runs of bench/drain.py (its own process,
asyncio, a fixed delay each way, no bandwidth limit): run as
``python bench/delayproxy.py LISTEN_PORT TARGET_PORT DELAY_S``; it prints ``ready``."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DELAY_S = 0.025  # each way


def proxy_main(listen_port: int, target_port: int, delay_s: float) -> None:
    """Forward 127.0.0.1:listen_port → target_port, delaying every chunk by ``delay_s``.

    Each direction is a reader that stamps chunks and a writer that sends each one when it
    is due, so the delay is added per direction without limiting throughput.
    """
    import asyncio
    import socket

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await chunks.get()
                if not chunk:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        sender = asyncio.create_task(send())
        try:
            while chunk := await reader.read(65536):
                chunks.put_nowait((loop.time() + delay_s, chunk))
        except OSError:
            pass
        chunks.put_nowait((0.0, b""))
        with contextlib.suppress(OSError):
            await sender

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        for w in (client_w, server_w):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@contextlib.contextmanager
def delay_proxy(target_port: int) -> Iterator[int]:
    from ingest import free_port

    port = free_port()
    command = [sys.executable, str(BENCH / "delayproxy.py"), str(port)]
    command += [str(target_port), str(DELAY_S)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("delay proxy did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def publish_rtt_ms(port: int, samples: int = 7) -> float:
    """Median time from publish (QoS 1, MQTT 5, TCP_NODELAY) to its PUBACK through ``port``."""
    import socket

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    acked = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, "rtt-probe", protocol=mqtt.MQTTv5)
    client.on_socket_open = lambda c, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.on_publish = lambda *args: acked.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    times = []
    try:
        for _ in range(samples):
            acked.clear()
            start = time.monotonic()
            client.publish("bench/rtt", b"x" * 300, qos=1)
            if not acked.wait(5):
                raise RuntimeError("no PUBACK through the delay proxy")
            times.append((time.monotonic() - start) * 1000)
    finally:
        client.disconnect()
        client.loop_stop()
    return statistics.median(times)


if __name__ == "__main__":
    proxy_main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
