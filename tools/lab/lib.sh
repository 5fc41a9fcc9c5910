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
# forces the host's (for working on the roles where IPVS is missing); the nftables lab
# (LVS_HA_DATA_PLANE=nftables) needs no IPVS and always runs on the host's.
lab_wants_guest() {
    [[ ${LVS_HA_PODMAN:-} != host && ${LVS_HA_DATA_PLANE:-ipvs} != nftables ]] && ! lab_host_has_ipvs
}

# The nftables lab (LVS_HA_DATA_PLANE=nftables, inventory/lab-nftables) runs on this host's
# Podman, which every checkout on the machine shares: each run claims a network of its own,
# lvs-ha-nftN on 10.252.N.0/24 (IPv4 only), its containers named lvs-nftN-director1 and so on.
# The run's N is kept in STATE_DIR/lab-id, so that a later step (or `make lab-down`, or the next
# run after an interrupted one) finds the same containers.

# lab_nft_identity N: exports the lab's identity for tools/lab/env, molecule.yml and the tests.
lab_nft_identity() {
    export LVS_HA_LAB_PREFIX=lvs-nft$1- LVS_HA_LAB_NET=10.252.$1 LVS_HA_LAB_NETWORK=lvs-ha-nft$1
    export LVS_HA_LAB_SUBNET6="" LVS_HA_LAB_INVENTORY=inventory/lab-nftables
}

# True when SUBNET overlaps an address or a route of this machine.
lab_subnet_in_use() {
    local subnet=$1
    { ip -o addr show | awk '{print $4}'; ip route show table all | awk '{print $1}'; } |
        python3 -c '
import ipaddress, sys
wanted = ipaddress.ip_network(sys.argv[1])
for word in sys.stdin.read().split():
    try:
        network = ipaddress.ip_network(word, strict=False)
    except ValueError:
        continue
    if network.version == wanted.version and network.overlaps(wanted):
        sys.exit(0)
sys.exit(1)' "$subnet"
}

# lab_nft_claim STATE_DIR: the first N whose subnet this machine does not use and whose network
# Podman creates (Podman refuses a subnet another of its networks has: that is the claim, safe
# against a run claiming at the same time); exports its identity, writes STATE_DIR/lab-id.
lab_nft_claim() {
    local state_dir=$1 n
    mkdir -p "$state_dir"
    for n in $(seq 1 254); do
        lab_subnet_in_use "10.252.$n.0/24" && continue
        podman container exists "lvs-nft$n-director1" && continue
        if podman network create --subnet "10.252.$n.0/24" "lvs-ha-nft$n" >/dev/null 2>&1; then
            echo "$n" >"$state_dir/lab-id"
            lab_nft_identity "$n"
            echo "nftables lab: network lvs-ha-nft$n (10.252.$n.0/24), containers lvs-nft$n-*" >&2
            return 0
        fi
    done
    echo "no free 10.252.N.0/24 for the nftables lab's network" >&2
    return 1
}

