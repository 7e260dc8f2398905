#!/usr/bin/env bash
# Image stage of Containerfile: what the host needs from the OS. Bazzite has all of it
# already (dnf leaves installed packages alone); fedora-bootc gets it here.
set -euo pipefail

# gamescope (with its Vulkan WSI layer) for the headless per-session compositor,
# PipeWire and WirePlumber for capture and audio, in the punktfunk user's manager.
dnf -y install gamescope pipewire wireplumber pipewire-pulseaudio
if ! compgen -G '/usr/share/vulkan/implicit_layer.d/*gamescope*' >/dev/null; then
    echo "install-packages.sh: gamescope's WSI layer is missing" >&2
    exit 1
fi
dnf clean all
