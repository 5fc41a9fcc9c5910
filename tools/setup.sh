#!/usr/bin/env bash
# Installs everything the lab and the tests need on a fresh Debian 12 machine (as root):
# Debian packages, the pinned Python tool chain in .venv, and ansible-test's offline bootstrap.
# Idempotent: a stamp keyed by the package list and the requirements skips work already done.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${LVS_HA_CACHE:-$HOME/.cache/lvs-ha}
mkdir -p "$cache"

debian_packages=(
  # guest with Debian's kernel (real IPVS) and its image build
  qemu-system-x86 qemu-utils mmdebstrap busybox-static cpio e2fsprogs fakeroot
  # network-namespace test bed and VRRP reference peer
  iproute2 nftables tcpdump arping keepalived kmod iputils-ping
  # real servers for the checker tests
  nginx-light dnsmasq-base python3-aiosmtpd
  # promtool checks the agent's /metrics (the package's server is never started)
  prometheus
  # Podman for Molecule (client side; the server runs in the guest)
  podman runc crun iptables netavark aardvark-dns catatonit conmon slirp4netns uidmap
  # tool chain
  make git python3-venv ca-certificates curl shellcheck
)

python_stamp() { cat "$repo/tools/requirements.txt" "$0" | md5sum | cut -c1-16; }

apt_stamp="$cache/apt-$(printf '%s\n' "${debian_packages[@]}" | md5sum | cut -c1-16)"
if [ ! -e "$apt_stamp" ]; then
  echo "setup: installing Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${debian_packages[@]}" >/dev/null
  # The keepalived package starts a daemon of its own where systemd runs; the tests start their own.
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl disable --now keepalived nginx prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
  touch "$apt_stamp"
fi

venv_stamp="$repo/.venv/.lvs-ha-$(python_stamp)"
if [ ! -e "$venv_stamp" ]; then
  echo "setup: installing the Python tool chain into .venv"
  python3 -m venv "$repo/.venv"
  "$repo/.venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$repo/.venv/bin/pip" install -q --disable-pip-version-check -r "$repo/tools/requirements.txt"
  rm -f "$repo"/.venv/.lvs-ha-*
  touch "$venv_stamp"
fi

# ansible-test sanity bootstraps pip in its venvs from an unreachable host: seed its cache.
pip_version=$("$repo/.venv/bin/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
class Python:
    version = "3.11"
print(get_venv_packages(Python())["pip"])
PY
)
mkdir -p "$HOME/.ansible/test/cache"
install -m 0644 "$repo/tools/sanity-get-pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
echo "setup: done"
