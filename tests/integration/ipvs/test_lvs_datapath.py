"""lvs-agent with real IPVS on the namespace test bed: a client, a director, two real servers.

The director runs `python3 -m lvsagent run` with the seed's configuration adapted to the
test addresses (DR with TCP_CHECK, NAT with HTTP_GET). Traffic through the VIP must reach
both real servers; a dead, 500-answering or stalling server leaves the table within the
configured bound and comes back when healthy; `ipvsadm -Ln` and `lvs-agent status` agree at
every step; a hand-made change is undone; services the agent does not declare are left alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.services import HttpGet

pytestmark = pytest.mark.ipvs

REPO = Path(__file__).resolve().parents[3]
AGENT_PATH = REPO / "plugins" / "module_utils"

# Checker timing of the adapted configuration, and the bound it promises for a dead server.
DELAY_LOOP, CONNECT_TIMEOUT, RETRY, DELAY_BEFORE_RETRY = 2, 1, 1, 1
REMOVAL_BOUND = DELAY_LOOP + CONNECT_TIMEOUT + RETRY * DELAY_BEFORE_RETRY
SLACK = 4.0  # the guest emulates its CPU (TCG): Python and process start-up are slow there

SERVER = r"""
import socket, socketserver, sys, time
mode, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        if mode == "stall":
            time.sleep(3600)
        self.request.recv(65536)
        status = "200 OK" if mode == "ok" else "500 Internal Server Error"
        body = name.encode() + b"\n"
        head = f"HTTP/1.0 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        self.request.sendall(head + body)
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
Server(("0.0.0.0", port), Handler).serve_forever()
"""

DR_CONFIG = """\
! The seed's master.keepalived.conf with the test bed's addresses and short timers
global_defs {{
   router_id LVS_DEVEL
}}
vrrp_instance VI_1 {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass 1111
    }}
    virtual_ipaddress {{
        {vip}
    }}
}}
virtual_server {vip} 80 {{
    delay_loop {delay_loop}
    lb_algo rr
    lb_kind DR
    persistence_timeout 60
    protocol TCP
{real_servers}
}}
"""

TCP_REAL_SERVER = """\
    real_server {address} 80 {{
        weight 100
        TCP_CHECK {{
            connect_timeout {connect_timeout}
            retry {retry}
            delay_before_retry {delay_before_retry}
            connect_port 80
        }}
    }}"""

HTTP_REAL_SERVER = """\
    real_server {address} 80 {{
        weight 100
        HTTP_GET {{
            url {{
                path /index.html
                status_code 200
            }}
            retry {retry}
            delay_before_retry {delay_before_retry}
            connect_timeout {connect_timeout}
        }}
    }}"""

TIMERS = dict(
    delay_loop=DELAY_LOOP,
    connect_timeout=CONNECT_TIMEOUT,
    retry=RETRY,
    delay_before_retry=DELAY_BEFORE_RETRY,
)


def write_sysctl(host, key: str, value: int) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    host.run(["sh", "-c", f"echo {value} > {path}"])


class RealServer:
    def __init__(self, lab, name: str, ip: str):
        self.name = name
        self.host = lab.host(name, ip)
        self.address = ip.split("/")[0]
        self.script = lab.workdir / "server.py"
        self.script.write_text(SERVER)
        self.process = None

    def serve(self, mode: str = "ok") -> None:
        self.stop()
        self.process = self.host.popen([sys.executable, str(self.script), mode, 80, self.name])
        self.host.wait_for(self._listening, timeout=30)

    def _listening(self) -> bool:
        sockets = self.host.run(["ss", "-Htln", "sport = :80"], check=False).stdout
        return bool(sockets.strip())

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, 9)
            self.process.wait()
            self.process = None


class Director:
    def __init__(self, lab, ip: str):
        self.lab = lab
        self.host = lab.host("director", ip)
        self.config = lab.workdir / "lvs-agent.conf"
        self.socket = lab.workdir / "control.sock"
        self.log = lab.workdir / "agent.log"
        self.env = {**os.environ, "PYTHONPATH": str(AGENT_PATH)}

    def start(self, config_text: str) -> None:
        self.config.write_text(config_text)
        with open(self.log, "wb") as log:
            self.process = self.host.popen(
                [sys.executable, "-m", "lvsagent", "run", "-f", self.config,
                 "--control-socket", self.socket, "--log-level", "DEBUG"],
                stdout=log, stderr=log, env=self.env,
            )  # fmt: skip
        self.host.wait_for(self.socket.exists, timeout=60)

    def agent(self, *args: str) -> str:
        argv = [sys.executable, "-m", "lvsagent", *args, "--control-socket", self.socket]
        return self.host.run(argv, env=self.env, timeout=60).stdout

    def status(self) -> dict:
        return json.loads(self.agent("status", "--json"))

    def ipvsadm(self, *args: str) -> str:
        return self.host.run(["ipvsadm", *args]).stdout

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


FORWARD = {"Route": "dr", "Masq": "nat", "Tunnel": "tun"}


def parse_ipvsadm(text: str) -> dict:
    """{"10.0.0.100:80": {"10.0.0.11:80": ("dr", 100)}} from `ipvsadm -Ln`."""
    table, service = {}, None
    for line in text.splitlines():
        service_match = re.match(r"^(TCP|UDP|SCTP)\s+(\S+)", line)
        if service_match:
            service = service_match.group(2)
            table[service] = {}
            continue
        dest_match = re.match(r"^\s+->\s+(\d\S+)\s+(\w+)\s+(\d+)", line)
        if dest_match and service is not None:
            address, forward, weight = dest_match.groups()
            table[service][address] = (FORWARD[forward], int(weight))
    return table


def status_table(status: dict) -> dict:
    """The same shape from `lvs-agent status --json` (only what the kernel holds)."""
    table = {}
    for service in status["ipvs"]:
        name = service["service"].replace("[", "").replace("]", "")
        table[name] = {
            f"{rs['address']}:{rs['port']}": (rs["forwarding"], rs["weight"])
            for rs in service["realservers"]
            if rs["weight"] is not None
        }
    return table


def health(status: dict) -> dict:
    return {
        f"{rs['address']}": rs["health"]
        for service in status["ipvs"]
        for rs in service["realservers"]
    }


def last_errors(director: Director) -> str:
    status = director.status()
    return " ".join(rs["last_error"] for s in status["ipvs"] for rs in s["realservers"])


def assert_agree(director: Director) -> dict:
    """`ipvsadm -Ln` and `lvs-agent status` show the same table; returns it."""
    status = director.status()
    agent_view = status_table(status)
    kernel = {k: v for k, v in parse_ipvsadm(director.ipvsadm("-Ln")).items() if k in agent_view}
    assert kernel == agent_view, director.logs()[-4000:]
    return agent_view


def wait_for_table(director: Director, vip: str, expected: dict, timeout: float) -> float:
    """Waits until the VIP's destinations are `expected`; returns how long it took."""
    start = time.monotonic()

    def matches():
        return parse_ipvsadm(director.ipvsadm("-Ln")).get(f"{vip}:80") == expected

    try:
        director.host.wait_for(matches, timeout=timeout, interval=0.1)
    except Exception:
        pytest.fail(
            f"{vip}:80 never became {expected}: {director.ipvsadm('-Ln')}\n"
            f"{director.logs()[-4000:]}"
        )
    return time.monotonic() - start


