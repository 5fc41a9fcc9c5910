"""The lab's Prometheus (on lvs-client, molecule/default/prometheus.yml) watching the directors
through their /metrics, checked through its HTTP API as an operator would ask it. Each target's
`instance` label is the director's name. Runs after test_lab.py, in file order: each test
restores what it broke before it ends."""

from __future__ import annotations

import json

import pytest
from conftest import DIRECTORS, REALSERVERS, REPO, vip_holders, wait_for

API = "http://127.0.0.1:9090/api/v1"
# A scrape and a rule evaluation (1 s each in the lab's Prometheus), with room for a loaded
# TCG lab: every wait returns as soon as its answer is there.
SCRAPE_AND_RULES = 10.0
MASTER, BACKUP = DIRECTORS


class Prometheus:
    def __init__(self, client):
        self.client = client

    def get(self, path: str, *params: str):
        options = " ".join(["--data-urlencode %s"] * len(params))
        command = f"curl -sf --max-time 5 -G {API}/{path} {options}"
        return json.loads(self.client.check_output(command, *params))["data"]

    def query(self, promql: str) -> dict[str, float]:
        """{instance: value} of an instant query that has one series per director."""
        found = {}
        for series in self.get("query", f"query={promql}")["result"]:
            instance = series["metric"]["instance"]
            assert instance not in found, f"{promql}: several series for {instance}"
            found[instance] = float(series["value"][1])
        return found

    def wait(self, promql: str, expected: dict[str, float], timeout: float) -> float:
        took = wait_for(lambda: self.query(promql) == expected, timeout, 0.5)
        assert took is not None, f"{promql}: {self.query(promql)} != {expected} after {timeout} s"
        return took


@pytest.fixture(scope="module")
def prometheus(client):
    return Prometheus(client)


def test_prometheus_scrapes_both_directors(prometheus):
    prometheus.wait('up{job="lvs-agent"}', dict.fromkeys(DIRECTORS, 1.0), 30)


def test_promtool_accepts_what_prometheus_scrapes(prometheus, client):
    urls = [target["scrapeUrl"] for target in prometheus.get("targets")["activeTargets"]]
    assert len(urls) == len(DIRECTORS), urls
    for url in urls:
        # dash has no pipefail: through a file, so that a failed scrape cannot pass as empty
        size = client.check_output(
            "curl -sf --max-time 5 -o /run/lvs-ha-scrape %s"
            " && promtool check metrics < /run/lvs-ha-scrape && wc -c < /run/lvs-ha-scrape",
            url,
        )
        assert int(size) > 0, url
        assert client.run("grep -q '^lvs_agent_vrrp_state{' /run/lvs-ha-scrape").rc == 0, url
        print(f"{url}: promtool check metrics passed on {size} bytes")


def test_promql_names_the_director_that_holds_each_vip(prometheus, directors, lab):
    for instance, vip in (("VI_1", lab["vip"]), ("VI_2", lab["vip2"])):
        holders = vip_holders(directors, vip)
        assert len(holders) == 1, f"{vip} held by {holders}"
        expected = {name: float(name == holders[0]) for name in DIRECTORS}
        promql = f'lvs:vrrp_instance_master{{vrrp_instance="{instance}"}}'
        prometheus.wait(promql, expected, SCRAPE_AND_RULES)


def test_make_lab_prints_the_master_and_the_real_servers_up(client, directors, lab):
    """tools/lab/show's Prometheus section (tools/lab/prometheus-answer.py, run on the client)."""
    script = (REPO / "tools/lab/prometheus-answer.py").read_text()
    out = client.check_output("python3 -c %s 30", script)
    for instance, vip in (("VI_1", lab["vip"]), ("VI_2", lab["vip2"])):
        assert f"  {instance}: {' '.join(vip_holders(directors, vip))}\n" in out, out
    every = len(REALSERVERS)
    seen = ", ".join(f"{every} on {name}" for name in DIRECTORS)
    assert f"  TCP [{lab['vip']}]:{lab['port']}: {seen}\n" in out, out


