"""/metrics of a DR director with real IPVS, two nginx real servers checked by HTTP_GET and a
client on the test bed: the kernel's counters per real server and virtual service are those
`ipvsadm -Ln --stats --exact` shows, and a stopped nginx shows as down, with its failures
by reason, the virtual service's quorum lost and the check durations counted."""

from __future__ import annotations

import re
import time

import pytest
from test_lvs_datapath import (
    DELAY_LOOP,
    DR_CONFIG,
    HTTP_REAL_SERVER,
    REMOVAL_BOUND,
    SLACK,
    TIMERS,
    Director,
    fetch,
    wait_for_table,
    write_sysctl,
)

from testbed.services import Nginx

pytestmark = pytest.mark.ipvs

VIP = "10.79.0.100"
PORT = 9650
ESTIMATOR_PERIOD = 2.5  # seconds: the kernel's 2 s, and a margin

# the data-path test's DR director, with metrics and a quorum one real server cannot reach
CONFIG = DR_CONFIG.replace(
    "router_id LVS_DEVEL", f"router_id LVS_DEVEL\n   metrics_listen 10.79.0.2:{PORT}"
).replace("    protocol TCP\n", "    protocol TCP\n    quorum 150\n")

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def real_server(lab, name: str, ip: str) -> Nginx:
    """A real server host running nginx, with the VIP on its lo (DR)."""
    host = lab.host(name, ip)
    host.add_address(f"{VIP}/32", dev="lo")
    for key, value in (("arp_ignore", 1), ("arp_announce", 2)):
        write_sysctl(host, f"net.ipv4.conf.all.{key}", value)
    return Nginx(host, lab.workdir).start()


def scrape(director: Director) -> dict:
    """{(name, frozenset of labels): value} of one /metrics scrape."""
    url = f"http://10.79.0.2:{PORT}/metrics"
    text = director.host.run(["curl", "-sf", "--max-time", "20", url], timeout=60).stdout
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        found[name, frozenset(LABEL.findall(labels or ""))] = float(value)
    return found


def value(samples: dict, name: str, **labels) -> float:
    (found,) = [v for (n, got), v in samples.items() if n == name and set(labels.items()) <= got]
    return found


def kernel_stats(director: Director) -> dict:
    """{"ADDR:PORT": (conns, inpkts, outpkts, inbytes, outbytes)} of the VIP's service and its
    real servers, from `ipvsadm -Ln --stats --exact`."""
    rows = {}
    for line in director.ipvsadm("-Ln", "--stats", "--exact").splitlines():
        words = line.replace("->", "").replace("TCP", "").split()
        if len(words) >= 6 and words[0][0].isdigit():
            rows[words[0]] = tuple(int(word) for word in words[-5:])
    return rows


def settled_kernel_stats(director: Director, connections: int) -> dict:
    """kernel_stats once the VIP's service shows `connections` and two reads an estimator
    period apart agree: the kernel folds its per-CPU counters into what it reports every
    ESTIMATOR_PERIOD."""
    previous = {}

    def settled():
        nonlocal previous
        current = kernel_stats(director)
        if current == previous and current.get(f"{VIP}:80", (0,))[0] >= connections:
            return current
        previous = current
        return None

    return director.host.wait_for(settled, timeout=10 * ESTIMATOR_PERIOD, interval=ESTIMATOR_PERIOD)


def test_kernel_counters_health_quorum_and_check_durations_in_a_scrape(lab):
    director = Director(lab, "10.79.0.2/24")
    client = lab.host("client", "10.79.0.10/24")
    sources = [f"10.79.0.{20 + i}" for i in range(4)]
    for source in sources:
        client.add_address(f"{source}/24")
    servers = [real_server(lab, "rs1", "10.79.0.11/24"), real_server(lab, "rs2", "10.79.0.12/24")]
    real_servers = "\n".join(HTTP_REAL_SERVER.format(address=s.host.ip, **TIMERS) for s in servers)
    director.start(CONFIG.format(vip=VIP, real_servers=real_servers, **TIMERS))
    both = {"10.79.0.11:80": ("dr", 100), "10.79.0.12:80": ("dr", 100)}
    wait_for_table(director, VIP, both, timeout=30)
    director.host.wait_for(lambda: f"{VIP}/32" in director.host.addresses(), timeout=30)

    assert sorted(set(fetch(client, VIP, sources))) == ["rs1", "rs2"]
    service = {"virtual_server": f"[{VIP}]:80", "protocol": "tcp"}
    kernel = settled_kernel_stats(director, len(sources))
    samples = scrape(director)  # no traffic since: the same counters
    names = ("connections", "incoming_packets", "outgoing_packets")
    names += ("incoming_bytes", "outgoing_bytes")
    for server in servers:
        address = server.host.ip
        rs = {**service, "real_server": f"[{address}]:80"}
        scraped = tuple(value(samples, f"lvs_agent_real_server_{n}_total", **rs) for n in names)
        assert scraped == kernel[f"{address}:80"], (scraped, kernel)
        assert scraped[0] >= 1 and scraped[1] > scraped[0] and scraped[3] > 0
        assert scraped[2] == scraped[4] == 0  # DR: the replies do not come back through us
        assert value(samples, "lvs_agent_real_server_up", **rs) == 1
        count = value(samples, "lvs_agent_real_server_check_duration_seconds_count", **rs)
        inf = value(samples, "lvs_agent_real_server_check_duration_seconds_bucket", **rs, le="+Inf")
        assert count == inf >= 1
        assert value(samples, "lvs_agent_real_server_check_duration_seconds_sum", **rs) > 0
    scraped = tuple(value(samples, f"lvs_agent_virtual_server_{n}_total", **service) for n in names)
    assert scraped == kernel[f"{VIP}:80"] and scraped[0] >= len(sources)
    assert value(samples, "lvs_agent_virtual_server_quorum_up", **service) == 1
    assert value(samples, "lvs_agent_virtual_server_alive_weight", **service) == 200

    servers[1].stop()
    stopped = time.time()
    wait_for_table(director, VIP, {"10.79.0.11:80": ("dr", 100)}, timeout=REMOVAL_BOUND + SLACK)
    samples = scrape(director)
    rs2 = {**service, "real_server": "[10.79.0.12]:80"}
    assert value(samples, "lvs_agent_real_server_up", **rs2) == 0
    assert value(samples, "lvs_agent_real_server_check_failures_total", **rs2, reason="refused") > 0
    changed = value(samples, "lvs_agent_real_server_last_change_timestamp_seconds", **rs2)
    assert stopped - 1 <= changed <= time.time()
    assert not [key for key in samples if key[0].endswith("_bytes_total") and rs2.items() <= key[1]]
    assert value(samples, "lvs_agent_virtual_server_quorum_up", **service) == 0
    assert value(samples, "lvs_agent_virtual_server_alive_weight", **service) == 100
    assert value(samples, "lvs_agent_virtual_server_quorum_weight", **service) == 150

    servers[1].start()
    wait_for_table(director, VIP, both, timeout=DELAY_LOOP + SLACK)
    assert value(scrape(director), "lvs_agent_virtual_server_quorum_up", **service) == 1
    director.process.terminate()
    assert director.process.wait(timeout=30) == 0, director.logs()[-4000:]
