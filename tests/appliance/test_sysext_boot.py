"""The system extension, built by sysext/build, merged into a Debian root filesystem and
booted with systemd-nspawn: what a SteamOS user gets after steamos-install, checked from
the outside the way they would notice it. Tests run in file order; the last powers off.
"""

from __future__ import annotations

import json
import re
import time

from conftest import Container, run

PORT_BASE = 47989
SERVICE = "punktfunk-host.service"


def test_systemd_dissect_calls_it_a_system_extension(sysext_raw) -> None:
    r = run(["systemd-dissect", "--json=short", str(sysext_raw)])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["useSystemExtension"] is True, info
    assert "ID=_any" in info["extensionRelease"], info
    assert "ARCHITECTURE=x86-64" in info["extensionRelease"], info
    assert [m["fstype"] for m in info["mounts"]] == ["erofs"], info


def test_the_image_carries_only_usr_with_the_host_and_its_libraries(sysext_tree) -> None:
    tops = {p.split("/")[0] for p in sysext_tree}
    assert tops == {"usr"}, tops  # a sysext can only overlay /usr (and /opt)
    files = set(sysext_tree)
    for path in (
        "usr/bin/punktfunk-host",
        "usr/lib/extension-release.d/extension-release.punktfunk",
        "usr/lib/systemd/system/punktfunk-host.service",
        "usr/lib/systemd/system/multi-user.target.d/10-punktfunk-host.conf",
        "usr/lib/systemd/user/punktfunk-session@.service",
        "usr/lib/sysusers.d/punktfunk.conf",
        "usr/share/punktfunk/host.toml",
        "usr/share/punktfunk/steamos/atomic-update.conf",
        "usr/lib/punktfunk/lib/libavcodec.so.59",
    ):
        assert path in files, path
    # Only the bootc image uses kernel arguments.
    assert not any(p.startswith("usr/lib/bootc") for p in files)
    # OS-matched libraries stay out (sysext/build HOST_LIBS).
    for soname in ("libc.so.6", "libva.so.2", "libvulkan.so.1", "libstdc++.so.6"):
        assert f"usr/lib/punktfunk/lib/{soname}" not in files, soname


def test_service_reaches_active_as_the_sysusers_user(booted: Container) -> None:
    assert booted.out("systemctl", "is-active", SERVICE).strip() == "active", booted.console()
    passwd = booted.out("getent", "passwd", "punktfunk").strip().split(":")
    assert passwd[5] == "/var/lib/punktfunk", passwd
    groups = booted.out("id", "-nG", "punktfunk").split()
    assert {"video", "render", "input"} <= set(groups), groups
    pid = booted.out("systemctl", "show", "-P", "MainPID", SERVICE).strip()
    assert booted.out("stat", "-c", "%U", f"/proc/{pid}").strip() == "punktfunk"
    # Upholds= from the extension's drop-in started it: nothing was enabled in /etc.
    assert booted.run("systemctl", "is-enabled", SERVICE).stdout.strip() == "disabled"
    assert SERVICE in booted.out("systemctl", "show", "-P", "Upholds", "multi-user.target")


def test_ready_notification_status_and_watchdog(booted: Container) -> None:
    show = booted.out("systemctl", "show", SERVICE, "-p", "Type,StatusText,WatchdogUSec,NRestarts,Result")
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    assert props["Type"] == "notify"
    assert props["StatusText"].startswith("serving punktfunk-appliance on ports 47989"), props
    assert props["WatchdogUSec"] == "30s"
    assert props["NRestarts"] == "0" and props["Result"] == "success", props


def test_serverinfo_answers_on_47989(booted: Container) -> None:
    r = booted.curl(f"http://127.0.0.1:{PORT_BASE}/serverinfo")
    assert r.returncode == 0, r.stderr
    assert "<hostname>punktfunk-appliance</hostname>" in r.stdout, r.stdout
    assert f"<HttpsPort>{PORT_BASE - 5}</HttpsPort>" in r.stdout, r.stdout


