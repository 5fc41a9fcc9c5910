"""Interfaces that disappear and come back under a running agent: eth0 deleted (both ends of
its veth) and re-created with the same name on the bridge, so with a new index and a new MAC,
as a VLAN taken down and up again, a bond rebuilt or a veth re-created would be.

While the interface is gone the instance is in FAULT; once it is back the agent sends and
receives on a socket bound to the new index (multicast group joined again, IPv6 from the new
link-local address), so the election is the one the priorities give: one master.
advert_int 1, priorities 150 / 100, preempt.
"""

from __future__ import annotations

import json
import time

import pytest
import vrrp_support
from vrrp_support import (
    VIP6,
    Agent,
    Keepalived,
    config,
    holders,
    holds,
    instance_block,
    stays,
)

pytestmark = pytest.mark.netns

MASTER_DOWN_100 = 3 + 156 / 256
MASTER_DOWN_150 = 3 + 106 / 256


@pytest.fixture
def pair(lab):
    return lab.host("d1", "192.168.77.11/24"), lab.host("d2", "192.168.77.12/24")


def start_agents(pair, tmp_path):
    d1, d2 = pair
    a1 = Agent(d1, tmp_path, config(instance_block(150))).start()
    a2 = Agent(d2, tmp_path, config(instance_block(100))).start()
    d1.wait_for(lambda: holders(pair) == [d1], 15)
    return a1, a2


def lines_from(capture, mac: str, kind: str) -> list[str]:
    """Captured frames of `kind` ("VRRP" or "ARP") sent from `mac` (tcpdump -e)."""
    return [line for line in capture.read("-e") if line.split()[1] == mac and kind in line]


def unplug(host, agent) -> int:
    """Delete eth0 and see the agent go to FAULT; returns the index eth0 had."""
    index = host.ifindex()
    host.unplug()
    host.wait_for(lambda: "(VI_1) Entering FAULT STATE" in agent.log_text(), 5)
    assert "Interface eth0 deleted" in agent.log_text()
    return index


def plug(host, agent, old_index: int) -> None:
    """Re-create eth0 with the same name (a new index, a new MAC); the agent reopens."""
    host.plug()
    assert host.ifindex() != old_index
    host.wait_for(lambda: "VRRP socket on eth0 reopened" in agent.log_text(), 5)
    assert "Interface eth0 added" in agent.log_text()


def test_master_interface_recreated_takes_over_again_on_its_new_index(lab, pair, tmp_path):
    d1, d2 = pair
    a1, a2 = start_agents(pair, tmp_path)
    wire = lab.capture("vrrp or arp")
    took = time.monotonic()
    old_index = unplug(d1, a1)
    d2.wait_for(lambda: holders(pair) == [d2], MASTER_DOWN_100 + 3)
    assert time.monotonic() - took < MASTER_DOWN_100 + 2
    plug(d1, a1, old_index)  # a new MAC too: frames from it can only come from the new socket
    d1.wait_for(lambda: holders(pair) == [d1], MASTER_DOWN_150 + 5)  # preempts back
    d2.wait_for(lambda: "Entering BACKUP STATE" in a2.log_text().split("MASTER STATE")[-1], 3)
    assert stays(lambda: holders(pair) == [d1], 2.5)  # one master, d2 hears its adverts
    adverts = lines_from(wire, d1.mac, "VRRP")
    assert len(adverts) >= 2 and all("192.168.77.11 > 224.0.0.18" in a for a in adverts)
    assert "prio 150" in adverts[-1]
    assert lines_from(wire, d1.mac, "ARP"), "no gratuitous ARP from the re-created eth0"
    assert "Traceback" not in a1.log_text()


def test_backup_interface_recreated_hears_the_master_again(lab, pair, tmp_path):
    d1, d2 = pair
    a1, a2 = start_agents(pair, tmp_path)
    plug(d2, a2, unplug(d2, a2))
    d2.wait_for(lambda: "Entering BACKUP STATE" in a2.log_text().split("FAULT STATE")[-1], 5)
    # a backup deaf to the master would take over after Master_Down_Interval (3.61 s)
    assert stays(lambda: holders(pair) == [d1], MASTER_DOWN_100 + 1.5)
    wire = lab.capture("vrrp")
    assert a1.stop() == 0  # priority 0: the backup, on its new socket, takes over at once
    d2.wait_for(lambda: holds(d2), 3)
    time.sleep(1.2)
    assert lines_from(wire, d2.mac, "VRRP"), "no advert from the re-created eth0"
    assert "Traceback" not in a2.log_text()


