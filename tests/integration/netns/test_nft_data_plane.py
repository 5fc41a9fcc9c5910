"""The nftables data plane on the host's kernel (no IPVS needed): a client namespace reaches
two real HTTP servers through lvs-agent's NAT (lvs_data_plane nftables) on a director
namespace (and so do the director's own clients); a stopped real server is taken out by its
health check and comes back; a hand deletion of the agent's element is put back by the audit;
stopping the agent removes its table.
With two directors sharing the VIPs by VRRP, the client keeps being answered across a failover.
Without IPVS in the kernel, the default data plane's start error says how to choose nftables.
A reload adds and removes virtual servers in the table, and may not switch data planes.
IPv6 virtual servers go through the same table. A killed agent's table is taken over and
cleaned by the next run. Below its quorum a virtual server sends every client to its
sorry_server, and back to its real servers once the quorum is met again.

The real servers live on their own subnet (same LAN) with the director as their gateway, so
their replies go back through it and conntrack un-NATs them, as IPVS NAT needs too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from vrrp_support import (
    MODULE_UTILS,
    PYTHON,
    Agent,
    config,
    instance_block,
    virtual_server_block,
    wait_single_holder,
)

from testbed.services import HttpGet

pytestmark = pytest.mark.netns

VIP = "10.0.0.100"
GATEWAY = "10.1.0.1"  # the real servers' route: the director's address on their subnet
VIP6, GATEWAY6 = "fd00::100", "fd00:1::1"
RS_PORT = 8080
ELEMENT = f"{{ {VIP} . tcp . 80 }}"

VIRTUAL_SERVER = virtual_server_block(
    VIP, ("10.1.0.2", "10.1.0.3"), rs_port=RS_PORT, check="HTTP_GET"
)
CONF = "global_defs {\n  router_id director\n  lvs_data_plane nftables\n}\n" + VIRTUAL_SERVER


def pair_conf(priority: int) -> str:
    """A director of a VRRP pair: one instance holds the VIP and the real servers' gateway."""
    instance = instance_block(priority, vip=f"{VIP}/24\n    {GATEWAY}/24")
    return config(instance, global_extra="  lvs_data_plane nftables\n") + VIRTUAL_SERVER


def sysctl(host, name: str, value: str) -> None:
    host.run(["sysctl", "-qw", f"{name}={value}"])


def http_server(host, tmp_path):
    root = tmp_path / f"www-{host.short_name}"
    root.mkdir(parents=True)
    (root / "index.html").write_text(host.short_name + "\n")
    argv = [sys.executable, "-m", "http.server", RS_PORT, "--bind", "::", "--directory", root]
    return host.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def answers(client, count: int = 6, port: int = 80, vip: str = VIP) -> list[str]:
    return HttpGet(vip, port=port, count=count).pages(client)["-"]


def nft(host, *args: str, check: bool = True):
    return host.run(["nft", *args], check=check)


def director(lab, name: str, ip: str, rs_side: str):
    host = lab.host(name, f"{ip}/24")
    host.add_address(f"{rs_side}/24")
    sysctl(host, "net.ipv4.ip_forward", "1")
    sysctl(host, "net.ipv6.conf.all.forwarding", "1")
    for scope in ("all", "default", "eth0"):  # no redirect may send the replies around it
        sysctl(host, f"net.ipv4.conf.{scope}.send_redirects", "0")
    return host


def real_servers(lab, tmp_path) -> tuple:
    """rs1 and rs2 on their own subnets, routing through GATEWAY and GATEWAY6, each serving
    its name on IPv4 and IPv6."""
    if shutil.which("nft") is None:
        pytest.skip("needs nft (Debian package nftables)")
    servers = [
        lab.host("rs1", "10.1.0.2/24", "fd00:1::2/64"),
        lab.host("rs2", "10.1.0.3/24", "fd00:1::3/64"),
    ]
    for server in servers:
        server.run(["ip", "route", "add", "default", "via", GATEWAY])
        server.run(["ip", "-6", "route", "add", "default", "via", GATEWAY6])
    return servers, {server.short_name: http_server(server, tmp_path) for server in servers}


@pytest.fixture
def site(lab, tmp_path):
    servers, processes = real_servers(lab, tmp_path)
    client = lab.host("client", "10.0.0.10/24")
    host = director(lab, "director", "10.0.0.1", GATEWAY)
    host.add_address(f"{VIP}/24")
    agent = Agent(host, tmp_path, CONF).start()
    yield client, host, servers, processes, agent
    if agent.proc.poll() is None:
        agent.kill()


