#!/usr/bin/env bash
# Builder stage of Containerfile: builds punktfunk-host (and the web console, when the
# repository has one) against the base image's own libraries, into OUT as a /usr tree.
#
#   build-host.sh OUT        # run in the repository root
set -euo pipefail
out=$1

dnf -y install cargo rust gcc gcc-c++ cmake clang-devel pkgconf-pkg-config \
    'pkgconfig(libavcodec)' 'pkgconfig(libavformat)' 'pkgconfig(libavutil)' \
    'pkgconfig(libavfilter)' 'pkgconfig(libavdevice)' 'pkgconfig(libswscale)' \
    'pkgconfig(libswresample)'
cargo build --release --locked -p punktfunk-host
install -D -m 0755 target/release/punktfunk-host "$out/usr/bin/punktfunk-host"

if [[ -f web/package.json ]]; then
    dnf -y install nodejs npm
    (cd web && npm ci && npm run build)
fi
if [[ -d web/dist ]]; then
    install -d "$out/usr/share/punktfunk/web"
    cp -a web/dist/. "$out/usr/share/punktfunk/web/"
else
    echo "build-host.sh: no web console in this tree (web/dist), the image has none"
fi
