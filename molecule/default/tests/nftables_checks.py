"""The nftables lab (not collected by `molecule verify`: tools/molecule-nftables runs it on the
lab converged with inventory/lab-nftables): the scenarios that prove the IPVS data plane in
test_lab.py, played by directors on lvs_data_plane nftables on this host's own kernel.

DR with sh on VIP:80, NAT rr with persistence_timeout on VIP:8080. The client asks from its own
address and from 20 more of its block (lvs_client_block): one client each for the schedulers.
Runs in file order: each failure test restores what it broke before it ends."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    CLIENT,
    DIRECTORS,
    REALSERVERS,
    ask,
    ipvs_entries,
    lab_vars,
    vip_holders,
    wait_for,
)
from rollout_gap import POLL_LOG, longest_gap, polled
from test_lab import AGENT_START_BOUND, current_master

MASTER, BACKUP = DIRECTORS
SOURCES = 20  # client addresses asking, each one request per round
STATUS = "lvs-agent status"  # the agent's listing of its nftables table, ipvsadm's layout
TABLES = {"table inet lvs_ha", "table netdev lvs_ha"}  # NAT's table, DR's (fwd is netdev's)
POLL_STOP = "/run/lvs-ha-poll.stop"
POLL_INTERVAL = 0.1
POLLER = Path(__file__).with_name("poll_vip.py")


def agent_tables(host) -> set[str]:
    """The agent's nftables tables in this host's ruleset (`nft list tables`)."""
    return {line.strip() for line in host.check_output("nft list tables").splitlines()} & TABLES


def table_servers(host, vip, port) -> set[str]:
    """Addresses of the real servers of VIP:PORT in the director's nftables table."""
    return {entry.rsplit(":", 1)[0] for entry in ipvs_entries(host, vip, port, STATUS)}


def answers_by_source(client, sources, vip, port) -> dict[str, str]:
    """One request from each source address to VIP:PORT: source -> the page's text, or ""."""
    script = "; ".join(
        f"printf '{source} %s\\n' \"$(curl -s --max-time 2 --interface {source} "
        f'http://{vip}:{port}/)"'
        for source in sources
    )
    found = {}
    for line in client.run(script).stdout.splitlines():
        source, answer = line.split(" ", 1) if " " in line else (line, "")
        found[source] = answer.strip()
    return found


@pytest.fixture(scope="module")
def sources(client) -> list[str]:
    """SOURCES more addresses on the client's eth0, from the block the real servers route
    through the directors for NAT."""
    block = ipaddress.ip_network(lab_vars("all.yml")["lvs_client_block"])
    addresses = [str(address) for address in list(block.hosts())[:SOURCES]]
    for address in addresses:
        client.check_output(f"ip addr replace {address}/32 dev eth0")
    return addresses


@pytest.fixture(scope="module")
def dr_spread(client, sources, lab) -> dict[str, str]:
    """Which real server sh gives each source on the DR service, both real servers up."""
    return answers_by_source(client, sources, lab["vip"], lab["port"])


def test_both_agents_run_the_nftables_tables(directors):
    for name, host in directors.items():
        assert host.service("lvs-agent").is_running, f"lvs-agent is not running on {name}"
        assert agent_tables(host) == TABLES, f"{name}: {host.check_output('nft list tables')}"


def test_the_master_holds_the_vip(directors, lab):
    took = wait_for(lambda: vip_holders(directors, lab["vip"]) == [MASTER], lab["vrrp_bound"])
    assert took is not None, f"VIP held by {vip_holders(directors, lab['vip'])}"


def test_status_lists_the_nftables_table(directors, lab):
    """`lvs-agent status` shows both services, read back from the nftables table, with both
    real servers each: DR (Route) and NAT (Masq, to port 80)."""
    master = directors[MASTER]
    vip = lab["vip"]
    wanted = {
        lab["port"]: {f"{address}:{lab['port']}": "Route" for address in REALSERVERS.values()},
        lab["nat_port"]: {f"{address}:80": "Masq" for address in REALSERVERS.values()},
    }
    for port, entries in wanted.items():
        took = wait_for(
            lambda port=port, entries=entries: ipvs_entries(master, vip, port, STATUS) == entries,
            lab["addition_bound"],
        )
        assert took is not None, master.check_output(STATUS)


def test_dr_sh_reaches_every_real_server_and_keeps_each_client(client, sources, dr_spread, lab):
    assert "" not in dr_spread.values(), dr_spread
    assert set(dr_spread.values()) == set(REALSERVERS), dr_spread
    again = answers_by_source(client, sources, lab["vip"], lab["port"])
    assert again == dr_spread, "sh moved clients with no change of real servers"
    shares = {name: list(dr_spread.values()).count(name) for name in REALSERVERS}
    print(f"DR sh: {len(sources)} clients, each on its real server: {shares}")


