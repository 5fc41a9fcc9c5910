"""A running keepalived pair handed to lvs-agent one director at a time, then back, under load.

Two directors run Debian's keepalived with the seed's two configurations (DR, TCP_CHECK,
advert_int 5) adapted to the test bed; a client asks the VIP for a page every 0.1 s all along.
Each director is switched with `lvs-agent switch` — the command the migration and rollback
playbooks run on each host — backups first, the master last. After the migration both
directors run lvs-agent in keepalived's roles with the very same IPVS table (`ipvsadm -Sn`,
which the agents adopted without a change), and the client saw at most one VRRP handover's
worth of failures; the rollback the same way (its master resigns to the keepalived backup and
keepalived preempts once started). The longest gap and the failed requests of each direction
are printed.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from lvsagent.switch import agent_states
from testbed import keepalived

pytestmark = [pytest.mark.ipvs, pytest.mark.slow]

AGENT_PATH = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"

VIP = "10.81.0.100"
ADVERT_INT = 5  # the seed's
# The worst a handover costs the client: a backup takes over after Master_Down_Interval.
# (Under TCG lvs-agent needs 10-15 s to start, about that long: the backup may then take
# over before the master's new agent takes the VIPs back, one handover.)
HANDOVER = 3 * ADVERT_INT + 1
SWITCH_TIMEOUT = 120  # a loaded 2-core machine emulating the guest's CPU is slow

# The seed's master configuration with the test bed's addresses; the backup's differs as the
# seed's does: state BACKUP, priority 50.
SEED_MASTER = Path(__file__).with_name("seed-master.keepalived.conf").read_text()
SEED_BACKUP = SEED_MASTER.replace("state MASTER", "state BACKUP").replace(
    "priority 100", "priority 50"
)
ADDRESSES = {"d1": "10.81.0.2", "d2": "10.81.0.3", "rs1": "10.81.0.11", "rs2": "10.81.0.12"}

SERVER = r"""
import socketserver, sys
name = sys.argv[1].encode()
page = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name)
class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.request.recv(65536)
            self.request.sendall(page)
        except OSError:
            pass  # a TCP_CHECK connects and closes
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
Server(("0.0.0.0", 80), Handler).serve_forever()
"""

# One request every 0.1 s; each answer is logged as "MONOTONIC ok|fail" until the stop file.
CLIENT = r"""
import os, socket, sys, time
vip, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
with open(out, "a", buffering=1) as log:
    while not os.path.exists(stop):
        started = time.monotonic()
        try:
            with socket.create_connection((vip, 80), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = s.recv(4096)
            log.write(f"{started} {'ok' if data.startswith(b'HTTP/1.0 200') else 'fail'}\n")
        except OSError:
            log.write(f"{started} fail\n")
        time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
"""


class Director:
    def __init__(self, lab, name: str, conf_text: str):
        self.host = lab.host(name, f"{ADDRESSES[name]}/24")
        self.dir = lab.workdir / name
        self.dir.mkdir()
        self.conf_text = conf_text
        self.socket = self.dir / "control.sock"
        self.env = {**os.environ, "PYTHONPATH": str(AGENT_PATH)}
        argv = keepalived.command(self.host, self.conf_text, self.dir)
        self.config = keepalived.config_path(self.host, self.dir)
        # keepalived as a service runs it: in the background, its own data dump folder
        self.keepalived = (
            f"TMPDIR={shlex.quote(str(self.dir))} {shlex.join(argv)} "
            f"</dev/null >>{shlex.quote(str(self.dir / 'keepalived.log'))} 2>&1 &"
        )
        agent = [sys.executable, "-m", "lvsagent", "run", "-f", self.config,
                 "--control-socket", self.socket, "--log-level", "DEBUG"]  # fmt: skip
        self.agent = (
            f"{shlex.join(map(str, agent))} "
            f"</dev/null >>{shlex.quote(str(self.dir / 'agent.log'))} 2>&1 &"
        )

    def start_keepalived(self) -> None:
        self.host.run(["sh", "-c", self.keepalived])

    def switch(self, to: str) -> str:
        """`lvs-agent switch` on this director, as the playbooks run it."""
        argv = [sys.executable, "-m", "lvsagent", "switch", "--to", to, "-f", self.config,
                "--control-socket", self.socket,
                "--keepalived-pid-file", keepalived.pid_file(self.host, self.dir),
                "--keepalived-data", self.dir / "keepalived.data",
                "--start", self.agent if to == "agent" else self.keepalived,
                "--after-kill", "true", "--timeout", SWITCH_TIMEOUT]  # fmt: skip
        done = self.host.run(argv, env=self.env, timeout=SWITCH_TIMEOUT + 60, check=False)
        assert done.returncode == 0, f"{done.stdout}{done.stderr}{self.logs()}"
        return done.stdout

    def ipvs(self) -> str:
        return self.host.run(["ipvsadm", "-Sn"]).stdout

    def has_vip(self) -> bool:
        return f"{VIP}/32" in self.host.addresses("eth0")

    def logs(self) -> str:
        return "".join(
            f"\n--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.dir.glob("*.log"))
        )


class Client:
    def __init__(self, lab):
        self.host = lab.host("client", "10.81.0.10/24")
        self.script = lab.workdir / "client.py"
        self.script.write_text(CLIENT)
        self.out = lab.workdir / "client.out"
        self.stop_file = lab.workdir / "client.stop"

    def start(self) -> None:
        self.stop_file.unlink(missing_ok=True)
        self.out.write_text("")
        self.process = self.host.popen([sys.executable, self.script, VIP, self.out, self.stop_file])
        self.host.wait_for(lambda: " ok" in self.out.read_text(), timeout=30)

    def stop(self) -> tuple[float, int, int]:
        """(longest time without an answer, failed requests, all requests)."""
        self.stop_file.write_text("")
        self.process.wait(timeout=10)
        results = [line.split() for line in self.out.read_text().splitlines()]
        times = [float(t) for t, result in results if result == "ok"]
        gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
        failed = sum(1 for _time, result in results if result == "fail")
        return gap, failed, len(results)


def switch_all(master: Director, backup: Director, to: str, client: Client) -> tuple:
    """Backups first, the master last; returns the client's figures once the pair settled
    (a backup that took over meanwhile steps down at most one advert interval later)."""
    client.start()
    for director in (backup, master):
        print(director.switch(to), file=sys.stderr)

    def settled() -> bool:
        return master.has_vip() and not backup.has_vip()

    try:
        master.host.wait_for(settled, timeout=HANDOVER)
    except Exception:
        pytest.fail(f"the VIP is not on the master alone: {master.logs()}{backup.logs()}")
    if to == "agent":
        assert agent_states(str(master.socket)) == {"VI_1": "MASTER"}
        assert agent_states(str(backup.socket)) == {"VI_1": "BACKUP"}
    time.sleep(1)  # the client's answers after the last switch count too
    return client.stop()


def test_migrate_a_keepalived_pair_and_back(lab):
    for name in ("rs1", "rs2"):
        rs = lab.host(name, f"{ADDRESSES[name]}/24")
        rs.add_address(f"{VIP}/32", dev="lo")  # DR: local VIP, never answered in ARP
        for key, value in (("arp_ignore", 1), ("arp_announce", 2)):
            rs.run(["sh", "-c", f"echo {value} > /proc/sys/net/ipv4/conf/all/{key}"])
        script = lab.workdir / "server.py"
        script.write_text(SERVER)
        rs.popen([sys.executable, script, name])
    master, backup = Director(lab, "d1", SEED_MASTER), Director(lab, "d2", SEED_BACKUP)
    for director in (master, backup):
        director.start_keepalived()
    master.host.wait_for(master.has_vip, timeout=3 * HANDOVER)
    for director in (master, backup):
        director.host.wait_for(lambda d=director: d.ipvs().count("-a ") == 2, timeout=30)
    tables = {d.host.short_name: d.ipvs() for d in (master, backup)}
    client = Client(lab)

    figures = {}
    for to in ("agent", "keepalived"):
        gap, failed, total = switch_all(master, backup, to, client)
        figures[to] = (gap, failed, total)
        print(
            f"switch to {to}: longest gap {gap:.2f} s, {failed} of {total} requests failed",
            file=sys.stderr,
        )
        assert {d.host.short_name: d.ipvs() for d in (master, backup)} == tables
        assert gap <= HANDOVER, master.logs() + backup.logs()
        assert failed <= HANDOVER * 10, master.logs() + backup.logs()
    # lvs-agent adopted keepalived's table: it changed nothing when it started
    for director in (master, backup):
        assert (
            "IPVS: 1 services declared, 0 changes applied"
            in (director.dir / "agent.log").read_text()
        )
    print(f"FIGURES {figures}")
