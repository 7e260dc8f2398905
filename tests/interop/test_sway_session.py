"""Real game sessions: a stock Moonlight client launches an app, the host starts a
headless sway at the client's mode as the session user with the app inside it, and the
client decodes the app's own pixels.

The app is punktfunk-painter (tests/painter): a Wayland client that paints the colour
bars and the frame barcode (paint time, frame number) at the output's refresh, plus a
third barcode row with a tag of the session id, so a test knows it sees *this*
session's app and not the host's built-in test pattern.

Needs root (the host acts as the session user, which scripts/session-user creates) and
sway; CI has both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import HOST_BIN, REPO, Host, Moonlight, free_port_base
from streamclient import frames_for, read_barcode, read_row, session_tag

PAINTER_BIN = Path(os.environ.get("PUNKTFUNK_PAINTER_BIN", REPO / "target" / "debug" / "punktfunk-painter"))
SESSION_ENV = "PUNKTFUNK_SESSION"


def marked_processes(session_id: str) -> list[int]:
    """Processes whose environment carries the session's marker."""
    needle = f"{SESSION_ENV}={session_id}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != "Z":
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="module")
def painter():
    """The painter where the session user can run it, and the session user itself."""
    assert PAINTER_BIN.exists(), f"{PAINTER_BIN} is missing: cargo build -p punktfunk-painter"
    assert shutil.which("sway"), "sway is not installed (scripts/system-packages.txt has it)"
    setup = subprocess.run([str(REPO / "scripts" / "session-user")], capture_output=True, text=True)
    assert setup.returncode == 0, f"scripts/session-user failed (needs root): {setup.stderr}"
    # pytest's temp dirs are private to root: the session user could not run it there.
    d = Path(tempfile.mkdtemp(prefix="punktfunk-painter-"))
    d.chmod(0o755)
    dst = d / "punktfunk-painter"
    shutil.copy(PAINTER_BIN, dst)
    dst.chmod(0o755)
    yield dst
    shutil.rmtree(d, ignore_errors=True)


def session_config(tmp_path: Path, painter: Path, display: str = "", extra: str = "") -> Path:
    config = tmp_path / "host.toml"
    config.write_text(
        "[input]\nbackend = \"recording\"\n"
        f"recording_path = \"{tmp_path / 'input-events.jsonl'}\"\n"
        f"[display]\nbackend = \"sway\"\n{display}\n{extra}\n"
        "[[apps]]\ntitle = \"Painter\"\n"
        f"command = \"{painter}\"\n"
        "[[apps]]\ntitle = \"Painter exits\"\n"
        f"command = \"{painter} --exit-after 3 --exit-code 7\"\n"
        "[[apps]]\ntitle = \"Nonexistent\"\n"
        "command = \"punktfunk-no-such-game --fullscreen\"\n"
    )
    return config


@pytest.fixture
def session_host(tmp_path: Path, painter: Path, request: pytest.FixtureRequest):
    h = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=session_config(tmp_path, painter))
    yield h.start()
    h.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- host log ---\n{h.log()}")


def paired_client(host: Host) -> Moonlight:
    ml = Moonlight(host)
    error, _ = ml.pair()
    assert error is None, repr(error)
    return ml


def collect(client, app: str, seconds: float, width: int, height: int, fps: int = 60, on_frame=None, host: Host | None = None) -> dict:
    """Streams `app` and reads every decoded frame's barcodes. With `host`, also how
    many frames the host had sent when the client stopped reading."""
    numbers, shapes, latency_us, tags = [], [], [], []
    unreadable = 0
    sent = None
    with client.stream(app=app, width=width, height=height, fps=fps, bitrate_kbps=10000, codec="h264", record_audio=False):
        for frame in frames_for(client, seconds):
            now_us = time.time() * 1e6
            shapes.append(frame.data.shape[:2])
            code = read_barcode(frame.data)
            if code is None:
                unreadable += 1
            else:
                painted_us, number = code
                numbers.append(number)
                latency_us.append(now_us - painted_us)
                tags.append(read_row(frame.data, 2))
            if on_frame:
                on_frame(frame)
        if host is not None:
            sent = (host.status()["stream"] or {}).get("frames")
    return {"numbers": numbers, "shapes": shapes, "latency_us": latency_us, "tags": tags, "unreadable": unreadable,
            "decoded": len(shapes), "sent": sent}