def fetch(client, vip: str, sources: list[str]) -> list[str]:
    """The page each source address got through the VIP ("-": none)."""
    pages = HttpGet(vip, tuple(sources), timeout=3).pages(client)
    return [pages[source][0] for source in sources]


def test_dr_director_with_tcp_checks(lab):
    vip = "10.77.0.100"
    director = Director(lab, "10.77.0.2/24")
    client = lab.host("client", "10.77.0.10/24")
    sources = [f"10.77.0.{20 + i}" for i in range(4)]
    for source in sources:
        client.add_address(f"{source}/24")
    servers = [RealServer(lab, "rs1", "10.77.0.11/24"), RealServer(lab, "rs2", "10.77.0.12/24")]
    for rs in servers:  # DR: the VIP is local on the real servers but never answered in ARP
        rs.host.add_address(f"{vip}/32", dev="lo")
        for key, value in (("arp_ignore", 1), ("arp_announce", 2)):
            write_sysctl(rs.host, f"net.ipv4.conf.all.{key}", value)
        rs.serve()
    director.host.run(["ipvsadm", "-A", "-t", "10.77.0.200:8080", "-s", "wlc"])  # not ours
    real_servers = "\n".join(TCP_REAL_SERVER.format(address=rs.address, **TIMERS) for rs in servers)
    director.start(DR_CONFIG.format(vip=vip, real_servers=real_servers, **TIMERS))
    both = {"10.77.0.11:80": ("dr", 100), "10.77.0.12:80": ("dr", 100)}
    wait_for_table(director, vip, both, timeout=30)
    director.host.wait_for(lambda: f"{vip}/32" in director.host.addresses(), timeout=30)
    assert_agree(director)

    # Persistence sends each client address to one server; rr spreads the four of them.
    assert sorted(set(fetch(client, vip, sources))) == ["rs1", "rs2"]

    servers[1].stop()
    took = wait_for_table(
        director, vip, {"10.77.0.11:80": ("dr", 100)}, timeout=REMOVAL_BOUND + SLACK
    )
    assert took <= REMOVAL_BOUND + SLACK
    assert health(director.status())["10.77.0.12"] == "down"
    assert_agree(director)
    assert set(fetch(client, vip, sources)) == {"rs1"}
    assert "Removing service [10.77.0.12]:80 from VS [10.77.0.100]:80" in director.logs()

    servers[1].serve()
    wait_for_table(director, vip, both, timeout=DELAY_LOOP + SLACK)
    assert_agree(director)
    assert "Adding service [10.77.0.12]:80 to VS [10.77.0.100]:80" in director.logs()

    # Hand edits: a weight changed, a stranger added; the next pass puts the table back.
    director.ipvsadm("-e", "-t", f"{vip}:80", "-r", "10.77.0.11:80", "-g", "-w", "5")
    director.ipvsadm("-a", "-t", f"{vip}:80", "-r", "10.77.0.99:80", "-g", "-w", "1")
    wait_for_table(director, vip, both, timeout=10 + SLACK)
    assert_agree(director)
    assert "reverting" in director.logs()

    # Reload with a new weight: the destination is edited in place, never re-added.
    director.config.write_text(director.config.read_text().replace("weight 100", "weight 50", 1))
    director.agent("reload")
    wait_for_table(director, vip, {**both, "10.77.0.11:80": ("dr", 50)}, timeout=10 + SLACK)
    assert_agree(director)
    assert f"IPVS: edit_destination [10.77.0.11]:80 of [{vip}]:80" in director.logs()

    director.process.terminate()
    assert director.process.wait(timeout=30) == 0, director.logs()[-4000:]
    remaining = parse_ipvsadm(director.ipvsadm("-Ln"))
    assert remaining == {"10.77.0.200:8080": {}}  # ours removed on exit, the other kept


