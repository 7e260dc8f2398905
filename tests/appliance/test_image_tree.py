"""The bootc rules that matter, checked over image/ (the overlay both the bootc image and
the sysext ship), and its config files applied for real by the systemd tools that read
them. `bootc container lint` itself needs the built image (and the internet)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO

IMAGE = REPO / "image"
# Ports the host listens on at the default base (host/src/config.rs Ports::from_base).
BASE = 47989
TCP = {BASE - 5, BASE, BASE + 1, BASE + 21}  # HTTPS, HTTP, web, RTSP
UDP = {BASE + 9, BASE + 10, BASE + 11}  # video, control, audio
UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".path", ".mount", ".slice", ".preset")


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_nothing_under_var_or_run() -> None:
    # bootc unpacks /var only at first install; /run is a tmpfs. State comes from
    # StateDirectory=, tmpfiles.d and sysusers.d at run time.
    for top in ("var", "run", "tmp"):
        assert not (IMAGE / top).exists(), top
    assert {p.split("/")[0] for p in tree(IMAGE)} == {"usr"}


def test_no_usr_etc_and_no_etc() -> None:
    # bootc's etc-usretc lint; our own rule: defaults in /usr/share, overrides are the admin's.
    assert not (IMAGE / "usr/etc").exists()
    assert not (IMAGE / "etc").exists()


def test_no_api_filesystems_or_boot_content() -> None:
    for top in ("proc", "sys", "dev", "boot", "usr/lib/modules"):
        assert not (IMAGE / top).exists(), top


def test_every_unit_lives_in_usr_lib_systemd() -> None:
    units = [p for p in tree(IMAGE) if p.endswith(UNIT_SUFFIXES) or ".d/" in p and "systemd" in p]
    assert units, "no units found"
    for p in units:
        assert p.startswith(("usr/lib/systemd/system/", "usr/lib/systemd/user/",
                             "usr/lib/systemd/system-preset/", "usr/lib/systemd/user-preset/")), p


def test_file_names_are_utf8_and_executables_are_executable() -> None:
    for p in tree(IMAGE):
        p.encode("utf-8")
    assert os.access(IMAGE / "usr/lib/punktfunk/punktfunk-setup", os.X_OK)


def test_kargs_d_parses() -> None:
    files = list((IMAGE / "usr/lib/bootc/kargs.d").glob("*.toml"))
    assert files
    for f in files:
        data = tomllib.loads(f.read_text())
        assert set(data) <= {"kargs", "match-architectures"}, (f, data)
        assert data["kargs"] and all(isinstance(k, str) and " " not in k for k in data["kargs"])
        for arch in data.get("match-architectures", []):
            assert arch in ("x86_64", "aarch64", "s390x", "ppc64le"), arch


def test_presets_enable_units_that_can_be_enabled() -> None:
    preset = (IMAGE / "usr/lib/systemd/system-preset/50-punktfunk.preset").read_text()
    enabled = re.findall(r"^enable (\S+)$", preset, re.M)
    assert enabled == ["punktfunk-host.service"]
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(IMAGE / "usr/lib/systemd/system" / enabled[0])
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_service_unit_is_notify_with_watchdog_restart_and_hardening() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(IMAGE / "usr/lib/systemd/system/punktfunk-host.service")
    s = unit["Service"]
    assert s["Type"] == "notify" and s["WatchdogSec"] == "30s" and s["Restart"] == "on-failure"
    assert s["User"] == "punktfunk" and s["StateDirectory"] == "punktfunk"
    assert s["CapabilityBoundingSet"] == "" and s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"
    # Well above the host's own connection caps (a flood must hit those first).
    assert int(s["LimitNOFILE"]) >= 8192


def test_firewalld_service_opens_exactly_the_hosts_ports() -> None:
    root = ET.parse(IMAGE / "usr/lib/firewalld/services/punktfunk.xml").getroot()
    tcp, udp = set(), set()
    for port in root.iter("port"):
        lo, _, hi = port.get("port").partition("-")
        ports = set(range(int(lo), int(hi or lo) + 1))
        (tcp if port.get("protocol") == "tcp" else udp).update(ports)
    assert (tcp, udp) == (TCP, UDP)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} missing")
        pytest.skip(f"{tool} missing")
    return path


def test_sysusers_creates_the_user_in_the_device_groups(tmp_path: Path) -> None:
    _need("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    r = subprocess.run(["systemd-sysusers", f"--root={tmp_path}",
                        str(IMAGE / "usr/lib/sysusers.d/punktfunk.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    assert passwd["punktfunk"][5] == "/var/lib/punktfunk"
    assert int(passwd["punktfunk"][2]) < 1000  # a system user
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in (tmp_path / "etc/group").read_text().splitlines()}
    for g in ("video", "render", "input"):
        assert "punktfunk" in groups[g], (g, groups)


def test_tmpfiles_create_the_override_dirs_and_linger_flag(tmp_path: Path) -> None:
    _need("systemd-tmpfiles")
    r = subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create",
                        str(IMAGE / "usr/lib/tmpfiles.d/punktfunk.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "etc/punktfunk/host.toml.d").is_dir()
    assert (tmp_path / "var/lib/systemd/linger/punktfunk").is_file()


def test_vendor_defaults_are_a_config_the_host_accepts(host_bin: Path, tmp_path: Path) -> None:
    data = tomllib.loads((IMAGE / "usr/share/punktfunk/host.toml").read_text())
    assert data["port_base"] == BASE and data["state_dir"] == "/var/lib/punktfunk"
    r = subprocess.run([str(host_bin), "apps", "list", "--config", str(IMAGE / "usr/share/punktfunk/host.toml"),
                        "--state-dir", str(tmp_path)], capture_output=True, text=True)
    # The config is read before the store: an unknown key or a bad value would fail there.
    assert "config file" not in r.stderr and "no store at" in r.stderr, r.stderr


def test_sysext_overlay_is_only_usr() -> None:
    assert {p.split("/")[0] for p in tree(REPO / "sysext/overlay")} == {"usr"}
