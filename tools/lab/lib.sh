# shellcheck shell=bash
# Shared by tools/molecule-test and tools/lab/{up,down} (sourced; bash).
# Chooses where the lab's containers run and prepares that Podman.

lab_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

lab_stage() { printf '\n===== %s (%s)\n' "$1" "$(date +%T)" >&2; }

# True when this kernel has IPVS (then the containers can run on the host's Podman).
lab_host_has_ipvs() {
    [[ $(id -u) == 0 ]] &&
        "$lab_repo/.venv/bin/python" -c 'from pyroute2 import IPVS; IPVS().service("dump")' >/dev/null 2>&1
}

# Decides the Podman to use; exports CONTAINER_HOST when it is the guest's. LVS_HA_PODMAN=host
# forces the host's (for working on the roles where IPVS is missing).
lab_wants_guest() {
    [[ ${LVS_HA_PODMAN:-} != host ]] && ! lab_host_has_ipvs
}

# Boots the QEMU guest with the node images baked into its disk and serves its Podman API on
# 127.0.0.1:PORT; exports CONTAINER_HOST.
lab_start_guest_podman() {
    local port=$1 tool suite tarball image disk bake_args
    for tool in ensure serve-podman stop-podman bake-image; do
        if [[ ! -x $lab_repo/tools/guest/$tool ]]; then
            echo "tools/guest/$tool is missing: this kernel has no IPVS, and the QEMU guest that" \
                "would host the containers cannot serve Podman" >&2
            return 1
        fi
    done
    lab_stage "QEMU guest (built once, cached)"
    "$lab_repo/tools/guest/ensure" >/dev/null
    lab_stage "node images (Debian 12 and 13), baked into the guest's disk (once per image set)"
    bake_args=()
    for suite in $("$lab_repo/tools/image/tag" --suites); do
        tarball=$("$lab_repo/tools/image/build" "$suite")
        image=localhost/lvs-ha-node:$("$lab_repo/tools/image/tag" "$suite")
        bake_args+=("$tarball" "$image")
    done
    disk=$("$lab_repo/tools/guest/bake-image" "${bake_args[@]}")
    lab_stage "QEMU guest serving Podman on 127.0.0.1:$port"
    "$lab_repo/tools/guest/serve-podman" "$port" "$disk"
    export CONTAINER_HOST=tcp://127.0.0.1:$port
}

lab_stop_guest_podman() {
    local port=$1
    lab_stage "stopping the QEMU guest"
    "$lab_repo/tools/guest/stop-podman" "$port" || true
}

# Runs a command, prefixing Molecule's "Executing"/"Executed" lines with the time of day, so the
# log shows how long each stage took. Returns the command's status.
lab_timed() {
    local status
    "$@" 2>&1 | while IFS= read -r line; do
        case $line in
            *Executing* | *Executed:*) printf '[%s] %s\n' "$(date +%T)" "$line" ;;
            *) printf '%s\n' "$line" ;;
        esac
    done
    status=${PIPESTATUS[0]}
    return "$status"
}

# lab_bounded SECONDS STEP COMMAND...: runs COMMAND through lab_timed, stopped after SECONDS
# (times LVS_HA_STEP_TIMEOUT_SCALE) with its whole process group; an overrun names STEP.
lab_bounded() {
    local limit=$(($1 * ${LVS_HA_STEP_TIMEOUT_SCALE:-1})) step=$2 status=0
    shift 2
    lab_timed timeout --kill-after=20 "$limit" "$@" || status=$?
    if ((status == 124 || status == 137)); then
        echo "molecule stage: step '$step' did not finish within ${limit}s and was stopped" >&2
    fi
    return "$status"
}

# Stops the podman_session.py brokers (molecule/default/plugins) that serve this lab's Podman
# (the CONTAINER_HOST in their environment): a stalled one would hold its container's commands.
lab_stop_podman_sessions() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *podman_session.py* ]] || continue
        if tr '\0' '\n' <"$environ" 2>/dev/null | grep -qxF "CONTAINER_HOST=${CONTAINER_HOST:-}"; then
            kill "$pid" 2>/dev/null || true
        fi
    done
}

# Removes whatever of the lab is left in the current Podman after `molecule destroy` (under load
# the driver's `podman rm -f` can give up on a container still shutting down, and then the
# network stays in use).
lab_remove_leftovers() {
    local name
    for name in lvs-director1 lvs-director2 lvs-rs1 lvs-rs2 lvs-client; do
        if podman container exists "$name" 2>/dev/null; then
            podman rm --force --time 2 "$name" >/dev/null 2>&1 || true
        fi
    done
    if podman network exists lvs-ha-lab 2>/dev/null; then
        podman network rm --force lvs-ha-lab >/dev/null 2>&1 || true
    fi
}
