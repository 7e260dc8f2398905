"""The session's sound reaches the client: the app in a headless sway session plays
into its session's own PipeWire sink (made at the client's channel count), the host
captures that sink's monitor, and the stock Moonlight client decodes it.

- stereo: the app plays 440 Hz; the client hears 440 Hz on both channels;
- 5.1 at normal and high quality, and 7.1: the app plays a different tone on each
  channel; each arrives on the channel Moonlight plays it on (FL FR C LFE BL BR SL SR);
- silence: an app that plays nothing still gives the client its audio packets;
- the sink vanishing mid-stream: the host says so in its log, and the video and the
  audio packets go on;
- `audio_source = "pipewire:<node>"` captures a sink of the host user's PipeWire;
- a session on a PipeWire that outlives it (the appliance's) leaves no node behind.

The app plays with `pw-play` (pipewire-bin), given no target: it lands in the session's
sink through the environment the host gives it. The sessions run as a user of their
own (scripts/session-user, one per run, removed after), so their private PipeWire
is not shared with another test's session. Needs root and sway, like test_sway_session.py.
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

# A session user of this run's own: the session's private PipeWire lives in its
# runtime dir, and a parallel run's session ending would take it down mid-test.
USER = f"pf-snd-{os.getpid()}"
RATE = 48000
# One tone per channel in Moonlight's 5.1 order FL FR C LFE BL BR: LFE low, as a
# game's would be, the rest far enough apart that a swapped pair is plain to see.
SURROUND_HZ = {6: [300, 500, 700, 100, 900, 1100], 8: [300, 500, 700, 100, 900, 1100, 1300, 1500]}
SURROUND_MAP = {6: "FL,FR,FC,LFE,RL,RR", 8: "FL,FR,FC,LFE,RL,RR,SL,SR"}


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
    for n, freqs in SURROUND_HZ.items():
        write_wav(d / f"surround{n}.wav", freqs, 20)
    yield d
    shutil.rmtree(d, ignore_errors=True)
    uid = pwd.getpwnam(USER).pw_uid
    subprocess.run(["userdel", "--remove", USER], capture_output=True)
    shutil.rmtree(f"/tmp/punktfunk-runtime-{uid}", ignore_errors=True)


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
        "[[apps]]\ntitle = \"Surround 6\"\n"
        f"command = \"{painter} & {loop.format(args='--channel-map ' + SURROUND_MAP[6], wav='surround6.wav')}\"\n"
        "[[apps]]\ntitle = \"Surround 8\"\n"
        f"command = \"{painter} & {loop.format(args='--channel-map ' + SURROUND_MAP[8], wav='surround8.wav')}\"\n"
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


def thread_cpu_seconds(pid: int, name: str) -> float:
    """CPU time of the threads of `pid` named `name` (the host's "pf-audio")."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() != name:
                continue
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def listen(client, app: str, seconds: float, channels: int = 2, bitrate: int = 4000, during=None, host: Host | None = None) -> dict:
    """Streams `app` with audio for `seconds`; returns the decoded PCM (samples x
    channels), the chunk count, and the video frames decoded. `during(elapsed)` runs
    between chunks. With `host`, also the share of one core its audio thread used
    (capture, Opus, FEC, encryption), read from /proc: it costs the stream nothing."""
    chunks, frames, cpu = [], 0, None
    with moonlight_audio(channels):
        with client.stream(app=app, width=640, height=360, fps=30, bitrate_kbps=bitrate, codec="h264", record_audio=True):
            manager = client._stream_manager
            video = manager.subscribe()
            t0 = time.monotonic()
            cpu0 = thread_cpu_seconds(host.proc.pid, "pf-audio") if host else 0.0
            try:
                for chunk in audio_for(client, seconds):
                    chunks.append((time.monotonic() - t0, chunk.data))
                    while video.get(timeout=0) is not None:
                        frames += 1
                    if during:
                        during(time.monotonic() - t0)
            finally:
                manager.unsubscribe(video)
            if host:
                cpu = 100 * (thread_cpu_seconds(host.proc.pid, "pf-audio") - cpu0) / (time.monotonic() - t0)
    pcm = np.concatenate([c for _, c in chunks]) if chunks else np.zeros((0, channels))
    return {"pcm": pcm, "chunks": chunks, "frames": frames, "audio_cpu_percent": cpu}


def tail(pcm: np.ndarray, seconds: float) -> np.ndarray:
    return pcm[-int(RATE * seconds):]


@pytest.mark.parametrize("app", ["Tone", "Tone without env"])
def test_the_apps_440_hz_tone_reaches_the_client(host: Host, app: str):
    client = paired_client(host).client
    got = listen(client, app, 5, host=host)
    print(f"{app}: the host's audio thread used {got['audio_cpu_percent']:.1f}% of one core (debug build)")
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


@pytest.mark.parametrize("channels,quality", [(6, "normal"), (6, "high"), (8, "normal")])
def test_each_surround_channel_arrives_on_its_own_channel(host: Host, channels: int, quality: str):
    client = paired_client(host).client
    # moonlight-common-c asks for high-quality surround from 15 Mbit/s on.
    got = listen(client, f"Surround {channels}", 5, channels=channels, bitrate=4000 if quality == "normal" else 20000, host=host)
    pcm = got["pcm"]
    assert pcm.ndim == 2 and pcm.shape[1] == channels, pcm.shape
    last = tail(pcm, 2)
    peaks = [dominant_hz(last[:, ch], RATE) for ch in range(channels)]
    sent = SURROUND_HZ[channels]
    print(f"{channels} channels, {quality} quality: sent {sent} Hz, decoded {[round(p) for p in peaks]} Hz; "
          f"audio thread {got['audio_cpu_percent']:.1f}% of one core")
    for ch, (want, peak) in enumerate(zip(sent, peaks)):
        assert abs(peak - want) <= 5, f"channel {ch} carries {peak:.0f} Hz, the app played {want} Hz there"
    log = host.log()
    assert f"high_quality={'true' if quality == 'high' else 'false'}" in log, "the quality the client picked"
    assert f"channels={channels} positions=\"[ {SURROUND_MAP[channels].replace(',', ' ')} ]\"" in log, log


def test_silence_still_sends_packets_and_a_vanished_sink_leaves_the_stream_running(host: Host):
    client = paired_client(host).client
    # An app that plays nothing: the client still gets a packet every 5 ms.
    # (4 s of stream: the first ~1 s goes to starting the session and its sink.)
    quiet = listen(client, "Quiet", 4)
    pcm = quiet["pcm"]
    assert pcm.shape[0] >= 2.5 * RATE, f"only {pcm.shape[0] / RATE:.2f} s of audio in 4 s of silence"
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


def test_a_configured_pipewire_sink_is_what_streams_sound(tmp_path: Path, media: Path, monkeypatch, request):
    """`[stream] audio_source = "pipewire:<node>"`: a sink of the host user's own
    PipeWire (a desktop's, say) is captured from its monitor, with no display session."""
    from pipewire_session import PipeWireSession

    session = PipeWireSession(tmp_path).start()
    h = None
    try:
        name = f"pf-test-sink-{os.getpid()}"
        props = (f"{{ factory.name=support.null-audio-sink node.name={name} media.class=Audio/Sink "
                 "audio.channels=2 audio.position=[ FL FR ] object.linger=true }")
        subprocess.run(["pw-cli", "create-node", "adapter", props], env=session.env, check=True, capture_output=True, timeout=10)
        session._spawn("player", ["sh", "-c", f"while :; do pw-play --target {name} {media}/a440.wav; done"])
        monkeypatch.setenv("XDG_RUNTIME_DIR", session.env["XDG_RUNTIME_DIR"])
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session.env["DBUS_SESSION_BUS_ADDRESS"])
        config = tmp_path / "host.toml"
        config.write_text("[display]\nbackend = \"none\"\n"
                          f"[stream]\naudio_source = \"pipewire:{name}\"\n")
        h = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=config).start()
        got = listen(paired_client(h).client, "Desktop", 4)
        last = tail(got["pcm"], 2)
        peak = dominant_hz(last[:, 0], RATE)
        assert abs(peak - 440) <= 5, f"dominant frequency {peak:.1f} Hz"
        assert f"the monitor of PipeWire sink {name}" in h.log()
    finally:
        if h is not None:
            h.stop()
            if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
                print(f"--- host log ---\n{h.log()}")
        session.close()


