"""Fixtures that run the real punktfunk-host binary and drive it with moonlight-python.

Every test gets its own host: a fresh state directory and its own port base on
127.0.0.1, so tests never see each other's pairings.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def pytest_configure(config: pytest.Config) -> None:
    # The host's certificate is self-signed by design (clients pin it when pairing).
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")

# pytest's exit status, known only once the session finished. None means it never did
# (an INTERNALERROR in pytest_configure or pytest_sessionstart, an error while
# collecting that ended the session early): that must not leave with 0.
_exit_status: int | None = None
# pytest.ExitCode.INTERNAL_ERROR.
_NOT_FINISHED = 3


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leaves without interpreter finalization, keeping pytest's exit status.

    moonlight-python leaves daemon threads (audio feed, periodic IDR requests) inside
    libmoonlight-common-c and PyAV calls after its streams end; when the interpreter
    tears down under them the client process sometimes segfaults after every test has
    passed (seen about once in eight full runs). Every report is written by now.
    """
    import sys

    status = _exit_status
    if status is None:
        print("interop: the pytest session did not finish (INTERNALERROR?): exiting "
              f"{_NOT_FINISHED}", file=sys.stderr)
        status = _NOT_FINISHED
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    # Under CI every test must run: a skip (not root, a tool missing) would hide the
    # check, so it fails there instead.
    if rep.skipped and os.environ.get("CI") and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.longrepr = f"skipped under CI, where every test must run: {reason}"
    setattr(item, "rep_" + rep.when, rep)


# Every Host made during the current test; checked when the test ends.
_hosts: list["Host"] = []
# A line the Rust panic hook prints ("thread 'pf-video' panicked at src/...").
_PANIC = "panicked at"


@pytest.fixture(autouse=True)
def host_must_not_crash():
    """Fails the test when a host it ran panicked, exited non-zero, or had to be killed.

    Every Host is checked, whichever way the test made it; a host still running when
    the test ends is stopped (SIGTERM) and must exit 0 within 10 s.
    """
    _hosts.clear()
    yield
    problems = []
    for h in list(_hosts):
        h.stop()
        problems += [f"{h.log_path.name}: {p}" for p in h.problems()]
    _hosts.clear()
    if problems:
        pytest.fail("the host crashed:\n" + "\n".join(problems), pytrace=False)


REPO = Path(__file__).resolve().parents[2]
HOST_BIN = Path(os.environ.get("PUNKTFUNK_HOST_BIN", REPO / "target" / "debug" / "punktfunk-host"))
# Offsets of every port from the base, as GameStream derives them (HTTPS is base - 5).
PORT_OFFSETS = (-5, 0, 1, 9, 10, 11, 21)


def _ports_free(base: int) -> bool:
    for off in PORT_OFFSETS:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", base + off))
            except OSError:
                return False
            finally:
                s.close()
    return True


def free_port_base() -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000, 50)
        if _ports_free(base):
            return base
    raise RuntimeError("no free port base found")


