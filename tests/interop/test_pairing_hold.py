"""One unauthenticated pairing request (a stranger at 127.0.0.2) no longer holds
pairing for everyone: a real Moonlight client pairs while it waits, the user picks
which request a PIN is for, and a stranger's plain-HTTP /unpair touches nobody
else's attempt."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time

import requests

from conftest import HOST_BIN, Host, Moonlight


def pin_cli(host: Host, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOST_BIN), "pin", *args, *host.args()], capture_output=True, text=True, timeout=60)


def waiting(host: Host) -> dict[str, int]:
    """Address -> request id of every pairing waiting for its PIN (`punktfunk-host pin`)."""
    out = pin_cli(host)
    assert out.returncode == 0, out.stderr
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"request (\d+) from (\S+) \(", out.stdout)}


def hold_pairing(host: Host, source: str, result: dict) -> None:
    """A phase-1 request that will never see its PIN: it just waits."""
    from moonlight_python import MoonlightClient

    config_dir = tempfile.mkdtemp(prefix="moonlight-held-")
    MoonlightClient(config_dir=config_dir)  # creates the identity
    cert = open(os.path.join(config_dir, "cert.pem"), "rb").read().hex()
    s = requests.Session()
    from test_floods import SourceAdapter

    s.mount("http://", SourceAdapter(source))
    try:
        r = s.get(
            f"http://127.0.0.1:{host.port_base}/pair",
            params={"uniqueid": "0123456789ABCDEF", "devicename": "held", "updateState": "1",
                    "phrase": "getservercert", "salt": os.urandom(16).hex(), "clientcert": cert},
            timeout=60,
        )
        result["reply"] = r.text
    except requests.RequestException as e:
        result["error"] = e


def wait_for(host: Host, n: int, timeout: float = 20) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        w = waiting(host)
        if len(w) >= n or time.monotonic() > deadline:
            return w
        time.sleep(0.2)


def test_a_held_pairing_slot_does_not_stop_a_real_client(host: Host):
    held: dict = {}
    holder = threading.Thread(target=hold_pairing, args=(host, "127.0.0.2", held), daemon=True)
    holder.start()
    assert "127.0.0.2" in wait_for(host, 1), host.log()

    ml = Moonlight(host)
    outcome: dict = {}

    def pair() -> None:
        try:
            ml.client.pair(server=ml.server, pin="1234")
        except Exception as e:  # the test inspects it
            outcome["error"] = e

    pairing = threading.Thread(target=pair)
    pairing.start()
    ids = wait_for(host, 2)
    assert set(ids) == {"127.0.0.1", "127.0.0.2"}, ids
    # Two wait: a PIN without a choice is refused and lists them.
    out = pin_cli(host, "1234")
    assert out.returncode != 0 and "several devices" in out.stderr, out
    # A stranger's plain-HTTP /unpair aborts nobody else's attempt.
    stranger = requests.Session()
    from test_floods import SourceAdapter

    stranger.mount("http://", SourceAdapter("127.0.0.3"))
    stranger.get(f"http://127.0.0.1:{host.port_base}/unpair?uniqueid=0123456789ABCDEF", timeout=5)
    assert set(waiting(host)) == {"127.0.0.1", "127.0.0.2"}
    # The PIN typed for the real client pairs it.
    out = pin_cli(host, "1234", "--request", str(ids["127.0.0.1"]), "--name", "Living room")
    pairing.join(60)
    assert out.returncode == 0, out.stderr
    assert "error" not in outcome, repr(outcome.get("error"))
    assert [name for name, _ in host.paired_clients()] == ["Living room"]
    assert [a.name for a in ml.client.apps()][0] == "Desktop"
    # The held request is still just waiting; it got no PIN and paired nothing.
    assert set(waiting(host)) == {"127.0.0.2"}
    assert "reply" not in held