def test_nat_director_with_http_checks(lab):
    vip = "10.78.1.100"
    director = Director(lab, "10.78.1.2/24")
    director.host.add_address("10.78.2.1/24")
    write_sysctl(director.host, "net.ipv4.ip_forward", 1)
    write_sysctl(director.host, "net.ipv4.conf.all.send_redirects", 0)
    write_sysctl(director.host, "net.ipv4.conf.eth0.send_redirects", 0)
    client = lab.host("client", "10.78.1.10/24")
    sources = [f"10.78.1.{20 + i}" for i in range(4)]
    for source in sources:
        client.add_address(f"{source}/24")
    servers = [RealServer(lab, "rs1", "10.78.2.11/24"), RealServer(lab, "rs2", "10.78.2.12/24")]
    for rs in servers:  # NAT: replies must come back through the director
        rs.host.run(["ip", "route", "add", "default", "via", "10.78.2.1"])
        rs.serve()
    real_servers = "\n".join(
        HTTP_REAL_SERVER.format(address=rs.address, **TIMERS) for rs in servers
    )
    config = DR_CONFIG.format(vip=vip, real_servers=real_servers, **TIMERS)
    director.start(config.replace("lb_kind DR", "lb_kind NAT"))
    both = {"10.78.2.11:80": ("nat", 100), "10.78.2.12:80": ("nat", 100)}
    wait_for_table(director, vip, both, timeout=30)
    director.host.wait_for(lambda: f"{vip}/32" in director.host.addresses(), timeout=30)
    assert_agree(director)
    assert sorted(set(fetch(client, vip, sources))) == ["rs1", "rs2"]

    only_rs1 = {"10.78.2.11:80": ("nat", 100)}
    for broken in ("error", "stall"):
        servers[1].serve(broken)
        wait_for_table(director, vip, only_rs1, timeout=REMOVAL_BOUND + CONNECT_TIMEOUT + SLACK)
        assert health(director.status())["10.78.2.12"] == "down"
        # The server was briefly closed while being swapped: wait for the check to see it.
        reason = "status code 500" if broken == "error" else "timeout"
        director.host.wait_for(
            lambda reason=reason: reason in last_errors(director), timeout=DELAY_LOOP + SLACK
        )
        assert_agree(director)
        assert set(fetch(client, vip, sources)) == {"rs1"}
        servers[1].serve("ok")
        wait_for_table(director, vip, both, timeout=DELAY_LOOP + CONNECT_TIMEOUT + SLACK)
        assert_agree(director)


