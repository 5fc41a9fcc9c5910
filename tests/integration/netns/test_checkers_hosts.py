"""PING_CHECK, UDP_CHECK, DNS_CHECK and SMTP_CHECK from a real namespace against a real
host: a checker config is parsed, turned into its spec and probed inside the director's
namespace, as the agent would. The real server answers pings until its link or address
goes, runs a UDP echo service (a Python process) next to a closed port and a service that
never answers, Debian's dnsmasq on its own configuration, and the aiosmtpd SMTP server."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.services import start_responder

pytestmark = pytest.mark.netns

MODULE_UTILS = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
DIRECTOR = ("192.168.77.11/24", "fd00:77::11/64")
REAL = ("192.168.77.21/24", "fd00:77::21/64")
REAL4, REAL6 = "192.168.77.21", "fd00:77::21"
ECHO_PORT, SILENT_PORT, CLOSED_PORT = 5353, 5354, 5355

PROBE = """
import asyncio, json, sys
from lvsagent.config import loads
from lvsagent.lvs.checkers import probe
from lvsagent.lvs.checkers.ping import _icmp_socket
from lvsagent.lvs.engine import check_spec
vs = loads(sys.stdin.read()).virtual_servers[0]
rs = vs.real_servers[0]
spec = check_spec(rs.checkers[0], rs, rs.port, vs)
raw = None
if spec.kind == "PING_CHECK":
    sock, raw = _icmp_socket(spec)
    sock.close()