def test_nat_through_nftables_follows_health_and_audit_and_leaves_nothing(site, tmp_path):
    client, director, servers, processes, agent = site
    try:
        client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
    except TimeoutError:
        pytest.fail(f"both real servers never answered: {answers(client)}\n{agent.log_text()}")
    table = nft(director, "list", "table", "inet", "lvs_ha").stdout
    assert "numgen inc mod 2" in table and 'comment "rr"' in table
    assert set(answers(director)) == {"rs1", "rs2"}  # the director's own clients, as IPVS

    status = agent.command("status").stdout
    assert "TCP  10.0.0.100:80 rr" in status, status
    for address in ("10.1.0.2", "10.1.0.3"):
        assert re.search(rf"-> {address}:8080 +Masq +1 +0 +0 +up since", status), status

    # rs2 stops: its check takes it out, every request lands on rs1
    processes["rs2"].terminate()
    processes["rs2"].wait(10)
    client.wait_for(lambda: set(answers(client)) == {"rs1"}, timeout=30)
    assert "Removing service [10.1.0.3]:8080 from VS [10.0.0.100]:80" in agent.log_text()
    assert "numgen inc mod 1" in nft(director, "list", "table", "inet", "lvs_ha").stdout

    # back again: it comes back in
    processes["rs2"] = http_server(servers[1], tmp_path / "again")
    client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
    assert "Adding service [10.1.0.3]:8080 to VS [10.0.0.100]:80" in agent.log_text()

    # a hand edit: the service's element goes; the audit puts it back
    reverted = "nftables table changed outside lvs-agent, reverting: edit_service [10.0.0.100]:80"
    assert reverted not in agent.log_text()
    nft(director, "delete", "element", "inet", "lvs_ha", "services4", ELEMENT)
    director.wait_for(lambda: reverted in agent.log_text(), timeout=20)  # audits: every 5 s
    assert ELEMENT[2:-2] in nft(director, "list", "map", "inet", "lvs_ha", "services4").stdout
    assert set(answers(client)) == {"rs1", "rs2"}

    # stop: the agent's table goes with it
    assert agent.stop() == 0
    gone = nft(director, "list", "table", "inet", "lvs_ha", check=False)
    assert gone.returncode != 0, gone.stdout


def test_below_quorum_the_sorry_server_answers(lab, tmp_path):
    servers, processes = real_servers(lab, tmp_path)
    sorry = lab.host("sorry", "10.1.0.4/24")
    sorry.run(["ip", "route", "add", "default", "via", GATEWAY])
    processes["sorry"] = http_server(sorry, tmp_path)
    client = lab.host("client", "10.0.0.10/24")
    host = director(lab, "director", "10.0.0.1", GATEWAY)
    host.add_address(f"{VIP}/24")
    extra = f"  quorum 2\n  sorry_server 10.1.0.4 {RS_PORT}\n"
    virtual_server = virtual_server_block(
        VIP, ("10.1.0.2", "10.1.0.3"), rs_port=RS_PORT, check="HTTP_GET", extra=extra
    )
    conf = "global_defs {\n  router_id director\n  lvs_data_plane nftables\n}\n" + virtual_server
    agent = Agent(host, tmp_path, conf).start()
    try:
        client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
        processes["rs2"].terminate()  # alive weight 1, quorum 2: only the sorry server
        processes["rs2"].wait(10)
        client.wait_for(lambda: set(answers(client)) == {"sorry"}, timeout=30)
        assert "Adding sorry server [10.1.0.4]:8080 to VS [10.0.0.100]:80" in agent.log_text()
        processes["rs2"] = http_server(servers[1], tmp_path / "again")
        client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
        assert "Removing sorry server [10.1.0.4]:8080 from VS [10.0.0.100]:80" in agent.log_text()
    except TimeoutError:
        pytest.fail(f"answers {answers(client)}\n{agent.log_text()}")
    finally:
        agent.kill()


def real_server_counters(agent) -> dict:
    """`lvs-agent status --json`: the counters of each real server of VIP:80, by address."""
    argv = ["env", f"PYTHONPATH={MODULE_UTILS}", PYTHON, "-m", "lvsagent", "status", "--json"]
    status = json.loads(agent.host.run([*argv, "--control-socket", agent.socket]).stdout)
    (service,) = [s for s in status["ipvs"] if (s["address"], s["port"]) == (VIP, 80)]
    return {row["address"]: row["counters"] for row in service["realservers"]}


def test_requests_through_the_vip_count_on_the_real_server_that_answered(site):
    client, _director, _servers, _processes, agent = site
    client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
    before = real_server_counters(agent)
    answered = answers(client, count=9)
    after = real_server_counters(agent)
    for name, address in (("rs1", "10.1.0.2"), ("rs2", "10.1.0.3")):
        grown = {key: after[address][key] - before[address][key] for key in after[address]}
        # one connection per request (the health checks leave from the director: not counted)
        assert grown["connections"] == answered.count(name), (answered, before, after)
        assert grown["packets_in"] >= 3 * grown["connections"]  # handshake, request, close
        assert grown["packets_out"] >= 3 * grown["connections"]
        assert grown["bytes_out"] > grown["bytes_in"] > 0  # the page goes out