def test_the_sink_leaves_a_pipewire_that_outlives_the_session(tmp_path: Path, media: Path, request):
    """On the appliance the session user's PipeWire runs on its own and outlives every
    session: the session's sink must go when the session does, leaving no node."""
    uid = pwd.getpwnam(USER).pw_uid
    runtime = Path(f"/tmp/punktfunk-runtime-{uid}")
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.chown(runtime, uid, pwd.getpwnam(USER).pw_gid)
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime),
           "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus"}
    procs = []

    def spawn(*cmd: str) -> None:
        procs.append(subprocess.Popen(["runuser", "-u", USER, "--", *cmd], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def nodes() -> list[str]:
        out = subprocess.run(["pw-dump"], env=env, capture_output=True, text=True, timeout=10).stdout
        return [o["info"]["props"].get("node.name", "") for o in json.loads(out or "[]")
                if o.get("type") == "PipeWire:Interface:Node"]

    h = None
    try:
        spawn("dbus-daemon", "--session", "--nofork", f"--address={env['DBUS_SESSION_BUS_ADDRESS']}")
        deadline = time.monotonic() + 10
        while not (runtime / "bus").exists():
            assert time.monotonic() < deadline, "dbus-daemon did not come up"
            time.sleep(0.05)
        spawn("pipewire")
        while not (runtime / "pipewire-0").exists():
            assert time.monotonic() < deadline, "pipewire did not come up"
            time.sleep(0.05)
        spawn("wireplumber")
        h = sound_host(tmp_path, media).start()
        client = paired_client(h).client
        got = listen(client, "Tone", 3)
        assert abs(dominant_hz(tail(got["pcm"], 1)[:, 0], RATE) - 440) <= 5
        assert "started a private PipeWire" not in h.log(), "the user's own PipeWire was used"
        assert any(n.startswith("punktfunk.session-") for n in nodes()), "the sink lives while the session does"
        client.quit_app()
        left = [n for n in nodes() if n.startswith("punktfunk.session-")]
        assert left == [], f"nodes of the ended session remain: {left}"
        assert procs[1].poll() is None, "the user's PipeWire outlives the session"
    finally:
        if h is not None:
            h.stop()
            if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
                print(f"--- host log ---\n{h.log()}")
        for p in reversed(procs):
            try:
                os.killpg(p.pid, 15)
                p.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, 9)
                p.wait()
