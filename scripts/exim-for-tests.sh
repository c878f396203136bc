#!/usr/bin/env bash
# Exim 4 for the interop tests (tests/adapters/exim_server.py), beside Postfix.
#
# Debian's exim4-daemon-light conflicts with postfix as a package (both are
# the system's mail-transport-agent), so its binary is unpacked into a
# directory of its own instead of installed: DEST/usr/sbin/exim4 (DEST is
# the first argument, /opt/smtpcore-exim by default). Its libraries are
# installed with apt (they conflict with nothing), and the user it was built
# to run as, Debian-exim, is created. Needs root and apt; run by .ci/run.
set -euo pipefail
dest=${1:-/opt/smtpcore-exim}
exim=$dest/usr/sbin/exim4

if [ ! -x "$exim" ]; then
    work=$(mktemp -d)
    chmod 755 "$work"  # apt downloads as its own user
    trap 'rm -rf "$work"' EXIT
    if ! (cd "$work" && apt-get download -q exim4-daemon-light); then
        apt-get update -q
        (cd "$work" && apt-get download -q exim4-daemon-light)
    fi
    mkdir -p "$dest"
    dpkg-deb -x "$work"/exim4-daemon-light_*.deb "$dest"
fi

if ldd "$exim" | grep -q "not found"; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        libidn12 libgnutls-dane0 libgnutls30 libpcre2-8-0 libdb5.3 libnsl2 libcrypt1
fi

if ! id Debian-exim >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin Debian-exim
fi

echo "$exim"
