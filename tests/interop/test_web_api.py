"""The management API over the network, against the real host binary: schemathesis
fuzzes every operation from the OpenAPI document (no 5xx), the setup code appears on
first start only, restarts (re-exec, or exit 75 under systemd) keep the box's state,
and `admin reset-password` works from the box."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from conftest import HOST_BIN, REPO, Host, WebSession, free_port_base

VENV_BIN = Path(sys.executable).parent


def test_schemathesis_finds_no_server_errors(host: Host, moonlight, tmp_path):
    web = WebSession(host).setup()
    # Something to find: a paired device and an added app.
    error, _ = moonlight().pair(name="Fuzzed TV")
    assert error is None, repr(error)
    assert web.request("POST", "/api/v1/apps", json={"title": "Fuzzed app"}).status_code == 201
    report = REPO / "target" / "schemathesis"
    cmd = [
        str(VENV_BIN / "schemathesis"), "run", f"{host.web_url}/api/openapi.json",
        "--tls-verify", "false",
        "-H", f"Cookie: __Host-pf_session={web.cookie}",
        "-H", f"X-CSRF-Token: {web.csrf}",
        "--checks", "not_a_server_error",
        "--max-examples", "20",
        "--seed", "20261121",
        "--workers", "2",
        # These end the fuzzer's own session or the host itself.
        "--exclude-path", "/api/v1/auth/logout",
        "--exclude-path", "/api/v1/restart",
        "--report", "junit", "--report-dir", str(report),
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path
    )
    tail = (out.stdout + out.stderr)[-5000:]
    assert out.returncode == 0, f"schemathesis found problems:\n{tail}\n--- host log ---\n{host.log()}"
    assert "No issues found" in out.stdout or "passed" in out.stdout, tail
    # It really exercised the authenticated API (not 30 times a 401).
    assert web.request("GET", "/api/v1/status").status_code == 200


def test_setup_code_is_announced_once_and_removed_after_setup(host: Host):
    code = host.setup_code()
    assert f"SETUP CODE: {code}" in host.log()
    assert oct((host.state_dir / "setup-code").stat().st_mode & 0o777) == "0o600"
    # The code never reaches the console's log page (readable later by any admin).
    web = WebSession(host).setup()
    lines = web.request("GET", "/api/v1/logs?limit=1000").json()["lines"]
    assert lines and not any(code in line["message"] for line in lines)
    assert not (host.state_dir / "setup-code").exists()
    before = host.log().count("SETUP CODE")
    host.restart()
    assert host.log().count("SETUP CODE") == before, "no new code once an admin exists"


def wait_back(host: Host, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"{host.web_url}/api/v1/setup", verify=False, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"host did not come back:\n{host.log()}")


def test_restart_reexecutes_and_keeps_everything(host: Host):
    web = WebSession(host).setup()
    web.request("PATCH", "/api/v1/settings", json={"hostname": "den"})
    pid = host.proc.pid
    r = web.request("POST", "/api/v1/restart")
    assert r.status_code == 202, r.text
    # Gone for a moment, then back: the same process image replaced (same PID).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "re-executing" not in host.log():
        time.sleep(0.1)
    time.sleep(0.5)
    wait_back(host)
    assert host.proc.poll() is None and host.proc.pid == pid
    status = web.request("GET", "/api/v1/status").json()
    assert status["uptime_secs"] < 10
    assert status["hostname"] == "den"
    assert "<hostname>den</hostname>" in host.serverinfo()


def test_restart_under_systemd_exits_75(tmp_path):
    h = Host(state_dir=tmp_path / "state", port_base=free_port_base(), expected_exit=75)
    log = open(h.log_path, "ab")
    proc = subprocess.Popen(
        [str(HOST_BIN), "serve", *h.args()], stdout=log, stderr=log,
        env={**os.environ, "INVOCATION_ID": "0123456789abcdef0123456789abcdef"},
    )
    h.proc = proc
    try:
        wait_back(h)
        web = WebSession(h).setup()
        assert web.request("POST", "/api/v1/restart").status_code == 202
        # systemd restarts it because the unit says RestartForceExitStatus=75.
        assert proc.wait(timeout=15) == 75
    finally:
        h.stop()


def test_admin_reset_password_from_the_box(host: Host):
    web = WebSession(host).setup(password="first password")
    # Lock the address out with wrong passwords.
    for _ in range(5):
        r = requests.post(f"{host.web_url}/api/v1/auth/login", json={"username": "admin", "password": "nope"},
                          verify=False, timeout=10)
    assert r.status_code == 429 and "reset-password" in r.json()["error"]

    cli = [str(HOST_BIN), "admin", "reset-password", *host.args()]
    out = subprocess.run(cli, input="short\n", capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "at least 8" in out.stderr
    out = subprocess.run(cli, input="second password\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "logged out" in out.stdout and "lockouts were lifted" in out.stdout
    # The old session is over; the old password is refused, the new one works.
    assert web.request("GET", "/api/v1/status").status_code == 401
    ok = requests.post(f"{host.web_url}/api/v1/auth/login", json={"username": "admin", "password": "second password"},
                       verify=False, timeout=10)
    assert ok.status_code == 200, ok.text
    bad = requests.post(f"{host.web_url}/api/v1/auth/login", json={"username": "admin", "password": "first password"},
                        verify=False, timeout=10)
    assert bad.status_code == 401


def test_admin_reset_password_before_setup_says_what_to_do(tmp_path):
    h = Host(state_dir=tmp_path / "state", port_base=free_port_base()).start()
    try:
        out = subprocess.run([str(HOST_BIN), "admin", "reset-password", *h.args()], input="whatever1\n",
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert "no admin account yet" in out.stderr and "setup-code" in out.stderr
    finally:
        h.stop()
