"""Streaming over a lossy network: the Moonlight client runs in its own network
namespace where nftables drops 5% of the host's video or audio packets at random.
Video: FEC must repair most frames and IDR recovery the rest, without a visible stall.
Audio: RS(4,2) FEC must repair the AES-CBC encrypted Opus stream so the tone plays on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from conftest import Host, Moonlight, free_port_base, make_config
from netns import require_root, sh, veth_namespace
from streamclient import summarize

HERE = Path(__file__).resolve().parent
LOSS_PERCENT = 5


@pytest.fixture
def lossy_network():
    """(namespace, host address, client address): a veth pair into a fresh namespace,
    with segmentation offload off so loss rules drop single packets."""
    require_root("the loss test")
    with veth_namespace("loss", 77, segmentation_offload=False) as net:
        yield net


def drop_udp(ns: str, ports: list[int], percent: int) -> None:
    """Random loss of the host's packets from each of `ports`, on the client's input hook
    (the sender's output hook would fail sendto), counted per port."""
    rules = "\n".join(
        f"        udp sport {port} numgen random mod 100 < {percent} counter drop" for port in ports)
    table = f"""
table inet loss {{
    chain in {{
        type filter hook input priority 0;
{rules}
    }}
}}
"""
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=table, text=True, check=True)


def drop_video(ns: str, video_port: int, percent: int) -> None:
    drop_udp(ns, [video_port], percent)


def dropped(ns: str, port: int | None = None) -> int:
    """Packets nftables dropped (from `port`, or in all)."""
    out = sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "loss")
    counts = {int(p): int(n) for p, n in re.findall(r"udp sport (\d+) .*?counter packets (\d+)", out)}
    return counts.get(port, 0) if port is not None else sum(counts.values())


def test_5_percent_video_loss_is_repaired_without_stalls(tmp_path: Path, lossy_network):
    ns, host_ip, _ = lossy_network
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=make_config(tmp_path), bind=host_ip)
    host.start()
    try:
        ml = Moonlight(host)
        error, _ = ml.pair()
        assert error is None, repr(error)
        drop_video(ns, host.port_base + 9, LOSS_PERCENT)
        out = tmp_path / "stream.json"
        run = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, str(HERE / "streamclient.py"),
             "--host", host_ip, "--port", str(host.port_base), "--config-dir", ml.config_dir,
             "--seconds", "10", "--width", "1280", "--height", "720", "--fps", "60", "--out", str(out)],
            capture_output=True, text=True, timeout=180,
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{host.log()}"
        result = json.loads(out.read_text())
        s = summarize(result)
        lost = dropped(ns)
        print(f"loss test: nftables dropped {lost} video packets; decoded {s['decoded']} of {s['sent']} "
              f"frames ({s['ratio']:.1%}); longest gap {result['max_gap']:.3f} s; min PSNR {s['min_psnr']:.1f} dB")
        # The test pattern needs far less than the bitrate and x264 pads no more (no CBR
        # filler since issue 16): some 900 video packets in 10 s, of which 5% is ~45.
        assert lost > 20, f"nftables dropped only {lost} packets: the loss was not applied"
        assert s["sent"] >= 10 * 60 * 0.8
        assert s["increasing"]
        assert result["unreadable"] == 0, "a damaged frame was shown"
        # The claim is 98.3-99.0% at 5% loss; 97% leaves a margin for this shared 2-core box.
        assert s["ratio"] >= 0.97, f"decoded {s['decoded']} of {s['sent']} frames\n{host.log()}"
        # What FEC repaired is the picture that was sent, not just a readable barcode.
        assert s["min_psnr"] is not None and s["min_psnr"] >= 30.0, f"colour bars PSNR {s['min_psnr']:.1f} dB under loss"
        assert result["max_gap"] <= 1.0, f"a {result['max_gap']:.2f} s stall\n{host.log()}"
    finally:
        host.stop()


# After a lost packet Opus restarts without it (moonlight-python has no concealment):
# the next packets converge back to the tone (measured: up to 3). Packets excused.
SEAM_PACKETS = 4
TONE_HZ = 440.0


