"""A stream through a lossy link: the Moonlight client (moonlight-python) in its own
network namespace, nftables dropping the host's video packets on the client's side,
UDP segmentation offload off on the host's veth so single packets are dropped, as on
a real link. Shared by test_fec.py and bench_loss.py (the before/after table)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import Host, Moonlight, free_port_base, make_config
from netns import sh
from streamclient import summarize

HERE = Path(__file__).resolve().parent


# x264 pads to the bitrate: the simple test pattern then loads the link at 10 Mbit/s
# (~15 packets a frame) as a game would, instead of 1-3 packets a frame.
FILLER = "[stream]\nx264_filler = true\n"


def random_loss(percent: int) -> str:
    """nftables statement: drop `percent`% of packets at random."""
    return f"numgen random mod 100 < {percent} counter drop"


def bursts(length: int = 8, every: int = 200) -> str:
    """nftables statement: drop `length` consecutive packets out of every `every` (at
    the ~1000 video packets a second of a 10 Mbit/s stream, about 5 bursts a second)."""
    return f"numgen inc mod {every} < {length} counter drop"


def set_loss(ns: str, port: int, statement: str | None) -> None:
    """Replaces the namespace's loss table: `statement` applied to UDP from `port` on
    the client's input hook; None removes the loss."""
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "fecloss"],
                   capture_output=True, check=False)
    if statement is None:
        return
    table = f"""
table inet fecloss {{
    chain in {{
        type filter hook input priority 0;
        udp sport {port} {statement}
    }}
}}
"""
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=table, text=True, check=True)


def dropped(ns: str) -> int:
    out = sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "fecloss")
    import re

    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else 0


@dataclass
class Run:
    """What one lossy stream measured."""

    result: dict
    summary: dict
    dropped: int
    seconds: float
    # Host status samples during the stream: (seconds since start, status["stream"]).
    samples: list[tuple[float, dict]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.summary["decoded"] / self.seconds

    @property
    def missing(self) -> int:
        return self.summary["sent"] - self.summary["decoded"]

    @property
    def host_idr(self) -> int | None:
        last = self.samples[-1][1] if self.samples else None
        return last.get("idr_frames") if last else None


def stream_through_loss(tmp_path: Path, net: tuple[str, str, str], statement: str | None, *,
                        seconds: float = 10, clear_after: float | None = None, config: str = FILLER) -> Run:
    """Pairs, applies the loss, streams 1280x720@60 at 10 Mbit/s for `seconds` and
    measures; the loss is removed `clear_after` seconds into the stream if given. The
    host's status is sampled every 0.25 s meanwhile."""
    ns, host_ip, _ = net
    tmp_path.mkdir(parents=True, exist_ok=True)
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base(),
                config=make_config(tmp_path, extra=config), bind=host_ip)
    host.start()
    try:
        ml = Moonlight(host)
        error, _ = ml.pair()
        assert error is None, repr(error)
        video_port = host.port_base + 9
        set_loss(ns, video_port, statement)
        out = tmp_path / "stream.json"
        client = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(HERE / "streamclient.py"),
             "--host", host_ip, "--port", str(host.port_base), "--config-dir", ml.config_dir,
             "--seconds", str(seconds), "--width", "1280", "--height", "720", "--fps", "60", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        samples: list[tuple[float, dict]] = []
        started: float | None = None
        cleared = False
        lost = 0
        while client.poll() is None:
            time.sleep(0.25)
            try:
                stream = host.status().get("stream")
            except Exception:  # the host is busy: the next sample will do
                continue
            if not stream:
                continue
            if started is None:
                started = time.monotonic()
            t = time.monotonic() - started
            samples.append((t, stream))
            if clear_after is not None and not cleared and t >= clear_after:
                lost = dropped(ns) if statement else 0
                set_loss(ns, video_port, None)
                cleared = True
        stdout, stderr = client.communicate(timeout=60)
        assert client.returncode == 0, f"{stdout}\n{stderr}\n{host.log()}"
        if statement and not cleared:
            lost = dropped(ns)
        result = json.loads(out.read_text())
        return Run(result=result, summary=summarize(result), dropped=lost, seconds=seconds, samples=samples)
    finally:
        set_loss(ns, host.port_base + 9, None)
        host.stop()
        log = host.log()
        (tmp_path / "host-log.txt").write_text(log)


def load() -> str:
    """The machine's load averages (fps results on a shared 2-core box depend on it)."""
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
