"""static_ipaddress / static_routes / static_rules and virtual_routes / virtual_rules, observed
in the kernel of each lab host (`ip route show table N`, `ip rule`): the static ones are there
while the node's process runs whatever its state, the virtual ones (and the
virtual_ipaddress_excluded addresses) on the MASTER only, moving with it; both go at stop. The
entries lvs-agent installs are the ones keepalived installs from the same lines (compared with
real keepalived 2.2.7 as the master)."""

from __future__ import annotations

import pytest
from vrrp_support import Agent, Keepalived, config, holds, instance_block, wait_single_holder

pytestmark = pytest.mark.netns

STATIC_TABLE, VIRTUAL_TABLE = 100, 101
EXCLUDED = ("192.168.78.100", "fd00:78::100")  # virtual_ipaddress_excluded: with the VIP
VIRTUAL = f"""  virtual_ipaddress_excluded {{
    {EXCLUDED[0]}/24
    {EXCLUDED[1]}/64
  }}
  virtual_routes {{
    10.56.0.0/24 via 192.168.77.1 dev eth0 table {VIRTUAL_TABLE}
    src 192.168.77.100 10.58.0.0/24 dev eth0 scope link table {VIRTUAL_TABLE} metric 5
    blackhole 10.57.0.0/24 table {VIRTUAL_TABLE}
    blackhole fd00:57::/64 table {VIRTUAL_TABLE}
  }}
  virtual_rules {{
    from 10.56.0.0/24 table {VIRTUAL_TABLE} priority 1001
    to 10.57.0.0/24 fwmark 0x10/0xff table {VIRTUAL_TABLE} priority 1002
    from fd00:56::/64 table {VIRTUAL_TABLE} priority 1003
  }}
"""
VIRTUAL_ROUTES4 = {
    "10.56.0.0/24 via 192.168.77.1 dev eth0 proto keepalived",
    "10.58.0.0/24 dev eth0 proto keepalived scope link src 192.168.77.100 metric 5",
    "blackhole 10.57.0.0/24 proto keepalived",
}
VIRTUAL_RULES = {
    (4, f"1001: from 10.56.0.0/24 lookup {VIRTUAL_TABLE} proto keepalived"),
    (4, f"1002: from all to 10.57.0.0/24 fwmark 0x10/0xff lookup {VIRTUAL_TABLE} proto keepalived"),
    (6, f"1003: from fd00:56::/64 lookup {VIRTUAL_TABLE} proto keepalived"),
}


def static_blocks(own_address: str) -> str:
    return f"""static_ipaddress {{
  {own_address}/32 dev eth0
}}
static_routes {{
  10.55.0.0/24 via 192.168.77.1 dev eth0 table {STATIC_TABLE}
}}
static_rules {{
  from 10.55.0.0/24 table {STATIC_TABLE} priority 1000
}}
"""


def routes(host, table: int, family: int = 4) -> set[str]:
    show = host.run(["ip", f"-{family}", "route", "show", "table", str(table)], check=False)
    return {line.strip() for line in show.stdout.splitlines() if line.strip()}


def rules(host) -> set[tuple[int, str]]:
    """The rules other than the kernel's own three, as (family, `ip rule` line)."""
    found = set()
    for family in (4, 6):
        for line in host.run(["ip", f"-{family}", "rule", "show"]).stdout.splitlines():
            if line.split(":")[0] not in ("0", "32766", "32767"):
                found.add((family, " ".join(line.split())))
    return found


def virtual_entries(host) -> tuple:
    return (
        routes(host, VIRTUAL_TABLE),
        routes(host, VIRTUAL_TABLE, 6),
        {rule for rule in rules(host) if not rule[1].startswith("1000:")},
    )


MASTER_ENTRIES = (
    VIRTUAL_ROUTES4,
    {"blackhole fd00:57::/64 dev lo proto keepalived metric 1024 pref medium"},
    VIRTUAL_RULES,
)
NO_ENTRIES = (set(), set(), set())


def static_entries(host) -> tuple:
    return (
        routes(host, STATIC_TABLE),
        {rule for rule in rules(host) if rule[1].startswith("1000:")},
    )


STATIC_ENTRIES = (
    {"10.55.0.0/24 via 192.168.77.1 dev eth0 proto keepalived"},
    {(4, f"1000: from 10.55.0.0/24 lookup {STATIC_TABLE} proto keepalived")},
)


@pytest.fixture
def pair(lab):
    return lab.host("d1", "192.168.77.11/24"), lab.host("d2", "192.168.77.12/24")


def node_config(priority: int, own_address: str) -> str:
    return static_blocks(own_address) + config(instance_block(priority, extra=VIRTUAL))