def test_nat_persistence_keeps_a_client_on_its_real_server(client, sources, lab):
    """rr hands each new client the next real server; persistence_timeout keeps it there."""
    vip, port = lab["vip"], lab["nat_port"]
    answers = ask(client, vip, port=port)
    assert "" not in answers, answers
    assert len(set(answers)) == 1, f"one client moved between real servers: {answers}"
    first = answers_by_source(client, sources, vip, port)
    assert "" not in first.values(), first
    assert set(first.values()) == set(REALSERVERS), first
    assert answers_by_source(client, sources, vip, port) == first


def test_stopped_real_server_is_removed_then_added_back(
    directors, realservers, client, sources, dr_spread, lab
):
    """Only the stopped real server's clients move; they come back to it when it returns."""
    master = directors[MASTER]
    stopped, other = REALSERVERS
    address = REALSERVERS[stopped]
    vip, port = lab["vip"], lab["port"]
    realservers[stopped].check_output("systemctl stop nginx")
    try:
        took = wait_for(
            lambda: address not in table_servers(master, vip, port), lab["removal_bound"]
        )
        assert took is not None, f"{stopped} still in the table after {lab['removal_bound']} s"
        print(f"{stopped} removed from the nftables table {took:.1f} s after nginx stopped")
        answers = answers_by_source(client, sources, vip, port)
        assert set(answers.values()) == {other}, answers
    finally:
        realservers[stopped].check_output("systemctl start nginx")
    took = wait_for(lambda: address in table_servers(master, vip, port), lab["addition_bound"])
    assert took is not None, f"{stopped} not back in the table after {lab['addition_bound']} s"
    print(f"{stopped} added back {took:.1f} s after nginx started")
    assert answers_by_source(client, sources, vip, port) == dr_spread


def test_stopping_the_master_agent_moves_the_vip_and_the_client_keeps_answers(
    directors, client, sources, dr_spread, lab
):
    """The client polls VIP:80 every 0.1 s (poll_vip.py) while the master's agent stops (its
    tables go with it), the backup serves (each client on the same real server: both directors
    build the same sh table), and the master comes back (preempt): the longest time without an
    answer stays under one VRRP hand-over (rollout_gap.py's measure)."""
    vip = lab["vip"]
    master, backup = directors[MASTER], directors[BACKUP]
    client.check_output(f"rm -f {POLL_LOG} {POLL_STOP}")
    subprocess.run(
        ["podman", "exec", "--detach", CLIENT, "python3", "-c", POLLER.read_text(), vip]
        + [str(lab["port"]), str(POLL_INTERVAL), POLL_LOG, POLL_STOP],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        master.check_output("systemctl stop lvs-agent")
        try:
            took = wait_for(lambda: vip_holders(directors, vip) == [BACKUP], lab["vrrp_bound"])
            assert took is not None, f"VIP not moved: holders {vip_holders(directors, vip)}"
            assert agent_tables(master) == set(), "the stopped agent left its tables"
            wanted = set(REALSERVERS.values())
            took = wait_for(lambda: table_servers(backup, vip, lab["port"]) == wanted, 5)
            assert took is not None, backup.check_output(STATUS)
            answers = answers_by_source(client, sources, vip, lab["port"])
            assert answers == dr_spread, "the backup's sh table sent clients elsewhere"
        finally:
            master.check_output("systemctl start lvs-agent")
        up = wait_for(lambda: master.run(STATUS).rc == 0, AGENT_START_BOUND)
        assert up is not None, f"lvs-agent on {MASTER} not answering after {AGENT_START_BOUND} s"
        took = wait_for(lambda: current_master(directors, lab) == MASTER, lab["vrrp_bound"] + 2)
        assert took is not None, f"VIP not given back to {MASTER}"
        time.sleep(2)
    finally:
        client.check_output(f"touch {POLL_STOP}")
        time.sleep(1.5)  # the poller's last request (1 s timeout) ends and is written
    rows = polled(client)
    longest, began = longest_gap(rows)
    failed = sum(1 for row in rows if not row[2])
    print(
        f"failover polled for {rows[-1][1] - rows[0][0]:.1f} s: {len(rows)} requests, "
        f"{failed} failed; longest gap {longest:.2f} s (from {began:.1f} s after the start)"
    )
    assert rows[-1][2], "the last request got no answer"
    assert longest < lab["vrrp_bound"], f"VIP unanswered for {longest:.2f} s"
