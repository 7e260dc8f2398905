"""The web console's dashboard with two clients streaming at once (issue 12, test 3).

Two stock Moonlight clients (moonlight-python, each with its own identity and name,
both paired) stream the test pattern at once, at different modes, each from a process
of its own (libmoonlight-common-c holds one connection per process). An admin logs in
to the console in a real headless Chromium: the dashboard lists two live sessions, each
with its own device, its own resolution and its own live figures (a frame rate, and a
frame count that rises while it watches). When one client quits, its row goes and the
other's figures go on rising.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, Host, Moonlight, WebSession
from test_two_sessions import HERE
from test_web_console import PASSWORD, accessible, browser  # noqa: F401 (browser: a fixture)

SHOTS = REPO / "target" / "screenshots"
# (device name, width, height): two modes the dashboard must not mix up.
CLIENTS = [("Steam Deck", 1280, 720), ("Phone", 960, 540)]


def stream(host: Host, ml: Moonlight, out: Path, width: int, height: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "streamclient.py"), "--host", host.bind, "--port", str(host.port_base),
         "--config-dir", ml.config_dir, "--seconds", "60", "--width", str(width), "--height", str(height),
         "--fps", "30", "--until-ended", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def both_streaming(host: Host) -> bool:
    widths = {(s.get("stream") or {}).get("width"): (s.get("stream") or {}).get("frames", 0)
              for s in host.status().get("sessions", [])}
    return all(widths.get(w, 0) > 10 for _, w, _ in CLIENTS)


def frames(row) -> int:
    return int(row.locator(".frames").inner_text().replace(",", ""))


def test_the_dashboard_shows_two_live_sessions_with_their_own_figures(host: Host, browser, tmp_path: Path):  # noqa: F811
    from playwright.sync_api import expect

    clients = []
    for name, _, _ in CLIENTS:
        ml = Moonlight(host)
        error, _ = ml.pair(name=name)
        assert error is None, repr(error)
        clients.append(ml)
    procs: list[subprocess.Popen] = []
    page = None
    try:
        for ml, (_, width, height) in zip(clients, CLIENTS):
            procs.append(stream(host, ml, tmp_path / f"{width}.json", width, height))
        deadline = time.monotonic() + 60
        while not both_streaming(host):
            assert time.monotonic() < deadline, f"both clients did not stream: {host.status()}"
            assert all(p.poll() is None for p in procs), "a client exited before streaming"
            time.sleep(0.5)

        WebSession(host).setup(password=PASSWORD)
        page = browser.new_page(ignore_https_errors=True, viewport={"width": 1280, "height": 1100})
        page.goto(f"{host.web_url}/login")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

        rows = page.locator(".session")
        expect(rows).to_have_count(2, timeout=10_000)
        first: dict[str, int] = {}
        for name, width, height in CLIENTS:
            row = rows.filter(has_text=name)
            expect(row).to_have_count(1)
            # Its own mode, codec and measured rate, not the other's.
            expect(row).to_contain_text(f"{width}×{height}")
            expect(row.locator(".badge")).to_have_text("streaming")
            expect(row).to_contain_text("H.264", timeout=10_000)
            expect(row.locator(".fps")).to_have_text(re.compile(r"^[1-9]\d* fps$"), timeout=10_000)
            expect(row.locator(".frames")).to_have_text(re.compile(r"^[\d,]+$"))
            first[name] = frames(row)
            other = next((w, h) for n, w, h in CLIENTS if n != name)
            assert f"{other[0]}×{other[1]}" not in row.inner_text(), f"{name}'s row shows the other's mode"
        accessible(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "18-dashboard-two-sessions.png"), full_page=True)

        # Both rows' figures are live: each one's frame count rises by itself.
        for name, _, _ in CLIENTS:
            row = rows.filter(has_text=name)
            expect(row.locator(".frames")).not_to_have_text(f"{first[name]:,}", timeout=10_000)
        risen = {name: frames(rows.filter(has_text=name)) for name, _, _ in CLIENTS}
        assert all(risen[n] > first[n] for n in first), f"frames {first} -> {risen}"

        # One client quits: its row goes, the other's figures go on.
        r = clients[0].https("cancel")
        assert 'cancel="1"' in r.text or "<cancel>1</cancel>" in r.text, r.text
        expect(rows).to_have_count(1, timeout=15_000)
        remaining = rows.first
        expect(remaining).to_contain_text(CLIENTS[1][0])
        before = frames(remaining)
        expect(remaining.locator(".frames")).not_to_have_text(f"{before:,}", timeout=10_000)
    except BaseException:
        print(f"--- host log ---\n{host.log()[-20000:]}")
        for p in procs:
            if p.poll() is not None and p.stderr:
                print(f"--- client exited {p.returncode} ---\n{p.stderr.read()[-3000:]}")
        raise
    finally:
        if page is not None:
            page.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
