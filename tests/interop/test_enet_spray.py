"""A stranger spraying ENet CONNECTs at the control port (from 127.0.0.2) while a
paired client starts its stream: the stream still starts and its frames decode."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

from conftest import Host, Moonlight
from streamclient import read_barcode

STRANGER = "127.0.0.2"


def enet_connect(rng: random.Random) -> bytes:
    """An ENet 1.3 CONNECT as a client's first datagram: no peer yet (0x0FFF), the
    sent-time flag, then the command with a fresh connect id."""
    header = struct.pack(">HH", 0x8000 | 0x0FFF, rng.randrange(1 << 16))
    command = struct.pack(">BBH", 2 | 0x80, 0xFF, 1)
    body = struct.pack(
        ">HBBIIIIIIIII",
        rng.randrange(4096), 0xFF, 0xFF, 1392, 32768, 0x30, 0, 0, 5000, 2, 2, rng.randrange(1 << 32),
    ) + struct.pack(">I", rng.randrange(1 << 32))
    return header + command + body


def spray(port: int, stop: threading.Event, sent: list) -> None:
    rng = random.Random(5)
    socks = []
    for _ in range(16):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((STRANGER, 0))
        s.setblocking(False)
        socks.append(s)
    deadline = time.monotonic() + 30  # bounded even if the test hangs
    try:
        while not stop.is_set() and time.monotonic() < deadline and sent[0] < 200_000:
            for s in socks:
                try:
                    s.sendto(enet_connect(rng), ("127.0.0.1", port))
                    sent[0] += 1
                except OSError:
                    pass
                # Drain whatever the host answers (VERIFY_CONNECTs).
                try:
                    while s.recv(2048):
                        sent[1] += 1
                except OSError:
                    pass
            time.sleep(0.002)
    finally:
        for s in socks:
            s.close()


def test_an_enet_connect_spray_does_not_stop_a_new_stream(host: Host, moonlight):
    ml: Moonlight = moonlight()
    assert ml.pair()[0] is None
    stop = threading.Event()
    sent = [0, 0]
    sprayer = threading.Thread(target=spray, args=(host.port_base + 10, stop, sent))
    sprayer.start()
    decoded = 0
    try:
        time.sleep(1)  # the spray is running before the stream starts
        with ml.client.stream(app="Desktop", width=1280, height=720, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
            start = time.monotonic()
            for frame in ml.client.frames():
                if read_barcode(frame.data) is not None:
                    decoded += 1
                if time.monotonic() - start > 3:
                    break
            status = host.status()
    finally:
        stop.set()
        sprayer.join()
    assert sent[0] > 1000, sent
    assert decoded >= 30, f"{decoded} frames decoded under the spray\n{host.log()}"
    assert status["stream"] is not None
    # The control stream really connected (input and IDR requests flow through it).
    assert "control stream connected" in host.log()
