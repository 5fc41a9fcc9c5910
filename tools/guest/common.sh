# Shared by the tools/guest commands (sourced, not run): paths, cache key, QEMU launch.
# shellcheck shell=bash

GUEST_TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$GUEST_TOOLS" rev-parse --show-toplevel 2>/dev/null || (cd "$GUEST_TOOLS/../.." && pwd))
CACHE=${LVS_HA_CACHE:-$HOME/.cache/lvs-ha}

# Everything that ends up in the image; a change to any of them means another cache entry.
BUILD_INPUTS=(build common.sh packages customize-rootfs guest-init initramfs-init)

die() {
    echo "tools/guest: $*" >&2
    exit 1
}

# The pinned Python tools the guest gets, taken from the host's pins so both sides agree.
guest_python_pins() {
    grep -E '^(ansible-core|pyroute2|pytest|hypothesis)==' "$REPO/tools/requirements.txt"
}

input_hash() {
    (
        cd "$GUEST_TOOLS" || exit
        cat "${BUILD_INPUTS[@]}"
        guest_python_pins
    ) | sha256sum | cut -c1-12
}

# The newest built guest for the current build inputs, or nothing.
find_guest() {
    local dir
    dir=$(find "$CACHE" -maxdepth 1 -name "guest-*-$(input_hash)" -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n1 | cut -d' ' -f2-)
    if [[ -n $dir && -f $dir/disk.img ]]; then
        echo "$dir"
    fi
}
