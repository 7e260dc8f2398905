"""A stream belongs to the paired client that launched it. A stranger on the LAN (here
at 127.0.0.2, while the host and its client use 127.0.0.1) who speaks RTSP, replays a
sniffed ping or a captured encrypted RTSP message, or sends /resume or /cancel from
another paired device gets nothing, and the real client's stream goes on."""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import Host, Moonlight
from streamclient import read_barcode
from wire import recv_all, udp_on_loopback

STRANGER = "127.0.0.2"
LAUNCH = "appid=1&mode=640x360x30&rikeyid=1&localAudioPlayMode=0&surroundAudioInfo=196610"


def rtsp(host: Host, payload: bytes, source: str) -> bytes:
    """One RTSP request from `source`; returns everything the host answers."""
    with socket.create_connection(("127.0.0.1", host.port_base + 21), timeout=5, source_address=(source, 0)) as s:
        s.sendall(payload)
        return recv_all(s)


def request(method: str, target: str, cseq: int, body: bytes = b"") -> bytes:
    head = f"{method} {target} RTSP/1.0\r\nCSeq: {cseq}\r\nX-GS-ClientVersion: 14\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-type: application/sdp\r\nContent-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def paired_pair(host: Host, moonlight) -> tuple[Moonlight, Moonlight]:
    owner = moonlight()
    assert owner.pair()[0] is None
    other = moonlight()
    assert other.pair(client_pin="9876")[0] is None
    return owner, other


def test_a_strangers_rtsp_on_a_plaintext_session_gets_nothing(host: Host, moonlight):
    owner, _ = paired_pair(host, moonlight)
    # An older client (no corever): the session's RTSP is plaintext.
    reply = owner.https("launch", f"{LAUNCH}&rikey={os.urandom(16).hex()}")
    assert "rtsp://" in reply.text, reply.text
    url = f"rtsp://127.0.0.1:{host.port_base + 21}"
    sdp = b"v=0\r\no=android 0 14 IN IPv4 127.0.0.1\r\ns=NVIDIA Streaming Client\r\n"
    for n, (method, target) in enumerate(
        [("OPTIONS", url), ("DESCRIBE", url), ("SETUP", "streamid=audio/0/0"), ("SETUP", "streamid=video/0/0"),
         ("SETUP", "streamid=control/13/0"), ("ANNOUNCE", "streamid=control/13/0"), ("PLAY", "/")],
        start=1,
    ):
        answer = rtsp(host, request(method, target, n, sdp if method == "ANNOUNCE" else b""), STRANGER)
        assert answer.startswith(b"RTSP/1.0 403"), (method, answer[:200])
        assert b"X-SS-Ping-Payload" not in answer and b"X-SS-Connect-Data" not in answer
    assert host.status()["stream"] is None, "a stranger started a stream"
    # The device that launched still gets its answers (the refusal is by address).
    answer = rtsp(host, request("SETUP", "streamid=video/0/0", 4), "127.0.0.1")
    assert answer.startswith(b"RTSP/1.0 200") and b"X-SS-Ping-Payload" in answer, answer[:300]


def sniff_ping(port: int, found: list, stop: threading.Event) -> None:
    """What anyone on the LAN sees: a client's ping to the video port, in clear."""
    for _, dport, payload in udp_on_loopback(stop):
        if dport == port and len(payload) == 20:
            found.append(payload)
            break