# the seed's real server with a FILE_CHECK beside its TCP_CHECK
FILE_REAL_SERVER = (
    TCP_REAL_SERVER[: -len("    }}")]
    + """\
        FILE_CHECK {{
            track_file {name}
        }}
    }}"""
)

TRACK_FILE = """\
track_file {name} {{
    file {path}
    weight {weight}
}}
"""


def test_file_check_takes_a_real_server_out_and_back(lab):
    """A flag file per real server (weight 0: non-zero is out) and a weight file (weight 10:
    its value moves the weight), written under the running agent."""
    vip = "10.77.0.100"
    director = Director(lab, "10.77.0.2/24")
    director.env["PYTHONFAULTHANDLER"] = "1"
    servers = [RealServer(lab, "rs1", "10.77.0.11/24"), RealServer(lab, "rs2", "10.77.0.12/24")]
    for rs in servers:
        rs.serve()
    flags = {rs.name: lab.workdir / f"{rs.name}.flag" for rs in servers}
    flags["rs1"].write_text("0\n")
    flags["rs2"].write_text("2\n")
    track_files = TRACK_FILE.format(name="rs1", path=flags["rs1"], weight=0)
    track_files += TRACK_FILE.format(name="rs2", path=flags["rs2"], weight=10)
    real_servers = "\n".join(
        FILE_REAL_SERVER.format(address=rs.address, name=rs.name, **TIMERS) for rs in servers
    )
    director.start(track_files + DR_CONFIG.format(vip=vip, real_servers=real_servers, **TIMERS))
    both = {"10.77.0.11:80": ("dr", 100), "10.77.0.12:80": ("dr", 120)}
    wait_for_table(director, vip, both, timeout=30)
    assert_agree(director)

    flags["rs1"].write_text("1\n")
    wait_for_table(director, vip, {"10.77.0.12:80": ("dr", 120)}, timeout=1 + SLACK)
    assert health(director.status())["10.77.0.11"] == "down"
    assert "Removing service [10.77.0.11]:80 from VS [10.77.0.100]:80" in director.logs()
    flags["rs2"].write_text("-3\n")
    wait_for_table(director, vip, {"10.77.0.12:80": ("dr", 70)}, timeout=1 + SLACK)
    flags["rs1"].write_text("0\n")
    wait_for_table(director, vip, {**both, "10.77.0.12:80": ("dr", 70)}, timeout=1 + SLACK)
    assert_agree(director)

    director.process.terminate()
    try:
        code = director.process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # PYTHONFAULTHANDLER: SIGABRT logs every thread's stack
        os.kill(director.process.pid, signal.SIGABRT)
        director.process.wait(timeout=30)
        pytest.fail(f"the agent did not stop:\n{director.logs()[-8000:]}")
    assert code == 0, director.logs()[-4000:]
