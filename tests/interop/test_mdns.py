"""Moonlight finds the host by itself: python-zeroconf (an mDNS implementation of its
own), browsing from another network namespace over a veth, sees `_nvstream._tcp`
with the host's name and HTTP port, and sees it go when the host stops. With
`[discovery] mdns = false` nothing is announced."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import Host, free_port_base
from netns import require_root, veth_namespace

BROWSER = r"""
import json, sys, time
from zeroconf import ServiceBrowser, Zeroconf

class Listener:
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        print(json.dumps({"event": "added", "name": name,
                          "port": info.port if info else None,
                          "server": info.server if info else None,
                          "addresses": info.parsed_addresses() if info else []}), flush=True)
    def remove_service(self, zc, type_, name):
        print(json.dumps({"event": "removed", "name": name}), flush=True)
    def update_service(self, zc, type_, name):
        pass

zc = Zeroconf()
ServiceBrowser(zc, "_nvstream._tcp.local.", Listener())
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    time.sleep(0.1)
zc.close()
"""


@pytest.fixture
def lan():
    """(namespace, host address): a veth pair into a fresh namespace, like a LAN."""
    require_root("the mDNS test")
    with veth_namespace("mdns", 78) as (ns, host_ip, _):
        yield ns, host_ip


def config(tmp_path: Path, name: str, extra: str = "") -> Path:
    path = tmp_path / "host.toml"
    path.write_text(
        f'hostname = "{name}"\n{extra}[input]\nbackend = "recording"\n'
        f'recording_path = "{tmp_path / "input-events.jsonl"}"\n'
    )
    return path


class Browser:
    """python-zeroconf browsing inside the namespace; events as they come."""

    def __init__(self, ns: str, seconds: float):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", BROWSER, str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                self.events.append(json.loads(line))

    def poll(self) -> list[dict]:
        return list(self.events)

    def wait_for(self, pred, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.poll():
                if pred(e):
                    return e
            time.sleep(0.1)
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


def test_moonlight_finds_the_host_and_sees_it_leave(tmp_path, lan):
    ns, host_ip = lan
    name = f"pf-mdns-{os.getpid()}-{random.randrange(1000)}"
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=config(tmp_path, name))
    browser = Browser(ns, 40)
    try:
        host.start()
        ours = f"{name}._nvstream._tcp.local."
        added = browser.wait_for(lambda e: e["event"] == "added" and e["name"] == ours, 20)
        assert added, f"{browser.poll()}\n{host.log()}"
        assert added["port"] == host.port_base
        assert added["server"] == f"{name}.local."
        assert host_ip in added["addresses"], added
        host.stop()
        removed = browser.wait_for(lambda e: e["event"] == "removed" and e["name"] == ours, 10)
        assert removed, f"the host's goodbye was not seen: {browser.poll()}"
    finally:
        host.stop()
        browser.close()


def test_no_announcement_when_switched_off(tmp_path, lan):
    ns, _ = lan
    name = f"pf-mdns-off-{os.getpid()}-{random.randrange(1000)}"
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(),
                config=config(tmp_path, name, "[discovery]\nmdns = false\n"))
    browser = Browser(ns, 8)
    try:
        host.start()
        seen = browser.wait_for(lambda e: e.get("name", "").startswith(name), 6)
        assert seen is None, seen
        assert "mDNS discovery is off" in host.log()
    finally:
        host.stop()
        browser.close()