def test_web_port_47990_answers_over_tls_with_the_host_certificate(booted: Container) -> None:
    r = booted.curl("--insecure", "--write-out", "\n%{http_code}", f"https://127.0.0.1:{PORT_BASE + 1}/api/v1/setup")
    assert r.returncode == 0, r.stderr
    body, code = r.stdout.rsplit("\n", 1)
    # A fresh box waits for its first admin, with the one-time code in the state directory.
    setup = json.loads(body)
    assert code == "200" and setup["needs_setup"] is True, r.stdout
    assert setup["setup_code_file"] == "/var/lib/punktfunk/setup-code", setup
    code_file = booted.root / "var/lib/punktfunk/setup-code"
    assert code_file.stat().st_mode & 0o777 == 0o600
    # The certificate served is the identity the host keeps in its state directory.
    served = run(["ip", "netns", "exec", booted.netns, "sh", "-c",
                  f"openssl s_client -connect 127.0.0.1:{PORT_BASE + 1} </dev/null 2>/dev/null"
                  " | openssl x509 -noout -fingerprint -sha256"])
    stored = run(["openssl", "x509", "-noout", "-fingerprint", "-sha256",
                  "-in", str(booted.root / "var/lib/punktfunk/host.crt")])
    assert served.returncode == 0 and "Fingerprint=" in served.stdout, served.stderr
    assert served.stdout.strip() == stored.stdout.strip()


def test_journal_has_the_hosts_structured_lines(booted: Container) -> None:
    entries = booted.journal_entries("-t", "punktfunk-host")
    ready = [e for e in entries if e.get("MESSAGE", "").startswith("punktfunk host ready")]
    assert len(ready) == 1, [e.get("MESSAGE") for e in entries]
    e = ready[0]
    assert e["PRIORITY"] == "5"  # info -> notice, as systemd-journal-logger maps it
    assert e["_SYSTEMD_UNIT"] == SERVICE
    assert e["TARGET"] == "punktfunk_host::serve"
    assert e["CODE_FILE"] == "host/src/serve.rs" and e["CODE_LINE"].isdigit()
    assert (e["HTTP"], e["HTTPS"], e["WEB"]) == ("47989", "47984", "47990")
    assert e["HOSTNAME"] == "punktfunk-appliance"
    # Written by the journal protocol, not a captured stderr line.
    assert e["_TRANSPORT"] == "journal", e


def test_the_host_runs_on_the_libraries_the_extension_carries(booted: Container) -> None:
    assert "libavcodec59" not in booted.out("dpkg-query", "-W", "-f", "${Package}\n")
    pid = booted.out("systemctl", "show", "-P", "MainPID", SERVICE).strip()
    maps = booted.out("cat", f"/proc/{pid}/maps")
    libs = set(re.findall(r"(/\S+/libav\w+\.so\.\d+)", maps))
    assert libs and all(p.startswith("/usr/lib/punktfunk/lib/") for p in libs), libs
    assert "/libva.so.2" in maps and "/usr/lib/punktfunk/lib/libva.so.2" not in maps


def test_session_manager_with_pipewire_runs_with_nobody_logged_in(booted: Container) -> None:
    uid = booted.out("id", "-u", "punktfunk").strip()
    assert booted.out("loginctl", "list-sessions", "--no-legend").strip() == ""
    assert booted.out("systemctl", "is-active", f"user@{uid}.service").strip() == "active"
    deadline = time.monotonic() + 20
    while booted.run("test", "-S", f"/run/user/{uid}/pipewire-0").returncode != 0:
        assert time.monotonic() < deadline, booted.out("ls", "-la", f"/run/user/{uid}")
        time.sleep(0.5)
    r = booted.run("systemctl", "--user", "is-active", "pipewire.socket", user="punktfunk")
    assert r.stdout.strip() == "active", r.stdout + r.stderr


def test_every_unit_verifies(booted: Container) -> None:
    r = booted.run("systemd-analyze", "verify", "--man=no",
                   "/usr/lib/systemd/system/punktfunk-host.service",
                   "/usr/lib/systemd/system/punktfunk-setup.service",
                   "multi-user.target")  # with the extension's Upholds= drop-in
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    r = booted.run("systemd-analyze", "--user", "verify", "--man=no",
                   "/usr/lib/systemd/user/punktfunk-session@.service", user="punktfunk")
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_hardening_exposure_stays_low(booted: Container) -> None:
    out = booted.out("systemd-analyze", "security", "--no-pager", SERVICE)
    level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out).group(1))
    assert level <= 2.5, out[-2000:]


def test_powers_off_cleanly(booted: Container) -> None:
    booted.run("systemctl", "poweroff", timeout=10)
    assert booted.nspawn.wait(timeout=60) == 0, booted.console()[-3000:]
    journal = booted.root / "var/log/journal"
    r = run(["journalctl", "-D", str(journal), "--no-pager", "-o", "cat", "-b", "-u", SERVICE])
    assert "received SIGTERM, shutting down" in r.stdout, r.stdout
    assert "punktfunk-host.service: Deactivated successfully." in r.stdout, r.stdout
    failed = run(["journalctl", "-D", str(journal), "--no-pager", "-o", "cat", "-b", "-p", "err", "-u", SERVICE])
    assert failed.stdout.strip() == "", failed.stdout
