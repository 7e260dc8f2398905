"""Video is encrypted on the wire (SS_ENC_VIDEO, AES-GCM per packet) and a stock
Moonlight client decodes it; `[stream] video_encryption = false` sends plaintext for
a trusted LAN."""

from __future__ import annotations

import socket
import struct
import threading
import time

from conftest import Host, Moonlight, free_port_base, make_config
from streamclient import read_barcode


def sniff_video(port: int, packets: list, stop: threading.Event) -> None:
    """What anyone on the LAN sees: the host's datagrams from its video port."""
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    raw.bind(("lo", 0))
    raw.settimeout(0.2)
    try:
        while not stop.is_set() and len(packets) < 200:
            try:
                frame = raw.recv(4096)
            except socket.timeout:
                continue
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            udp = ip[(ip[0] & 0xF) * 4 :]
            if struct.unpack(">H", udp[0:2])[0] == port and len(udp) > 8 + 64:
                packets.append(bytes(udp[8:]))
    finally:
        raw.close()


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
            start = time.monotonic()
            for frame in ml.client.frames():
                assert read_barcode(frame.data) is not None, "a damaged frame was shown"
                decoded += 1
                if time.monotonic() - start > 3:
                    break
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
