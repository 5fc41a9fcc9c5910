"""Real keepalived in two lab hosts: election, the VIP reachable from a third, failover on SIGTERM.

This proves the test bed is a faithful LAN (VRRP multicast, gratuitous ARP, TCP) and gives the
reference behaviour our own agent is compared with.
"""

from __future__ import annotations

import pytest

from testbed import keepalived
from testbed.services import start_responder, tcp_answer

pytestmark = pytest.mark.netns

VIP = "192.168.77.100"
PORT = 8080


def keepalived_conf(router_id: str, priority: int) -> str:
    return f"""
global_defs {{
    router_id {router_id}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {VIP}/24 dev eth0
    }}
}}
"""


def adverts_of(host, capture) -> list[str]:
    return [line for line in capture.read() if f"{host.ip} > 224.0.0.18: VRRP" in line]


def has_vip(host) -> bool:
    return f"{VIP}/24" in host.addresses("eth0")


def test_keepalived_elects_master_and_fails_over_on_sigterm(lab, tmp_path):
    d1 = lab.host("d1", "192.168.77.11/24")
    d2 = lab.host("d2", "192.168.77.12/24")
    client = lab.host("client", "192.168.77.20/24")
    for director in (d1, d2):
        start_responder(director, PORT)
    adverts = lab.capture("proto 112")

    master = keepalived.start(d1, keepalived_conf("d1", 150), tmp_path)
    keepalived.start(d2, keepalived_conf("d2", 100), tmp_path)

    d1.wait_for(lambda: has_vip(d1), timeout=10)
    assert not has_vip(d2), "both directors hold the VIP"
    assert client.run(["ping", "-c", "1", "-W", "2", VIP], check=False).returncode == 0
    assert client.wait_for(lambda: tcp_answer(client, VIP, PORT), timeout=5) == "d1"

    master.terminate()
    master.wait(timeout=10)
    d2.wait_for(lambda: has_vip(d2), timeout=5)
    assert not has_vip(d1), "the stopped master kept the VIP"
    assert client.wait_for(lambda: tcp_answer(client, VIP, PORT), timeout=5) == "d2"
    assert client.run(["ping", "-c", "1", "-W", "2", VIP], check=False).returncode == 0

    d2.wait_for(lambda: adverts_of(d2, adverts), timeout=3)
    adverts.stop()
    assert all("prio 100" in p for p in adverts_of(d2, adverts))
    from_d1 = adverts_of(d1, adverts)
    assert "prio 150" in from_d1[0], from_d1
    assert "prio 0," in from_d1[-1], "no priority-0 advert when the master stopped"