result = asyncio.run(probe(spec))
print(json.dumps({"ok": result.ok, "error": result.error, "raw": raw}))
"""

UDP_SERVER = """
import socket, sys
server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
server.bind(("::", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = server.recvfrom(65536)
    if sys.argv[2] == "echo":
        server.sendto(data, peer)
"""


def run_check(host, address: str, port: int, checker: str) -> dict:
    config = f"""
virtual_server {address} {port} {{
    lvs_sched rr
    protocol UDP
    real_server {address} {port} {{
        {checker}
    }}
}}
"""
    argv = ["env", f"PYTHONPATH={MODULE_UTILS}", sys.executable, "-c", PROBE]
    result = host.run(argv, input=config, timeout=30)
    return json.loads(result.stdout)


def check_passes(host, address: str, port: int, checker: str) -> bool:
    return run_check(host, address, port, checker)["ok"]


@pytest.fixture
def hosts(lab):
    return lab.host("d1", *DIRECTOR), lab.host("r1", *REAL)


def start_udp_server(host, port: int, mode: str) -> subprocess.Popen:
    proc = host.popen(
        [sys.executable, "-c", UDP_SERVER, str(port), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("address", [REAL4, REAL6])
def test_ping_check_follows_the_real_servers_link(hosts, address):
    director, real = hosts
    ping = "PING_CHECK { connect_timeout 1 }"
    up = run_check(director, address, 0, ping)
    assert up == {"ok": True, "error": "", "raw": True}  # a new namespace allows no ping socket
    real.link_down()
    down = run_check(director, address, 0, ping)
    assert not down["ok"] and "timeout after 1s" in down["error"]
    real.link_up()
    assert director.wait_for(lambda: run_check(director, address, 0, ping)["ok"], timeout=10)


@pytest.mark.parametrize("address", [REAL4, REAL6])
def test_ping_check_over_an_unprivileged_ping_socket(hosts, address):
    director, real = hosts
    director.run(["sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 0"])
    ping = "PING_CHECK { connect_timeout 1 }"
    assert run_check(director, address, 0, ping) == {"ok": True, "error": "", "raw": False}
    real.run(["ip", "addr", "del", REAL[1] if ":" in address else REAL[0], "dev", real.ifname])
    down = run_check(director, address, 0, ping)
    assert not down["ok"] and down["error"] in ("timeout after 1s", "no route to host")


@pytest.mark.parametrize("address", [REAL4, REAL6])
def test_udp_check_against_an_echo_service_a_silent_one_and_a_closed_port(hosts, address):
    director, real = hosts
    start_udp_server(real, ECHO_PORT, "echo")
    start_udp_server(real, SILENT_PORT, "silent")
    echoed = "UDP_CHECK { connect_timeout 1\n payload 6c 76 73 00 ff\n require_reply 6C 7X }"
    assert run_check(director, address, ECHO_PORT, echoed) == {"ok": True, "error": "", "raw": None}
    wrong = "UDP_CHECK { connect_timeout 1\n payload 6c 76\n require_reply 6c 75 }"
    assert run_check(director, address, ECHO_PORT, wrong)["error"] == "reply data mismatch"
    short = (
        "UDP_CHECK { connect_timeout 1\n payload 00 01 02\n require_reply\n max_reply_length 2 }"
    )
    assert run_check(director, address, ECHO_PORT, short)["error"] == "reply length 3 not in 0-2"
    # no reply: a pass unless a reply is required; a closed port is refused by ICMP
    assert run_check(director, address, SILENT_PORT, "UDP_CHECK { connect_timeout 1 }")["ok"]
    needed = run_check(
        director, address, SILENT_PORT, "UDP_CHECK { connect_timeout 1\n require_reply }"
    )
    assert needed == {"ok": False, "error": "no reply: timeout after 1s", "raw": None}
    closed = run_check(director, address, CLOSED_PORT, "UDP_CHECK { connect_timeout 1 }")
    assert closed == {"ok": False, "error": "connection refused", "raw": None}


@pytest.fixture
def dnsmasq(hosts, tmp_path):
    """dnsmasq on the real server's addresses with no system configuration: it knows
    example.test and refuses everything else (no upstream)."""
    if shutil.which("dnsmasq") is None:
        pytest.fail("dnsmasq is not installed (tools/setup.sh installs dnsmasq-base)")
    director, real = hosts
    real.popen(
        ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
         "--address=/example.test/192.0.2.1", "--address=/example.test/2001:db8::1",
         "--port=53", "--bind-interfaces",
         f"--listen-address={REAL4}", f"--listen-address={REAL6}", "--user=nobody",
         "--group=nogroup", "--pid-file=", f"--log-facility={tmp_path}/dnsmasq.log"],
    )  # fmt: skip
    ready = "DNS_CHECK { connect_timeout 1\n type A\n name example.test }"
    assert director.wait_for(lambda: run_check(director, REAL4, 53, ready)["ok"], timeout=10)
    return real


@pytest.mark.parametrize("address", [REAL4, REAL6])
def test_dns_check_against_dnsmasq(hosts, dnsmasq, address):
    director, real = hosts
    for query in ("type A\n name example.test", "type AAAA\n name example.test."):
        checked = run_check(director, address, 53, f"DNS_CHECK {{ connect_timeout 1\n {query} }}")
        assert checked == {"ok": True, "error": "", "raw": None}
    refused = run_check(director, address, 53, "DNS_CHECK { connect_timeout 1\n name other.test }")
    assert refused == {"ok": False, "error": "error answer (rcode = 5)", "raw": None}
    closed = run_check(director, address, 5300, "DNS_CHECK { connect_timeout 1 }")
    assert closed == {"ok": False, "error": "connection refused", "raw": None}
    real.stop_processes()
    stopped = run_check(director, address, 53, "DNS_CHECK { connect_timeout 1\n type A }")
    assert stopped["error"] == "connection refused"


SMTP_PORT, REFUSING_SMTP_PORT, BABBLING_SMTP_PORT = 2525, 2526, 2527


@pytest.fixture
def smtp_server(hosts):
    """aiosmtpd (Debian's python3-aiosmtpd, as nobody) on the real server, and a server
    that refuses every client with 554, and one that greets with an endless line."""
    director, real = hosts
    if subprocess.run(["/usr/bin/python3", "-c", "import aiosmtpd"], check=False).returncode:
        pytest.fail("aiosmtpd is not installed (tools/setup.sh installs python3-aiosmtpd)")
    for address in (REAL4, REAL6):  # one per family: asyncio's IPv6 listeners are IPv6-only
        real.popen(["/usr/bin/python3", "-m", "aiosmtpd", "-l", f"{address}:{SMTP_PORT}"])
    canned = {REFUSING_SMTP_PORT: "554 no SMTP service here\r\n", BABBLING_SMTP_PORT: "2" * 4000}
    for port, greeting in canned.items():
        start_responder(real, port, "::", greeting)  # both families: bindv6only is 0
    ready = "SMTP_CHECK { connect_timeout 1 }"
    for address in (REAL4, REAL6):
        answering = functools.partial(check_passes, director, address, SMTP_PORT, ready)
        assert director.wait_for(answering, timeout=10)
    return real


@pytest.mark.parametrize("address", [REAL4, REAL6])
def test_smtp_check_against_aiosmtpd(hosts, smtp_server, address):
    director, _real = hosts
    helo = 'SMTP_CHECK { connect_timeout 2\n helo_name "lb.example.test" }'
    assert run_check(director, address, SMTP_PORT, helo) == {"ok": True, "error": "", "raw": None}
    target = f"[{address}]"
    refused = run_check(director, address, REFUSING_SMTP_PORT, "SMTP_CHECK { }")
    assert refused["error"] == f"Bad greeting banner from server {target}:{REFUSING_SMTP_PORT}"
    babbling = run_check(director, address, BABBLING_SMTP_PORT, "SMTP_CHECK { }")
    assert babbling["error"] == f"Reply line too long from server {target}:{BABBLING_SMTP_PORT}"
    closed = run_check(director, address, 2528, "SMTP_CHECK { }")
    assert closed["error"] == f"connection refused from server {target}:2528"


def test_smtp_check_host_blocks_must_all_pass(hosts, smtp_server):
    director, _real = hosts
    both = f"""SMTP_CHECK {{ connect_timeout 2
        host {{ connect_ip {REAL4} }}
        host {{ connect_ip {REAL6} }} }}"""
    assert run_check(director, REAL4, SMTP_PORT, both)["ok"]
    second_refuses = f"""SMTP_CHECK {{ connect_timeout 2
        host {{ connect_ip {REAL4} }}
        host {{ connect_ip {REAL6}\n connect_port {REFUSING_SMTP_PORT} }} }}"""
    result = run_check(director, REAL4, SMTP_PORT, second_refuses)
    assert result["error"] == f"Bad greeting banner from server [{REAL6}]:{REFUSING_SMTP_PORT}"