def test_stopped_real_server_shows_down_on_both_directors_then_back(prometheus, realservers, lab):
    stopped, address = "lvs-rs1", REALSERVERS["lvs-rs1"]
    service = f'virtual_server="[{lab["vip"]}]:{lab["port"]}",protocol="tcp"'
    real_servers_up = f"lvs:virtual_server_real_servers_up{{{service}}}"
    server_up = f'lvs_agent_real_server_up{{{service},real_server="[{address}]:80"}}'
    every = len(REALSERVERS)
    prometheus.wait(real_servers_up, dict.fromkeys(DIRECTORS, float(every)), SCRAPE_AND_RULES)
    realservers[stopped].check_output("systemctl stop nginx")
    try:
        took = prometheus.wait(
            server_up, dict.fromkeys(DIRECTORS, 0.0), lab["removal_bound"] + SCRAPE_AND_RULES
        )
        print(f"{stopped} down in Prometheus for both directors {took:.1f} s after nginx stopped")
        prometheus.wait(
            real_servers_up, dict.fromkeys(DIRECTORS, float(every - 1)), SCRAPE_AND_RULES
        )
    finally:
        realservers[stopped].check_output("systemctl start nginx")
    took = prometheus.wait(
        server_up, dict.fromkeys(DIRECTORS, 1.0), lab["addition_bound"] + SCRAPE_AND_RULES
    )
    print(f"{stopped} up again in Prometheus {took:.1f} s after nginx started")
    prometheus.wait(real_servers_up, dict.fromkeys(DIRECTORS, float(every)), SCRAPE_AND_RULES)


def test_a_failover_shows_in_the_state_metrics_of_both_directors(prometheus, directors, lab):
    """VI_2 (MASTER on lvs-director2) tracks a script that fails while a flag file exists: both
    agents keep running, so both directors' metrics show the hand-over and the way back."""
    owner, other = BACKUP, MASTER
    bound = lab["vrrp_bound"] + 2 * lab["advert_int"] + 2.0 + SCRAPE_AND_RULES
    vi_2 = 'vrrp_instance="VI_2"'
    master = f'lvs_agent_vrrp_state{{{vi_2},state="MASTER"}}'
    backup = f'lvs_agent_vrrp_state{{{vi_2},state="BACKUP"}}'
    prometheus.wait(master, {owner: 1.0, other: 0.0}, bound)
    became = prometheus.query(f"lvs_agent_vrrp_became_master_total{{{vi_2}}}")
    released = prometheus.query(f"lvs_agent_vrrp_released_master_total{{{vi_2}}}")
    priority = prometheus.query(f"lvs_agent_vrrp_effective_priority{{{vi_2}}}")
    directors[owner].check_output("touch /run/lvs-ha-lab-fail")
    try:
        took = prometheus.wait(master, {owner: 0.0, other: 1.0}, bound)
        print(f"VI_2's hand-over {owner} -> {other} in Prometheus {took:.1f} s after the flag")
        prometheus.wait(backup, {owner: 1.0, other: 0.0}, SCRAPE_AND_RULES)
        lowered = prometheus.query(f"lvs_agent_vrrp_effective_priority{{{vi_2}}}")
        assert lowered[owner] < priority[owner] and lowered[owner] < lowered[other], lowered
        assert prometheus.query(f"lvs_agent_vrrp_became_master_total{{{vi_2}}}") == {
            owner: became[owner],
            other: became[other] + 1,
        }
        assert prometheus.query(f"lvs_agent_vrrp_released_master_total{{{vi_2}}}") == {
            owner: released[owner] + 1,
            other: released[other],
        }
        assert prometheus.query(f"lvs:vrrp_instance_master{{{vi_2}}} == 1") == {other: 1.0}
    finally:
        directors[owner].check_output("rm -f /run/lvs-ha-lab-fail")
    took = prometheus.wait(master, {owner: 1.0, other: 0.0}, bound)
    print(f"VI_2 back on {owner} in Prometheus {took:.1f} s after the flag was removed")
    prometheus.wait(backup, {owner: 0.0, other: 1.0}, SCRAPE_AND_RULES)
    assert prometheus.query(f"lvs_agent_vrrp_effective_priority{{{vi_2}}}") == priority
