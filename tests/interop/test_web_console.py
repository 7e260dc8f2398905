"""The web console end to end, in a real browser (Debian's chromium driven by Playwright):
the first-run wizard, login, pairing moonlight-python by typing its PIN, a live session,
revoking a device (its next HTTPS request is refused), apps with box art, settings and
logs. Saves a screenshot of every page to target/screenshots/."""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from pathlib import Path

import pytest

from conftest import REPO, Host, Moonlight

SHOTS = REPO / "target" / "screenshots"
CHROMIUM = os.environ.get("PUNKTFUNK_CHROMIUM", "/usr/bin/chromium")
# As the CI notes require: no sandbox as root, no GPU, nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery"

# Every control must have an accessible name, and none may be taken out of the tab order.
A11Y_JS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')) {
    let name = el.getAttribute('aria-label') || '';
    if (!name && el.labels && el.labels.length) name = Array.from(el.labels).map(l => l.textContent).join(' ');
    if (!name && el.getAttribute('aria-labelledby'))
      name = el.getAttribute('aria-labelledby').split(' ').map(id => (document.getElementById(id) || {}).textContent || '').join(' ');
    if (!name) name = el.textContent || el.getAttribute('title') || '';
    if (!name.trim()) bad.push('no label: ' + el.outerHTML.slice(0, 160));
    if (el.tabIndex < 0) bad.push('not in tab order: ' + el.outerHTML.slice(0, 160));
  }
  return bad;
}"""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, for box art uploads."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install-deps installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Shots:
    def __init__(self) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for old in SHOTS.glob("*.png"):
            old.unlink()
        self.taken: list[str] = []

    def __call__(self, page, name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        self.taken.append(name)


def accessible(page) -> None:
    bad = page.evaluate(A11Y_JS)
    assert not bad, f"{page.url}: {bad}"


def tab_to(page, text: str, presses: int = 60) -> None:
    """Moves the keyboard focus with Tab until it is on the control named `text`."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => (document.activeElement.getAttribute('aria-label') || document.activeElement.textContent || '').trim()")
        if focused == text:
            return
    raise AssertionError(f"{text!r} cannot be reached with the keyboard on {page.url}")


