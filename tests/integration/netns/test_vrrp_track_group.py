"""track_group: a static address and route on an interface of the MASTER name a
track_group of its instance. Deleted while the interface is up, they are restored and nothing
else happens; with the interface down (the kernel drops the route, nothing can restore it) or
gone, the instance goes to FAULT and the peer takes over; the interface back, the entries are
added again and the instance takes the VIP back (preempt). Run with lvs-agent and with real
keepalived 2.2.7 as the tracked MASTER, against lvs-agent as the peer: both behave alike."""

from __future__ import annotations

import pytest
from vrrp_support import Agent, Keepalived, config, instance_block, wait_single_holder

pytestmark = pytest.mark.netns

TABLE = 102
LINK = "trk0"
ADDRESS = "10.59.0.1/24"
ROUTE = f"10.60.0.0/24 dev {LINK} proto keepalived"
TRACKED = f"""track_group G1 {{
  group {{
    VI_1
  }}
}}
static_ipaddress {{
  {ADDRESS} dev {LINK} track_group G1
}}
static_routes {{
  10.60.0.0/24 dev {LINK} table {TABLE} track_group G1
}}
"""


def routes(host) -> set[str]:
    show = host.run(["ip", "-4", "route", "show", "table", str(TABLE)], check=False)
    return {line.strip() for line in show.stdout.splitlines() if line.strip()}


def entries_in_place(host) -> bool:
    return routes(host) == {ROUTE} and ADDRESS in host.addresses(LINK)


def add_link(host) -> None:
    """A veth pair inside the host (no dummy links in this kernel): both ends up. An address
    of its own keeps the kernel from dropping the interface's routes silently when the static
    address, then its last IPv4 address, is deleted."""
    host.run(["ip", "link", "add", LINK, "type", "veth", "peer", "name", f"{LINK}p"])
    host.run(["ip", "address", "add", "10.59.1.1/24", "dev", LINK])
    host.run(["ip", "link", "set", f"{LINK}p", "up"])
    host.run(["ip", "link", "set", LINK, "up"])


@pytest.fixture
def pair(lab):
    d1, d2 = lab.host("d1", "192.168.77.11/24"), lab.host("d2", "192.168.77.12/24")
    add_link(d1)
    return d1, d2


@pytest.mark.parametrize("kind", [Agent, Keepalived], ids=["lvs-agent", "keepalived"])
def test_lost_tracked_static_entries_fault_the_group_until_they_are_back(pair, tmp_path, kind):
    d1, d2 = pair
    tracked = kind(d1, tmp_path, config(TRACKED, instance_block(150))).start()
    peer = Agent(d2, tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d1, timeout=20)
    d1.wait_for(lambda: entries_in_place(d1), timeout=5)

    # deleted, restorable: restored at once, still MASTER
    d1.run(["ip", "address", "del", ADDRESS, "dev", LINK])
    d1.run(["ip", "route", "del", "10.60.0.0/24", "table", str(TABLE)])
    d1.wait_for(lambda: entries_in_place(d1), timeout=3)
    wait_single_holder(pair, d1, timeout=1)
    assert "Entering FAULT STATE" not in tracked.log_text()

    # the interface down: the route is gone for good, the group's instance FAULT
    d1.run(["ip", "link", "set", LINK, "down"])
    wait_single_holder(pair, d2, timeout=5)
    d1.wait_for(lambda: "(VI_1) Entering FAULT STATE" in tracked.log_text(), timeout=3)
    assert routes(d1) == set()

    # back up: the entries are added again, the instance recovers and preempts
    d1.run(["ip", "link", "set", LINK, "up"])
    d1.wait_for(lambda: entries_in_place(d1), timeout=5)
    wait_single_holder(pair, d1, timeout=15)

    # the interface gone, then made again: the same
    d1.run(["ip", "link", "del", LINK])
    wait_single_holder(pair, d2, timeout=5)
    add_link(d1)
    d1.wait_for(lambda: entries_in_place(d1), timeout=5)
    wait_single_holder(pair, d1, timeout=15)

    assert tracked.stop() == 0 and peer.stop() == 0
    log = tracked.log_text()
    assert log.count("Entering FAULT STATE") == 2
    restored = [line for line in log.splitlines() if "Restoring deleted static" in line]
    assert any(f"10.60.0.0/24 dev {LINK} table {TABLE}" in line for line in restored)
    assert any(f"address {ADDRESS} dev {LINK}" in line for line in restored)
    assert "Netlink reports trk0 down" in log  # keepalived's words, both