# lab_nft_release STATE_DIR: removes what the run recorded in STATE_DIR left (containers through
# `molecule destroy`, then by name, then its network) and forgets it. Nothing when none is there.
lab_nft_release() {
    local state_dir=$1
    [[ -s $state_dir/lab-id ]] || return 0
    (
        lab_nft_identity "$(cat "$state_dir/lab-id")"
        eval "$("$lab_repo/tools/lab/env")"
        lab_bounded 300 "molecule destroy" molecule destroy >/dev/null 2>&1 || true
        lab_remove_leftovers
    )
    rm -f "$state_dir/lab-id"
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

# lab_retried ATTEMPTS LIMIT STEP COMMAND...: lab_bounded, tried up to ATTEMPTS times while it
# overruns, the Podman service recovered in between (lab_recover_podman): an exec over the guest's
# Podman API has stalled for minutes with its command long done. Only for commands that may run
# twice.
lab_retried() {
    local attempts=$1 limit=$2 step=$3 attempt status=0
    shift 3
    for ((attempt = 1; attempt <= attempts; attempt++)); do
        status=0
        lab_bounded "$limit" "$step" "$@" || status=$?
        ((status == 124 || status == 137)) || return "$status"
        echo "molecule stage: '$step' overran (attempt $attempt of $attempts)" >&2
        ((attempt == attempts)) || lab_recover_podman
    done
    return "$status"
}

# After a stall: stops this lab's brokers and, on the guest's Podman (CONTAINER_HOST
# tcp://127.0.0.1:PORT), restarts its service (tools/guest/restart-podman: the containers stay up)
# and appends what the guest saw to LVS_HA_PODMAN_RESTARTS (a file), if set.
lab_recover_podman() {
    lab_stop_podman_sessions
    [[ ${CONTAINER_HOST:-} == tcp://127.0.0.1:* ]] || return 0
    "$lab_repo/tools/guest/restart-podman" "${CONTAINER_HOST##*:}" 2>&1 |
        tee -a "${LVS_HA_PODMAN_RESTARTS:-/dev/null}" >&2 || true
}

# lab_watch_podman: run in the background while the lab works; when Podman has not listed the
# containers within 90 s (a stalled service holds every later command, `molecule destroy` too;
# a lab task's command takes seconds), recovers it (lab_recover_podman): the tasks that were
# waiting get no reply and are sent once more by their connection (podman_pipelined).
lab_watch_podman() {
    local status
    while sleep 30; do
        status=0
        timeout 90 podman ps -a --format '{{.Names}}' >/dev/null 2>&1 || status=$?
        ((status == 124)) || continue
        echo "molecule stage: Podman did not list the containers within 90 s ($(date +%T))" |
            tee -a "${LVS_HA_PODMAN_RESTARTS:-/dev/null}" >&2
        lab_recover_podman
    done
}

# lab_check_mode LOG: site.yml with --check --diff on the converged lab (molecule converge), its
# output also in LOG; fails when a host reports a change. Read-only, so an overrun runs once more
# after Podman is recovered (lab_retried).
lab_check_mode() {
    local log=$1 status=0
    lab_retried 2 600 "check mode" molecule converge -- --check --diff | tee "$log" || status=$?
    ((status == 0)) || return "$status"
    if grep -E '^[^ ]+ +: ok=.* changed=[1-9]' "$log"; then
        echo "site.yml --check --diff reported changes on the converged lab (hosts above)" >&2
        return 1
    fi
}

# lab_poll_start VIP LOG STOP_FILE: the client polls http://VIP/ every 0.1 s into LOG
# (molecule/default/tests/poll_vip.py) until STOP_FILE exists; lab_poll_stop LOG STOP_FILE ends it.
lab_poll_start() {
    lab_retried 3 90 "starting the poller" podman exec "${LVS_HA_LAB_PREFIX:?}client" rm -f "$2" "$3" &&
        lab_retried 3 90 "starting the poller" podman exec --detach "${LVS_HA_LAB_PREFIX}client" \
            python3 -c "$(cat "$lab_repo/molecule/default/tests/poll_vip.py")" "$1" 80 0.1 "$2" "$3"
}

lab_poll_stop() {
    lab_retried 3 90 "stopping the poller" podman exec "${LVS_HA_LAB_PREFIX:?}client" touch "$2" || return
    sleep 2 # the poller's last request (1 s timeout) ends and is written
}

# Stops the podman_session.py brokers (molecule/default/plugins) that serve this lab's containers
# (named LVS_HA_LAB_PREFIX...) on this lab's Podman (the CONTAINER_HOST in their environment, none
# for the host's): a stalled one would hold its container's commands, and one left by an
# interrupted run would answer the next run's first command for a container of the same name
# with "closed without a reply" (it sees its container gone only then).
lab_stop_podman_sessions() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == *podman_session.py*" ${LVS_HA_LAB_PREFIX:?}"* ]] ||
            continue
        if [[ $(tr '\0' '\n' 2>/dev/null <"$environ" | sed -n 's/^CONTAINER_HOST=//p') == "${CONTAINER_HOST:-}" ]]; then
            kill "$pid" 2>/dev/null || true
        fi
    done
}

# Removes whatever of the lab is left in the current Podman after `molecule destroy` (under load
# the driver's `podman rm -f` can give up on a container still shutting down, and then the
# network stays in use), and the brokers that served its containers.
lab_remove_leftovers() {
    local name prefix=${LVS_HA_LAB_PREFIX:?} network=${LVS_HA_LAB_NETWORK:?}
    lab_stop_podman_sessions
    for name in director1 director2 rs1 rs2 client; do
        if podman container exists "$prefix$name" 2>/dev/null; then
            podman rm --force --time 2 "$prefix$name" >/dev/null 2>&1 || true
        fi
    done
    if podman network exists "$network" 2>/dev/null; then
        podman network rm --force "$network" >/dev/null 2>&1 || true
    fi
}