def pair_in_background(ml: Moonlight, pin: str) -> tuple[threading.Thread, dict]:
    """Starts Moonlight's pairing; it waits for the PIN to be typed into the console."""
    result: dict = {}

    def run() -> None:
        try:
            ml.client.pair(server=ml.server, pin=pin)
            result["ok"] = True
        except Exception as e:  # reported by the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_wizard_login_pair_revoke_apps_settings_logs(host: Host, moonlight, browser):
    from playwright.sync_api import expect

    shot = Shots()
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Script errors fail the test; the browser's own notes about the 4xx answers this test
    # provokes on purpose (wrong code, wrong password, not a PNG) do not.
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    base = host.web_url

    # --- First-run wizard ---------------------------------------------------------
    page.goto(base + "/")
    expect(page).to_have_url(base + "/setup")
    expect(page.get_by_role("heading", name="Enter the setup code")).to_be_visible()
    accessible(page)
    shot(page, "01-setup-code")
    page.get_by_label("Setup code").fill("WRONG-CODE-0000")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    # A wrong code is refused with where to find the right one.
    expect(page.get_by_role("alert")).to_contain_text("wrong setup code")
    page.get_by_role("button", name="Fix the setup code").click()
    page.get_by_label("Setup code").fill(host.setup_code().lower())
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    accessible(page)
    shot(page, "02-setup-account")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Name this host")).to_be_visible()
    page.get_by_label("Host name").fill("living-room")
    shot(page, "03-setup-hostname")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Network check")).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text(str(host.https_port))
    accessible(page)
    shot(page, "04-setup-network")
    page.get_by_role("button", name="Continue").click()

    # The first device: a real Moonlight client waits while its PIN is typed in.
    expect(page.get_by_role("heading", name="Pair your first device")).to_be_visible()
    shot(page, "05-setup-first-device")
    tv = moonlight()
    t, result = pair_in_background(tv, "4821")
    expect(page.get_by_text("A Moonlight client is waiting for its PIN.")).to_be_visible(timeout=15_000)
    page.get_by_label("PIN shown by Moonlight").fill("4821")
    page.get_by_label("Device name (optional)").fill("Living room TV")
    page.get_by_role("button", name="Pair device").click()
    expect(page.get_by_text("Paired “Living room TV”")).to_be_visible(timeout=30_000)
    t.join(30)
    assert result.get("ok"), result
    shot(page, "06-setup-paired")
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # Moonlight sees the new name and its apps.
    assert "<hostname>living-room</hostname>" in host.serverinfo()
    assert [a.name for a in tv.client.apps()][0] == "Desktop"

    # --- Log out, log in with the keyboard ------------------------------------------
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(base + "/login")
    accessible(page)
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
    shot(page, "07-login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # --- Pairing page: a second Moonlight client, PIN entered with the keyboard ------
    page.get_by_role("link", name="Pairing").click()
    expect(page.get_by_role("heading", name="Pair a device")).to_be_visible()
    deck = moonlight()
    t, result = pair_in_background(deck, "7315")
    expect(page.get_by_text("A Moonlight client is waiting for its PIN.")).to_be_visible(timeout=15_000)
    page.get_by_label("PIN shown by Moonlight").fill("7315")
    page.get_by_label("Device name (optional)").fill("Steam Deck")
    accessible(page)
    shot(page, "08-pairing")
    tab_to(page, "Pair device")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Paired “Steam Deck”")).to_be_visible(timeout=30_000)
    t.join(30)
    assert result.get("ok"), result
    # Native pairing: arm and show the PIN.
    page.get_by_role("button", name="Show a PIN").click()
    expect(page.locator(".big-pin")).to_have_text(re.compile(r"^\d{6}$"))
    shot(page, "09-pairing-paired-native-pin")

    # --- Devices: both appear -------------------------------------------------------
    page.get_by_role("link", name="Devices").click()
    names = page.locator(".device-name")
    expect(names).to_have_text(["Living room TV", "Steam Deck"])
    accessible(page)

    # --- A live stream on the dashboard, then revoke it --------------------------------
    with deck.client.stream(app="Desktop", width=1280, height=720, fps=60, bitrate_kbps=10000,
                            codec="h264", record_audio=False):
        stream = deck.client._session
        page.get_by_role("link", name="Dashboard").click()
        session = page.locator(".session")
        expect(session).to_contain_text("Steam Deck")
        expect(session).to_contain_text("1280×720")
        # Measurements appear once the video thread reports (about once a second).
        expect(session).to_contain_text("H.264", timeout=10_000)
        expect(session).to_contain_text(re.compile(r"\d+ fps"))
        expect(session.locator(".badge")).to_have_text("streaming")
        accessible(page)
        shot(page, "10-dashboard")

        # Revoke the streaming device: refused at once, and its stream ends.
        page.get_by_role("link", name="Devices").click()
        expect(page.locator(".device", has_text="Steam Deck")).to_contain_text("streaming")
        shot(page, "11-devices")
        page.get_by_role("button", name="Revoke Steam Deck").click()
        page.get_by_role("button", name="Yes, revoke").click()
        expect(page.get_by_text("Revoked “Steam Deck”")).to_be_visible()
        assert stream._connection_terminated.wait(5), "the revoked device kept streaming"
    expect(names).to_have_text(["Living room TV"])
    shot(page, "12-devices-revoked")
    reply = deck.https("applist")
    assert 'status_code="401"' in reply.text, reply.text
    assert "<currentgame>0</currentgame>" in host.serverinfo()
    assert host.status()["stream"] is None
    assert [n for n, _ in host.paired_clients()] == ["Living room TV"]
    assert [a.name for a in tv.client.apps()][0] == "Desktop", "the other device still works"
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_text("Nobody is streaming right now.")).to_be_visible()

    # --- Apps: add one with box art; Moonlight lists it and gets the art ------------
    page.get_by_role("link", name="Apps").click()
    page.get_by_label("Title").fill("Steam Big Picture")
    page.get_by_label("Command (optional)").fill("steam -gamepadui")
    page.get_by_role("button", name="Add app").click()
    card = page.locator(".app", has_text="Steam Big Picture")
    expect(card).to_contain_text("steam -gamepadui")
    art = png(60, 80, (200, 60, 40))
    card.get_by_label("Box art image for Steam Big Picture (PNG)").set_input_files(
        {"name": "steam.png", "mimeType": "image/png", "buffer": art}
    )
    expect(card.get_by_role("button", name="Use generated art")).to_be_visible()
    bad = page.locator(".app", has_text="Steam Big Picture").get_by_label("Box art image for Steam Big Picture (PNG)")
    bad.set_input_files({"name": "x.png", "mimeType": "image/png", "buffer": b"GIF89a"})
    expect(card.get_by_role("alert")).to_contain_text("must be a PNG image")
    accessible(page)
    shot(page, "13-apps")
    apps = {a.name: a.id for a in tv.client.apps()}
    assert "Steam Big Picture" in apps
    asset = tv.https("appasset", f"appid={apps['Steam Big Picture']}&AssetType=2&AssetIdx=0")
    assert asset.content == art

    # --- Settings --------------------------------------------------------------------
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_label("Host name")).to_have_value("living-room")
    fec = page.get_by_label("Error correction (%)")
    fec.fill("95")
    page.get_by_role("button", name="Save settings").click()
    # The browser refuses it before sending (the host would too: the API tests show).
    assert fec.evaluate("e => e.validationMessage"), "95 % FEC must be flagged"
    expect(page.get_by_text("Saved.")).to_have_count(0)
    page.get_by_label("Error correction (%)").fill("30")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    accessible(page)
    shot(page, "14-settings")

    # --- Logs --------------------------------------------------------------------------
    page.get_by_role("link", name="Logs").click()
    log = page.get_by_label("Recent log lines")
    expect(log).to_contain_text("paired a Moonlight client")
    expect(log).to_contain_text("revoked a device")
    accessible(page)
    shot(page, "15-logs")

    # --- On a phone --------------------------------------------------------------------
    phone = browser.new_context(
        ignore_https_errors=True, viewport={"width": 390, "height": 844}, device_scale_factor=2,
        is_mobile=True, has_touch=True, storage_state=ctx.storage_state(),
    )
    p2 = phone.new_page()
    p2.goto(base + "/pairing")
    expect(p2.get_by_role("heading", name="Pair a device")).to_be_visible()
    # Nothing is wider than the screen.
    assert p2.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(p2, "16-phone-pairing")
    p2.goto(base + "/")
    expect(p2.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert p2.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(p2, "17-phone-dashboard")
    phone.close()
    ctx.close()

    assert not errors, errors
    assert len(shot.taken) == 17


def test_the_pairing_page_asks_which_waiting_device_the_pin_is_for(host: Host, moonlight, browser):
    """A stranger's request (127.0.0.2) waits next to the real client's: the console lists
    both, refuses to guess, and pairs the one the admin picks."""
    from playwright.sync_api import expect

    from conftest import WebSession
    from test_pairing_hold import hold_pairing

    WebSession(host).setup(password=PASSWORD)
    held: dict = {}
    threading.Thread(target=hold_pairing, args=(host, "127.0.0.2", held), daemon=True).start()
    ml = moonlight()
    t, result = pair_in_background(ml, "5190")
    page = browser.new_page(ignore_https_errors=True)
    try:
        page.goto(f"{host.web_url}/login")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        page.get_by_role("link", name="Pairing", exact=True).click()
        expect(page.get_by_text("Several devices are waiting")).to_be_visible(timeout=15_000)
        page.get_by_label("PIN shown by Moonlight").fill("5190")
        page.get_by_role("button", name="Pair device").click()
        expect(page.get_by_text("Choose the device that shows this PIN.")).to_be_visible()
        accessible(page)
        page.get_by_label(re.compile(r"at 127\.0\.0\.1$")).check()
        page.get_by_role("button", name="Pair device").click()
        expect(page.get_by_text("Paired “")).to_be_visible(timeout=30_000)
        t.join(30)
        assert result.get("ok"), result
        assert len(host.paired_clients()) == 1
        assert "reply" not in held, "the stranger's request got the PIN"
    finally:
        page.close()
