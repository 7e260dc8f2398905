"""Managing paired devices and apps from the box (`punktfunk-host clients|apps ...`)
while the service runs: changes reach Moonlight clients at once."""

from __future__ import annotations

import subprocess

from conftest import HOST_BIN, Host


def cli(host: Host, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOST_BIN), *args, *host.args()], capture_output=True, text=True, timeout=30)


def test_clients_list_rename_remove(host: Host, moonlight):
    ml = moonlight()
    error, _ = ml.pair(name="Steam Deck")
    assert error is None, repr(error)

    out = cli(host, "clients", "list")
    assert out.returncode == 0, out.stderr
    assert "Steam Deck" in out.stdout and "gamestream" in out.stdout
    device_id = out.stdout.split()[0]

    out = cli(host, "clients", "rename", device_id, "Deck in the den")
    assert out.returncode == 0, out.stderr
    assert [n for n, _ in host.paired_clients()] == ["Deck in the den"]

    out = cli(host, "clients", "remove", device_id)
    assert out.returncode == 0, out.stderr
    # The running service refuses the device on its very next request.
    assert 'status_code="401"' in ml.https("applist").text
    out = cli(host, "clients", "remove", device_id)
    assert out.returncode != 0 and "no paired device" in out.stderr


def test_apps_added_on_the_box_appear_in_moonlight(host: Host, moonlight, tmp_path):
    ml = moonlight()
    error, _ = ml.pair()
    assert error is None, repr(error)

    not_png = tmp_path / "art.png"
    not_png.write_bytes(b"GIF89a")
    out = cli(host, "apps", "add", "Retro", "--box-art", str(not_png))
    assert out.returncode != 0 and "not a PNG" in out.stderr

    out = cli(host, "apps", "add", "Steam Big Picture", "--command", "steam -gamepadui")
    assert out.returncode == 0, out.stderr
    apps = {a.name: a.id for a in ml.client.apps()}
    assert apps["Desktop"] == 1
    assert apps["Steam Big Picture"] >= 1000

    # Box art: the generated default is a PNG.
    art = ml.https("appasset", f"appid={apps['Steam Big Picture']}&AssetType=2&AssetIdx=0")
    assert art.headers["content-type"] == "image/png"
    assert art.content.startswith(b"\x89PNG\r\n\x1a\n")

    out = cli(host, "apps", "add", "Steam Big Picture")
    assert out.returncode != 0, "duplicate titles are refused"
    out = cli(host, "apps", "remove", str(apps["Steam Big Picture"]))
    assert out.returncode == 0, out.stderr
    assert [a.name for a in ml.client.apps()] == ["Desktop"]
