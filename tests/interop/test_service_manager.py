"""The host as systemd runs it (Type=notify, WatchdogSec=): the real binary talks to a
real notify socket, exactly the datagrams systemd would read.

The booted sysext test (tests/appliance/sysext-boot) checks the same against real
systemd and journald inside a container; this one runs everywhere, in a second.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from conftest import HOST_BIN, free_port_base


def _start(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int, Path]:
    base = free_port_base()
    log = tmp_path / "host.log"
    # `exec` keeps the PID, so WATCHDOG_PID=$$ names the host itself, as systemd sets it.
    cmd = (
        'export WATCHDOG_PID=$$; exec "$0" serve --state-dir "$1" --bind 127.0.0.1 --port-base "$2"'
    )
    proc = subprocess.Popen(
        ["sh", "-c", cmd, str(HOST_BIN), str(tmp_path / "state"), str(base)],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return proc, base, log


def _recv_all(sock: socket.socket, until: float) -> list[tuple[float, str]]:
    got = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            got.append((time.monotonic(), sock.recv(4096).decode().strip()))
        except TimeoutError:
            break
    return got


def test_ready_after_listeners_watchdog_at_half_interval_and_stopping(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    proc, base, log = _start(tmp_path, {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"})
    try:
        sock.settimeout(30)
        first = sock.recv(4096).decode()
        # READY=1 comes once the listeners are bound: systemd starts dependants then.
        assert "READY=1" in first.splitlines(), first
        assert any(line.startswith("STATUS=serving ") for line in first.splitlines()), first
        assert requests.get(f"http://127.0.0.1:{base}/serverinfo", timeout=5).status_code == 200

        # Pings at half of WATCHDOG_USEC (0.2 s): about ten in two seconds.
        pings = [t for t, msg in _recv_all(sock, time.monotonic() + 2.0) if msg == "WATCHDOG=1"]
        assert 7 <= len(pings) <= 13, pings
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 0.4, gaps  # always inside the watchdog timeout

        proc.send_signal(signal.SIGTERM)
        sock.settimeout(10)
        tail = []
        while not any("STOPPING=1" in m.splitlines() for m in tail):
            tail.append(sock.recv(4096).decode())  # times out (and fails) if it never comes
        assert proc.wait(timeout=10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_without_systemd_the_host_runs_and_logs_to_stderr(tmp_path: Path) -> None:
    # No NOTIFY_SOCKET, and a JOURNAL_STREAM that is not our stderr (a child of a service
    # whose output was redirected): plain text on stderr, nothing lost.
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env["JOURNAL_STREAM"] = "1:1"
    proc, base, log = _start(tmp_path, env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{base}/serverinfo", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        text = log.read_text()
        assert "punktfunk host ready" in text, text
        assert "received SIGTERM, shutting down" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
