"""Direct routing with the nftables data plane, on the host's kernel: a client reaches two
real servers through the director's `fwd` (destination MAC rewritten, the VIP kept), and the
real servers answer it straight (they hold the VIP on lo, its ARP suppressed by the
collection's arp_suppress module); the director never sees a reply. sh's consistent slot table
keeps each client on its real server, whose counters (status) grow with its requests; a stopped
real server is taken out by its health check (only its clients move) and comes back (they
return to it). IPv6 goes the same way (fwd ip6).

All hosts share one LAN (the one-armed director of DR): client 10.0.0.10 (and 20 more
addresses, for 20 clients), director 10.0.0.1 with the VIP, real servers 10.0.0.2 and .3."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
from test_nft_data_plane import real_server_counters
from vrrp_support import Agent, virtual_server_block

from testbed.ansible import local_argv, run_adhoc
from testbed.services import HttpGet

pytestmark = pytest.mark.netns

VIP = "10.0.0.100"
VIP6 = "fd00::100"
AUDIT_WAIT = 7  # seconds: the engine audits the tables every 5
CLIENTS = [f"10.0.0.{n}" for n in range(10, 31)]
REAL_SERVERS = {"rs1": "10.0.0.2", "rs2": "10.0.0.3"}
REAL_SERVERS6 = {"rs1": "fd00::2", "rs2": "fd00::3"}

CONF = "global_defs {\n  router_id director\n  lvs_data_plane nftables\n}\n" + virtual_server_block(
    VIP, REAL_SERVERS.values(), check="HTTP_GET", method="DR", scheduler="sh"
)

# Counts, on the director, what comes from the VIP's port: a reply that went through it.
PROBE = f"""table inet probe {{
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    ip saddr {VIP} tcp sport 80 counter
    ip6 saddr {VIP6} tcp sport 80 counter
  }}
}}"""


def http_server(host, tmp_path):
    root = tmp_path / f"www-{host.short_name}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(host.short_name + "\n")
    argv = [sys.executable, "-m", "http.server", "80", "--bind", "::", "--directory", root]
    return host.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def suppress_arp(host, tmp_path) -> None:
    """The VIP on lo without answering ARP for it: lvs.ha.arp_suppress, as a real server's."""
    files = tmp_path / f"arp-{host.short_name}"
    args = (
        f"vips={VIP} sysctl_file={files}/sysctl.conf unit_dir={files}/units "
        f"state_file={files}/state.json"
    )
    status, result = run_adhoc(
        host, [*local_argv("ansible"), "localhost", "-m", "lvs.ha.arp_suppress", "-a", args]
    )
    assert status == "CHANGED", result


def fetch_from(client, sources: list, count: int, vip: str = VIP) -> dict:
    """source address -> the names of the real servers that answered its `count` requests."""
    return HttpGet(vip, tuple(sources), count=count).pages(client)


def served(client) -> dict:
    """client address -> the real server that answered it."""
    return {source: names[0] for source, names in fetch_from(client, CLIENTS, 1).items()}


def replies_seen(director) -> int:
    listing = director.run(["nft", "list", "table", "inet", "probe"]).stdout
    return sum(int(part.split()[0]) for part in listing.split("counter packets ")[1:])


