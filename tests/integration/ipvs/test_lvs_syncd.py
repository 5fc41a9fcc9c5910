"""lvs_sync_daemon with real IPVS: the connection table survives a failover, as with keepalived.

Each director is a namespace of its own, so each has its own IPVS table and sync daemons.
First the netlink layer (lvs/syncd.py) against the kernel, read back with `ipvsadm`. Then
the same scenario with two real keepalived 2.2.7 directors and with two lvs-agent ones (DR,
one real server): `ipvsadm -L --daemon` shows master on the VRRP master and backup on the
backup; a client's long-lived TCP connection through the VIP is in the backup's table
(`ipvsadm -Lnc`); the master's cable is cut and the process killed; the backup turns its
daemon to master and the same connection keeps echoing. Without the synced entry the new
master would answer the next segment with a reset (sloppy_tcp is off), so the client fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import keepalived

pytestmark = pytest.mark.ipvs

AGENT_PATH = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
ENV = {**os.environ, "PYTHONPATH": str(AGENT_PATH)}
REAL_SERVER = "10.79.0.11"
TIMEOUT = 60  # seconds for anything to happen: the guest emulates its CPU (TCG)
STARTUP = 240  # for the agents to start: Python's start-up in a loaded TCG guest takes minutes

LAYER = r"""
import json, subprocess
from lvsagent.config.model import LvsTimeouts
from lvsagent.ipvs import IpvsClient, Service, ServiceKey
from lvsagent.lvs import syncd

def daemons():
    return subprocess.run(["ipvsadm", "-L", "--daemon"], capture_output=True, text=True).stdout

seen = {}
client = IpvsClient()
syncd.start_daemon(client, "master", syncd.DaemonConfig("eth0", 7, 1400, 8850, 2, "239.1.2.3"))
syncd.start_daemon(client, "backup", syncd.DaemonConfig("eth0", 9))
seen["running"] = {k: list(v.__dict__.values()) for k, v in syncd.running_daemons(client).items()}
seen["ipvsadm"] = daemons()
seen["stopped"] = [syncd.stop_daemon(client, "master"), syncd.stop_daemon(client, "master")]
seen["left"] = sorted(syncd.running_daemons(client))
syncd.stop_daemon(client, "backup")
seen["ipvsadm_after"] = daemons()
before = syncd.read_timeouts(client)
syncd.set_timeouts(client, LvsTimeouts(tcp=901, udp=61))
after = syncd.read_timeouts(client)
seen["timeouts"] = [list(before.__dict__.values()), list(after.__dict__.values())]
seen["ipvsadm_timeouts"] = subprocess.run(
    ["ipvsadm", "-L", "--timeout"], capture_output=True, text=True
).stdout
client.add_service(Service(ServiceKey.for_address("10.9.9.9", 80)))
syncd.flush(client)
seen["after_flush"] = len(client.services())
print(json.dumps(seen))
"""


def test_netlink_layer_against_the_kernel(lab):
    host = lab.host("layer", "10.79.9.2/24")
    seen = json.loads(host.run([sys.executable, "-c", LAYER], env=ENV, timeout=120).stdout)
    assert seen["running"] == {
        "master": ["eth0", 7, 1400, 8850, 2, "239.1.2.3"],
        "backup": ["eth0", 9, seen["running"]["backup"][2], 8848, 1, "224.0.0.81"],
    }
    assert (
        "master sync daemon (mcast=eth0, syncid=7, maxlen=1400, group=239.1.2.3, port=8850, ttl=2)"
        in seen["ipvsadm"]
    )  # noqa: E501
    assert "backup sync daemon (mcast=eth0, syncid=9" in seen["ipvsadm"]
    assert seen["stopped"] == [True, False]
    assert seen["left"] == ["backup"]
    assert "sync daemon" not in seen["ipvsadm_after"]
    before, after = seen["timeouts"]
    assert after == [901, before[1], 61]
    assert "Timeout (tcp tcpfin udp): 901" in seen["ipvsadm_timeouts"]
    assert seen["after_flush"] == 0


ECHO_SERVER = r"""
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass  # TCP_CHECK's connections end with a reset
Server(("0.0.0.0", 80), Echo).serve_forever()
"""

# Sends a numbered line every 0.2 s and reads it back until the stop file exists; a reset or
# a lost echo ends it with an error.
LONG_CLIENT = r"""
import os, socket, sys, time
vip, stop = sys.argv[1], sys.argv[2]
sock = socket.create_connection((vip, 80), timeout=30)
print("port", sock.getsockname()[1], flush=True)
reader, count = sock.makefile("rb"), 0
while not os.path.exists(stop):
    count += 1
    sock.sendall(b"%d\n" % count)
    assert reader.readline() == b"%d\n" % count
    print("echo", count, flush=True)
    time.sleep(0.2)
