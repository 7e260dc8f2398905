"""A host whose stderr is a pipe nobody reads any more (a terminal closed, a log
collector gone) keeps serving: printing the setup code and log lines must not panic."""

from __future__ import annotations

import os
import subprocess
import time

import requests

from conftest import HOST_BIN, free_port_base, make_config


def test_the_host_serves_with_a_closed_stderr(tmp_path):
    base = free_port_base()
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the host's stdout/stderr now fails (EPIPE)
    proc = subprocess.Popen(
        [str(HOST_BIN), "serve", "--state-dir", str(tmp_path / "state"), "--bind", "127.0.0.1",
         "--port-base", str(base), "--config", str(make_config(tmp_path))],
        stdout=write_end, stderr=write_end,
    )
    os.close(write_end)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the host exited with {proc.returncode}"
            try:
                requests.get(f"http://127.0.0.1:{base}/serverinfo", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "the host never answered"
                time.sleep(0.1)
        # Requests make the host log (and the setup banner was printed at start).
        for _ in range(5):
            assert "<hostname>" in requests.get(f"http://127.0.0.1:{base}/serverinfo", timeout=5).text
            r = requests.get(f"https://127.0.0.1:{base + 1}/api/v1/setup", timeout=5, verify=False)
            assert r.status_code == 200, r.text
            r = requests.get(f"http://127.0.0.1:{base}/nothing-here", timeout=5)
            assert r.status_code == 404
        time.sleep(1)
        assert proc.poll() is None, f"the host exited with {proc.returncode}"
        # The setup code still reaches the admin through its file.
        assert (tmp_path / "state" / "setup-code").read_text().strip()
    finally:
        if proc.poll() is None:
            proc.terminate()
        assert proc.wait(timeout=20) == 0, "the host did not stop cleanly"
