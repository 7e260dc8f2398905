"""Floods from one machine on the LAN (here 127.0.0.2 and up, while the user is at
127.0.0.1): idle connections on every TCP port, stalled request bodies and bursts of
wrong logins. The host stays alive, /serverinfo and the console answer within a
second, its memory stays bounded, and a burst of guesses gets exactly the allowed
number of tries. Every flood is bounded in connections and in time."""

from __future__ import annotations

import resource
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import Host, WebSession

# The soft default a host gets without the unit's LimitNOFILE: what a flood exhausted.
DEFAULT_NOFILE = 1024


class SourceAdapter(HTTPAdapter):
    """Sends from a chosen local address (another machine on the LAN)."""

    def __init__(self, source: str, **kw):
        self.source = source
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kw)


def session_from(source: str) -> requests.Session:
    s = requests.Session()
    s.mount("https://", SourceAdapter(source, pool_maxsize=64))
    s.mount("http://", SourceAdapter(source, pool_maxsize=64))
    return s


@pytest.fixture(autouse=True)
def enough_descriptors_for_the_attacker():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def limit_host_descriptors(host: Host) -> None:
    """Gives the running host the usual default open-file limit (soft and hard)."""
    resource.prlimit(host.proc.pid, resource.RLIMIT_NOFILE, (DEFAULT_NOFILE, DEFAULT_NOFILE))


def rss_kib(host: Host, field: str = "VmRSS") -> int:
    for line in open(f"/proc/{host.proc.pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def answers_within(host: Host, seconds: float = 1.0) -> list[str]:
    """What the user at 127.0.0.1 sees: /serverinfo and the console, each timed."""
    problems = []
    for name, url, kw in [
        ("serverinfo", f"http://127.0.0.1:{host.port_base}/serverinfo", {}),
        ("console", f"{host.web_url}/api/v1/setup", {"verify": False}),
    ]:
        start = time.monotonic()
        try:
            r = requests.get(url, timeout=seconds, **kw)
            took = time.monotonic() - start
            print(f"{name}: {r.status_code} in {took * 1000:.0f} ms")
            if r.status_code != 200 or took > seconds:
                problems.append(f"{name}: {r.status_code} in {took:.2f} s")
        except requests.RequestException as e:
            problems.append(f"{name}: {type(e).__name__} after {time.monotonic() - start:.2f} s")
    return problems


def test_an_idle_connection_flood_leaves_the_host_answering(host: Host):
    limit_host_descriptors(host)
    # 1,100 idle connections to the HTTP port (more than the host has descriptors),
    # and 100 to each of the other TCP ports.
    ports = [host.port_base] * 1100 + [host.https_port, host.web_port, host.port_base + 21] * 100
    flood: list[socket.socket] = []
    deadline = time.monotonic() + 30
    try:
        for port in ports:
            if time.monotonic() > deadline:
                break
            s = socket.socket()
            s.settimeout(2)
            s.bind(("127.0.0.2", 0))
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            flood.append(s)
        assert len(flood) > 1100, len(flood)
        time.sleep(1)
        problems = answers_within(host)
        assert not problems, f"{problems}\n{host.log()}"
        # The control socket (punktfunk-host status) answers too, and the host lives.
        assert host.status()["app"] is None
        assert host.proc.poll() is None, host.log()
    finally:
        for s in flood:
            s.close()
    time.sleep(0.5)
    assert host.proc.poll() is None, host.log()
    assert not answers_within(host)
    assert "too many open connections" in host.log()


def stalled_body(host: Host, announced: int, sent: int, stalled: list, errors: list) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.socket()
    raw.settimeout(5)
    raw.bind(("127.0.0.2", 0))
    try:
        raw.connect(("127.0.0.1", host.web_port))
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(
            f"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{host.web_port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {announced}\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        left = sent
        while left > 0:
            tls.sendall(chunk[:left])
            left -= len(chunk)
        stalled.append(tls)
    except OSError as e:  # the host may refuse or cut the body: that is the point
        errors.append(e)
        raw.close()


def test_stalled_bodies_neither_block_the_console_nor_keep_memory(host: Host):
    limit_host_descriptors(host)
    WebSession(host).setup()
    before = rss_kib(host)
    stalled: list = []
    errors: list = []
    # 48 logins announcing 4 MiB bodies, each sending all but the last 64 KiB, and 600
    # announcing a small body that never comes.
    workers = [threading.Thread(target=stalled_body, args=(host, 4 << 20, (4 << 20) - 65536, stalled, errors))
               for _ in range(48)]
    workers += [threading.Thread(target=stalled_body, args=(host, 100, 10, stalled, errors)) for _ in range(600)]
    try:
        for i in range(0, len(workers), 50):
            batch = workers[i : i + 50]
            for w in batch:
                w.start()
            for w in batch:
                w.join(30)
        problems = answers_within(host)
        assert not problems, f"{problems}\n{host.log()}"
        grown_mib = (rss_kib(host) - before) / 1024
        print(f"RSS grew by {grown_mib:.1f} MiB with {len(stalled)} stalled bodies held open ({len(errors)} cut off)")
        assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB holding stalled bodies"
        assert host.proc.poll() is None, host.log()
    finally:
        for s in stalled:
            s.close()
    assert not answers_within(host)


def test_concurrent_wrong_logins_keep_memory_bounded(host: Host):
    WebSession(host).setup()
    body = {"username": "nobody", "password": "wrong password 123"}

    def attempt(i: int) -> int:
        s = session_from(f"127.0.0.{10 + i % 8}")
        try:
            return s.post(f"{host.web_url}/api/v1/auth/login", json=body, verify=False, timeout=60).status_code
        except requests.RequestException:
            return -1
        finally:
            s.close()

    # The encoder probe at start-up has its own peak (VmHWM), so sample during the burst.
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_kib(host))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=48) as pool:
            codes = list(pool.map(attempt, range(96)))
    finally:
        done.set()
        sampler.join()
    peak_mib = max(samples) / 1024
    print(f"peak RSS {peak_mib:.0f} MiB during 96 concurrent logins (before: {samples[0] / 1024:.0f} MiB)")
    assert peak_mib < 300, f"peak RSS {peak_mib:.0f} MiB during 96 concurrent logins"
    assert set(codes) <= {401, 429}, codes
    assert host.proc.poll() is None
    assert not answers_within(host)


def test_a_burst_of_guesses_gets_exactly_the_allowed_tries(host: Host):
    WebSession(host).setup()
    body = {"username": "admin", "password": "not the password"}
    workers = 20
    ready = threading.Barrier(workers)

    def guesser(_: int) -> list[int]:
        s = session_from("127.0.0.3")
        try:
            # Connected (TLS done) before the burst, so the guesses really are concurrent.
            s.get(f"{host.web_url}/api/v1/setup", verify=False, timeout=30)
            ready.wait(30)
            return [
                s.post(f"{host.web_url}/api/v1/auth/login", json=body, verify=False, timeout=60).status_code
                for _ in range(5)
            ]
        finally:
            s.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = [c for batch in pool.map(guesser, range(workers)) for c in batch]
    # Five tries: four "wrong password", the fifth locks the address out; the rest
    # are refused without being tried.
    assert codes.count(401) == 4, sorted(codes)
    assert codes.count(429) == len(codes) - 4, sorted(codes)
    # Every password the host tried is logged as a failed login: five, not one per
    # request that passed the lockout check before the first failure was counted.
    tried = [line for line in host.log().splitlines()
             if "failed web console login" in line and '"127.0.0.3"' in line]
    assert len(tried) == 5, "\n".join(tried)
    # The user at another address is not locked out.
    WebSession(host).login()
