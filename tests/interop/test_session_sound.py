"""The session's sound reaches the client: the app in a headless sway session plays
into its session's own PipeWire sink (made at the client's channel count), the host
captures that sink's monitor, and the stock Moonlight client decodes it.

- stereo: the app plays 440 Hz; the client hears 440 Hz on both channels;
- 5.1, normal and high quality: the app plays a different tone on each channel; each
  arrives on the channel Moonlight plays it on (FL FR C LFE BL BR);
- silence: an app that plays nothing still gives the client its audio packets;
- the sink vanishing mid-stream: the host says so in its log, and the video and the
  audio packets go on.

The app plays with `pw-play` (pipewire-bin), given no target: it lands in the session's
sink through the environment the host gives it. The sessions run as a user of their
own (scripts/session-user), so their private PipeWire is not shared with another
test's session. Needs root and sway, like test_sway_session.py.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, Host, free_port_base
from streamclient import audio_for, dominant_hz, frames_for, moonlight_audio
from test_sway_session import PAINTER_BIN, marked_processes, paired_client

USER = "punktfunk-snd"
RATE = 48000
# One tone per channel in Moonlight's 5.1 order FL FR C LFE BL BR: LFE low, as a
# game's would be, the rest far enough apart that a swapped pair is plain to see.
SURROUND_HZ = [300, 500, 700, 100, 900, 1100]
SURROUND_MAP = "FL,FR,FC,LFE,RL,RR"


def write_wav(path: Path, freqs: list[float], seconds: float, amplitude: float = 0.3) -> None:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = np.stack([amplitude * np.sin(2 * np.pi * f * t) for f in freqs], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(freqs))
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())
    path.chmod(0o644)


@pytest.fixture(scope="module")
def media():
    """The painter and the test sounds where the session user can read them, and the
    session user itself."""
    assert PAINTER_BIN.exists(), f"{PAINTER_BIN} is missing: cargo build -p punktfunk-painter"
    assert shutil.which("sway"), "sway is not installed (scripts/system-packages.txt has it)"
    assert shutil.which("pw-play"), "pw-play is not installed (pipewire-bin)"
    setup = subprocess.run([str(REPO / "scripts" / "session-user"), USER], capture_output=True, text=True)
    assert setup.returncode == 0, f"scripts/session-user failed (needs root): {setup.stderr}"
    d = Path(tempfile.mkdtemp(prefix="punktfunk-sound-"))
    d.chmod(0o755)
    painter = d / "punktfunk-painter"
    shutil.copy(PAINTER_BIN, painter)
    painter.chmod(0o755)
    write_wav(d / "a440.wav", [440, 440], 20)
    write_wav(d / "surround.wav", SURROUND_HZ, 20)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def sound_host(tmp_path: Path, media: Path) -> Host:
    painter = media / "punktfunk-painter"
    loop = "while :; do pw-play {args} " + str(media) + "/{wav}; done"
    config = tmp_path / "host.toml"
    config.write_text(
        "[input]\nbackend = \"recording\"\n"
        f"recording_path = \"{tmp_path / 'input-events.jsonl'}\"\n"
        "[display]\nbackend = \"sway\"\n"
        f"[session]\nuser = \"{USER}\"\n"
        "[[apps]]\ntitle = \"Tone\"\n"
        f"command = \"{painter} & {loop.format(args='', wav='a440.wav')}\"\n"
        "[[apps]]\ntitle = \"Surround\"\n"
        f"command = \"{painter} & {loop.format(args='--channel-map ' + SURROUND_MAP, wav='surround.wav')}\"\n"
        # What a launcher that drops the environment starts: WirePlumber's default sink.
        "[[apps]]\ntitle = \"Tone without env\"\n"
        f"command = \"{painter} & env -u PULSE_SINK -u PIPEWIRE_NODE sh -c '{loop.format(args='', wav='a440.wav')}'\"\n"
        "[[apps]]\ntitle = \"Quiet\"\n"
        f"command = \"{painter}\"\n"
    )
    return Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=config)


@pytest.fixture
def host(tmp_path: Path, media: Path, request: pytest.FixtureRequest):
    h = sound_host(tmp_path, media).start()
    yield h
    h.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- host log ---\n{h.log()}")


def listen(client, app: str, seconds: float, channels: int = 2, bitrate: int = 4000, during=None) -> dict:
    """Streams `app` with audio for `seconds`; returns the decoded PCM (samples x
    channels), the chunk count, and the video frames decoded. `during(elapsed)` runs
    between chunks."""
    chunks, frames = [], 0
    with moonlight_audio(channels):
        with client.stream(app=app, width=640, height=360, fps=30, bitrate_kbps=bitrate, codec="h264", record_audio=True):
            manager = client._stream_manager
            video = manager.subscribe()
            t0 = time.monotonic()
            try:
                for chunk in audio_for(client, seconds):
                    chunks.append((time.monotonic() - t0, chunk.data))
                    while video.get(timeout=0) is not None:
                        frames += 1
                    if during:
                        during(time.monotonic() - t0)
            finally:
                manager.unsubscribe(video)
    pcm = np.concatenate([c for _, c in chunks]) if chunks else np.zeros((0, channels))
    return {"pcm": pcm, "chunks": chunks, "frames": frames}


def tail(pcm: np.ndarray, seconds: float) -> np.ndarray:
    return pcm[-int(RATE * seconds):]


@pytest.mark.parametrize("app", ["Tone", "Tone without env"])
def test_the_apps_440_hz_tone_reaches_the_client(host: Host, app: str):
    client = paired_client(host).client
    got = listen(client, app, 5)
    pcm = got["pcm"]
    assert pcm.ndim == 2 and pcm.shape[1] == 2, pcm.shape
    assert pcm.shape[0] >= 4 * RATE, f"only {pcm.shape[0] / RATE:.1f} s of sound in 5 s"
    last = tail(pcm, 2)
    for ch in range(2):
        peak = dominant_hz(last[:, ch], RATE)
        level = float(np.sqrt(np.mean(last[:, ch] ** 2)))
        print(f"{app}: stereo channel {ch}: {peak:.1f} Hz, RMS {level:.3f}")
        assert abs(peak - 440) <= 5, f"channel {ch}: dominant frequency {peak:.1f} Hz"
        assert level > 0.02, f"channel {ch} is (nearly) silent: RMS {level:.4f}"
    log = host.log()
    assert "session audio sink created" in log, log
    assert "the PipeWire node delivers samples" in log


@pytest.mark.parametrize("quality", ["normal", "high"])
def test_each_surround_channel_arrives_on_its_own_channel(host: Host, quality: str):
    client = paired_client(host).client
    # moonlight-common-c asks for high-quality surround from 15 Mbit/s on.
    got = listen(client, "Surround", 5, channels=6, bitrate=4000 if quality == "normal" else 20000)
    pcm = got["pcm"]
    assert pcm.ndim == 2 and pcm.shape[1] == 6, pcm.shape
    last = tail(pcm, 2)
    peaks = [dominant_hz(last[:, ch], RATE) for ch in range(6)]
    print(f"5.1 {quality} quality: sent {SURROUND_HZ} Hz, decoded {[round(p) for p in peaks]} Hz")
    for ch, (want, peak) in enumerate(zip(SURROUND_HZ, peaks)):
        assert abs(peak - want) <= 5, f"channel {ch} carries {peak:.0f} Hz, the app played {want} Hz there"
    log = host.log()
    assert f"high_quality={'true' if quality == 'high' else 'false'}" in log, "the quality the client picked"
    assert "positions=\"[ FL FR FC LFE RL RR ]\"" in log or "[ FL FR FC LFE RL RR ]" in log


def test_silence_still_sends_packets_and_a_vanished_sink_leaves_the_stream_running(host: Host):
    client = paired_client(host).client
    # An app that plays nothing: the client still gets a packet every 5 ms.
    quiet = listen(client, "Quiet", 3)
    pcm = quiet["pcm"]
    assert pcm.shape[0] >= 2.5 * RATE, f"only {pcm.shape[0] / RATE:.2f} s of audio in 3 s of silence"
    assert np.abs(tail(pcm, 1)).max() < 0.01, "nothing plays, so nothing is heard"
    client.quit_app()

    # The sink goes away mid-stream: logged, and video and audio packets go on.
    uid = pwd.getpwnam(USER).pw_uid
    runtime = next(d for d in (Path(f"/run/user/{uid}"), Path(f"/tmp/punktfunk-runtime-{uid}")) if d.is_dir())
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    removed = {}

    def remove_sink(elapsed: float) -> None:
        if removed or elapsed < 2:
            return
        nodes = json.loads(subprocess.run(["pw-dump"], env=env, capture_output=True, text=True, timeout=10).stdout)
        sinks = [o["id"] for o in nodes if o.get("type") == "PipeWire:Interface:Node"
                 and o["info"]["props"].get("node.name", "").startswith("punktfunk.session-")]
        assert len(sinks) == 1, sinks
        subprocess.run(["pw-cli", "destroy", str(sinks[0])], env=env, check=True, capture_output=True, timeout=10)
        removed["at"] = elapsed

    got = listen(client, "Tone", 6, during=remove_sink)
    assert "at" in removed, "the sink was never removed"
    after = [c for t, c in got["chunks"] if t > removed["at"] + 0.5]
    assert sum(len(c) for c in after) >= 2.5 * RATE, "audio packets stop when the sink goes"
    before = np.concatenate([c for t, c in got["chunks"] if 1 < t < removed["at"]])
    assert abs(dominant_hz(before[:, 0], RATE) - 440) <= 5, "the tone played before the sink went"
    assert np.abs(np.concatenate(after[-100:])).max() < 0.01, "silence once the sink is gone"
    assert got["frames"] >= 6 * 30 * 0.7, f"the video stops when the sink goes: {got['frames']} frames in 6 s"
    log = host.log()
    assert "audio source gone" in log and "was removed" in log, log
    st = host.status()
    assert st["session"]["state"] == "running", st["session"]
    sid = st["session"]["id"]
    client.quit_app()
    assert marked_processes(sid) == []