def fit_tone(x: np.ndarray, mask: np.ndarray, rate: int) -> tuple[float, np.ndarray]:
    """(amplitude, wave) of the 440 Hz sine (host/src/source/tone.rs, exact in the
    host's sample time) that best matches `x` where `mask` holds."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * TONE_HZ * t), np.cos(2 * np.pi * TONE_HZ * t)], 1)
    a = np.linalg.lstsq(basis[mask], x[mask].astype(np.float64), rcond=None)[0]
    return float(np.hypot(*a)), basis @ a


def tone_check(pcm: np.ndarray, index: np.ndarray, size: np.ndarray, rate: int) -> dict:
    """The decoded audio laid out on the host's timeline (one Opus packet per index),
    checked against one continuous sine per channel.

    The host's tone is a single unbroken sine, so every packet that arrived or that FEC
    recovered must match the one 440 Hz sinusoid fitted to the whole timeline: a packet
    recovered wrong, decrypted wrong or put in the wrong place does not. Excused: the
    first SEAM_PACKETS (the decoder starting) and SEAM_PACKETS after each missing one.
    """
    spp = int(np.bincount(size).argmax())  # samples per packet (240 at 5 ms)
    first, last = int(index.min()), int(index.max())
    n = last - first + 1
    timeline = np.zeros((n * spp, pcm.shape[1]), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    at = 0
    for i, k in zip(index, size):
        j = int(i) - first
        timeline[j * spp : j * spp + k] = pcm[at : at + k]
        present[j] = True
        at += k
    missing = np.flatnonzero(~present)
    judged = present.copy()
    judged[:SEAM_PACKETS] = False
    for j in missing:
        judged[j + 1 : j + 1 + SEAM_PACKETS] = False
    channels = []
    for ch in range(pcm.shape[1]):
        x = timeline[:, ch]
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        peak = float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])
        amp, wave = fit_tone(x, np.repeat(judged, spp), rate)
        err = (np.abs(x - wave).reshape(n, spp).max(axis=1) / max(amp, 1e-9))[judged]
        channels.append({"peak_hz": peak, "amplitude": amp,
                         "median_error": float(np.median(err)), "worst_error": float(err.max()),
                         "worst_packet": int(np.flatnonzero(judged)[err.argmax()])})
    return {"packets": n, "missing": [first + int(j) for j in missing], "judged": int(judged.sum()),
            "channels": channels}


def test_5_percent_audio_loss_is_repaired_by_fec_through_aes_cbc(tmp_path: Path, lossy_network):
    ns, host_ip, _ = lossy_network
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=make_config(tmp_path), bind=host_ip)
    host.start()
    try:
        ml = Moonlight(host)
        error, _ = ml.pair()
        assert error is None, repr(error)
        audio_port = host.port_base + 11
        drop_udp(ns, [audio_port], LOSS_PERCENT)
        out, pcm_path = tmp_path / "audio.json", tmp_path / "audio.npz"
        run = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, str(HERE / "streamclient.py"),
             "--host", host_ip, "--port", str(host.port_base), "--config-dir", ml.config_dir,
             "--seconds", "8", "--out", str(out), "--audio-pcm", str(pcm_path)],
            capture_output=True, text=True, timeout=180,
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{host.log()}"
        result = json.loads(out.read_text())
        rtp, client_loss = result["rtp"], result["client_loss"]
        lost_on_wire = dropped(ns, audio_port)
        data = np.load(pcm_path)
        tone = tone_check(data["pcm"], data["index"], data["size"], result["rate"])
        unrecovered = len(tone["missing"])
        print(f"audio loss test: nftables dropped {lost_on_wire} audio packets (data and FEC); client: "
              f"{rtp['packetCountAudio']} data + {rtp['packetCountFec']} FEC packets received, "
              f"{rtp['packetCountFecRecovered']} recovered by FEC, {rtp['packetCountFecFailed']} FEC failures (too few shards), "
              f"{client_loss['lost']} packets lost to the decoder; timeline {tone['packets']} packets, "
              f"{unrecovered} missing; " + "; ".join(
                  f"ch{i} peak {c['peak_hz']:.1f} Hz, one 440 Hz sine of amplitude {c['amplitude']:.3f} "
                  f"matched by {tone['judged']} packets within {c['worst_error']:.3f} (median {c['median_error']:.3f})" for i, c in enumerate(tone["channels"])))

        # Every hole in the timeline is a packet the client library reported lost.
        assert unrecovered == client_loss["lost"], (tone["missing"], client_loss)
        # The stream really was AES-CBC encrypted and carried FEC (the host says so).
        assert "audio: Opus, RS(4,2) FEC, AES-CBC encrypted" in host.log(), host.log()
        # The loss was applied: about 5% of the ~1.5 packets per 5 ms over 8 s.
        total = rtp["packetCountAudio"] + rtp["packetCountFec"] + lost_on_wire
        assert lost_on_wire >= 0.02 * total, f"nftables dropped only {lost_on_wire} of {total}: loss not applied"
        # Every packet decrypted and decoded: a CBC or FEC fault shows up here.
        assert rtp["packetCountInvalid"] == 0 and rtp["packetCountFecInvalid"] == 0, rtp
        assert result["decode_errors"] == 0 and client_loss["dropped"] == 0 and client_loss["callback_errors"] == 0
        # FEC repaired the loss: with RS(4,2) a block is lost only when 3 of its 6
        # packets are (about 0.1% of data packets at 5% loss); 1% is the margin, still a
        # fifth of the 5% that would be missing without FEC.
        assert rtp["packetCountFecRecovered"] > 0, "no packet was recovered by FEC"
        assert unrecovered <= 0.01 * tone["packets"], f"{unrecovered} of {tone['packets']} packets missing"
        assert rtp["packetCountFecRecovered"] >= 0.5 * lost_on_wire * 4 / 6, "FEC recovered too few of the lost data packets"
        # The tone plays on, every channel: 440 +- 5 Hz, and one unbroken sine through
        # every packet that arrived or that FEC recovered (decoded, decrypted and placed
        # right). Measured: within 0.037 of the amplitude (median 0.012); a packet
        # recovered from corrupted parity (tried by hand) departs by more than 1.
        assert result["channels"] == 2 and len(tone["channels"]) == 2
        for i, c in enumerate(tone["channels"]):
            assert c["amplitude"] > 0.1, f"channel {i} is silent"
            assert abs(c["peak_hz"] - 440) <= 5, f"channel {i}: dominant frequency {c['peak_hz']:.1f} Hz"
            assert c["worst_error"] < 0.1, (
                f"channel {i}: packet {c['worst_packet']} departs from the tone by {c['worst_error']:.2f}")
        assert tone["packets"] * 0.005 >= 6, f"only {tone['packets']} packets of audio in 8 s"
    finally:
        host.stop()
