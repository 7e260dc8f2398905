"""Two clients at once, each in its own session.

Two stock Moonlight clients (moonlight-python, each with its own identity, both paired)
launch the painter: one at 1280x720@60, the other at 1920x1080@30. The host starts a
headless sway for each, at each client's mode, as the session user, with the painter
inside; the painter paints a tag of its session's id (barcode row 2). Both stream at
the same time; each client decodes its own painter's frames at its own resolution.

While both stream: a third paired client's launch is refused with the session limit
(Moonlight shows the message) and both go on; a stray process pinging the video and
audio ports with a guessed payload receives nothing. Then one client quits: the other
keeps streaming without a gap over 100 ms. Revoking the other ends its session.

libmoonlight-common-c holds one connection per process, so each client streams from
a process of its own (streamclient.py).
"""

from __future__ import annotations

import json
import socket
import tempfile
import subprocess
import sys
import time
from pathlib import Path

from conftest import Host, Moonlight, WebSession, free_port_base
from test_sway_session import marked_processes, painter, paired_client, session_tag, wait_for  # noqa: F401 (painter: a fixture)

HERE = Path(__file__).parent


# Windows virtual-key codes each client presses, and the evdev codes the painter
# reports for them.
VK_A, VK_B, KEY_A, KEY_B = 0x41, 0x42, 30, 48


def two_session_config(tmp_path: Path, painter: Path, logs: Path) -> Path:
    """The painter in sway sessions, input into the session (the default), and each
    painter reporting the input it receives to a file named for its session."""
    config = tmp_path / "host.toml"
    config.write_text(
        "[display]\nbackend = \"sway\"\n"
        "[[apps]]\ntitle = \"Painter\"\n"
        f"command = \"PF_INPUT_LOG={logs}/painter-$PUNKTFUNK_SESSION.jsonl {painter}\"\n"
    )
    return config


def keys_in(log: Path) -> set[int]:
    if not log.exists():
        return set()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    return {e["key"] for e in events if e.get("kind") == "key"}


