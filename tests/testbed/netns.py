"""Hosts as network namespaces on one LAN: a bridge in its own namespace, one veth per host.

Every name carries a run id made of the pytest process id and a random token, and every link
is created directly inside its namespace (never in the root namespace), so two runs never
collide and nothing is left on the machine's own network. `sweep_stale()` removes what a run
that died without cleaning up (SIGKILL) left behind: its pid is in the names.
Only `ip` (iproute2) and, for captures, `tcpdump` are needed: this works in a minimal guest.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

DEFAULT_PREFIX = "lvsha"
BRIDGE = "br0"
HOST_IFNAME = "eth0"
_HOST_NAME = re.compile(r"^[a-z0-9_-]{1,14}$")
_TOKEN_LEN = 4
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

_open_labs: set[Lab] = set()
_guard_lock = threading.Lock()
_guards_installed = False
_closing = 0  # labs being closed right now: a SIGTERM then must not interrupt the cleanup


class CommandError(subprocess.CalledProcessError):
    """A failed command whose message shows its stderr (CalledProcessError's hides it)."""

    def __str__(self) -> str:
        text = super().__str__()
        err = self.stderr
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        return f"{text}\n{err.strip()}" if err and err.strip() else text


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(["ip", *args], check=check)


def _run(argv: list[str], check: bool = True, timeout: float = 30, **kw: Any):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run(argv, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def run_id(pid: int | None = None) -> str:
    """`<pid>-<token>`: the pid lets the sweeper know the run is dead, the token separates
    several labs of one process."""
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _position in range(_TOKEN_LEN))
    return f"{os.getpid() if pid is None else pid}-{token}"


def port_name(host_name: str) -> str:
    """The bridge-side veth of a host: `v` + the host name, at most 15 characters (IFNAMSIZ)."""
    if not _HOST_NAME.match(host_name):
        raise ValueError(f"host name must match {_HOST_NAME.pattern}: {host_name!r}")
    return f"v{host_name}"


def stale_pattern(prefix: str = DEFAULT_PREFIX) -> re.Pattern[str]:
    """Matches the namespace names of a lab: `PREFIX-PID-TOKEN` (bridge) and `...-HOST`."""
    token = f"[a-z0-9]{{{_TOKEN_LEN}}}"
    return re.compile(rf"^{re.escape(prefix)}-(?P<pid>\d+)-{token}(-[a-z0-9_-]+)?$")


def list_netns() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_running(pid: int) -> bool:
    """Alive and not a zombie: a dead process still waiting for its parent no longer runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_netns_processes(netns: str) -> None:
    """Kill whatever still runs in the namespace: daemons that forked away from our Popen."""
    for _attempt in range(50):
        pids = [int(p) for p in _ip("netns", "pids", netns, check=False).stdout.split()]
        pids = [p for p in pids if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def delete_netns(netns: str) -> None:
    _kill_netns_processes(netns)
    _ip("netns", "delete", netns, check=False)


def sweep_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete the namespaces of runs whose process is gone; returns their names."""
    pattern = stale_pattern(prefix)
    removed = []
    for netns in list_netns():
        match = pattern.match(netns)
        if match and not _pid_alive(int(match.group("pid"))):
            delete_netns(netns)
            removed.append(netns)
    return removed


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = getattr(predicate, "__name__", repr(predicate))
            raise TimeoutError(f"{what} still false after {timeout:g} s (last value: {value!r})")
        time.sleep(interval)


def _on_sigterm(signum, frame):
    if not _closing:
        raise KeyboardInterrupt(f"signal {signum}")


def _close_open_labs() -> None:
    for lab in list(_open_labs):
        lab.close()


def _install_guards() -> None:
    """Close labs at interpreter exit, and turn SIGTERM into KeyboardInterrupt so that pytest
    unwinds its fixtures (the default SIGTERM action would skip every cleanup)."""
    global _guards_installed
    with _guard_lock:
        if _guards_installed:
            return
        _guards_installed = True
        atexit.register(_close_open_labs)
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)


