"""What a test sees on the wire: everything a TCP peer answers, and the UDP datagrams
crossing the loopback interface, as anyone on the LAN would see them (raw AF_PACKET
socket on `lo`; needs root)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator


def recv_all(s: socket.socket) -> bytes:
    """Reads until the peer closes (or resets, or goes quiet past the socket's timeout)."""
    chunks = []
    while True:
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def udp_on_loopback(stop: threading.Event) -> Iterator[tuple[int, int, bytes]]:
    """(source port, destination port, payload) of every IPv4 UDP datagram on `lo`,
    until `stop` is set or the caller stops iterating."""
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    raw.bind(("lo", 0))
    raw.settimeout(0.2)
    try:
        while not stop.is_set():
            try:
                frame = raw.recv(4096)
            except socket.timeout:
                continue
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            udp = ip[(ip[0] & 0xF) * 4 :]
            sport, dport = struct.unpack(">HH", udp[0:4])
            yield sport, dport, bytes(udp[8:])
    finally:
        raw.close()