def ratio(numbers: list[int]) -> float:
    span = numbers[-1] - numbers[0] + 1
    return len(set(numbers)) / span


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU use of the host, sway and the app (every other process of the session)
    between frames 60 and 360 of a stream. Reads only /proc, so it costs the stream
    nothing."""

    def __init__(self, host: Host):
        self.host = host
        self.frames = 0
        self.start: tuple[float, dict[str, float]] | None = None
        self.result: dict[str, float] = {}

    def sample(self) -> dict[str, float]:
        out = {"host": cpu_seconds(self.host.proc.pid), "sway": 0.0, "app": 0.0}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes()
                if f"{SESSION_ENV}=".encode() not in env:
                    continue
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
                out["sway" if comm == "sway" else "app"] += cpu_seconds(int(entry))
            except OSError:
                continue
        return out

    def __call__(self, frame) -> None:
        self.frames += 1
        if self.frames == 60:
            self.start = (time.monotonic(), self.sample())
        elif self.frames == 360 and self.start:
            t0, before = self.start
            after, dt = self.sample(), time.monotonic() - t0
            self.result = {k: 100 * (after[k] - before[k]) / dt for k in before}


def test_the_app_in_a_sway_session_streams_resumes_and_cancels(session_host: Host):
    ml = paired_client(session_host)
    client = ml.client
    t0 = time.monotonic()
    cpu = CpuMeter(session_host)
    first = collect(client, "Painter", 8, 1280, 720, on_frame=cpu, host=session_host)
    status = session_host.status()
    session = status["session"]
    assert session is not None and session["backend"] == "sway", status
    assert session["state"] == "running", session
    sid = session["id"]

    # The client decodes the painter's own frames at the client's mode.
    assert first["numbers"], f"no readable frame ({first['unreadable']} unreadable)\n{session_host.log()}"
    assert all(s == (720, 1280) for s in first["shapes"]), set(first["shapes"])
    assert set(first["tags"]) == {session_tag(sid)}, "frames must come from this session's painter"
    nums = first["numbers"]
    # Never backwards; a number may repeat when the host re-sends the last picture of a
    # still screen (the painter starved of CPU for over 100 ms).
    assert all(b >= a for a, b in zip(nums, nums[1:])), "barcode frame numbers must increase"
    assert nums[-1] - nums[0] > 60, "the painter's frames advance"
    r = ratio(nums)
    decoded_share = first["decoded"] / first["sent"]
    lat = np.array(first["latency_us"]) / 1000
    print(
        f"\nsway 1280x720@60: decoded {first['decoded']} of {first['sent']} frames sent ({decoded_share:.1%}); "
        f"{len(set(nums))} distinct of {nums[-1] - nums[0] + 1} painted ({r:.1%}), "
        f"paint-to-decode latency p50 {np.median(lat):.1f} ms p95 {np.percentile(lat, 95):.1f} ms, "
        f"launch to first frame {session['launch_to_first_frame_ms']:.0f} ms; "
        f"CPU (% of one core) {', '.join(f'{k} {v:.0f}' for k, v in cpu.result.items())}"
    )
    # What the host sends, the client decodes (the frames in flight when it stopped
    # reading aside).
    assert decoded_share >= 0.95, f"decoded {first['decoded']} of {first['sent']} frames sent"
    assert first["unreadable"] <= 2, f"{first['unreadable']} decoded frames had an unreadable barcode"
    # And the capture keeps up with the app: on an idle machine ~99% of the painter's
    # frames; the margin is for CPU starvation on a shared 2-core machine.
    assert r >= 0.85, f"only {len(set(nums))} of {nums[-1] - nums[0] + 1} painted frames reached the client"
    assert session["launch_to_first_frame_ms"] is not None and session["launch_to_first_frame_ms"] < 10_000
    assert "first frame of the session captured" in session_host.log()
    pids = [session["compositor_pid"], session["app_pid"]]
    assert all(pids), session

    # Resume at another mode: the same session (same painter), now at 1920x1080.
    second = collect(client, "Painter", 5, 1920, 1080)
    assert "resume=true" in session_host.log()
    big = [s for s in second["shapes"] if s == (1080, 1920)]
    assert len(big) >= 0.9 * len(second["shapes"]) and len(big) > 30, set(second["shapes"])
    assert set(t for t in second["tags"] if t is not None) == {session_tag(sid)}
    nums = second["numbers"]
    assert all(b >= a for a, b in zip(nums, nums[1:])) and nums[-1] > nums[0]
    assert session_host.status()["session"]["mode"] == "1920x1080x60"

    # Cancel: the app, sway and everything they started are gone.
    assert marked_processes(sid), "the session's processes carry its marker"
    client.quit_app()
    st = session_host.status()
    assert (st["app"], st["stream"]) == (None, None), st
    assert st["session"]["state"] == "ended", st["session"]
    left = marked_processes(sid)
    assert left == [], f"processes of the session remain: {left}"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    print(f"session ran {time.monotonic() - t0:.1f} s; nothing left after cancel")


def test_an_app_that_exits_by_itself_ends_the_clients_stream(session_host: Host):
    ml = paired_client(session_host)
    client = ml.client
    with client.stream(app="Painter exits", width=640, height=480, fps=60, bitrate_kbps=4000, codec="h264", record_audio=False):
        session = client._session
        frames = 0
        for _ in frames_for(client, 10):
            frames += 1
            if frames >= 20:
                break
        assert frames >= 20
        assert session._connection_terminated.wait(10), "the client never heard that the app ended"
        assert session._termination_error_code == 0, session._termination_error_code
    st = session_host.status()
    assert st["app"] is None, st
    assert st["session"]["state"] == "app_exited", st["session"]
    assert st["session"]["exit_code"] == 7, st["session"]
    assert marked_processes(st["session"]["id"]) == []


def test_launch_failures_answer_quickly_and_the_host_keeps_serving(session_host: Host, tmp_path: Path, painter: Path):
    from moonlight_python.exceptions import HttpResponseError

    ml = paired_client(session_host)
    client = ml.client
    t0 = time.monotonic()
    with pytest.raises(HttpResponseError) as e:
        with client.stream(app="Nonexistent", width=1280, height=720, fps=60, bitrate_kbps=4000, codec="h264", record_audio=False):
            pass
    took = time.monotonic() - t0
    assert took < 5, f"the launch error took {took:.1f} s"
    assert "command not found" in e.value.status_message, e.value.status_message
    st = session_host.status()
    assert st["app"] is None and st["session"]["state"] == "failed", st
    assert "command not found" in st["session"]["reason"]
    assert marked_processes(st["session"]["id"]) == []
    # The host still serves: a good launch right after works.
    good = collect(client, "Painter", 2, 1280, 720)
    sid = session_host.status()["session"]["id"]
    assert len(good["numbers"]) > 30 and set(good["tags"]) == {session_tag(sid)}
    client.quit_app()

    # A host whose compositor is missing answers with an error too, and keeps serving.
    c2 = tmp_path / "missing-compositor"
    c2.mkdir()
    other = Host(
        state_dir=c2 / "state",
        port_base=free_port_base(),
        config=session_config(c2, painter, 'compositor_path = "/nonexistent/sway"'),
    ).start()
    try:
        ml2 = paired_client(other)
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(HttpResponseError) as e:
                with ml2.client.stream(app="Painter", width=1280, height=720, fps=60, bitrate_kbps=4000, codec="h264", record_audio=False):
                    pass
            assert time.monotonic() - t0 < 5
            assert "not installed" in e.value.status_message, e.value.status_message
        assert "SUNSHINE_SERVER_FREE" in other.serverinfo()
        assert other.proc.poll() is None, "the host keeps running"
    finally:
        other.stop()


def test_doctor_tells_what_this_machine_can_do(tmp_path: Path, painter: Path):
    def doctor(config: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(HOST_BIN), "doctor", "--config", str(config), "--state-dir", str(tmp_path / "s"), "--port-base", str(free_port_base())],
            capture_output=True, text=True, timeout=120,
        )

    ok = doctor(session_config(tmp_path, painter))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = {line.split()[0]: line for line in ok.stdout.splitlines() if line and not line.startswith(" ")}
    assert " OK " in lines["sway"] and "sway version" in lines["sway"], ok.stdout
    assert "libx264" in ok.stdout and "ports" in lines

    none = tmp_path / "none.toml"
    none.write_text("[display]\nbackend = \"none\"\n")
    r = doctor(none)
    assert r.returncode != 0 and "no real session can run" in r.stderr, r.stdout + r.stderr

    nobody = tmp_path / "nobody.toml"
    nobody.write_text("[display]\nbackend = \"sway\"\n[session]\nuser = \"pf-no-such-user\"\n")
    r = doctor(nobody)
    assert r.returncode != 0 and "pf-no-such-user does not exist" in r.stdout, r.stdout


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_client_that_vanishes_or_is_revoked_ends_its_session(tmp_path: Path, painter: Path):
    import sys

    from conftest import WebSession

    host = Host(
        state_dir=tmp_path / "state",
        port_base=free_port_base(),
        config=session_config(tmp_path, painter, extra="[stream]\nclient_timeout_secs = 2"),
    ).start()
    try:
        ml = paired_client(host)
        # The client streams from another process, which then dies without a word.
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "streamclient.py"), "--host", host.bind, "--port", str(host.port_base),
             "--config-dir", ml.config_dir, "--seconds", "60", "--width", "640", "--height", "480", "--fps", "30",
             "--app", "Painter", "--out", str(tmp_path / "vanished.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: (host.status()["stream"] or {}).get("frames", 0) > 30, 60, "the stream to run")
            sid = host.status()["session"]["id"]
            assert marked_processes(sid)
        finally:
            proc.kill()
            proc.wait()
        st = wait_for(lambda: (s := host.status())["app"] is None and s, 20, "the vanished client's app to end")
        assert st["session"]["state"] == "ended" and "timed out" in st["session"]["reason"], st["session"]
        assert marked_processes(sid) == []

        # Revoking the device that streams ends its session as well.
        web = WebSession(host).setup()
        with ml.client.stream(app="Painter", width=640, height=480, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
            for n, _ in enumerate(frames_for(ml.client, 10)):
                if n >= 10:
                    break
            sid = host.status()["session"]["id"]
            devices = web.request("GET", "/api/v1/devices").json()
            device = devices[0] if isinstance(devices, list) else devices["devices"][0]
            r = web.request("DELETE", f"/api/v1/devices/{device['id']}")
            assert r.status_code == 204, r.text
            wait_for(lambda: host.status()["session"]["state"] == "ended", 10, "the revoked device's session to end")
        assert wait_for(lambda: marked_processes(sid) == [], 5, "the session's processes to exit") is not None
        assert host.status()["app"] is None
    finally:
        host.stop()