class Host:
    """One namespace with `eth0` on the lab bridge. Created by `Lab.host()`."""

    def __init__(self, lab: Lab, short_name: str, netns: str, port: str, ip: str, ipv6: str | None):
        self.lab = lab
        self.short_name = short_name
        self.name = netns
        self.bridge_port = port
        self.ifname = HOST_IFNAME
        self.interface = ipaddress.ip_interface(ip)
        self.ip = str(self.interface.ip)
        self.interface6 = ipaddress.ip_interface(ipv6) if ipv6 else None
        self.ipv6 = str(self.interface6.ip) if self.interface6 else None
        self.mac = ""
        self._procs: list[subprocess.Popen] = []

    def __repr__(self) -> str:
        return f"Host({self.short_name!r}, netns={self.name!r}, ip={self.ip!r})"

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def run(self, argv: list[str], check: bool = True, timeout: float = 30, **kw: Any):
        """Run to completion inside the namespace; output captured as text unless overridden."""
        return _run(self.argv(argv), check=check, timeout=timeout, **kw)

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen:
        """Start a process inside the namespace; it is killed (with its group) at teardown."""
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.argv(argv), **kw)
        self._procs.append(proc)
        return proc

    def add_address(self, address: str, dev: str | None = None) -> None:
        iface = ipaddress.ip_interface(address)
        extra = ["nodad"] if iface.version == 6 else []
        _ip("-n", self.name, "addr", "add", str(iface), "dev", dev or self.ifname, *extra)

    def addresses(self, dev: str | None = None) -> list[str]:
        """Addresses as `ADDR/PREFIX`, of one device or of all."""
        argv = ["-n", self.name, "-j", "addr", "show"] + (["dev", dev] if dev else [])
        links = json.loads(_ip(*argv).stdout or "[]")
        infos = [info for link in links for info in link.get("addr_info", [])]
        return [f"{info['local']}/{info['prefixlen']}" for info in infos]

    def plug(self) -> None:
        """Create `eth0` (a veth into the lab bridge) with the host's addresses, and bring it up."""
        br = self.lab.bridge_netns
        _ip("-n", br, "link", "add", self.bridge_port, "type", "veth",
            "peer", "name", HOST_IFNAME, "netns", self.name)  # fmt: skip
        _ip("-n", br, "link", "set", self.bridge_port, "master", BRIDGE, "up")
        self.add_address(str(self.interface))
        if self.interface6:
            self.add_address(str(self.interface6))
        _ip("-n", self.name, "link", "set", HOST_IFNAME, "up")
        link = json.loads(_ip("-n", self.name, "-j", "link", "show", HOST_IFNAME).stdout)[0]
        self.mac = link["address"]

    def unplug(self) -> None:
        """Delete `eth0` (both ends of the veth): `plug()` creates it again, with a new index
        and a new MAC, as a VLAN or bond rebuilt or a veth re-created would be."""
        _ip("-n", self.name, "link", "del", HOST_IFNAME)

    def ifindex(self, dev: str | None = None) -> int:
        link = json.loads(_ip("-n", self.name, "-j", "link", "show", dev or self.ifname).stdout)
        return link[0]["ifindex"]

    def link_down(self) -> None:
        """Cut the cable: the bridge side goes down, so eth0 here loses carrier too."""
        _ip("-n", self.lab.bridge_netns, "link", "set", self.bridge_port, "down")

    def link_up(self) -> None:
        _ip("-n", self.lab.bridge_netns, "link", "set", self.bridge_port, "up")

    def wait_for(self, predicate: Callable[[], Any], timeout: float, interval: float = 0.05):
        return wait_for(predicate, timeout, interval)

    def stop_processes(self, grace: float = 3.0) -> None:
        """SIGTERM every tracked process group, SIGKILL what is left after `grace` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
            alive = [p for p in self._procs if p.poll() is None]
            for proc in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            for proc in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
        self._procs = [p for p in self._procs if p.poll() is None]


class Capture:
    """A running tcpdump writing a pcap file."""

    def __init__(self, proc: subprocess.Popen, path: Path):
        self.proc = proc
        self.path = path

    def stop(self) -> Path:
        """Stop tcpdump (flushing the file) and return the pcap path."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.path

    def read(self, *args: str) -> list[str]:
        """The packets as tcpdump prints them (`-nn` plus `args`), one line each.

        Works while the capture runs (a packet being written is left out).
        """
        out = _run(["tcpdump", "-nn", "-r", str(self.path), *args], check=False).stdout
        return [line for line in out.splitlines() if line.strip()]


