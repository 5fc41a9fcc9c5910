"""A real Prometheus (Debian's package) scrapes two lvs-agent directors on the lab LAN with the
rules the role ships (roles/lvs_director/files/prometheus/lvs-agent-rules.yml), and its HTTP API
answers what `make lab` asks: which director is master, how many real servers are up. A stopped
real server shows as down on both directors (and its alert goes pending); a failover (the
master's tracked script fails) shows in the state metrics of both. The directors run the
nftables data plane, so this needs no IPVS; Prometheus listens on its namespace's loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from vrrp_support import (
    REPO,
    VIP4,
    Agent,
    config,
    instance_block,
    virtual_server_block,
    wait_single_holder,
)

from testbed.services import Nginx

pytestmark = pytest.mark.netns

RULES = REPO / "roles/lvs_director/files/prometheus/lvs-agent-rules.yml"
LAB_ANSWER = REPO / "tools/lab/prometheus-answer.py"  # what `make lab` prints (tools/lab/show)
PORT = 9650
API = "http://127.0.0.1:9090/api/v1"
RS1, RS2 = "192.168.77.21", "192.168.77.22"
REAL_SERVERS_UP = 'lvs:virtual_server_real_servers_up{virtual_server="[192.168.77.100]:80"}'
SCRIPT = (
    'vrrp_script chk_ok {{\n  script "/usr/bin/test ! -e {flag}"\n  interval 1\n  weight -100\n}}\n'
)
TRACK = "  track_script {\n    chk_ok\n  }\n"


def director_config(host, priority: int, flag: Path) -> str:
    """The director's VRRP instance tracks a script that fails once `flag` exists."""
    listen = f"  metrics_listen {host.ip}:{PORT}\n  lvs_data_plane nftables\n"
    virtual = virtual_server_block(VIP4, (RS1, RS2))
    script = SCRIPT.format(flag=flag)
    return config(script, instance_block(priority, extra=TRACK), global_extra=listen) + virtual


def prometheus_config(tmp_path: Path, targets: list[str]) -> Path:
    path = tmp_path / "prometheus.yml"
    settings = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "lvs-agent", "static_configs": [{"targets": targets}]}],
    }
    path.write_text(json.dumps(settings))  # YAML is a superset of JSON
    return path


class Prometheus:
    def __init__(self, host, tmp_path: Path, targets: list[str]):
        self.host = host
        config_file = prometheus_config(tmp_path, targets)
        argv = [
            "prometheus",
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            "--web.listen-address=127.0.0.1:9090",
        ]
        with open(tmp_path / "prometheus.log", "ab") as log:
            host.popen(argv, stdout=log, stderr=subprocess.STDOUT)
        host.wait_for(lambda: self._get("http://127.0.0.1:9090/-/ready") is not None, 60, 0.5)

    def _get(self, url: str, *data: str):
        argv = ["curl", "-sf", "--max-time", "5", url]
        for item in data:
            argv += ["--data-urlencode", item]
        done = self.host.run(argv, check=False)
        return done.stdout if done.returncode == 0 else None

    def query(self, promql: str) -> dict:
        """{instance: value} of an instant query (one series per scrape target)."""
        answer = json.loads(self._get(f"{API}/query", f"query={promql}") or '{"data": {}}')
        results = answer.get("data", {}).get("result", [])
        return {r["metric"].get("instance", ""): float(r["value"][1]) for r in results}

    def alerts(self) -> dict:
        """{alert name: state} of the alerts pending or firing."""
        answer = json.loads(self._get(f"{API}/alerts") or '{"data": {"alerts": []}}')
        return {a["labels"]["alertname"]: a["state"] for a in answer["data"]["alerts"]}

    def wait(self, promql: str, expected: dict, timeout: float = 30) -> None:
        try:
            self.host.wait_for(lambda: self.query(promql) == expected, timeout, 0.5)
        except TimeoutError:
            raise AssertionError(f"{promql}: {self.query(promql)} != {expected}") from None


def test_prometheus_answers_which_director_is_master_and_follows_a_real_server_and_a_failover(
    lab, tmp_path
):
    if shutil.which("prometheus") is None or shutil.which("nft") is None:
        pytest.skip("needs Debian's prometheus and nftables packages (tools/setup.sh)")
    d1 = lab.host("d1", "192.168.77.11/24")
    d2 = lab.host("d2", "192.168.77.12/24")
    servers = {
        name: Nginx(lab.host(name, f"{ip}/24"), tmp_path).start()
        for name, ip in (("rs1", RS1), ("rs2", RS2))
    }
    flags = {host: tmp_path / f"{host.short_name}-fails" for host in (d1, d2)}
    agents = {
        host: Agent(host, tmp_path, director_config(host, priority, flags[host])).start()
        for host, priority in ((d1, 150), (d2, 100))
    }
    wait_single_holder((d1, d2), d1)
    targets = {host: f"{host.ip}:{PORT}" for host in (d1, d2)}
    prometheus = Prometheus(lab.host("prom", "192.168.77.30/24"), tmp_path, list(targets.values()))
    both = set(targets.values())

    prometheus.wait("up", dict.fromkeys(both, 1.0))
    prometheus.wait("lvs:vrrp_instance_master == 1", {targets[d1]: 1.0})
    prometheus.wait(REAL_SERVERS_UP, dict.fromkeys(both, 2.0))
    answer = prometheus.host.run([sys.executable, str(LAB_ANSWER), "30"]).stdout
    assert f"  VI_1: {targets[d1]}\n" in answer, answer
    assert f"  TCP [{VIP4}]:80: 2 on {targets[d1]}, 2 on {targets[d2]}\n" in answer, answer

    servers["rs1"].stop()
    down = f'lvs_agent_real_server_up{{real_server="[{RS1}]:80"}}'
    prometheus.wait(down, dict.fromkeys(both, 0.0))
    prometheus.wait(REAL_SERVERS_UP, dict.fromkeys(both, 1.0))
    assert prometheus.query(f'lvs_agent_real_server_up{{real_server="[{RS2}]:80"}}') == (
        dict.fromkeys(both, 1.0)
    )
    d1.wait_for(lambda: prometheus.alerts().get("LvsRealServerDown") == "pending", 15, 0.5)
    servers["rs1"].start()
    prometheus.wait(down, dict.fromkeys(both, 1.0))

    released = prometheus.query("lvs_agent_vrrp_released_master_total")
    became = prometheus.query("lvs_agent_vrrp_became_master_total")
    flags[d1].write_text("")  # d1's script fails: 150 - 100 < 100, d2 takes over
    wait_single_holder((d1, d2), d2)
    prometheus.wait("lvs:vrrp_instance_master == 1", {targets[d2]: 1.0})
    prometheus.wait('lvs_agent_vrrp_state{state="BACKUP"} == 1', {targets[d1]: 1.0})
    assert prometheus.query("lvs_agent_vrrp_effective_priority") == {
        targets[d1]: 50.0,
        targets[d2]: 100.0,
    }
    assert prometheus.query("lvs_agent_vrrp_released_master_total") == {
        targets[d1]: released[targets[d1]] + 1,
        targets[d2]: released[targets[d2]],
    }
    assert prometheus.query("lvs_agent_vrrp_became_master_total") == {
        targets[d1]: became[targets[d1]],
        targets[d2]: became[targets[d2]] + 1,
    }
    assert "LvsVrrpNoMaster" not in prometheus.alerts()
    assert "(VI_1) Changing effective priority from 150 to 50" in agents[d1].log_text()
