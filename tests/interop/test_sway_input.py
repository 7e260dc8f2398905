"""The client's keyboard, mouse and text reach the app in its own sway session.

A stock Moonlight client (libmoonlight-common-c's `Li*Event` functions) launches
punktfunk-painter in a headless sway session; the host's input goes into that sway
through a virtual keyboard and pointer, and the painter reports every key, pointer,
button and scroll event its window receives (`$PF_INPUT_LOG`), reading keys through
the keymap sway hands it, as any app does. The tests assert what the painter got:
the keys with their modifiers and the characters they type, relative and absolute
motion (absolute scaled from the client's size to the output's), buttons, both
scroll axes, and UTF-8 text typed as that text.

Needs root (the session user) and sway, as test_sway_session.py.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

from conftest import Host, free_port_base
from streamclient import INPUT_CDEF, frames_for
from test_sway_session import painter, paired_client  # noqa: F401 (painter is a fixture)

# Limelight.h functions neither moonlight-python's cdef nor INPUT_CDEF declares.
TEXT_CDEF = "int LiSendUtf8TextEvent(const char *text, unsigned int length);"

KEY_DOWN, KEY_UP = 0x03, 0x04
PRESS, RELEASE = 0x07, 0x08
LEFT, RIGHT = 1, 3
SHIFT, CTRL = 0x01, 0x02
VK_LSHIFT, VK_LCONTROL = 0xA0, 0xA2
# evdev codes the painter reports.
KEY_A, KEY_B, KEY_C, KEY_Q, KEY_LEFTSHIFT, KEY_LEFTCTRL = 30, 48, 46, 16, 42, 29
BTN_LEFT, BTN_RIGHT = 0x110, 0x111
# The real-modifier bits the keymap gives Shift and Control.
MOD_SHIFT, MOD_CONTROL = 1, 4


@pytest.fixture
def logs():
    """A directory the session user can write the painter's reports to."""
    d = Path(tempfile.mkdtemp(prefix="punktfunk-input-"))
    d.chmod(0o777)
    yield d
    for f in d.iterdir():
        f.unlink()
    d.rmdir()


def input_host(tmp_path: Path, painter: Path, logs: Path) -> Host:  # noqa: F811
    config = tmp_path / "host.toml"
    # `[input]` is left at its default: with a display backend that is the session.
    config.write_text(
        "[display]\nbackend = \"sway\"\n"
        "[[apps]]\ntitle = \"Painter\"\n"
        f"command = \"PF_INPUT_LOG={logs / 'painter.jsonl'} {painter}\"\n"
        "[[apps]]\ntitle = \"Painter exits\"\n"
        f"command = \"PF_INPUT_LOG={logs / 'exits.jsonl'} {painter} --exit-after 4 --exit-code 0\"\n"
    )
    return Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=config)


