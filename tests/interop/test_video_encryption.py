"""Video is encrypted on the wire (SS_ENC_VIDEO, AES-GCM per packet) and a stock
Moonlight client decodes it; `[stream] video_encryption = false` sends plaintext for
a trusted LAN."""

from __future__ import annotations

import threading

from conftest import Host, Moonlight, free_port_base, make_config
from streamclient import frames_for, read_barcode
from wire import udp_on_loopback


def sniff_video(port: int, packets: list, stop: threading.Event) -> None:
    """What anyone on the LAN sees: the host's datagrams from its video port."""
    for sport, _, payload in udp_on_loopback(stop):
        if sport == port and len(payload) > 64:
            packets.append(payload)
            if len(packets) >= 200:
                break


def stream_and_sniff(host: Host) -> tuple[int, list[bytes]]:
    ml = Moonlight(host)
    assert ml.pair()[0] is None
    packets: list[bytes] = []
    stop = threading.Event()
    sniffer = threading.Thread(target=sniff_video, args=(host.port_base + 9, packets, stop))
    sniffer.start()
    decoded = 0
    try:
        with ml.client.stream(app="Desktop", width=1280, height=720, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
            for frame in frames_for(ml.client, 3):
                assert read_barcode(frame.data) is not None, "a damaged frame was shown"
                decoded += 1
    finally:
        stop.set()
        sniffer.join()
    return decoded, packets


def test_encrypted_video_decodes_in_moonlight(host: Host):
    decoded, packets = stream_and_sniff(host)
    assert decoded >= 3 * 30 * 0.8, decoded
    assert "video is encrypted" in host.log()
    assert packets, "no video seen on the wire"
    for p in packets:
        # IV (counter, 'V' in byte 11), frame number, tag, then ciphertext: no RTP
        # header (0x90 0x00 ...) and no frame header in clear.
        assert p[11:12] == b"V", p[:32].hex()
        assert p[32:34] != b"\x90\x00", p[:48].hex()


def test_plaintext_video_when_switched_off(tmp_path):
    config = make_config(tmp_path, "[stream]\nvideo_encryption = false\n")
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=config).start()
    try:
        decoded, packets = stream_and_sniff(host)
        assert decoded >= 3 * 30 * 0.8, decoded
        assert "video is encrypted" not in host.log()
        assert packets and all(p[0] == 0x90 for p in packets), packets[0][:16].hex()
    finally:
        host.stop()
