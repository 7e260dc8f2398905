#!/usr/bin/env bash
# Image stage of Containerfile, after image/ and the host are in place.
set -euo pipefail

/usr/bin/punktfunk-host --version
# Enable through the presets shipped in /usr/lib/systemd/{system,user}-preset.
systemctl preset punktfunk-host.service
systemctl --global preset pipewire.socket pipewire-pulse.socket wireplumber.service
# Open the streaming ports in the default firewalld zone (Fedora and Bazzite run
# firewalld; the service definition is /usr/lib/firewalld/services/punktfunk.xml).
if command -v firewall-offline-cmd >/dev/null; then
    firewall-offline-cmd --add-service=punktfunk
fi

# Signature policy for ostree-image-signed, when the build has the public key
# (bootc/signing/cosign.pub, see bootc/README.md): add our entry to the base image's
# policy.json instead of replacing it (Bazzite's own entries stay).
signing=/ctx/signing
if [[ -f $signing/cosign.pub ]]; then
    install -D -m 0644 "$signing/cosign.pub" /etc/pki/containers/punktfunk.pub
    install -D -m 0644 "$signing/punktfunk.yaml" /etc/containers/registries.d/punktfunk.yaml
    python3 - "$signing/policy.json" /etc/containers/policy.json <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
with open(sys.argv[2]) as f:
    policy = json.load(f)
for transport, scopes in ours["transports"].items():
    policy.setdefault("transports", {}).setdefault(transport, {}).update(scopes)
with open(sys.argv[2], "w") as f:
    json.dump(policy, f, indent=4)
PY
fi
