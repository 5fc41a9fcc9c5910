"""`lvs-agent switch`: hand one director from keepalived to lvs-agent, or back, with the service up.

A daemon that stops cleanly takes its work with it: keepalived removes its IPVS services and
VIPs unless it was started with --dont-release-ipvs/--dont-release-vrrp, its children get
SIGTERM when their parent dies (PR_SET_PDEATHSIG) and clean up as well, and lvs-agent does the
same on SIGTERM. So the old daemon is frozen (SIGSTOP) and then killed (SIGKILL), all its
processes at once: the kernel keeps the IPVS table with its connections and, on the master,
the VIPs. The new daemon starts over them: lvs-agent adopts the declared services unchanged
(lvs.reconciler) and, as `state MASTER`, keeps the VIPs without a handover; keepalived ignores
EEXIST when it adds what is already there (check/ipvswrapper.c). Only a master handed back to
keepalived stops cleanly (see `resign`). Then the switch waits until the new daemon holds the
VRRP state the old one had (MASTER where the VIPs are) and the IPVS table equals the one the
old daemon left.

The playbooks run it on each director, backups first and the master last.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable, Optional

from .cli import say
from .config import ConfigError, load
from .control import ControlError, lock_path, request

POLL = 0.2  # seconds between two looks at the new daemon
KILL_WAIT = 10.0  # seconds a SIGKILLed process may take to be gone
STOP_WAIT = 30.0  # seconds a stopping lvs-agent may take (its notify scripts have 10)
KEEPALIVED_POLL = 0.5  # each look at keepalived makes all its processes dump their state


class SwitchError(Exception):
    """The switch cannot start, or the new daemon did not reach the expected state in time."""


UNITS = {"agent": "lvs-agent.service", "keepalived": "keepalived.service"}


def switch_command(args) -> int:
    try:
        report = switch(args)
    except SwitchError as error:
        say(f"lvs-agent switch: {error}", sys.stderr)
        return 1
    for line in report:
        say(line)
    return 0


def switch(args) -> list[str]:
    """The whole hand-over; returns what it found, one line per instance and one for IPVS."""
    try:
        config = load(args.config, config_id=args.config_id)
    except ConfigError as error:
        raise SwitchError("\n".join(str(problem) for problem in error.problems)) from None
    except OSError as error:
        raise SwitchError(f"{args.config}: {error.strerror}") from None
    old = "keepalived" if args.to == "agent" else "agent"
    pids = daemon_pids(old, args)
    if not pids:
        raise SwitchError(f"{old} is not running: nothing to hand over")
    expected = {instance.name: vrrp_state_here(instance) for instance in config.vrrp_instances}
    table = ipvs_table()
    if args.to == "keepalived" and "MASTER" in expected.values():
        resign(pids)
    else:
        kill_all(pids)
    run_shell(args.after_kill if args.after_kill is not None else f"systemctl stop {UNITS[old]}")
    run_shell(args.start or f"systemctl start {UNITS[args.to]}")
    states = reader(args.to, args, set(pids))
    interval = KEEPALIVED_POLL if args.to == "keepalived" else POLL
    started = time.monotonic()
    deadline = started + args.timeout
    seen: dict = {}
    current = table
    while time.monotonic() < deadline:
        seen = states()
        current = ipvs_table()
        if seen == expected and current == table:
            return [f"{name}: {state}" for name, state in sorted(seen.items())] + [
                f"IPVS: `ipvsadm -Sn` as {old} had it ({len(table)} lines)",
                f"{args.to} took over in {time.monotonic() - started:.1f} s",
            ]
        time.sleep(interval)
    raise SwitchError(
        f"{args.to} did not take over within {args.timeout:g} s: VRRP {seen or 'unknown'} "
        f"(expected {expected}); IPVS {'unchanged' if current == table else 'changed'}: "
        f"{sorted(set(table) ^ set(current))}"
    )


def vrrp_state_here(instance) -> str:
    """MASTER when the instance's first VIP is on its interface here, else BACKUP."""
    if not instance.virtual_ipaddresses:
        return "BACKUP"
    vip = instance.virtual_ipaddresses[0]
    dev = vip.dev or instance.interface
    out = run(["ip", "-o", "addr", "show", "dev", dev])
    here = {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}
    return "MASTER" if str(vip.address.ip) in here else "BACKUP"