print("done", count, flush=True)
"""

DIRECTOR_CONFIG = """\
global_defs {{
    router_id {name}
    lvs_sync_daemon eth0 VI_1
}}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {vip}/24
    }}
}}
virtual_server {vip} 80 {{
    delay_loop 2
    lvs_sched rr
    lvs_method DR
    protocol TCP
    real_server {real_server} 80 {{
        weight 1
        TCP_CHECK {{
            connect_timeout 2
        }}
    }}
}}
"""

DAEMON_LINE = re.compile(r"(master|backup) sync daemon \(mcast=(\w+), syncid=(\d+)")


class Director:
    def __init__(self, lab, kind: str, name: str, ip: str):
        self.lab, self.kind, self.name = lab, kind, name
        self.host = lab.host(name, ip)
        self.workdir = lab.workdir / name
        self.workdir.mkdir()
        self.process = None

    def start(self, config: str) -> None:
        if self.kind == "keepalived":
            self.process = keepalived.start(self.host, config, self.workdir)
            return
        conf = self.workdir / "lvs-agent.conf"
        conf.write_text(config)
        with open(self.workdir / "agent.log", "ab") as log:
            self.process = self.host.popen(
                [sys.executable, "-m", "lvsagent", "run", "-f", conf,
                 "--control-socket", self.workdir / "control.sock", "--log-level", "INFO"],
                stdout=log, stderr=log, env=ENV,
            )  # fmt: skip

    def daemons(self) -> list:
        """[(state, interface, sync id)] as `ipvsadm -L --daemon` shows them."""
        text = self.host.run(["ipvsadm", "-L", "--daemon"]).stdout
        return [(s, i, int(n)) for s, i, n in DAEMON_LINE.findall(text)]

    def wait_daemons(self, expected: list, timeout: float = TIMEOUT) -> None:
        try:
            self.host.wait_for(lambda: self.daemons() == expected, timeout=timeout, interval=0.3)
        except Exception:
            pytest.fail(f"{self.name}: daemons {self.daemons()} never {expected}\n{self.logs()}")

    def connections(self) -> str:
        return self.host.run(["ipvsadm", "-Lnc"]).stdout

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob("*.log"))


class Pair:
    """Two `kind` directors for one VIP, taken through a failover step by step (the steps of
    both pairs interleave, so that the guest's slow start-ups overlap)."""

    def __init__(self, lab, client, kind: str, vip: str, vrid: int, addresses: tuple):
        self.lab, self.client, self.kind, self.vip, self.vrid = lab, client, kind, vip, vrid
        self.master, self.backup = (
            Director(lab, kind, f"{kind[:2]}{n}", address) for n, address in enumerate(addresses)
        )
        self.stop_file = lab.workdir / f"stop-{kind}"
        self.output = lab.workdir / f"client-{kind}.out"
        self.seen: dict = {}

    def start(self) -> None:
        for director, state, priority in (
            (self.master, "MASTER", 150),
            (self.backup, "BACKUP", 100),
        ):
            director.start(
                DIRECTOR_CONFIG.format(
                    name=director.name, state=state, priority=priority, vrid=self.vrid,
                    vip=self.vip, real_server=REAL_SERVER,
                )
            )  # fmt: skip

    def wait_roles(self) -> None:
        self.master.wait_daemons([("master", "eth0", self.vrid)], STARTUP)
        self.backup.wait_daemons([("backup", "eth0", self.vrid)], STARTUP)
        self.master.host.wait_for(lambda: self.has_vip(self.master), timeout=TIMEOUT)

    def has_vip(self, director: Director) -> bool:
        return f"{self.vip}/24" in director.host.addresses()

    def connect(self) -> None:
        """The long-lived connection, through the master."""
        script = self.lab.workdir / "long_client.py"
        script.write_text(LONG_CLIENT)
        with open(self.output, "wb") as output:
            argv = [sys.executable, script, self.vip, self.stop_file]
            self.talker = self.client.popen(argv, stdout=output, stderr=subprocess.STDOUT)
        self.client.wait_for(self.echoes, timeout=TIMEOUT)
        self.entry = f"{self.client.ip}:{self.lines()[0].split()[1]}"

    def lines(self) -> list:
        return self.output.read_text().splitlines()

    def echoes(self) -> int:
        return sum(line.startswith("echo") for line in self.lines())

    def wait_synced(self) -> None:
        try:
            self.backup.host.wait_for(self.backup_has_entry, timeout=TIMEOUT, interval=0.3)
        except Exception:
            pytest.fail(f"{self.kind}: {self.entry} never reached the backup's table")
        self.seen["synced"] = True

    def backup_has_entry(self) -> bool:
        return self.entry in self.backup.connections()

    def kill_master(self) -> None:
        """The master dies: cable cut, process killed."""
        self.master.host.link_down()
        os.killpg(self.master.process.pid, signal.SIGKILL)

    def wait_takeover(self) -> None:
        self.backup.wait_daemons([("master", "eth0", self.vrid)])
        self.backup.host.wait_for(lambda: self.has_vip(self.backup), timeout=TIMEOUT)
        self.seen["took_over_with_connection"] = self.backup_has_entry()
        self.echoes_at_takeover = self.echoes()

    def finish(self) -> dict:
        """Five more echoes through the new master, then the client and the director stop."""
        wanted = self.echoes_at_takeover + 5
        with contextlib.suppress(Exception):  # a broken connection shows in the client's output
            self.client.wait_for(lambda: self.echoes() >= wanted, timeout=TIMEOUT)
        self.stop_file.touch()
        self.talker.wait(timeout=TIMEOUT)
        self.seen["client"] = (self.talker.returncode, self.lines()[-1].split()[0])
        self.seen["echoes_after_takeover"] = self.echoes() >= wanted
        self.backup.process.terminate()
        self.backup.process.wait(timeout=TIMEOUT)
        self.seen["daemons_after_stop"] = self.backup.daemons()
        return self.seen


def test_connections_survive_a_failover_as_with_keepalived(lab):
    server = lab.host("rs", f"{REAL_SERVER}/24")
    client = lab.host("client", "10.79.0.10/24")
    settings = {  # kind: VIP, VRID (and sync id), director addresses
        "keepalived": ("10.79.0.100", 51, ("10.79.0.2/24", "10.79.0.3/24")),
        "lvs-agent": ("10.79.0.101", 52, ("10.79.0.4/24", "10.79.0.5/24")),
    }
    for vip, *_rest in settings.values():  # DR: the VIPs are local on the real server, never in ARP
        server.add_address(f"{vip}/32", dev="lo")
    for key, value in (("arp_ignore", 1), ("arp_announce", 2)):
        server.run(["sh", "-c", f"echo {value} > /proc/sys/net/ipv4/conf/all/{key}"])
    (lab.workdir / "echo.py").write_text(ECHO_SERVER)
    server.popen([sys.executable, lab.workdir / "echo.py"])

    def listening() -> str:
        return server.run(["ss", "-Htln", "sport = :80"]).stdout.strip()

    server.wait_for(listening, timeout=30)

    pairs = [Pair(lab, client, kind, *pair) for kind, pair in settings.items()]
    steps = (Pair.start, Pair.wait_roles, Pair.connect, Pair.wait_synced, Pair.kill_master)
    for step in (*steps, Pair.wait_takeover):
        for pair in pairs:
            step(pair)
    observed = {pair.kind: pair.finish() for pair in pairs}
    expected = {
        "synced": True,
        "client": (0, "done"),
        "echoes_after_takeover": True,
        "took_over_with_connection": True,
        "daemons_after_stop": [],
    }
    assert observed == {"keepalived": expected, "lvs-agent": expected}