def test_dr_forwards_to_real_servers_that_answer_the_client_directly(lab, tmp_path):
    if shutil.which("nft") is None:
        pytest.skip("needs nft (Debian package nftables)")
    servers = {name: lab.host(name, f"{address}/24") for name, address in REAL_SERVERS.items()}
    for host in servers.values():
        suppress_arp(host, tmp_path)
    processes = {name: http_server(host, tmp_path) for name, host in servers.items()}
    client = lab.host("client", f"{CLIENTS[0]}/24")
    for address in CLIENTS[1:]:
        client.add_address(f"{address}/24")
    director = lab.host("director", "10.0.0.1/24")
    director.add_address(f"{VIP}/24")
    director.run(["nft", "-f", "-"], input=PROBE)
    agent = Agent(director, tmp_path, CONF).start()
    try:
        try:
            client.wait_for(lambda: set(served(client).values()) == {"rs1", "rs2"}, timeout=40)
        except TimeoutError:
            pytest.fail(f"not both real servers: {served(client)}\n{agent.log_text()}")
        first = served(client)
        assert served(client) == first  # each client stays on its real server
        assert replies_seen(director) == 0  # the replies went straight to the client
        table = director.run(["nft", "-a", "list", "table", "netdev", "lvs_ha"]).stdout
        assert 'hook ingress device "eth0"' in table, table
        assert "jhash ip saddr mod 256 seed 0x4c5648 vmap" in table, table
        forward = r'counter packets \d+ bytes \d+ fwd ip to 10\.0\.0\.3 device "eth0"'
        assert re.search(forward, table), table
        time.sleep(AUDIT_WAIT)  # the audits read the table back as written: nothing rewritten
        assert director.run(["nft", "-a", "list", "table", "netdev", "lvs_ha"]).stdout == table
        status = agent.command("status").stdout
        assert "TCP  10.0.0.100:80 sh" in status, status
        assert " -> 10.0.0.2:80 " in status and "Route" in status, status

        # a client's requests count on the real server that answered it, and only there
        before = real_server_counters(agent)
        answered = fetch_from(client, CLIENTS[:1], 3)[CLIENTS[0]]
        after = real_server_counters(agent)
        assert set(answered) == {first[CLIENTS[0]]}, answered
        for name, address in REAL_SERVERS.items():
            grown = {key: after[address][key] - before[address][key] for key in after[address]}
            if name in answered:  # each connection's handshake, request and close at least
                assert grown["connections"] == 3, (before, after)
                assert grown["packets_in"] >= 3 * 3 and grown["bytes_in"] > 0, (before, after)
            else:
                assert grown["connections"] == grown["packets_in"] == grown["bytes_in"] == 0
            assert grown["packets_out"] == 0  # the replies never pass the director

        # rs2 stops: its check takes it out; only its clients move
        processes["rs2"].terminate()
        processes["rs2"].wait(10)
        client.wait_for(lambda: set(served(client).values()) == {"rs1"}, timeout=30)
        assert "Removing service [10.0.0.3]:80 from VS [10.0.0.100]:80" in agent.log_text()

        # back again: its clients return to it, the others never moved
        processes["rs2"] = http_server(servers["rs2"], tmp_path)
        client.wait_for(lambda: served(client) == first, timeout=30)
        assert replies_seen(director) == 0

        assert agent.stop() == 0
        gone = director.run(["nft", "list", "table", "netdev", "lvs_ha"], check=False)
        assert gone.returncode != 0, gone.stdout
    finally:
        if agent.proc.poll() is None:
            agent.kill()


def test_dr_over_ipv6_forwards_with_fwd_ip6(lab, tmp_path):
    """The real servers hold the VIP on lo (/128): Linux answers neighbour solicitations only
    for the receiving interface's addresses, so nothing needs suppressing."""
    servers = {
        name: lab.host(name, f"{REAL_SERVERS[name]}/24", f"{address}/64")
        for name, address in REAL_SERVERS6.items()
    }
    for host in servers.values():
        host.add_address(f"{VIP6}/128", dev="lo")
        http_server(host, tmp_path)
    sources = [f"fd00::{n:x}" for n in range(0x10, 0x1C)]
    client = lab.host("client", f"{CLIENTS[0]}/24", f"{sources[0]}/64")
    for address in sources[1:]:
        client.add_address(f"{address}/64")
    director = lab.host("director", "10.0.0.1/24", "fd00::1/64")
    # deprecated: never the source of the director's own packets (its checks' replies would
    # go to the real servers' own VIP)
    vip = ["ip", "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad", "preferred_lft", "0"]
    director.run(vip)
    director.run(["nft", "-f", "-"], input=PROBE)
    conf = CONF.replace(VIP, VIP6)
    for name, address in REAL_SERVERS.items():
        conf = conf.replace(f"real_server {address} ", f"real_server {REAL_SERVERS6[name]} ")
    agent = Agent(director, tmp_path, conf).start()
    try:

        def spread() -> set:
            return {names[0] for names in fetch_from(client, sources, 1, VIP6).values()}

        try:
            client.wait_for(lambda: spread() == {"rs1", "rs2"}, timeout=40)
        except TimeoutError:
            pytest.fail(f"not both real servers: {spread()}\n{agent.log_text()}")
        table = director.run(["nft", "list", "table", "netdev", "lvs_ha"]).stdout
        assert "jhash ip6 saddr mod 256 seed 0x4c5648 vmap" in table, table
        assert 'fwd ip6 to fd00::3 device "eth0"' in table, table
        assert replies_seen(director) == 0
    finally:
        agent.stop()
