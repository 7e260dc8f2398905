"""A real session on the appliance: the system extension merged into a root with sway,
booted with systemd-nspawn, the host running as its hardened system service. A stock
Moonlight client (moonlight-python, in the container's network namespace) pairs,
launches an app, and decodes the app's own pixels, while the session runs as units of
the punktfunk user's lingering manager, outside the service's sandbox (bootc/README.md,
"The session"). Cancelling leaves no unit and no process of the session behind.

The app is punktfunk-painter (tests/painter): it paints the barcode the interop tests
read, plus a tag of its session id in barcode row 2 that the test pattern never has.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, Container, boot, require, run

PAINTER_BIN = REPO / "target" / "debug" / "punktfunk-painter"
STREAMCLIENT = REPO / "tests" / "interop" / "streamclient.py"
PORT = 47989
HTTPS_PORT = PORT - 5
SESSION_UNITS = "punktfunk-session-*"

sys.path.insert(0, str(STREAMCLIENT.parent))
from streamclient import session_tag, summarize  # noqa: E402


@pytest.fixture(scope="module")
def box(rootfs_tarball: Path, sysext_raw: Path, tmp_path_factory: pytest.TempPathFactory):
    require(PAINTER_BIN.exists(), f"{PAINTER_BIN} is missing: cargo build -p punktfunk-painter")

    def prepare(root: Path) -> None:
        painter = root / "usr/local/bin/punktfunk-painter"
        painter.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PAINTER_BIN, painter)
        painter.chmod(0o755)
        dropins = root / "etc/punktfunk/host.toml.d"
        dropins.mkdir(parents=True, exist_ok=True)
        # The shipped defaults otherwise: display "auto" must pick sway here (no GPU).
        (dropins / "50-painter.toml").write_text(
            '[[apps]]\ntitle = "Painter"\ncommand = "/usr/local/bin/punktfunk-painter"\n'
        )

    with boot(rootfs_tarball, sysext_raw, tmp_path_factory.mktemp("session-boot"), prepare) as c:
        deadline = time.monotonic() + 60
        while c.run("systemctl", "is-active", "punktfunk-host.service").stdout.strip() != "active":
            assert time.monotonic() < deadline, c.out("journalctl", "--no-pager", "-u", "punktfunk-host.service")
            time.sleep(0.5)
        yield c


def client(c: Container, config_dir: Path, out: Path, *args: str) -> subprocess.Popen:
    """streamclient.py in the container's network namespace: a client on its LAN."""
    return subprocess.Popen(
        ["ip", "netns", "exec", c.netns, sys.executable, str(STREAMCLIENT), "--host", "127.0.0.1",
         "--port", str(PORT), "--config-dir", str(config_dir), "--out", str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def host_journal(c: Container) -> str:
    return c.out("journalctl", "--no-pager", "-o", "cat", "-u", "punktfunk-host.service")[-4000:]


def session_units(c: Container) -> list[str]:
    out = c.out("systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", SESSION_UNITS, user="punktfunk")
    return [line.split()[0] for line in out.splitlines() if line.strip() and "inactive" not in line.split()[2:3]]


def session_processes(c: Container) -> list[tuple[str, str, str]]:
    """`pid comm cgroup` of every process in a session unit's cgroup (everything the
    compositor and the app started stays in their units' cgroups)."""
    script = (
        'for f in /proc/[0-9]*/cgroup; do d=${f%/cgroup}; '
        'if grep -q punktfunk-session- "$f" 2>/dev/null; then '
        'echo "${d#/proc/} $(cat $d/comm 2>/dev/null) $(cat $f)"; fi; done'
    )
    rows = [line.split(maxsplit=2) for line in c.out("sh", "-c", script).splitlines()]
    return [(r[0], r[1], r[2]) for r in rows if len(r) == 3]  # not one that just exited


def test_doctor_picks_sway_without_a_gpu(box: Container) -> None:
    r = box.run("punktfunk-host", "doctor", user="punktfunk")
    assert "sway" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 0, f"doctor says no real session can run:\n{r.stdout}\n{r.stderr}"


def test_a_paired_client_streams_the_app_from_a_unit_of_the_users_manager(box: Container, tmp_path: Path) -> None:
    config_dir = tmp_path / "moonlight"
    config_dir.mkdir()
    pairing = client(box, config_dir, tmp_path / "pair.json", "--pair-pin", "4711")
    deadline = time.monotonic() + 30
    while True:  # the user types the PIN Moonlight shows, once the request is there
        time.sleep(0.5)
        r = box.run("punktfunk-host", "pin", "4711", user="punktfunk")
        if r.returncode == 0 or time.monotonic() > deadline or pairing.poll() is not None:
            break
    out, _ = pairing.communicate(timeout=60)
    assert pairing.returncode == 0, f"pairing failed: {out}\n{r.stdout}{r.stderr}\n{host_journal(box)}"

    stream = client(box, config_dir, tmp_path / "stream.json", "--app", "Painter", "--seconds", "8")
    # While it streams: the session is units of the punktfunk user's manager.
    units: list[str] = []
    status: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and stream.poll() is None:
        time.sleep(1)
        units = session_units(box)
        r = box.run("punktfunk-host", "status", user="punktfunk")
        status = json.loads(r.stdout) if r.returncode == 0 else {}
        if units and (status.get("stream") or {}).get("frames", 0) > 60:
            break
    painter = session_processes(box)
    out, _ = stream.communicate(timeout=60)
    assert stream.returncode == 0, f"{out}\n{host_journal(box)}"
    assert any(u.endswith("-sway.service") for u in units), (units, host_journal(box))
    # The painter and sway run in the user manager's units, not in the host's service.
    assert any(comm.startswith("punktfunk-paint") and "/user@" in cg and "-app.service" in cg
               for _, comm, cg in painter), painter
    assert any(comm == "sway" and "/user@" in cg and "-sway.service" in cg for _, comm, cg in painter), painter

    result = json.loads((tmp_path / "stream.json").read_text())
    s = summarize(result)
    assert result["shapes"] == [[720, 1280]], result["shapes"]
    assert s["ratio"] >= 0.95 and s["increasing"], s
    session_id = (status.get("session") or {}).get("id")
    assert session_id, status
    assert result["tags"] == [session_tag(str(session_id))], "frames must come from the session's painter"
    print(f"appliance session: {s['decoded']} frames decoded of {s['sent']}, units {units}")

    # Cancel, as Moonlight's "Quit app" does: nothing of the session remains.
    r = run(["ip", "netns", "exec", box.netns, "curl", "-sS", "-k", "--max-time", "20",
             "--cert", str(config_dir / "cert.pem"), "--key", str(config_dir / "key.pem"),
             f"https://127.0.0.1:{HTTPS_PORT}/cancel?uniqueid=0123456789ABCDEF&uuid=0"])
    assert r.returncode == 0 and "<cancel>1</cancel>" in r.stdout, r.stdout + r.stderr
    deadline = time.monotonic() + 15
    while (session_units(box) or session_processes(box)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_units(box) == [] and session_processes(box) == [], host_journal(box)
    assert box.out("systemctl", "is-active", "punktfunk-host.service").strip() == "active"
