"""The host streams an existing PipeWire Video/Source (`--source pipewire:<name>`): a
real PipeWire session (dbus-daemon, pipewire, wireplumber), the test producer painting
the colour bars and frame barcode in MemFd buffers, the real host, and moonlight-python
decoding it.

Then the two ways real compositors misbehave: a producer announcing a maxsize larger
than its memfd (the host must map what the fd holds, not what it claims), and a
producer leaving mid-stream (the stream ends cleanly, the host keeps serving).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import Host, Moonlight, free_port_base, make_config
from pipewire_session import PipeWireSession
from streamclient import read_barcode, run_stream, summarize


def check_video(host: Host, result: dict, min_ratio: float = 0.95) -> dict:
    """The checks of test_streaming.check_video, except that a frame may come twice:
    when the source delivers nothing new for 100 ms (a producer starved of CPU on a
    loaded machine), the host repeats the last picture by design. Going back never."""
    nums = result["numbers"]
    backwards = [(a, b) for a, b in zip(nums, nums[1:]) if b < a]
    assert not backwards, f"frame numbers went back: {backwards[:10]}"
    repeats = sum(1 for a, b in zip(nums, nums[1:]) if a == b)
    assert repeats <= max(2, len(nums) // 50), f"{repeats} of {len(nums)} frames were repeats"
    s = summarize(result)
    assert result["unreadable"] == 0, f"{result['unreadable']} decoded frames had an unreadable barcode"
    assert s["sent"] > 0
    assert s["ratio"] >= min_ratio, f"decoded {s['decoded']} of {s['sent']} frames sent\n{host.log()}"
    assert s["min_psnr"] is not None and s["min_psnr"] >= 30.0, f"colour bars PSNR {s['min_psnr']:.1f} dB"
    return s


@pytest.fixture
def session(tmp_path: Path):
    s = PipeWireSession(tmp_path).start()
    yield s
    s.close()


@pytest.fixture
def node_name() -> str:
    return f"pf-producer-{os.getpid()}"


@pytest.fixture
def pw_host(tmp_path: Path, session: PipeWireSession, node_name: str, monkeypatch, request):
    # The host finds the session's PipeWire through XDG_RUNTIME_DIR, as a desktop
    # user's host would.
    monkeypatch.setenv("XDG_RUNTIME_DIR", session.env["XDG_RUNTIME_DIR"])
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session.env["DBUS_SESSION_BUS_ADDRESS"])
    h = Host(
        state_dir=tmp_path / "state",
        port_base=free_port_base(),
        config=make_config(tmp_path),
        serve_args=["--source", f"pipewire:{node_name}"],
    )
    yield h.start()
    h.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- host log ---\n{h.log()}")


def full_log(host: Host) -> str:
    return host.log_path.read_text(errors="replace")


def stream_until_terminated(client, seconds: float) -> tuple[list[int], object]:
    """Streams 1280x720@60 reading barcodes until the host ends the stream (or
    `seconds` pass); returns the frame numbers seen and the client session."""
    numbers: list[int] = []
    with client.stream(app="Desktop", width=1280, height=720, fps=60, bitrate_kbps=10000, codec="h264", record_audio=False):
        session = client._session
        deadline = time.monotonic() + seconds
        with client.latest_frame() as buf:
            while time.monotonic() < deadline and not session._connection_terminated.is_set():
                frame = buf.get(timeout=0.5)
                if frame is not None and (code := read_barcode(frame.data)) is not None:
                    if not numbers or code[1] != numbers[-1]:
                        numbers.append(code[1])
        return numbers, session


def test_a_pipewire_node_streams_and_survives_a_lying_or_vanishing_producer(
    pw_host: Host, session: PipeWireSession, node_name: str
):
    ml = Moonlight(pw_host)
    error, _ = ml.pair()
    assert error is None, repr(error)
    client = ml.client

    # 1. The producer's pictures reach the client: every frame, in order, the bars
    #    pixel-exact up to the codec.
    producer = session.producer(node_name)
    result = run_stream(client, 10, 1280, 720, 60, "h264", 10000)
    s = check_video(pw_host, result)
    assert s["sent"] >= 10 * 60 * 0.8, f"only {s['sent']} producer frames in 10 s at 60 fps"
    assert "capturing PipeWire node" in full_log(pw_host)
    session.stop_producer(producer)

    # 2. A producer whose buffers claim 8 MiB more than their memfd holds: the host maps
    #    what the fd holds and streams on (trusting maxsize would be a SIGBUS).
    liar = session.producer(node_name, "--lie-maxsize", str(8 << 20))
    result = run_stream(client, 5, 1280, 720, 60, "h264", 10000)
    check_video(pw_host, result)
    assert pw_host.proc.poll() is None
    assert "claim more memory than their fds hold" in full_log(pw_host), "the lie never reached the host"
    session.stop_producer(liar)

    # 3. The producer leaves mid-stream: the client hears the stream end (a
    #    termination, not a timeout), the host says why, and keeps serving.
    client.quit_app()
    leaver = session.producer(node_name, "--stop-after-frames", "240")
    numbers, sess = stream_until_terminated(client, 20)
    assert sess._connection_terminated.is_set(), "the client never heard the stream end"
    assert len(numbers) > 60, f"only {len(numbers)} frames before the producer left"
    assert leaver.wait(timeout=10) == 0
    assert "was removed" in full_log(pw_host), pw_host.log()
    assert pw_host.proc.poll() is None, "the host died with its source"

    # A new launch with the producer back streams again.
    client.quit_app()
    back = session.producer(node_name)
    result = run_stream(client, 3, 1280, 720, 60, "h264", 10000)
    assert summarize(result)["decoded"] > 60, summarize(result)
    session.stop_producer(back)

    # 4. The producer changes mode mid-stream (a renegotiation, as gamescope does when
    #    a game changes resolution): the stream goes on at the client's mode, the host
    #    scaling the new picture.
    client.quit_app()
    session.producer(node_name, "--resize-after-frames", "120", "--resize", "1920x1080")
    shapes, late = set(), 0
    with client.stream(app="Desktop", width=1280, height=720, fps=60, bitrate_kbps=10000, codec="h264", record_audio=False):
        sess = client._session
        start = time.monotonic()
        for frame in client.frames():
            shapes.add(frame.data.shape)
            elapsed = time.monotonic() - start
            late += elapsed > 4  # the change comes 2 s after the link
            if elapsed >= 6:
                break
        assert not sess._connection_terminated.is_set(), "the stream ended at the mode change"
    log = full_log(pw_host)
    assert "width=1920 height=1080" in log and "the captured picture changed" in log, pw_host.log()
    assert late > 60, f"only {late} frames in the 2 s after the mode change"
    assert shapes == {(720, 1280, 3)}, shapes


def test_a_missing_node_fails_the_stream_not_the_host(pw_host: Host, node_name: str):
    ml = Moonlight(pw_host)
    error, _ = ml.pair()
    assert error is None, repr(error)
    with pytest.raises(Exception):
        run_stream(ml.client, 2, 640, 360, 30, "h264", 4000)
    assert f'no PipeWire video source named \\"{node_name}\\"' in full_log(pw_host), pw_host.log()
    assert pw_host.proc.poll() is None


def test_an_nv12_producer_hands_over_yuv_in_the_clients_matrix(
    pw_host: Host, session: PipeWireSession, node_name: str
):
    """A producer that offers NV12 with a choice of matrix and range (as gamescope
    does) is asked for NV12 in the encoder's own matrix: the host copies the planes
    instead of converting colour, and the client still sees the exact bars."""
    ml = Moonlight(pw_host)
    error, _ = ml.pair()
    assert error is None, repr(error)
    producer = session.producer(node_name, "--nv12")
    result = run_stream(ml.client, 6, 1280, 720, 60, "h264", 10000)
    s = check_video(pw_host, result)
    assert s["sent"] >= 6 * 60 * 0.8, f"only {s['sent']} producer frames in 6 s at 60 fps"
    log = full_log(pw_host)
    assert "format=Nv12" in log, log[-3000:]
    assert "hands over NV12 in the encoder's matrix" in log, log[-3000:]
    session.stop_producer(producer)