def test_keepalived_peer_sees_the_agent_come_back(lab, pair, tmp_path):
    d1, d2 = pair
    agent = Agent(d1, tmp_path, config(instance_block(150))).start()
    peer = Keepalived(d2, tmp_path, config(instance_block(100))).start()
    d1.wait_for(lambda: holders(pair) == [d1], 15)
    old_index = unplug(d1, agent)
    d2.wait_for(lambda: holders(pair) == [d2], MASTER_DOWN_100 + 3)
    plug(d1, agent, old_index)
    d1.wait_for(lambda: holders(pair) == [d1], MASTER_DOWN_150 + 5)
    assert stays(lambda: holders(pair) == [d1], 2.5)
    assert "Master received advert from 192.168.77.11 with higher priority 150" in (peer.log_text())


def test_ipv6_master_comes_back_with_its_new_link_local_source(lab, tmp_path):
    d1 = lab.host("d1", "192.168.77.11/24", ipv6="fd00:77::11/64")
    d2 = lab.host("d2", "192.168.77.12/24", ipv6="fd00:77::12/64")
    pair = (d1, d2)

    def block(priority):
        return config(instance_block(priority, version=3, vip=f"{VIP6}/64", vrid=52))

    a1 = Agent(d1, tmp_path, block(150)).start()
    Agent(d2, tmp_path, block(100)).start()
    d1.wait_for(lambda: holders(pair, VIP6) == [d1], 15)
    wire = lab.capture("ip6 proto 112 or icmp6")
    old_index = unplug(d1, a1)
    d2.wait_for(lambda: holders(pair, VIP6) == [d2], MASTER_DOWN_100 + 3)
    plug(d1, a1, old_index)
    d1.wait_for(lambda: holders(pair, VIP6) == [d1], MASTER_DOWN_150 + 5)
    assert stays(lambda: holders(pair, VIP6) == [d1], 2.5)
    link_local = next(a for a in d1.addresses("eth0") if a.startswith("fe80:")).split("/")[0]
    adverts = lines_from(wire, d1.mac, "VRRP")
    assert adverts and all(f"{link_local} > ff02::12" in advert for advert in adverts)
    assert f"(VI_1) source address on eth0 is now {link_local}" in a1.log_text()
    announced = lines_from(wire, d1.mac, "neighbor advertisement")
    assert any(f"tgt is {VIP6}" in line for line in announced), announced


OVERRUN = """
import json, logging, socket, subprocess
from lvsagent.vrrp import tracking

logging.basicConfig(level=logging.INFO, format="%(message)s")


class NoLoop:  # _readable() is called by hand below, after the burst
    def add_reader(self, fd, callback):
        pass

    def remove_reader(self, fd):
        pass


def small_socket():
    sock = tracking.open_link_socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


def ip(*argv, stdin=None):
    subprocess.run(["ip", *argv], input=stdin, text=True, check=True)


ip("link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
monitor = tracking.LinkMonitor(NoLoop(), open_socket=small_socket)
seen = []
monitor.watch("probe0", lambda name, link: seen.append(link.index))
burst = "".join(f"link add t{n} type veth peer name u{n}\\n" for n in range(40))
ip("-batch", "-", stdin=burst)  # more events than the socket holds: the rest are lost
ip("link", "del", "probe0")
ip("link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
for _call in range(2000):
    monitor._readable()
now = socket.if_nametoindex("probe0")
print(json.dumps({"seen": seen, "now": now, "overruns": monitor.overruns}))
"""


def test_monitor_overrun_resyncs_from_the_kernel(lab):
    host = lab.host("d1", "192.168.77.11/24")
    python = [vrrp_support.PYTHON, "-c", OVERRUN]
    done = host.run(["env", f"PYTHONPATH={vrrp_support.MODULE_UTILS}", *python])
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["overruns"] >= 1
    assert result["seen"] and result["seen"][-1] == result["now"]  # the re-created probe0
    warnings = [line for line in done.stderr.splitlines() if "buffer overrun" in line]
    assert warnings == [
        "Netlink: Receive buffer overrun on monitor socket - (No buffer space available)"
    ]