def test_a_director_failover_keeps_the_client_answered(lab, tmp_path):
    real_servers(lab, tmp_path)
    client = lab.host("client", "10.0.0.10/24")
    d1 = director(lab, "d1", "10.0.0.2", "10.1.0.252")
    d2 = director(lab, "d2", "10.0.0.3", "10.1.0.253")
    agents = [Agent(d1, tmp_path, pair_conf(150)).start(), Agent(d2, tmp_path, pair_conf(100))]
    agents[1].start()
    try:
        wait_single_holder([d1, d2], d1, vip=VIP, timeout=20)
        client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
        assert agents[0].stop() == 0  # d1 leaves: priority 0 advert, d2 takes both VIPs
        wait_single_holder([d1, d2], d2, vip=VIP, timeout=10)
        client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=15)
        assert nft(d1, "list", "table", "inet", "lvs_ha", check=False).returncode != 0
    finally:
        for agent in agents:
            if agent.proc.poll() is None:
                agent.kill()


def test_without_ipvs_the_start_error_says_how_to_choose_nftables(lab, tmp_path):
    if os.path.exists("/proc/net/ip_vs"):
        pytest.skip("this kernel has IPVS")
    host = lab.host("director", "10.0.0.1/24")
    agent = Agent(host, tmp_path, CONF.replace("  lvs_data_plane nftables\n", "")).start()
    assert agent.proc.wait(30) != 0
    assert "global_defs { lvs_data_plane nftables }" in agent.log_text()


def test_a_reload_adds_and_removes_virtual_servers_but_keeps_the_data_plane(site):
    client, director, _servers, _processes, agent = site
    client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
    on_81 = VIRTUAL_SERVER.replace(f"{VIP} 80 {{", f"{VIP} 81 {{")
    agent.conf.write_text(CONF + on_81)
    assert agent.command("reload").returncode == 0
    client.wait_for(lambda: set(answers(client, port=81)) == {"rs1", "rs2"}, timeout=30)

    agent.conf.write_text(CONF.replace(VIRTUAL_SERVER, on_81))
    assert agent.command("reload").returncode == 0
    table = nft(director, "list", "table", "inet", "lvs_ha").stdout
    assert "vs-tcp-10.0.0.100-81" in table and "vs-tcp-10.0.0.100-80" not in table, table
    assert set(answers(client, 2)) == {"-"}  # nothing DNATs port 80 any more

    agent.conf.write_text(
        CONF.replace("  lvs_data_plane nftables\n", "").replace(VIRTUAL_SERVER, on_81)
    )
    refused = agent.command("reload")
    assert refused.returncode != 0
    assert "lvs_data_plane cannot change from nftables to ipvs" in refused.stdout + refused.stderr
    assert set(answers(client, port=81)) == {"rs1", "rs2"}


def test_ipv6_nat_reaches_both_real_servers(lab, tmp_path):
    servers, _processes = real_servers(lab, tmp_path)
    for server in servers:  # a director's redirect would send the replies around it
        sysctl(server, "net.ipv6.conf.all.accept_redirects", "0")
        sysctl(server, "net.ipv6.conf.eth0.accept_redirects", "0")
    client = lab.host("client", "10.0.0.10/24", "fd00::10/64")
    host = director(lab, "director", "10.0.0.1", GATEWAY)
    host.add_address(f"{VIP6}/64")
    host.add_address(f"{GATEWAY6}/64")
    conf = CONF.replace(VIP, VIP6).replace("10.1.0.", "fd00:1::")
    agent = Agent(host, tmp_path, conf).start()
    try:
        client.wait_for(lambda: set(answers(client, vip=VIP6)) == {"rs1", "rs2"}, timeout=30)
        status = agent.command("status").stdout
        assert "TCP  [fd00::100]:80 rr" in status and "-> [fd00:1::3]:8080" in status, status
        table = nft(host, "list", "map", "inet", "lvs_ha", "services6").stdout
        assert "fd00::100 . tcp . 80 : goto vs-tcp-fd00__100-80" in table, table
    finally:
        agent.stop()


def test_the_next_run_cleans_what_a_killed_agent_left(site):
    client, director, _servers, _processes, agent = site
    client.wait_for(lambda: set(answers(client)) == {"rs1", "rs2"}, timeout=30)
    agent.kill()
    assert "vs-tcp-10.0.0.100-80" in nft(director, "list", "table", "inet", "lvs_ha").stdout
    agent.conf.write_text(CONF.replace(f"{VIP} 80 {{", f"{VIP} 81 {{"))
    agent.start()
    client.wait_for(lambda: set(answers(client, port=81)) == {"rs1", "rs2"}, timeout=30)
    table = nft(director, "list", "table", "inet", "lvs_ha").stdout
    assert "vs-tcp-10.0.0.100-80" not in table and "10.0.0.100 . tcp . 80" not in table, table
