"""punktfunk/1 clients get real sessions: the reference client (punktfunk-probe) pairs,
asks for a mode, and the host starts a headless sway at exactly that mode as the
session user with the host's app (`[native] app`, here punktfunk-painter) inside it.
The same encode stage GameStream streams from captures and encodes it; the probe
decodes it with FFmpeg. The decoded pictures must be the painter's own (its barcode
row 2 carries the tag of this session's id) at the negotiated size, and when the
client leaves or is revoked, the session's compositor and app must be gone.

Needs root (the host acts as the session user) and sway; CI has both.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import HOST_BIN, REPO, Host, WebSession, free_port_base
from streamclient import session_tag
from test_sway_session import (  # noqa: F401 (painter: a fixture)
    collect,
    marked_processes,
    paired_client,
    painter,
    session_config,
    wait_for,
)

PROBE_BIN = REPO / "target" / "debug" / "punktfunk-probe"
# An unusual size, so a picture at the host's default mode cannot pass; wide enough
# for the 64-cell barcode (1024 pixels).
WIDTH, HEIGHT, FPS = 1152, 648, 30


def native_host(tmp_path: Path, painter: Path) -> tuple[Host, int]:
    assert PROBE_BIN.exists(), f"{PROBE_BIN} is missing: cargo build -p punktfunk-probe"
    port_base = free_port_base()
    native_port = port_base + 40
    config = session_config(tmp_path, painter, extra=f"[native]\nport = {native_port}\napp = \"Painter\"\n")
    return Host(state_dir=tmp_path / "state", port_base=port_base, config=config), native_port


def pair_probe(host: Host, native_port: int, state: Path) -> list[str]:
    """Pairs a probe with the PIN the host arms; returns its command line prefix."""
    probe = [str(PROBE_BIN), "--host", f"127.0.0.1:{native_port}", "--state-dir", str(state)]
    armed = subprocess.run([str(HOST_BIN), "pair-native", *host.args()],
                           capture_output=True, text=True, check=True).stdout
    pin = re.search(r"PIN (\d{6})", armed).group(1)
    paired = subprocess.run([*probe, "pair", pin], capture_output=True, text=True, timeout=60)
    assert paired.returncode == 0, f"{paired.stdout}\n{paired.stderr}\n{host.log()}"
    return probe


def stream_args(seconds: int) -> list[str]:
    return ["stream", "--seconds", str(seconds), "--width", str(WIDTH), "--height", str(HEIGHT),
            "--fps", str(FPS), "--bitrate-kbps", "8000", "--decode", "--json"]


def native_session(host: Host) -> dict | None:
    """The status entry of the running native session, once its display runs."""
    for s in host.status().get("sessions", []):
        if s.get("protocol") == "native" and (s.get("display") or {}).get("state") == "running":
            return s
    return None


def test_a_native_client_streams_the_app_of_its_own_sway_session_and_it_ends_with_the_client(
        tmp_path: Path, painter: Path):
    host, native_port = native_host(tmp_path, painter)
    host.start()
    try:
        probe = pair_probe(host, native_port, tmp_path / "probe")
        run = subprocess.Popen([*probe, *stream_args(8)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        session = wait_for(lambda: native_session(host), 20, "the native session's display")
        display = session["display"]
        sid = display["id"]
        assert display["backend"] == "sway", display
        assert display["mode"] == f"{WIDTH}x{HEIGHT}x{FPS}", display
        assert marked_processes(sid), "the session's compositor and app run, carrying its marker"
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"{out}\n{err}\n{host.log()}"
        r = json.loads(out)
        print(f"\nnative sway {WIDTH}x{HEIGHT}@{FPS}: decoded {r['decoded']}, barcodes {r['barcodes']}, "
              f"sizes {r['sizes']}, capture->decoded p50/p99 "
              f"{r['decoded_us'][0] / 1000:.1f}/{r['decoded_us'][1] / 1000:.1f} ms")
        # The painter's own pictures, at the negotiated size, in order.
        assert r["decoded"] >= 60, r
        assert r["sizes"] == [[WIDTH, HEIGHT]], r
        assert r["barcodes"] >= 0.9 * r["decoded"], r
        assert r["numbers_in_order"], r
        assert r["tags"] == [session_tag(sid)], f"frames must come from this session's painter: {r}"
        # The client left: its session and every process of it are gone.
        assert wait_for(lambda: marked_processes(sid) == [], 10, "the session's processes to exit")
        assert wait_for(lambda: native_session(host) is None, 5, "the session to leave the status")
    finally:
        host.stop()


def test_revoking_a_native_device_ends_its_session_and_processes(tmp_path: Path, painter: Path):
    host, native_port = native_host(tmp_path, painter)
    host.start()
    run = None
    try:
        probe = pair_probe(host, native_port, tmp_path / "probe")
        run = subprocess.Popen([*probe, *stream_args(60)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sid = wait_for(lambda: native_session(host), 20, "the native session's display")["display"]["id"]
        assert marked_processes(sid)
        web = WebSession(host).setup()
        devices = web.request("GET", "/api/v1/devices").json()
        devices = devices if isinstance(devices, list) else devices["devices"]
        assert len(devices) == 1, devices
        r = web.request("DELETE", f"/api/v1/devices/{devices[0]['id']}")
        assert r.status_code == 204, r.text
        assert wait_for(lambda: marked_processes(sid) == [], 10, "the revoked session's processes to exit")
        assert wait_for(lambda: native_session(host) is None, 5, "the revoked session to leave the status")
        assert "native session started" in host.log()
    finally:
        if run is not None:
            run.kill()
            run.wait()
        host.stop()


def test_a_gamestream_client_and_a_native_client_each_get_their_own_session(tmp_path: Path, painter: Path):
    host, native_port = native_host(tmp_path, painter)
    host.start()
    try:
        probe = pair_probe(host, native_port, tmp_path / "probe")
        ml = paired_client(host)
        run = subprocess.Popen([*probe, *stream_args(12)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        native_sid = wait_for(lambda: native_session(host), 20, "the native session's display")["display"]["id"]
        gs = collect(ml.client, "Painter", 5, 1280, 720)
        gs_sid = next(s for s in host.status()["sessions"] if s.get("protocol") == "gamestream")["display"]["id"]
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"{out}\n{err}\n{host.log()}"
        r = json.loads(out)
        print(f"\nat once: GameStream decoded {gs['decoded']} at 1280x720, native decoded {r['decoded']} at {r['sizes']}")
        assert native_sid != gs_sid
        # Each client sees its own session's painter, at its own mode.
        assert gs["numbers"] and set(gs["tags"]) == {session_tag(gs_sid)}, gs["tags"][:5]
        assert all(shape == (720, 1280) for shape in gs["shapes"])
        assert r["decoded"] >= 30 and r["sizes"] == [[WIDTH, HEIGHT]], r
        assert r["tags"] == [session_tag(native_sid)], r
        assert wait_for(lambda: marked_processes(native_sid) == [], 10, "the native session's processes to exit")
        assert marked_processes(gs_sid), "the GameStream session runs on"
    finally:
        host.stop()


def test_a_native_session_whose_app_exits_ends_and_tells_the_client(tmp_path: Path, painter: Path):
    port_base = free_port_base()
    native_port = port_base + 40
    config = session_config(tmp_path, painter, extra=f"[native]\nport = {native_port}\napp = \"Painter exits\"\n")
    host = Host(state_dir=tmp_path / "state", port_base=port_base, config=config)
    host.start()
    run = None
    try:
        probe = pair_probe(host, native_port, tmp_path / "probe")
        run = subprocess.Popen([*probe, *stream_args(30)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sid = wait_for(lambda: native_session(host), 20, "the native session's display")["display"]["id"]
        # The painter exits by itself after 3 s with code 7: the session ends with it.
        ended = wait_for(lambda: (s := host.status()["session"]) and s["id"] == sid and s["state"] == "app_exited" and s,
                         15, "the session to end with its app")
        assert ended["exit_code"] == 7, ended
        assert wait_for(lambda: marked_processes(sid) == [], 10, "the session's processes to exit")
        assert wait_for(lambda: native_session(host) is None, 5, "the session to leave the status")
        assert wait_for(lambda: "native connection ended: the session ended: the app exited by itself" in host.log(),
                        10, "the connection to end with the app's exit")
    finally:
        if run is not None:
            run.kill()
            run.wait()
        host.stop()


def test_max_sessions_counts_native_and_gamestream_sessions_together(tmp_path: Path, painter: Path):
    """With `[session] max_sessions = 1`, a running punktfunk/1 session makes a
    Moonlight launch fail with the 503 Moonlight shows, and a running GameStream session
    makes a native client's mode refused with the reason; no second compositor starts
    either way, and the running session goes on."""
    import os

    import pytest
    from moonlight_python.exceptions import HttpResponseError

    port_base = free_port_base()
    native_port = port_base + 40
    config = session_config(tmp_path, painter, extra=(
        f"[session]\nmax_sessions = 1\n[native]\nport = {native_port}\napp = \"Painter\"\n"))
    host = Host(state_dir=tmp_path / "state", port_base=port_base, config=config)
    host.start()
    run = None
    try:
        probe = pair_probe(host, native_port, tmp_path / "probe")
        ml = paired_client(host)

        # A native session holds the only place: Moonlight's launch is refused.
        run = subprocess.Popen([*probe, *stream_args(8)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        native_sid = wait_for(lambda: native_session(host), 20, "the native session's display")["display"]["id"]
        with pytest.raises(HttpResponseError) as e:
            ml.http.launch_app(
                app_id=1, width=640, height=360, fps=30, bitrate=4000, supported_video_formats=1,
                ri_aes_key=os.urandom(16), ri_aes_iv=os.urandom(16), surroundaudioinfo=196610,
            )
        assert e.value.status_code == 503
        assert [s.get("protocol") for s in host.status()["sessions"]] == ["native"], host.status()["sessions"]
        assert marked_processes(native_sid), "the native session runs on"
        out, err = run.communicate(timeout=120)
        run = None
        assert json.loads(out)["decoded"] >= 30, f"the native stream went on: {out}\n{err}"
        assert wait_for(lambda: marked_processes(native_sid) == [], 10, "the native session's processes to exit")
        assert wait_for(lambda: native_session(host) is None, 5, "the native session to leave the status")

        # Now a GameStream session holds it: the native client hears why it is refused.
        with ml.client.stream(app="Painter", width=640, height=360, fps=30, bitrate_kbps=4000, codec="h264",
                              record_audio=False):
            gs_sid = wait_for(
                lambda: next((s for s in host.status()["sessions"] if s.get("protocol") == "gamestream"), None),
                20, "the GameStream session")["display"]["id"]
            refused = subprocess.run([*probe, *stream_args(5)], capture_output=True, text=True, timeout=60)
            assert refused.returncode != 0, f"{refused.stdout}\n{host.log()}"
            assert "already streams to 1 devices" in refused.stderr, refused.stderr
            assert "native session refused" in host.log()
            assert [s.get("protocol") for s in host.status()["sessions"]] == ["gamestream"]
            assert marked_processes(gs_sid), "the GameStream session runs on"
    finally:
        if run is not None:
            run.kill()
            run.wait()
        host.stop()
