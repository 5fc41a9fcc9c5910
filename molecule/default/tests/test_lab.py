"""The seed's scenario played out on the lab: observations from outside the agent.

Runs in file order: each failure test restores what it broke before it ends.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from conftest import (
    DIRECTORS,
    REALSERVERS,
    ask,
    endpoint,
    ipvs_entries,
    ipvs_realservers,
    podman_host,
    vip_holders,
    wait_for,
)

MASTER, BACKUP = DIRECTORS


AGENT_START_BOUND = 120  # seconds for a restarted agent to answer `lvs-agent status`


def current_master(directors, lab, vip=None) -> str:
    """The director holding VIP (default VI_1's)."""
    vip = vip or lab["vip"]
    holders = vip_holders(directors, vip)
    assert len(holders) == 1, f"VIP {vip} held by {holders or 'nobody'}"
    return holders[0]


# The Debian release of each node image (molecule.yml names the image of each platform).
RELEASE_OF_IMAGE = {"LVS_HA_NODE_TAG_BOOKWORM": "12", "LVS_HA_NODE_TAG_TRIXIE": "13"}


def test_the_lab_mixes_debian_12_and_13():
    """Both supported releases really ran: each node's /etc/debian_version is the one its
    image in molecule.yml promises, and a director and a real server run each of them."""
    scenario = yaml.safe_load((Path(__file__).parents[1] / "molecule.yml").read_text())
    expected = {}
    for platform in scenario["platforms"]:
        image = platform["image"]
        releases = {release for tag, release in RELEASE_OF_IMAGE.items() if tag in image}
        assert len(releases) == 1, image
        expected[os.path.expandvars(platform["name"])] = releases.pop()
    for group in (DIRECTORS, REALSERVERS):
        assert {expected[name] for name in group} == {"12", "13"}, expected
    versions = {
        name: podman_host(name).file("/etc/debian_version").content_string for name in expected
    }
    assert {name: text.split(".")[0] for name, text in versions.items()} == expected, versions


def test_agents_are_running(directors):
    for name, host in directors.items():
        assert host.service("lvs-agent").is_running, f"lvs-agent is not running on {name}"
        assert host.service("lvs-agent").is_enabled


def test_exactly_one_director_holds_the_vip_and_it_is_the_master(directors, lab):
    # Give a fresh pair the time of one election.
    wait_for(lambda: len(vip_holders(directors, lab["vip"])) == 1, lab["vrrp_bound"])
    holders = vip_holders(directors, lab["vip"])
    assert len(holders) == 1, f"VIP held by {holders}"
    if not lab["nopreempt"]:
        assert holders == [MASTER]


def test_agent_status_names_the_states(directors, lab):
    master = current_master(directors, lab)
    for name, host in directors.items():
        out = host.check_output("lvs-agent status")
        expected = "MASTER" if name == master else "BACKUP"
        assert expected in out, f"{name}: {out}"


def test_master_ipvs_table_lists_both_real_servers(directors, lab):
    master = directors[current_master(directors, lab)]
    wanted = set(REALSERVERS.values())
    took = wait_for(
        lambda: ipvs_realservers(master, lab["vip"], lab["port"]) == wanted, lab["addition_bound"]
    )
    assert took is not None, master.check_output("ipvsadm -Ln")


def test_requests_through_the_vip_are_answered_by_both_real_servers(client, lab):
    answers = ask(client, lab["vip"])
    assert "" not in answers, answers
    assert set(answers) == set(REALSERVERS), answers


def test_nat_service_answers_through_the_vip(directors, client, lab):
    """VIP:8080 rewritten to each real server's own address, port 80; the replies go back
    through the director (the real servers' route to the client via the NAT gateway VIP)."""
    vip, port = lab["vip"], lab["nat_port"]
    master = directors[current_master(directors, lab)]
    wanted = {f"{address}:80": "Masq" for address in REALSERVERS.values()}
    took = wait_for(lambda: ipvs_entries(master, vip, port) == wanted, lab["addition_bound"])
    assert took is not None, master.check_output("ipvsadm -Ln")
    answers = ask(client, vip, port=port)
    assert "" not in answers, answers
    assert set(answers) == set(REALSERVERS), answers


def test_tun_service_answers_through_its_vip(directors, client, lab):
    """The TUN VIP's packets reach each real server in IPIP (out of tunl0), which answers the
    client directly from that VIP."""
    vip = lab["vip_tun"]
    master = directors[current_master(directors, lab)]
    wanted = {f"{address}:80": "Tunnel" for address in REALSERVERS.values()}
    took = wait_for(lambda: ipvs_entries(master, vip, 80) == wanted, lab["addition_bound"])
    assert took is not None, master.check_output("ipvsadm -Ln")
    answers = ask(client, vip)
    assert "" not in answers, answers
    assert set(answers) == set(REALSERVERS), answers


def test_ipv6_instance_has_one_master_holding_its_vip(directors, lab):
    """VI_6 (VRRP version 3 over IPv6, unicast adverts from the link-local address): the
    configured MASTER holds the IPv6 VIP, and the agents name one MASTER and one BACKUP."""
    vip6 = lab["vip6"]
    wait_for(lambda: vip_holders(directors, vip6) == [MASTER], lab["vrrp_bound"])
    holders = vip_holders(directors, vip6)
    assert holders == [MASTER], f"{vip6} held by {holders or 'nobody'}"
    states = {}
    for name, host in directors.items():
        status = json.loads(host.check_output("lvs-agent status --json"))
        states[name] = [vi["state"] for vi in status["vrrp"] if vi["name"] == "VI_6"]
    assert states == {MASTER: ["MASTER"], BACKUP: ["BACKUP"]}, states


def test_ipv6_dr_service_answers_through_its_vip(directors, client, realserver_addresses6, lab):
    """[VIP6]:80 forwarded by direct routing to each real server's IPv6 address (the VIP on its
    lo, where neighbour discovery never answers for it), which answers the client itself."""
    vip6 = lab["vip6"]
    master = directors[current_master(directors, lab, vip6)]
    wanted = {endpoint(address, 80): "Route" for address in realserver_addresses6.values()}
    took = wait_for(lambda: ipvs_entries(master, vip6, 80) == wanted, lab["addition_bound"])
    assert took is not None, master.check_output("ipvsadm -Ln")
    answers = ask(client, vip6)
    assert "" not in answers, answers
    assert set(answers) == set(REALSERVERS), answers


def test_stopped_real_server_is_removed_then_added_back(directors, realservers, client, lab):
    master = directors[current_master(directors, lab)]
    stopped, other = "lvs-rs1", "lvs-rs2"
    vip, port = lab["vip"], lab["port"]
    realservers[stopped].check_output("systemctl stop nginx")
    try:
        took = wait_for(
            lambda: REALSERVERS[stopped] not in ipvs_realservers(master, vip, port),
            lab["removal_bound"],
        )
        assert took is not None, f"{stopped} still in the table after {lab['removal_bound']} s"
        print(f"{stopped} removed from the IPVS table {took:.1f} s after nginx stopped")
        assert ipvs_realservers(master, vip, port) == {REALSERVERS[other]}
        answers = ask(client, vip)
        assert answers == [other] * len(answers), answers
    finally:
        realservers[stopped].check_output("systemctl start nginx")
    took = wait_for(
        lambda: REALSERVERS[stopped] in ipvs_realservers(master, vip, port), lab["addition_bound"]
    )
    assert took is not None, f"{stopped} not back in the table after {lab['addition_bound']} s"
    print(f"{stopped} added back {took:.1f} s after nginx started")
    assert set(ask(client, vip)) == set(REALSERVERS)


@pytest.mark.parametrize("instance", ["VI_1", "VI_6"])
def test_stopping_the_master_agent_moves_the_vip_and_service_goes_on(
    directors, client, realserver_addresses6, lab, instance
):
    """VI_1's VIP (IPv4, nopreempt in the rollout's variant) or VI_6's (IPv6, unicast adverts
    to the other director's IPv6 address) moves to the backup, which serves its DR service."""
    ipv6 = instance == "VI_6"
    vip = lab["vip6"] if ipv6 else lab["vip"]
    addresses = realserver_addresses6 if ipv6 else REALSERVERS
    nopreempt = lab["nopreempt"] and not ipv6
    master_name = current_master(directors, lab, vip)
    backup_name = BACKUP if master_name == MASTER else MASTER
    master = directors[master_name]
    started = time.monotonic()
    master.check_output("systemctl stop lvs-agent")
    try:
        took = wait_for(lambda: vip_holders(directors, vip) == [backup_name], lab["vrrp_bound"])
        assert took is not None, (
            f"VIP not moved to {backup_name}: holders {vip_holders(directors, vip)}"
        )
        print(f"VIP moved {master_name} -> {backup_name} in {time.monotonic() - started:.1f} s")
        backup = directors[backup_name]
        wait_for(
            lambda: ipvs_realservers(backup, vip, lab["port"]) == set(addresses.values()),
            lab["addition_bound"],
        )
        answers = ask(client, vip)
        assert "" not in answers, answers
        assert set(answers) == set(REALSERVERS), answers
    finally:
        master.check_output("systemctl start lvs-agent")
    # The VRRP bound starts once the agent answers: its start-up (check-config, Python under
    # the QEMU guest's TCG) is no part of the protocol's timing.
    up = wait_for(lambda: master.run("lvs-agent status").rc == 0, AGENT_START_BOUND)
    assert up is not None, (
        f"lvs-agent on {master_name} not answering {AGENT_START_BOUND} s after start"
    )

    if nopreempt:
        # nopreempt: the restarted director stays BACKUP; the VIP stays where it is.
        time.sleep(lab["vrrp_bound"])
        assert vip_holders(directors, vip) == [backup_name]
    else:
        took = wait_for(lambda: vip_holders(directors, vip) == [master_name], lab["vrrp_bound"] + 2)
        assert took is not None, (
            f"VIP not given back to {master_name}: {vip_holders(directors, vip)}"
        )
        print(f"VIP back on {master_name} {took:.1f} s after its agent started (preempt)")
    answers = ask(client, vip)
    assert "" not in answers, answers


def test_a_failing_vrrp_script_moves_the_second_instance_and_back(directors, lab):
    """VI_2 (MASTER on lvs-director2, unicast) tracks a script that fails while a flag file
    exists: its priority drops below the other director's, which takes the VIP; the script
    passing again gives it back (preempt)."""
    vip2, owner, other = lab["vip2"], BACKUP, MASTER
    bound = lab["vrrp_bound"] + 2 * lab["advert_int"] + 2.0  # + the script's interval and fall
    assert wait_for(lambda: vip_holders(directors, vip2) == [owner], bound) is not None, (
        f"VI_2's VIP {vip2} held by {vip_holders(directors, vip2)}, not {owner}"
    )
    directors[owner].check_output("touch /run/lvs-ha-lab-fail")
    try:
        took = wait_for(lambda: vip_holders(directors, vip2) == [other], bound)
        assert took is not None, f"VIP {vip2} not moved to {other}: {vip_holders(directors, vip2)}"
        print(f"VI_2 moved {owner} -> {other} {took:.1f} s after its script began to fail")
    finally:
        directors[owner].check_output("rm -f /run/lvs-ha-lab-fail")
    took = wait_for(lambda: vip_holders(directors, vip2) == [owner], bound)
    assert took is not None, f"VIP {vip2} not back on {owner}: {vip_holders(directors, vip2)}"
    print(f"VI_2 back on {owner} {took:.1f} s after its script passed again")
