"""The issue-13 table: a 10 s 1280x720@60 10 Mbit/s stream of the test pattern through
5% and 20% random loss (and 8-packet bursts), per host binary.

    sudo .venv/bin/python tests/interop/bench_loss.py --bin after=target/debug/punktfunk-host
    sudo .venv/bin/python tests/interop/bench_loss.py --bin fixed20=target/debug/punktfunk-host \\
        --config "$(printf '[stream]\nx264_filler = true\nfec_min_percent = 20\nfec_max_percent = 20\n')"

Prints one markdown table: decoded fps, frames missing in 10 s, IDR frames the client
decoded (and the host sent, where its status reports it), the longest gap, and the
machine's load. Needs root (network namespaces)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conftest  # noqa: E402
from lossy import FILLER, bursts, load, random_loss, stream_through_loss  # noqa: E402
from netns import veth_namespace  # noqa: E402

CASES = {"5%": random_loss(5), "20%": random_loss(20), "bursts 8x5/s": bursts(8, 200)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", action="append", required=True, help="label=path to punktfunk-host")
    parser.add_argument("--case", action="append", choices=list(CASES), help="default: all")
    parser.add_argument("--config", default=FILLER,
                        help="extra host config (TOML); default: x264 filler on (a host before it: pass '')")
    args = parser.parse_args()
    rows = []
    for spec in args.bin:
        label, path = spec.split("=", 1)
        conftest.HOST_BIN = Path(path).resolve()
        for case in args.case or list(CASES):
            with tempfile.TemporaryDirectory(prefix="pf-bench-loss-") as tmp, \
                    veth_namespace("bl", 79, segmentation_offload=False) as net:
                run = stream_through_loss(Path(tmp), net, CASES[case], config=args.config)
            rows.append((label, case, run, load()))
            print(f"{label} {case}: {run.fps:.1f} fps", file=sys.stderr, flush=True)
    print("| host | loss | decoded | frames missing in 10 s | IDR frames (decoded / sent) | longest gap | load |")
    print("|---|---|---|---|---|---|---|")
    for label, case, run, ld in rows:
        sent = run.host_idr if run.host_idr is not None else "?"
        print(f"| {label} | {case} | {run.fps:.1f} fps | {run.missing} | {run.result['keyframes']} / {sent} "
              f"| {run.result['max_gap'] * 1000:.0f} ms | {ld} |")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    main()
