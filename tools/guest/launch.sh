# Shared by the tools/guest commands that boot the guest (sourced, not run). Not a build input.
# shellcheck shell=bash
# shellcheck source=tools/guest/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BOOT_TIMEOUT=${LVS_HA_GUEST_BOOT_TIMEOUT:-120}

# Files removed when the script exits, whatever the reason (scripts append to it).
CLEANUP_PATHS=()
QEMU_PID=
on_exit() {
    if [[ -n $QEMU_PID ]] && kill "$QEMU_PID" 2>/dev/null; then
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    rm -rf "${CLEANUP_PATHS[@]}"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_guest() {
    command -v qemu-system-x86_64 >/dev/null ||
        die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (or run tools/setup.sh)"
    GUEST=$(find_guest)
    [[ -n $GUEST ]] || die "the guest is not built for these inputs: run tools/guest/build"
}

# new_job DIR CWD COMMAND: the job the guest's init runs: the bash COMMAND in CWD, with the
# repository mounted at its host path. The guest creates DIR/booted once it is up.
new_job() {
    local job=$1 cwd=$2 command=$3
    mkdir -p "$job"
    rm -f "$job/booted"
    printf '%s\n' "$REPO" >"$job/repo"
    printf '%s\n' "$cwd" >"$job/cwd"
    printf '%s\n' "$command" >"$job/command"
}

# qemu_args MEMORY_MIB DISK SNAPSHOT(on|off) JOB: the machine, into the array QEMU.
# TCG because this host's KVM cannot boot a stock kernel; qemu64 measured faster than max.
# DISK: the raw disk.img, or a baked qcow2 overlay on it.
qemu_args() {
    local memory=$1 disk=$2 snapshot=$3 job=$4 format=raw
    [[ $disk == *.qcow2 ]] && format=qcow2
    # shellcheck disable=SC2054 # the commas belong to QEMU's options
    QEMU=(qemu-system-x86_64
        -accel tcg,thread=multi,tb-size=1024 -cpu qemu64 -m "$memory" -smp 2
        -nodefaults -no-user-config -display none -no-reboot
        -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initramfs.cpio"
        -append "console=ttyS0 quiet panic=-1"
        -drive "file=$disk,if=virtio,format=$format,cache=unsafe,snapshot=$snapshot"
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
        -virtfs "local,path=$REPO,mount_tag=repo,security_model=none"
        -virtfs "local,path=$job,mount_tag=job,security_model=none")
}

# The guest reports its command's status through isa-debug-exit: QEMU exits with (rc << 1) | 1.
guest_status() {
    local qemu_status=$1
    if ((qemu_status % 2 == 1)); then
        echo $((qemu_status >> 1))
    else
        echo "tools/guest: the guest stopped without reporting a status (qemu exit $qemu_status)" >&2
        echo 125
    fi
}

# run_job MEMORY_MIB DISK SNAPSHOT CWD COMMAND [QEMU ARGS...]: boots the guest, runs the job
# (see new_job), streams the serial console to stdout and sets JOB_STATUS to the command's
# exit status. Never leaves QEMU behind.
run_job() {
    local memory=$1 disk=$2 snapshot=$3 cwd=$4 command=$5
    shift 5
    local job timeout=${LVS_HA_GUEST_TIMEOUT:-3600} waited=0 qemu_status=0
    job=$(mktemp -d "${TMPDIR:-/tmp}/lvs-guest-job.XXXXXX")
    CLEANUP_PATHS+=("$job")
    new_job "$job" "$cwd" "$command"
    qemu_args "$memory" "$disk" "$snapshot" "$job"
    "${QEMU[@]}" -serial stdio "$@" </dev/null &
    QEMU_PID=$!
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if [[ ! -e $job/booted ]] && ((waited >= BOOT_TIMEOUT)); then
            die "the guest failed to boot within ${BOOT_TIMEOUT}s (LVS_HA_GUEST_BOOT_TIMEOUT)"
        fi
        ((waited < timeout)) || die "the guest command ran longer than ${timeout}s (LVS_HA_GUEST_TIMEOUT)"
        sleep 1
        waited=$((waited + 1))
    done
    wait "$QEMU_PID" || qemu_status=$?
    QEMU_PID=
    [[ -e $job/booted ]] || die "the guest failed to boot (qemu exit $qemu_status)"
    # shellcheck disable=SC2034 # read by the caller
    JOB_STATUS=$(guest_status "$qemu_status")
}

# Where serve-podman keeps the state of the guest serving on a port (pid, console log, job).
podman_state_dir() {
    local port=$1
    if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "not a TCP port: $port"
    fi
    echo "${TMPDIR:-/tmp}/lvs-ha-guest-podman-$port"
}

# The disk bake-image made last, else the plain one.
podman_disk() {
    if [[ -e $GUEST/baked.qcow2 ]]; then
        readlink -f "$GUEST/baked.qcow2"
    else
        echo "$GUEST/disk.img"
    fi
}
