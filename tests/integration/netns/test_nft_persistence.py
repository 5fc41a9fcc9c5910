"""A client keeps its real server with the nftables data plane (NAT), on the host's kernel.

persistence_timeout: each client stays on the real server it was first given, while rr spreads
new clients; a client whose real server fails moves and then stays where it moved, even once
its old real server is back. mh (no persistence): each client stays on the real server its
address hashes to; one whose real server fails moves, and returns once it is back.

The NAT site of test_nft_data_plane (real servers routed through the director), the client
with 12 addresses (12 clients). Again with each real server answering on 35 addresses (70 real
servers in the configuration): rr then spreads them over group chains (nft.ruleset
GROUPED_ABOVE), which the audit reads back as written and a health change rewrites in part."""

from __future__ import annotations

import time

import pytest
from test_nft_data_plane import (
    RS_PORT,
    VIP,
    VIRTUAL_SERVER,
    director,
    http_server,
    real_servers,
)
from test_nft_dr import fetch_from
from vrrp_support import Agent, virtual_server_block

pytestmark = pytest.mark.netns

AUDIT_WAIT = 7  # seconds: the engine audits the table every 5
CLIENTS = [f"10.0.0.{n}" for n in range(10, 22)]
GLOBAL = "global_defs {\n  router_id director\n  lvs_data_plane nftables\n}\n"
PERSISTENT = ("lvs_sched rr\n", "lvs_sched rr\n  persistence_timeout 60\n")
CONF = GLOBAL + VIRTUAL_SERVER.replace(*PERSISTENT)
# each real server's addresses beyond its first, when it stands for 35 (see grouped_conf)
MORE_ADDRESSES = {"rs1": range(10, 44), "rs2": range(50, 84)}


def grouped_conf() -> str:
    """70 real servers: rs1 and rs2 on their 35 addresses each, in turn (rr takes a group's
    members in this order: new clients meet both early)."""
    addresses = ["10.1.0.2", "10.1.0.3"]
    for pair in zip(*MORE_ADDRESSES.values()):
        addresses += [f"10.1.0.{n}" for n in pair]
    block = virtual_server_block(VIP, addresses, rs_port=RS_PORT, check="HTTP_GET")
    return GLOBAL + block.replace(*PERSISTENT)


def served(client, count: int = 3) -> dict:
    """client address -> the set of real servers that answered its `count` requests."""
    return {c: set(names) for c, names in fetch_from(client, CLIENTS, count).items()}


def handles(host) -> list:
    """The table's objects and rules with their handles (not the sets' clients, expiring)."""
    listing = host.run(["nft", "-a", "list", "table", "inet", "lvs_ha"]).stdout
    return [line for line in listing.splitlines() if "# handle" in line]


def start(lab, tmp_path, conf: str, grouped: bool = False) -> tuple:
    """The NAT site with 12 clients, the agent started, both real servers answering (with
    `grouped`, each on its MORE_ADDRESSES too)."""
    servers, processes = real_servers(lab, tmp_path)
    for server in servers if grouped else ():
        for number in MORE_ADDRESSES[server.short_name]:
            server.add_address(f"10.1.0.{number}/24")
    client = lab.host("client", f"{CLIENTS[0]}/24")
    for address in CLIENTS[1:]:
        client.add_address(f"{address}/24")
    host = director(lab, "director", "10.0.0.1", "10.1.0.1")
    host.add_address(f"{VIP}/24")
    agent = Agent(host, tmp_path, conf).start()

    def spread() -> bool:
        return set().union(*served(client, 1).values()) == {"rs1", "rs2"}

    try:
        client.wait_for(spread, timeout=40)
    except TimeoutError:
        agent.kill()
        pytest.fail(f"not both real servers: {served(client, 1)}\n{agent.log_text()}")
    return servers, processes, client, host, agent


def stop_rs2(client, processes) -> None:
    processes["rs2"].terminate()
    processes["rs2"].wait(10)
    client.wait_for(lambda: set().union(*served(client, 1).values()) == {"rs1"}, timeout=30)


@pytest.mark.parametrize("grouped", [False, True], ids=["2 real servers", "70 grouped"])
def test_each_client_stays_on_its_real_server(lab, tmp_path, grouped):
    conf = grouped_conf() if grouped else CONF
    servers, processes, client, host, agent = start(lab, tmp_path, conf, grouped)
    try:
        first = served(client, 4)
        assert all(len(names) == 1 for names in first.values()), first  # rr alone alternates
        assert set().union(*first.values()) == {"rs1", "rs2"}, first  # new clients spread
        status = agent.command("status").stdout
        assert "TCP  10.0.0.100:80 rr persistent 60" in status, status
        pinned = handles(host)
        assert any("pin-tcp-10.0.0.100-80-60-10.1.0.3-8080" in line for line in pinned), pinned
        groups = [line for line in pinned if "chain grp-tcp-10.0.0.100-80-" in line]
        assert len(groups) > 1 if grouped else not groups, pinned
        time.sleep(AUDIT_WAIT)  # the audits read the table back as written: nothing rewritten
        assert handles(host) == pinned

        # rs2 stops: its clients move to rs1, and stay there once rs2 is back
        stop_rs2(client, processes)
        processes["rs2"] = http_server(servers[1], tmp_path / "again")
        log = "Adding service [10.1.0.3]:8080 to VS [10.0.0.100]:80"
        host.wait_for(lambda: log in agent.log_text(), timeout=30)
        assert served(client, 4) == {address: {"rs1"} for address in CLIENTS}
    finally:
        if agent.proc.poll() is None:
            agent.kill()


def test_mh_keeps_each_client_where_its_address_hashes(lab, tmp_path):
    conf = CONF.replace("lvs_sched rr\n  persistence_timeout 60\n", "lvs_sched mh\n")
    servers, processes, client, host, agent = start(lab, tmp_path, conf)
    try:
        first = served(client, 4)
        assert all(len(names) == 1 for names in first.values()), first
        assert "TCP  10.0.0.100:80 mh" in agent.command("status").stdout
        stop_rs2(client, processes)
        processes["rs2"] = http_server(servers[1], tmp_path / "again")
        client.wait_for(lambda: served(client, 1) == first, timeout=30)  # they return
    finally:
        if agent.proc.poll() is None:
            agent.kill()
