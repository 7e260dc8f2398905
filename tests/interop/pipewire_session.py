"""A private PipeWire session for tests: dbus-daemon, pipewire and wireplumber in a
fresh 0700 XDG_RUNTIME_DIR, and the test producer (tests/pw-producer) inside it.

Every process is started in its own process group and stopped (SIGTERM, then SIGKILL)
when the session closes, so nothing outlives the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCER_BIN = Path(os.environ.get("PUNKTFUNK_PRODUCER_BIN", REPO / "target" / "debug" / "pf-pw-producer"))


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class PipeWireSession:
    """dbus-daemon + pipewire + wireplumber in their own runtime directory."""

    def __init__(self, log_dir: Path):
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="pf-pw-", dir="/tmp"))
        os.chmod(self.runtime_dir, 0o700)
        self.log_dir = log_dir
        self.env = dict(os.environ)
        self.env["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
        self.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={self.runtime_dir}/bus"
        self.env.pop("PIPEWIRE_REMOTE", None)
        self.env.pop("PIPEWIRE_RUNTIME_DIR", None)
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, cmd: list[str], **kw) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, env=self.env, stdout=kw.pop("stdout", log), stderr=log, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 20.0) -> "PipeWireSession":
        self._spawn("dbus", ["dbus-daemon", "--session", "--nofork", f"--address={self.env['DBUS_SESSION_BUS_ADDRESS']}"])
        deadline = time.monotonic() + timeout
        while not (self.runtime_dir / "bus").exists():
            assert time.monotonic() < deadline, "dbus-daemon did not come up"
            time.sleep(0.05)
        self._spawn("pipewire", ["pipewire"])
        while not (self.runtime_dir / "pipewire-0").exists():
            assert time.monotonic() < deadline, "pipewire did not come up"
            time.sleep(0.05)
        self._spawn("wireplumber", ["wireplumber"])
        # Ready when wireplumber is a client of the daemon (it links streams to nodes).
        while True:
            out = subprocess.run(["pw-cli", "ls", "Client"], env=self.env, capture_output=True, text=True, timeout=10)
            if "WirePlumber" in out.stdout:
                break
            for p in self.procs:
                assert p.poll() is None, f"{p.args[0]} exited with {p.returncode}"
            assert time.monotonic() < deadline, f"wireplumber did not come up: {out.stdout} {out.stderr}"
            time.sleep(0.2)
        return self

    def producer(self, name: str, *args: str, width: int = 1280, height: int = 720, fps: int = 60) -> subprocess.Popen:
        """Starts the test producer; returns once its node exists."""
        assert PRODUCER_BIN.exists(), f"{PRODUCER_BIN} is missing: cargo build -p pw-producer"
        proc = self._spawn(
            f"producer-{name}",
            [str(PRODUCER_BIN), "--name", name, "--width", str(width), "--height", str(height), "--fps", str(fps), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = proc.stdout.readline()
        assert line.startswith("node "), f"the producer did not announce its node: {line!r} (exit {proc.poll()})"
        return proc

    def stop_producer(self, proc: subprocess.Popen) -> None:
        _stop(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        self.procs.clear()
        subprocess.run(["rm", "-rf", str(self.runtime_dir)], check=False)