def test_virtual_routes_follow_the_master_and_static_ones_stay_until_stop(pair, tmp_path):
    d1, d2 = pair
    a1 = Agent(d1, tmp_path, node_config(150, "10.66.0.11")).start()
    a2 = Agent(d2, tmp_path, node_config(100, "10.66.0.12")).start()
    wait_single_holder(pair, d1)
    d1.wait_for(lambda: virtual_entries(d1) == MASTER_ENTRIES, timeout=5)
    for host, own in ((d1, "10.66.0.11/32"), (d2, "10.66.0.12/32")):
        host.wait_for(lambda host=host: static_entries(host) == STATIC_ENTRIES, timeout=5)
        assert own in host.addresses()
    assert virtual_entries(d2) == NO_ENTRIES
    assert all(holds(d1, vip) and not holds(d2, vip) for vip in EXCLUDED)

    assert a1.stop() == 0  # resigns: d2 takes over, d1 removes everything it added
    wait_single_holder(pair, d2, timeout=5)
    d2.wait_for(lambda: virtual_entries(d2) == MASTER_ENTRIES, timeout=5)
    assert all(holds(d2, vip) and not holds(d1, vip) for vip in EXCLUDED)
    assert virtual_entries(d1) == NO_ENTRIES
    assert static_entries(d1) == (set(), set())
    assert "10.66.0.11/32" not in d1.addresses()
    assert static_entries(d2) == STATIC_ENTRIES

    a1.start()  # preempts back: the routes move again
    wait_single_holder(pair, d1, timeout=15)
    d1.wait_for(lambda: virtual_entries(d1) == MASTER_ENTRIES, timeout=5)
    d2.wait_for(lambda: virtual_entries(d2) == NO_ENTRIES, timeout=5)
    assert static_entries(d1) == STATIC_ENTRIES

    assert a2.stop() == 0 and a1.stop() == 0
    for host in pair:
        assert virtual_entries(host) == NO_ENTRIES
        assert static_entries(host) == (set(), set())
    assert "failed" not in a1.log_text() + a2.log_text()


def test_keepalived_installs_the_same_entries_from_the_same_lines(pair, tmp_path):
    """Real keepalived as the master on d1, lvs-agent the backup on d2; then keepalived stops
    and lvs-agent takes over: what each installs in its kernel is the same."""
    d1, d2 = pair
    k1 = Keepalived(d1, tmp_path, node_config(150, "10.66.0.11")).start()
    a2 = Agent(d2, tmp_path, node_config(100, "10.66.0.12")).start()
    wait_single_holder(pair, d1, timeout=20)
    d1.wait_for(lambda: virtual_entries(d1) == MASTER_ENTRIES, timeout=5)
    d1.wait_for(lambda: static_entries(d1) == STATIC_ENTRIES, timeout=5)
    d2.wait_for(lambda: static_entries(d2) == STATIC_ENTRIES, timeout=5)
    assert virtual_entries(d2) == NO_ENTRIES

    assert k1.stop() == 0
    wait_single_holder(pair, d2, timeout=5)
    d2.wait_for(lambda: virtual_entries(d2) == MASTER_ENTRIES, timeout=5)
    assert virtual_entries(d1) == NO_ENTRIES  # keepalived removed its own at stop, as we do
    assert static_entries(d1) == (set(), set())
    assert a2.stop() == 0


def test_tracked_entries_deleted_behind_the_agent_come_back(pair, tmp_path):
    """As keepalived: a tracked virtual route deleted on the master sends it to BACKUP (it takes
    over again and adds it back); a deleted static address, route or rule is restored at once."""
    d1, d2 = pair
    a1 = Agent(d1, tmp_path, node_config(150, "10.66.0.11")).start()
    a2 = Agent(d2, tmp_path, node_config(100, "10.66.0.12")).start()
    wait_single_holder(pair, d1)
    d1.wait_for(lambda: virtual_entries(d1) == MASTER_ENTRIES, timeout=5)
    d2.wait_for(lambda: static_entries(d2) == STATIC_ENTRIES, timeout=5)

    d2.run(["ip", "route", "del", "10.55.0.0/24", "table", str(STATIC_TABLE)])
    d2.run(["ip", "rule", "del", "priority", "1000"])
    d2.run(["ip", "address", "del", "10.66.0.12/32", "dev", "eth0"])
    d2.wait_for(lambda: static_entries(d2) == STATIC_ENTRIES, timeout=3)
    d2.wait_for(lambda: "10.66.0.12/32" in d2.addresses(), timeout=3)

    d1.run(["ip", "route", "del", "10.56.0.0/24", "table", str(VIRTUAL_TABLE)])
    d1.wait_for(lambda: "deleted - going to BACKUP" in a1.log_text(), timeout=3)
    d1.wait_for(lambda: a1.log_text().count("Entering MASTER STATE") == 2, timeout=15)
    d1.wait_for(lambda: virtual_entries(d1) == MASTER_ENTRIES, timeout=5)
    assert "(VI_1) route 10.56.0.0/24 via 192.168.77.1 dev eth0 table 101 deleted" in a1.log_text()
    assert "Restoring deleted static address 10.66.0.12/32 dev eth0" in a2.log_text()