class Lab:
    """Hosts on one bridge. Always `close()` it (the `lab` fixture does)."""

    def __init__(self, prefix: str | None = None, workdir: str | os.PathLike | None = None):
        self.prefix = prefix or DEFAULT_PREFIX
        if not re.match(r"^[a-z0-9]+$", self.prefix):
            raise ValueError(f"prefix must be lower-case letters and digits: {self.prefix!r}")
        _install_guards()
        sweep_stale(self.prefix)
        self.run_id = run_id()
        self.bridge_netns = f"{self.prefix}-{self.run_id}"
        self.bridge = BRIDGE
        self.hosts: dict[str, Host] = {}
        self._captures: list[Capture] = []
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{self.bridge_netns}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._closed = False
        _open_labs.add(self)
        try:
            self._add_netns(self.bridge_netns)
            br = self.bridge_netns
            _ip("-n", br, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0")
            _ip("-n", br, "link", "set", BRIDGE, "type", "bridge", "mcast_snooping", "0")
            _ip("-n", br, "link", "set", BRIDGE, "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _add_netns(self, netns: str) -> None:
        _ip("netns", "add", netns)
        _ip("-n", netns, "link", "set", "lo", "up")
        for key in ("all", "default"):
            path = f"/proc/sys/net/ipv6/conf/{key}/accept_dad"
            _run(["ip", "netns", "exec", netns, "sh", "-c", f"[ ! -e {path} ] || echo 0 > {path}"])

    def host(self, name: str, ip: str, ipv6: str | None = None) -> Host:
        """A new namespace `PREFIX-RUNID-NAME` with `eth0` (address `ip`, optional `ipv6`)."""
        port = port_name(name)
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists in this lab")
        netns = f"{self.bridge_netns}-{name}"
        host = Host(self, name, netns, port, ip, ipv6)
        self.hosts[name] = host
        self._add_netns(netns)
        host.plug()
        return host

    def capture(
        self, bpf_filter: str = "", host: Host | None = None, dev: str | None = None
    ) -> Capture:
        """Start tcpdump on the bridge (every host's traffic), or on one host's eth0 (or `dev`)."""
        if shutil.which("tcpdump") is None:
            raise RuntimeError("tcpdump is not installed (apt-get install tcpdump)")
        netns, dev = (host.name, dev or host.ifname) if host else (self.bridge_netns, self.bridge)
        path = self.workdir / f"capture-{len(self._captures)}-{dev}.pcap"
        # immediate mode: packets reach the file at once, not after the ring buffer's timeout
        argv = ["ip", "netns", "exec", netns, "tcpdump", "-i", dev, "--immediate-mode", "-U",
                "-nn", "-Z", "root", "-w", str(path), *bpf_filter.split()]  # fmt: skip
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
        capture = Capture(proc, path)
        self._captures.append(capture)
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if "listening on" in line:
                return capture
            if not line and proc.poll() is not None:
                break
        capture.stop()
        raise RuntimeError(f"tcpdump did not start on {netns}/{dev}: {''.join(seen).strip()}")

    def close(self) -> None:
        """Stop captures and processes, delete every namespace (and so every link)."""
        global _closing
        if self._closed:
            return
        self._closed = True
        _closing += 1
        try:
            for capture in self._captures:
                capture.stop()
            for host in self.hosts.values():
                host.stop_processes()
            for host in self.hosts.values():
                delete_netns(host.name)
            delete_netns(self.bridge_netns)
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            _closing -= 1
            _open_labs.discard(self)
