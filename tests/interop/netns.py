"""A private network for tests: a veth pair from this machine into a fresh network
namespace, where a client (moonlight-python, the probe, a zeroconf browser) lives at
its own address, as on a LAN. Needs root."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def require_root(what: str) -> None:
    """Skips without root; under CI a skip would hide the test, so it fails instead."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail(f"{what} needs root for network namespaces")
        pytest.skip("needs root for network namespaces")


@contextmanager
def veth_namespace(prefix: str, subnet: int, *, segmentation_offload: bool = True) -> Iterator[tuple[str, str, str]]:
    """(namespace, host address, client address) on 10.<subnet>.<n>.0/24, with names
    unique to this process so parallel runs never collide. The namespace (and the veth
    pair with it) is deleted on exit."""
    n = random.randrange(1, 250)
    tag = f"{os.getpid() % 100000}{n}"
    ns, host_if, client_if = f"pf{prefix}{tag}", f"pfh{tag}", f"pfc{tag}"
    host_ip, client_ip = f"10.{subnet}.{n}.1", f"10.{subnet}.{n}.2"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", client_if)
        sh("ip", "link", "set", client_if, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        if not segmentation_offload:
            # Like a real NIC, put separate datagrams on the wire: without this, veth
            # passes the host's UDP GSO batches through whole, and loss rules in the
            # namespace would drop 40 packets at once.
            sh("ethtool", "-K", host_if, "tx-udp-segmentation", "off")
        sh("ip", "-n", ns, "addr", "add", f"{client_ip}/24", "dev", client_if)
        sh("ip", "-n", ns, "link", "set", client_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns, host_ip, client_ip
    finally:
        # Deleting the namespace deletes the veth pair with it.
        subprocess.run(["ip", "netns", "del", ns], check=False)