def ipvs_table() -> list[str]:
    """`ipvsadm -Sn`: services and destinations with their settings, no counters."""
    return run(["ipvsadm", "-Sn"]).splitlines()


# -- the old daemon ------------------------------------------------------------------------------


def daemon_pids(daemon: str, args) -> list[int]:
    """The daemon's main process (from its pid file) and all its descendants."""
    path = args.keepalived_pid_file if daemon == "keepalived" else lock_path(args.control_socket)
    main = read_pid(path)
    if main is None or not alive(main):
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = parent_pid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    pids, todo = [], [main]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def kill_all(pids: list[int]) -> None:
    """Freeze every process first, so that none runs its clean-up (or respawns a child) when
    another dies, then kill them all and wait until they are gone."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    wait_gone(pids, KILL_WAIT)


def resign(pids: list[int]) -> None:
    """A master handing over to keepalived stops cleanly: it resigns with priority 0 and the
    keepalived peer takes over within Skew_Time. Leaving the VIPs would not spare that
    handover: keepalived (unless priority 255) starts in BACKUP, removes the VIPs it finds and
    waits Master_Down_Interval before it takes them (vrrp_scheduler.c, vrrp_init_state), so
    the VIPs would answer nowhere for that long. The IPVS table goes with the agent and
    keepalived builds the same one, while its peer forwards."""
    os.kill(pids[0], signal.SIGTERM)
    wait_gone(pids, STOP_WAIT)


def wait_gone(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise SwitchError(f"processes {pids} are still running after {seconds:g} s")
        time.sleep(0.05)


def read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as file:
            text = file.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def parent_pid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    """Running, and not a zombie its parent has yet to reap."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- the new daemon ------------------------------------------------------------------------------


def reader(daemon: str, args, old_pids: set) -> Callable[[], dict]:
    """A function returning the new daemon's {instance: state} (empty until it answers)."""
    if daemon == "agent":
        return lambda: agent_states(args.control_socket)
    return lambda: keepalived_states(args.keepalived_pid_file, args.keepalived_data, old_pids)


def agent_states(control_socket: str) -> dict:
    try:
        status = request(control_socket, "status")
    except ControlError:
        return {}
    return {instance["name"]: instance["state"] for instance in status.get("vrrp", [])}


INSTANCE_LINE = re.compile(r"^\s*VRRP Instance = (\S+)")
STATE_LINE = re.compile(r"^\s*State = (\S+)")


def keepalived_states(pid_file: str, data_file: str, old_pids: set) -> dict:
    """keepalived writes its state to `data_file` on SIGUSR1 (its "data dump")."""
    main = read_pid(pid_file)
    if main is None or main in old_pids or not alive(main):
        return {}
    try:
        before = os.stat(data_file).st_mtime_ns
    except OSError:
        before = None
    os.kill(main, signal.SIGUSR1)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            if os.stat(data_file).st_mtime_ns != before:
                time.sleep(POLL)  # let it finish writing
                with open(data_file) as file:
                    return parse_keepalived_data(file.read())
        except OSError:
            pass
        time.sleep(0.05)
    return {}


def parse_keepalived_data(text: str) -> dict:
    """{instance: state} from keepalived's data dump."""
    states, instance = {}, None
    for line in text.splitlines():
        match = INSTANCE_LINE.match(line)
        if match:
            instance = match.group(1)
            continue
        match = STATE_LINE.match(line)
        if match and instance is not None and instance not in states:
            states[instance] = match.group(1)
    return states


def run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise SwitchError(f"{shlex.join(argv)}: {error}") from None
    return done.stdout


def run_shell(command: str) -> None:
    try:
        subprocess.run(command, shell=True, check=True, timeout=60)
    except subprocess.SubprocessError as error:
        raise SwitchError(f"{command}: {error}") from None