def report(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for(path: Path, pred, seconds: float = 10) -> list[dict]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = report(path)
        if pred(events):
            return events
        time.sleep(0.05)
    return report(path)


def lib_of(client):
    session = client._session
    ffi, lib = session._ffi, session._lib
    ffi.cdef(INPUT_CDEF, override=True)
    ffi.cdef(TEXT_CDEF, override=True)
    return ffi, lib


def settle(client) -> None:
    """Waits for decoded frames, then past moonlight-python's own mouse nudges: until
    its first frame it moves the mouse 10 px right and, 0.5 s later, back."""
    assert next(iter(frames_for(client, 10)), None) is not None, "no frame decoded"
    time.sleep(1.0)


def send_text(ffi, lib, text: str) -> None:
    data = text.encode()
    assert lib.LiSendUtf8TextEvent(ffi.new("char[]", data), len(data)) == 0


def keys(events: list[dict]) -> list[tuple[int, bool, str, int]]:
    return [(e["key"], e["down"], e["text"], e["mods"]) for e in events if e["kind"] == "key"]


def test_keys_pointer_scroll_and_text_reach_the_sessions_app(tmp_path: Path, painter: Path, logs: Path):  # noqa: F811
    host = input_host(tmp_path, painter, logs).start()
    log = logs / "painter.jsonl"
    client = paired_client(host).client
    with client.stream(app="Painter", width=1280, height=720, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
        ffi, lib = lib_of(client)
        # The virtual keyboard appears when the stream starts; the painter takes it
        # and sway gives its fullscreen window the focus.
        events = wait_for(log, lambda ev: any(e["kind"] == "keyboard_enter" for e in ev) and any(e["kind"] == "keymap" for e in ev))
        assert any(e["kind"] == "keyboard_enter" for e in events), f"the painter never got the keyboard: {events}\n{host.log()}"
        mark = len(events)

        # Keys: Shift+A, b, Ctrl+C, each with the modifier flags Moonlight sends.
        for vk, action, mods in [
            (VK_LSHIFT, KEY_DOWN, SHIFT), (0x41, KEY_DOWN, SHIFT), (0x41, KEY_UP, SHIFT), (VK_LSHIFT, KEY_UP, 0),
            (0x42, KEY_DOWN, 0), (0x42, KEY_UP, 0),
            (VK_LCONTROL, KEY_DOWN, CTRL), (0x43, KEY_DOWN, CTRL), (0x43, KEY_UP, CTRL), (VK_LCONTROL, KEY_UP, 0),
        ]:
            assert lib.LiSendKeyboardEvent(vk, action, mods) == 0
        got = wait_for(log, lambda ev: len(keys(ev[mark:])) >= 10)[mark:]
        assert keys(got) == [
            (KEY_LEFTSHIFT, True, "", 0),
            (KEY_A, True, "A", MOD_SHIFT),
            (KEY_A, False, "A", MOD_SHIFT),
            (KEY_LEFTSHIFT, False, "", MOD_SHIFT),
            (KEY_B, True, "b", 0),
            (KEY_B, False, "b", 0),
            (KEY_LEFTCTRL, True, "", 0),
            (KEY_C, True, "\x03", MOD_CONTROL),
            (KEY_C, False, "\x03", MOD_CONTROL),
            (KEY_LEFTCTRL, False, "", MOD_CONTROL),
        ], got
        assert [e["sym"] for e in got if e["kind"] == "key" and e["down"]] == ["Shift_L", "A", "b", "Control_L", "c"]
        mark += len(got)

        # Absolute positions from a 1920x1080 client window land scaled on the
        # 1280x720 output (the painter's window fills it); relative motion moves on
        # from there.
        settle(client)
        mark = len(report(log))
        assert lib.LiSendMousePositionEvent(960, 540, 1920, 1080) == 0
        time.sleep(0.2)
        assert lib.LiSendMousePositionEvent(300, 150, 1920, 1080) == 0
        time.sleep(0.2)
        assert lib.LiSendMouseMoveEvent(15, -7) == 0
        time.sleep(0.2)
        # Buttons and both scroll axes.
        for action, button in [(PRESS, LEFT), (RELEASE, LEFT), (PRESS, RIGHT), (RELEASE, RIGHT)]:
            assert lib.LiSendMouseButtonEvent(action, button) == 0
        time.sleep(0.2)
        assert lib.LiSendScrollEvent(1) == 0  # one notch up
        time.sleep(0.2)
        assert lib.LiSendHScrollEvent(-2) == 0  # two notches left
        kinds = ("enter", "motion", "button", "axis", "axis_discrete")
        got = wait_for(log, lambda ev: sum(e["kind"] == "axis" for e in ev[mark:]) >= 2)[mark:]
        pointer = [e for e in got if e["kind"] in kinds]
        positions = [(e["x"], e["y"]) for e in pointer if e["kind"] in ("enter", "motion")]
        # An enter and a motion may report the same place: count each place once.
        places = [p for i, p in enumerate(positions) if i == 0 or positions[i - 1] != p]
        assert places == [(640.0, 360.0), (200.0, 100.0), (215.0, 93.0)], pointer
        assert [(e["button"], e["down"]) for e in pointer if e["kind"] == "button"] == [
            (BTN_LEFT, True), (BTN_LEFT, False), (BTN_RIGHT, True), (BTN_RIGHT, False)
        ], pointer
        axes = [(e["axis"], e["value"]) for e in pointer if e["kind"] == "axis"]
        assert axes == [("vertical", -15.0), ("horizontal", -30.0)], pointer
        discrete = [(e["axis"], e["discrete"]) for e in pointer if e["kind"] == "axis_discrete"]
        assert discrete == [("vertical", -1), ("horizontal", -2)], pointer
        # In order: positions, then buttons, then scroll.
        order = [e["kind"] for e in pointer if e["kind"] != "axis_discrete"]
        assert order.index("button") > 2 and order.index("axis") > order.index("button"), order
        mark += len(got)

        # Text, US characters and others, typed as that text; then a key still types
        # with the US keymap (the extended keymap keeps it).
        text = "Hi, wörld! 1+1=2 €Ж🎮"
        send_text(ffi, lib, text)
        assert lib.LiSendKeyboardEvent(0x42, KEY_DOWN, 0) == 0
        assert lib.LiSendKeyboardEvent(0x42, KEY_UP, 0) == 0
        got = wait_for(log, lambda ev: sum(1 for k in keys(ev[mark:]) if k[1]) >= len(text) + 1)[mark:]
        typed = "".join(k[2] for k in keys(got) if k[1])
        assert typed == text + "b", got
    host.stop()
    assert "client input goes to the session's compositor" in host.log()


def test_input_after_the_session_ended_goes_nowhere(tmp_path: Path, painter: Path, logs: Path):  # noqa: F811
    """The app exits by itself while the client keeps typing: what it sends after the
    session ended reaches no app (not the next session's either) and the host neither
    panics (the autouse fixture reads its log) nor stops serving."""
    host = input_host(tmp_path, painter, logs).start()
    client = paired_client(host).client
    ended = logs / "exits.jsonl"
    with client.stream(app="Painter exits", width=640, height=480, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
        session = client._session
        ffi, lib = lib_of(client)
        wait_for(ended, lambda ev: any(e["kind"] == "keyboard_enter" for e in ev))
        # 'q' and text until the client hears the app has gone, and a while after.
        deadline = time.monotonic() + 15
        after = 0
        while time.monotonic() < deadline and after < 20:
            lib.LiSendKeyboardEvent(0x51, KEY_DOWN, 0)
            lib.LiSendKeyboardEvent(0x51, KEY_UP, 0)
            lib.LiSendMouseMoveEvent(3, 3)
            data = b"q"
            lib.LiSendUtf8TextEvent(ffi.new("char[]", data), len(data))
            if session._connection_terminated.is_set():
                after += 1
            time.sleep(0.05)
        assert session._connection_terminated.is_set(), "the client never heard that the app ended"
    assert any(k[0] == KEY_Q for k in keys(report(ended))), "the first session's app got the keys while it ran"
    st = host.status()
    assert st["stream"] is None and st["session"]["state"] == "app_exited", st

    # The next session gets only what is sent to it.
    fresh = logs / "painter.jsonl"
    with client.stream(app="Painter", width=640, height=480, fps=30, bitrate_kbps=4000, codec="h264", record_audio=False):
        ffi, lib = lib_of(client)
        wait_for(fresh, lambda ev: any(e["kind"] == "keyboard_enter" for e in ev))
        assert lib.LiSendKeyboardEvent(0x42, KEY_DOWN, 0) == 0
        assert lib.LiSendKeyboardEvent(0x42, KEY_UP, 0) == 0
        got = wait_for(fresh, lambda ev: len(keys(ev)) >= 2)
    assert [k[:2] for k in keys(got)] == [(KEY_B, True), (KEY_B, False)], got
    client.quit_app()
    host.stop()