def start_client(host: Host, ml: Moonlight, out: Path, seconds: float, width: int, height: int, fps: int, key: int):
    return subprocess.Popen(
        [sys.executable, str(HERE / "streamclient.py"), "--host", host.bind, "--port", str(host.port_base),
         "--config-dir", ml.config_dir, "--seconds", str(seconds), "--width", str(width), "--height", str(height),
         "--fps", str(fps), "--app", "Painter", "--until-ended", "--press-key", str(key), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def session_of(host: Host, width: int) -> dict | None:
    """The status entry of the session streaming at `width`."""
    for s in host.status().get("sessions", []):
        if (s.get("stream") or {}).get("width") == width:
            return s
    return None


def streaming(host: Host, width: int, frames: int) -> dict | None:
    s = session_of(host, width)
    return s if s and s["stream"]["frames"] > frames else None


def stray_receives_nothing(host: Host) -> int:
    """Pings the video and audio ports with a guessed payload and an old-style PING
    for a second; returns how many bytes came back."""
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stray.bind((host.bind, 0))
    stray.settimeout(0.1)
    got = 0
    deadline = time.monotonic() + 1.0
    seq = 1
    while time.monotonic() < deadline:
        for port in (host.port_base + 9, host.port_base + 11):
            stray.sendto(b"0123456789ABCDEF" + seq.to_bytes(4, "big"), (host.bind, port))
            stray.sendto(b"PING", (host.bind, port))
        seq += 1
        try:
            while True:
                got += len(stray.recv(2048))
        except socket.timeout:
            pass
    stray.close()
    return got


def launch_args(app_id: int) -> str:
    return (f"appid={app_id}&mode=1280x720x60&additionalStates=1&sops=0&rikey=00112233445566778899aabbccddeeff"
            "&rikeyid=7&localAudioPlayMode=0&surroundAudioInfo=196610&corever=1")


def test_two_clients_stream_at_once_each_in_its_own_session(tmp_path: Path, painter: Path):
    logs = Path(tempfile.mkdtemp(prefix="punktfunk-two-sessions-"))
    logs.chmod(0o777)
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(),
                config=two_session_config(tmp_path, painter, logs)).start()
    procs: list[subprocess.Popen] = []
    try:
        a, b = paired_client(host), paired_client(host)
        third = Moonlight(host)
        error, _ = third.pair(name="Third")
        assert error is None, repr(error)
        painter_id = next(int(x.split("<ID>")[1].split("<")[0])
                          for x in third.https("applist").text.split("<App>")[1:] if "<AppTitle>Painter<" in x)

        procs.append(start_client(host, a, tmp_path / "a.json", 90, 1280, 720, 60, VK_A))
        wait_for(lambda: streaming(host, 1280, 30), 60, "the first client's stream")
        procs.append(start_client(host, b, tmp_path / "b.json", 90, 1920, 1080, 30, VK_B))
        wait_for(lambda: streaming(host, 1920, 15), 60, "the second client's stream")
        both_since = time.monotonic()
        st = host.status()
        assert len(st["sessions"]) == 2, st["sessions"]
        a_sid = session_of(host, 1280)["display"]["id"]
        b_sid = session_of(host, 1920)["display"]["id"]
        assert a_sid != b_sid
        assert marked_processes(a_sid) and marked_processes(b_sid)

        # Each client's keys reach its own painter only.
        a_log, b_log = logs / f"painter-{a_sid}.jsonl", logs / f"painter-{b_sid}.jsonl"
        wait_for(lambda: KEY_A in keys_in(a_log) and KEY_B in keys_in(b_log), 20, "each client's keys in its app")
        assert KEY_B not in keys_in(a_log) and KEY_A not in keys_in(b_log), \
            f"input crossed sessions: {keys_in(a_log)} / {keys_in(b_log)}"

        # A third launch is over the limit: a clear error, and both go on.
        r = third.https("launch", launch_args(painter_id))
        assert 'status_code="503"' in r.text and "limit" in r.text, r.text
        # A stray that pings first (a guessed payload, a legacy PING) receives nothing.
        unmatched_before = host.status()["unmatched_datagrams"]
        assert stray_receives_nothing(host) == 0
        unmatched = host.status()["unmatched_datagrams"]
        assert unmatched["video"] > unmatched_before["video"] and unmatched["audio"] > unmatched_before["audio"]
        assert len(host.status()["sessions"]) == 2

        # Both stream together for 10 s, then the first client quits.
        time.sleep(max(0.0, 10.0 - (time.monotonic() - both_since)))
        a_frames = session_of(host, 1280)["stream"]["frames"]
        cancelled_at = time.monotonic()
        r = a.https("cancel")
        assert 'cancel="1"' in r.text or "<cancel>1</cancel>" in r.text, r.text
        # Quiet while the gap is measured: polling `status` (a process each time)
        # and scanning /proc would load the small machine the stream runs on.
        time.sleep(3.5)
        wait_for(lambda: session_of(host, 1280) is None, 10, "the cancelled session to go")
        assert wait_for(lambda: marked_processes(a_sid) == [], 10, "the cancelled session's processes to exit")
        assert marked_processes(b_sid), "the other session's processes remain"
        b_status = wait_for(lambda: streaming(host, 1920, 0), 5, "the other stream")
        time.sleep(2)
        assert streaming(host, 1920, b_status["stream"]["frames"] + 10), "the other stream goes on"

        assert "audio source gone" not in host.log(), "the other session lost its sound with the first"

        # Revoking the other client's device ends its session.
        web = WebSession(host).setup()
        devices = web.request("GET", "/api/v1/devices").json()
        devices = devices if isinstance(devices, list) else devices["devices"]
        b_session = session_of(host, 1920)
        b_fp, b_sent = b_session["client"], b_session["stream"]["frames"]
        device = next(d for d in devices if d["fingerprint"] == b_fp)
        r = web.request("DELETE", f"/api/v1/devices/{device['id']}")
        assert r.status_code == 204, r.text
        wait_for(lambda: host.status()["sessions"] == [], 10, "the revoked device's session to end")
        assert wait_for(lambda: marked_processes(b_sid) == [], 10, "the revoked session's processes to exit")
        remaining = web.request("GET", "/api/v1/devices").json()
        remaining = remaining if isinstance(remaining, list) else remaining["devices"]
        assert b_fp not in {d["fingerprint"] for d in remaining} and len(remaining) == 2

        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        results = {}
        for name in ("a", "b"):
            path = tmp_path / f"{name}.json"
            assert path.exists(), f"client {name} wrote no result: {procs[0 if name == 'a' else 1].stderr.read()[-2000:]}"
            results[name] = json.loads(path.read_text())
    except BaseException:
        print(f"--- host log ---\n{host.log()[-20000:]}")
        for p in procs:
            if p.poll() is not None and p.stderr:
                print(f"--- client exited {p.returncode} ---\n{p.stderr.read()[-3000:]}")
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        host.stop()
        for f in logs.iterdir():
            f.unlink()
        logs.rmdir()

    for name, shape, sid, sent in (("a", [720, 1280], a_sid, a_frames), ("b", [1080, 1920], b_sid, b_sent)):
        r = results[name]
        nums = r["numbers"]
        assert len(nums) > 30, f"{name}: {len(nums)} frames"
        # The frames it decoded against those the host sent it (counted by the host
        # just before that session ended, so the client had them all by then). The
        # painter's own numbering is printed too: with two compositors and two
        # encoders on a small machine, capture skips painter frames, which no
        # client could decode.
        decoded = len(set(nums)) / sent
        painted = len(set(nums)) / (nums[-1] - nums[0] + 1)
        print(f"client {name}: {len(nums)} frames decoded of {sent} sent ({decoded:.3f}); "
              f"{painted:.3f} of the painter's frames; shapes {r['shapes']}")
        assert decoded >= 0.95, f"{name}: only {decoded:.1%} of the frames sent were decoded"
        assert r["shapes"] == [shape], f"{name}: decoded {r['shapes']}, wanted {shape}"
        tags = [t for t in r["tags"] if t is not None]
        assert tags and all(t == session_tag(sid) for t in tags), \
            f"{name}: tags {set(tags)} are not its own painter's {session_tag(sid)}"

    # The second client saw no gap over 100 ms around the first one's cancel.
    def largest_gap(start: float, end: float) -> tuple[float, int]:
        arrivals = [t for t in results["b"]["arrivals"] if start <= t <= end]
        return max(y - x for x, y in zip(arrivals, arrivals[1:])), len(arrivals)

    gap, n = largest_gap(cancelled_at - 1, cancelled_at + 3)
    before, _ = largest_gap(both_since + 1, cancelled_at - 1)
    print(f"the second client's largest gap: {gap * 1000:.0f} ms around the first one's cancel "
          f"({n} frames), {before * 1000:.0f} ms while both streamed")
    assert n > 30, f"the second client decoded {n} frames around the cancel"
    # The cancel must not stall the other stream: no gap over 100 ms. Where the
    # machine is so loaded that the stream already stutters longer while both run
    # (other work on a shared 2-core box), the cancel must at least add no stall of
    # its own beyond that.
    limit = max(0.100, before)
    assert gap <= limit, f"the second stream stalled {gap * 1000:.0f} ms when the first was cancelled"