@dataclass
class Host:
    """One punktfunk-host process and its state directory."""

    state_dir: Path
    port_base: int
    config: Path | None = None
    # The address the host listens on (a veth address for tests with their own network).
    bind: str = "127.0.0.1"
    # Flags only `serve` takes (`--source pipewire:<node>`).
    serve_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    # The exit status stop() expects (a test that makes the host restart itself: 75).
    expected_exit: int = 0
    # Extra environment for the host process (a debug-build test hook, for one).
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path = field(init=False)
    # What went wrong with the processes this Host ran (exit status, kill on hang).
    _failures: list[str] = field(init=False, default_factory=list)
    # The process last checked by stop() (each is checked once).
    _checked: subprocess.Popen | None = field(init=False, default=None)
    # The process that kill() ended on purpose.
    _killed: subprocess.Popen | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir.parent / f"host-{self.port_base}.log"
        _hosts.append(self)

    @property
    def https_port(self) -> int:
        return self.port_base - 5

    @property
    def web_port(self) -> int:
        return self.port_base + 1

    def args(self) -> list[str]:
        args = ["--state-dir", str(self.state_dir), "--bind", self.bind, "--port-base", str(self.port_base)]
        if self.config:
            args += ["--config", str(self.config)]
        return args

    def start(self, timeout: float = 30.0) -> "Host":
        assert HOST_BIN.exists(), f"{HOST_BIN} is missing: build it first (cargo build -p punktfunk-host)"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(HOST_BIN), "serve", *self.args(), *self.serve_args], stdout=log, stderr=log,
                                     env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host exited with {self.proc.returncode}:\n{self.log()}")
            try:
                requests.get(f"http://{self.bind}:{self.port_base}/serverinfo", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"host did not come up in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, then checks the exit: expected_exit (0), within 10 s.

        A host that exited by itself before (a crash) or must be killed is recorded
        as a failure that the test's teardown reports (host_must_not_crash).
        """
        proc = self.proc
        if proc is None or proc is self._checked:
            return
        self._checked = proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._failures.append("did not exit within 10 s of SIGTERM and was killed")
                return
        if proc is not self._killed and proc.returncode != self.expected_exit:
            self._failures.append(f"exited with status {proc.returncode}, not {self.expected_exit}")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, like a power cut for the process."""
        if self.proc and self.proc.poll() is None:
            self._killed = self.proc
            self.proc.kill()
            self.proc.wait()

    def wait_killed_itself(self, timeout: float = 30.0) -> None:
        """Waits for a host that a test hook (PUNKTFUNK_TEST_CRASH_AT) told to SIGKILL
        itself. It must die by SIGKILL, and that death is then no failure of the test."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the host did not stop itself within {timeout} s (release builds ignore "
                                 f"PUNKTFUNK_TEST_CRASH_AT: test the debug build):\n{self.log()}")
        assert self.proc.returncode == -signal.SIGKILL, (
            f"the host exited with {self.proc.returncode}, not by SIGKILL:\n{self.log()}")
        self._killed = self.proc

    def problems(self) -> list[str]:
        """Failures of this host's processes, and every panic its log shows."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        return self._failures + [f"log: {line.strip()}" for line in lines if _PANIC in line]

    def restart(self) -> "Host":
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def pin(self, pin: str, name: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(HOST_BIN), "pin", pin, *self.args()]
        if name:
            cmd += ["--name", name]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict:
        """What the host reports it is doing (`punktfunk-host status`)."""
        import json

        out = subprocess.run([str(HOST_BIN), "status", *self.args()], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def control(self, request: dict) -> dict:
        """One raw request to the control socket."""
        import json

        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.state_dir / "control.sock"))
            s.sendall((json.dumps(request) + "\n").encode())
            return json.loads(s.makefile().readline())

    def serverinfo(self) -> str:
        return requests.get(f"http://{self.bind}:{self.port_base}/serverinfo", timeout=5).text

    def host_cert_pem(self) -> str:
        return (self.state_dir / "host.crt").read_text()

    @property
    def web_url(self) -> str:
        return f"https://{self.bind}:{self.web_port}"

    def setup_code(self, timeout: float = 10.0) -> str:
        """The first-run setup code the host wrote to its state directory."""
        path = self.state_dir / "setup-code"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return path.read_text().strip()
            time.sleep(0.05)
        raise RuntimeError(f"no setup code in {path}:\n{self.log()}")

    def paired_clients(self) -> list[tuple[str, str]]:
        """(name, fingerprint) of every paired client, read straight from the SQLite file."""
        db = sqlite3.connect(f"file:{self.state_dir / 'punktfunk.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT name, fingerprint FROM clients ORDER BY id").fetchall()
        finally:
            db.close()


