"""Killing the host (SIGKILL, no clean-up) in the middle of a burst of pairings loses no
pairing that the host had confirmed to its client."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

from conftest import Host, Moonlight, free_port_base


def test_sigkill_during_a_pairing_burst_loses_nothing_committed(tmp_path):
    host = Host(state_dir=tmp_path / "state", port_base=free_port_base()).start()
    confirmed: list[Moonlight] = []
    stop = threading.Event()

    def burst() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                ml = Moonlight(host)
            except Exception:
                return  # the host is gone
            error, _ = ml.pair(client_pin=f"{1000 + n}", name=f"device-{n}")
            if error is None:
                # The host answered phase 4 with paired=1 and phase 5 over TLS: it has
                # confirmed this pairing to the client.
                confirmed.append(ml)

    worker = threading.Thread(target=burst)
    worker.start()
    try:
        # Kill at an arbitrary moment, most likely mid-pairing.
        deadline = time.monotonic() + random.uniform(4.0, 7.0)
        while time.monotonic() < deadline or len(confirmed) < 2:
            time.sleep(0.05)
            assert time.monotonic() < deadline + 30, "pairings stopped completing"
        host.kill()
    finally:
        stop.set()
        worker.join(timeout=120)
    assert len(confirmed) >= 2

    host.start()
    db = sqlite3.connect(f"file:{host.state_dir / 'punktfunk.db'}?mode=ro", uri=True)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    stored = {name for name, _ in host.paired_clients()}
    for ml in confirmed:
        apps = Moonlight(host, ml.config_dir).client.connect("127.0.0.1", host.port_base)
        assert apps is not None
        reply = ml.https("applist")
        assert 'status_code="200"' in reply.text, f"a confirmed pairing was lost:\n{reply.text}"
    assert len(stored) >= len(confirmed)
    host.stop()


def test_a_lost_store_next_to_an_existing_identity_is_said_loudly(tmp_path):
    """A zero-length punktfunk.db (a full disk, a bad copy) next to the host's identity:
    the host starts with a fresh store, but says in its log and on the console's
    dashboard that every pairing is gone, instead of silently forgetting them."""
    from conftest import WebSession

    host = Host(state_dir=tmp_path / "state", port_base=free_port_base())
    host.start()
    ml = Moonlight(host)
    assert ml.pair()[0] is None
    host.stop()
    db = tmp_path / "state" / "punktfunk.db"
    db.write_bytes(b"")
    for side in ("punktfunk.db-wal", "punktfunk.db-shm"):
        (tmp_path / "state" / side).unlink(missing_ok=True)
    host.start()
    try:
        assert "is empty (0 bytes) although this host has an identity" in host.log()
        assert host.paired_clients() == []
        web = WebSession(host).setup()
        warnings = web.request("GET", "/api/v1/status").json()["warnings"]
        assert len(warnings) == 1 and "every paired device" in warnings[0], warnings
    finally:
        host.stop()