def test_a_replayed_ping_from_another_address_does_not_redirect_the_stream(host: Host, moonlight):
    ml: Moonlight = moonlight()
    assert ml.pair()[0] is None
    video_port, audio_port = host.port_base + 9, host.port_base + 11
    found: list[bytes] = []
    stop = threading.Event()
    sniffer = threading.Thread(target=sniff_ping, args=(video_port, found, stop))
    sniffer.start()
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind((STRANGER, 0))
    attacker.setblocking(False)
    stolen = 0
    frames_during = 0
    try:
        with ml.client.stream(app="Desktop", width=1280, height=720, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
            frames = ml.client.frames()
            start = time.monotonic()
            for frame in frames:
                if found or time.monotonic() - start > 10:
                    break
            assert found, "no ping seen on the wire"
            ping = found[0]
            attack_until = time.monotonic() + 3
            last_replay = 0.0
            for frame in frames:
                now = time.monotonic()
                if now - last_replay > 0.1:
                    for port in (video_port, audio_port):
                        attacker.sendto(ping, ("127.0.0.1", port))
                    last_replay = now
                try:
                    while True:
                        attacker.recv(2048)
                        stolen += 1
                except BlockingIOError:
                    pass
                assert read_barcode(frame.data) is not None
                frames_during += 1
                if now > attack_until:
                    break
    finally:
        stop.set()
        sniffer.join()
        attacker.close()
    assert stolen == 0, f"the stranger received {stolen} media packets\n{host.log()}"
    # The real client kept watching: about 3 s at 30 fps.
    assert frames_during >= 3 * 30 * 0.8, f"{frames_during} frames while the stranger replayed pings"


def seal(key: bytes, seq: int, plaintext: bytes) -> bytes:
    """moonlight-common-c's encrypted RTSP framing, as the client sends it."""
    iv = struct.pack("<I", seq) + bytes(6) + b"CR"
    sealed = AESGCM(key).encrypt(iv, plaintext, None)
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return struct.pack(">II", 0x80000000 | len(ciphertext), seq) + tag + ciphertext


def test_a_captured_encrypted_rtsp_message_cannot_be_replayed(host: Host, moonlight):
    ml: Moonlight = moonlight()
    assert ml.pair()[0] is None
    key = os.urandom(16)
    reply = ml.https("launch", f"{LAUNCH}&rikey={key.hex()}&corever=1")
    assert "rtspenc://" in reply.text, reply.text
    message = seal(key, 1, request("OPTIONS", f"rtsp://127.0.0.1:{host.port_base + 21}", 1))
    answer = rtsp(host, message, "127.0.0.1")
    assert answer[:1] == b"\x80", answer[:80]  # an encrypted answer: accepted
    # The same bytes again, from a stranger and from the client's own address.
    assert rtsp(host, message, STRANGER).startswith(b"RTSP/1.0 403")
    assert rtsp(host, message, "127.0.0.1").startswith(b"RTSP/1.0 400")
    # The client's next message (a higher sequence number) is still answered.
    answer = rtsp(host, seal(key, 2, request("OPTIONS", "rtsp://x", 2)), "127.0.0.1")
    assert answer[:1] == b"\x80", answer[:80]


def status_code(text: str) -> int:
    return int(re.search(r'status_code="(\d+)"', text).group(1))


def test_resume_and_cancel_only_touch_the_requesters_own_session(host: Host, moonlight):
    owner, other = paired_pair(host, moonlight)
    reply = owner.https("launch", f"{LAUNCH}&rikey={os.urandom(16).hex()}&corever=1")
    assert status_code(reply.text) == 200, reply.text
    # Another paired device can neither quit nor take over the running app: its
    # cancel quits only its own session (it has none), its resume is refused, and it
    # sees no app of its own.
    assert status_code(other.https("cancel").text) == 200
    assert status_code(other.https("resume", f"rikey={os.urandom(16).hex()}&rikeyid=2&corever=1").text) == 403
    assert "<currentgame>1</currentgame>" in owner.https("serverinfo").text
    assert "<currentgame>0</currentgame>" in other.https("serverinfo").text
    # The owner may not resume its encrypted session in plaintext (no corever).
    assert status_code(owner.https("resume", f"rikey={os.urandom(16).hex()}&rikeyid=3").text) == 400
    reply = owner.https("resume", f"rikey={os.urandom(16).hex()}&rikeyid=4&corever=1")
    assert status_code(reply.text) == 200 and "rtspenc://" in reply.text, reply.text
    assert "<cancel>1</cancel>" in owner.https("cancel").text
    assert "<currentgame>0</currentgame>" in owner.https("serverinfo").text