def make_config(tmp_path: Path, extra: str = "", display: str = "none") -> Path:
    """A host config for tests: input goes to a recording file (CI has no uinput), and
    launches stream the built-in test pattern unless `display` names a compositor
    (the session tests use "sway")."""
    config = tmp_path / "host.toml"
    config.write_text(
        "[input]\nbackend = \"recording\"\n"
        f"recording_path = \"{tmp_path / 'input-events.jsonl'}\"\n"
        f"[display]\nbackend = \"{display}\"\n" + extra
    )
    return config


@pytest.fixture
def host(tmp_path: Path, request: pytest.FixtureRequest):
    h = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=make_config(tmp_path))
    yield h.start()
    h.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"--- host log ---\n{h.log()}")


class Moonlight:
    """A moonlight-python client with its own identity (config directory)."""

    def __init__(self, host: Host, config_dir: str | None = None):
        from moonlight_python import MoonlightClient
        from moonlight_python.discovery import connect_to_server

        self.host = host
        self.config_dir = config_dir or tempfile.mkdtemp(prefix="moonlight-")
        self.client = MoonlightClient(config_dir=self.config_dir)
        self.server = connect_to_server(host.bind, self.client._identity, host.port_base)

    def pair(self, client_pin: str = "1234", host_pin: str | None = None, name: str | None = None):
        """Pairs, entering `host_pin` on the host the way a user would while the client waits.

        Returns (exception raised by the client or None, the `punktfunk-host pin` result).
        """
        result: dict = {}

        def enter_pin() -> None:
            # The user types the PIN once Moonlight shows it, i.e. while phase 1 waits.
            time.sleep(0.5)
            result["pin"] = self.host.pin(host_pin or client_pin, name)

        t = threading.Thread(target=enter_pin)
        t.start()
        error = None
        try:
            self.client.pair(server=self.server, pin=client_pin)
        except Exception as e:  # the test inspects what the client raised
            error = e
        t.join()
        return error, result.get("pin")

    @property
    def http(self):
        from moonlight_python.http_client import NvHTTP

        http = getattr(self.client, "_http", None)
        if http is None:
            http = NvHTTP(self.host.bind, self.client._identity, http_port=self.host.port_base,
                          https_port=self.host.https_port)
        return http

    def https(self, command: str, args: str = "") -> requests.Response:
        """A raw HTTPS nvhttp request with this client's certificate."""
        cert = (os.path.join(self.config_dir, "cert.pem"), os.path.join(self.config_dir, "key.pem"))
        url = f"https://{self.host.bind}:{self.host.https_port}/{command}?uniqueid=0123456789ABCDEF&uuid=0"
        if args:
            url += "&" + args
        return requests.get(url, cert=cert, verify=False, timeout=10)


@pytest.fixture
def moonlight(host: Host):
    return lambda config_dir=None: Moonlight(host, config_dir)


class WebSession:
    """A logged-in client of the management API (cookie + CSRF token)."""

    def __init__(self, host: Host):
        self.host = host
        self.http = requests.Session()
        self.csrf = ""

    def setup(self, username: str = "admin", password: str = "correct horse battery") -> "WebSession":
        r = self.http.post(
            f"{self.host.web_url}/api/v1/setup",
            json={"setup_code": self.host.setup_code(), "username": username, "password": password},
            timeout=10,
            verify=False,
        )
        assert r.status_code == 201, r.text
        self.csrf = r.json()["csrf_token"]
        return self

    def login(self, username: str = "admin", password: str = "correct horse battery") -> "WebSession":
        r = self.http.post(
            f"{self.host.web_url}/api/v1/auth/login",
            json={"username": username, "password": password},
            timeout=10,
            verify=False,
        )
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        return self

    @property
    def cookie(self) -> str:
        return next(c.value for c in self.http.cookies if c.name == "__Host-pf_session")

    def request(self, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        # verify=False per request: a REQUESTS_CA_BUNDLE in the environment would
        # override the session's setting.
        return self.http.request(
            method, f"{self.host.web_url}{path}", headers=headers, timeout=30, verify=False, **kw
        )
