"""Real streams, two host binaries alternated in one run: decoded fps, the host latency
the frame header carries, and capture-to-decode latency (the barcode's capture time
against the decode time: the whole path a user sees, on one box).

    cd tests/interop && ../../.venv/bin/python bench_real_stream.py OLD_BIN NEW_BIN \
        --mode 1920x1080@60 --kbps 20000 [--yuv-source] [--pipewire] [--rounds 3]

`--pipewire` streams a PipeWire producer (pf-pw-producer, as a compositor would hand
frames over) instead of the built-in pattern; `--yuv-source` lets the pattern hand
NV12. Not a test: machine speed decides the figures; compare rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import conftest
from conftest import Host, Moonlight, free_port_base, make_config
from streamclient import frames_for, read_barcode

SECONDS = 8
WARM_UP = 1.0


def stream(binary: str, w: int, h: int, fps: int, kbps: int, yuv: bool, pipewire: bool) -> tuple:
    conftest.HOST_BIN = Path(binary)
    tmp = Path(tempfile.mkdtemp())
    host = Host(state_dir=tmp / "state", port_base=free_port_base(),
                config=make_config(tmp, extra=f"[stream]\nyuv_source = {str(yuv).lower()}\n"),
                serve_args=["--source", "pipewire:pf-bench"] if pipewire else []).start()
    try:
        ml = Moonlight(host)
        err, _ = ml.pair()
        assert err is None, err
        nums, lat, p2d = [], [], []
        with ml.client.stream(app="Desktop", width=w, height=h, fps=fps, bitrate_kbps=kbps, codec="h264", record_audio=False):
            t0 = time.monotonic()
            for frame in frames_for(ml.client, SECONDS):
                now_us = time.time_ns() // 1000
                code = read_barcode(frame.data)
                if code is None or time.monotonic() - t0 < WARM_UP:
                    continue
                nums.append(code[1])
                lat.append(frame.host_processing_latency_us / 10.0)  # tenths of ms
                p2d.append((now_us - code[0]) / 1000.0)
        p2d.sort()
        return (len(set(nums)) / (SECONDS - WARM_UP), statistics.median(lat), statistics.median(p2d),
                p2d[max(0, int(len(p2d) * 0.99) - 1)])
    finally:
        host.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--mode", default="1920x1080@60")
    ap.add_argument("--kbps", type=int, default=20000)
    ap.add_argument("--yuv-source", action="store_true")
    ap.add_argument("--pipewire", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    size, fps = a.mode.split("@")
    w, h = (int(v) for v in size.split("x"))
    session = None
    if a.pipewire:
        from pipewire_session import PipeWireSession
        session = PipeWireSession(Path(tempfile.mkdtemp())).start()
        os.environ["XDG_RUNTIME_DIR"] = session.env["XDG_RUNTIME_DIR"]
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = session.env["DBUS_SESSION_BUS_ADDRESS"]
        session.producer("pf-bench", width=w, height=h, fps=int(fps))
    try:
        print("| binary | round | decoded fps | host latency p50 | capture-to-decode p50 | p99 |")
        for r in range(a.rounds):
            for name, binary in (("old", a.old), ("new", a.new)):
                f, l, p50, p99 = stream(binary, w, h, int(fps), a.kbps, a.yuv_source, a.pipewire)
                print(f"| {name} | {r} | {f:.1f} | {l:.1f} ms | {p50:.1f} ms | {p99:.1f} ms |", flush=True)
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":
    main()
