"""/metrics of two lvs-agent directors on the lab LAN: scraped inside each namespace, the VRRP
state gauges and transition counters follow an election and a failover, `promtool check
metrics` accepts a scrape, and hostile clients of the metrics port do not stall VRRP; the
vrrp_script metrics follow real scripts (curl against a real nginx, one that times out).
The real servers' metrics need kernel IPVS: tests/integration/ipvs/test_lvs_metrics.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from vrrp_support import (
    MODULE_UTILS,
    PYTHON,
    Agent,
    config,
    holders,
    instance_block,
    stays,
    wait_single_holder,
)

from testbed.services import Nginx

pytestmark = pytest.mark.netns

PORT = 9650
MASTER_DOWN_100 = 3 + 156 / 256

# In d2: connections that never finish their request (one byte now and then), twice the
# server's cap of them, and oversized requests, for `seconds`.
HOSTILE = """
import socket, sys, time
target, seconds = (sys.argv[1], int(sys.argv[2])), float(sys.argv[3])
end = time.monotonic() + seconds
slow = []
while time.monotonic() < end:
    slow = [s for s in slow if s.fileno() != -1]
    while len(slow) < 32:
        s = socket.create_connection(target, timeout=2)
        s.send(b"GET /metrics HTTP/1.1\\r\\n")
        slow.append(s)
    for s in list(slow):
        try:
            s.send(b"X")
        except OSError:
            s.close()
            slow.remove(s)
    try:
        big = socket.create_connection(target, timeout=2)
        big.sendall(b"GET /metrics HTTP/1.1\\r\\nX: " + b"a" * 65536)
        big.close()
    except OSError:
        pass
    time.sleep(0.2)
"""


def scrape(host) -> str:
    address = str(host.interface.ip)
    done = host.run(["curl", "-sf", "--max-time", "10", f"http://{address}:{PORT}/metrics"])
    return done.stdout


def samples(text: str) -> dict:
    """{(name, frozenset of label items): value} of one scrape."""
    # imported here: the guest stage collects this file (then deselects it) without the library
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def vrrp_value(text: str, name: str, **labels) -> float:
    wanted = {"vrrp_instance": "VI_1", "interface": "eth0", "vrid": "51", **labels}
    return samples(text)[(name, frozenset(wanted.items()))]


def state_of(host) -> str:
    text = scrape(host)
    states = ("INIT", "BACKUP", "MASTER", "FAULT")
    up = [s for s in states if vrrp_value(text, "lvs_agent_vrrp_state", state=s) == 1]
    assert len(up) == 1, text
    return up[0]


def status_json(agent: Agent) -> dict:
    argv = ["env", f"PYTHONPATH={MODULE_UTILS}", PYTHON, "-m", "lvsagent", "status", "--json"]
    done = agent.host.run([*argv, "--control-socket", agent.socket])
    return json.loads(done.stdout)


@pytest.fixture
def pair(lab, tmp_path):
    d1 = lab.host("d1", "192.168.77.11/24")
    d2 = lab.host("d2", "192.168.77.12/24")
    agents = []
    for host, priority in ((d1, 150), (d2, 100)):
        listen = f"  metrics_listen {host.interface.ip}:{PORT}\n"
        text = config(instance_block(priority), global_extra=listen)
        agents.append(Agent(host, tmp_path, text).start())
    wait_single_holder((d1, d2), d1)
    return (d1, d2), agents


def test_state_gauges_and_transition_counters_follow_a_failover(pair):
    (d1, d2), (a1, a2) = pair
    d1.wait_for(lambda: state_of(d2) == "BACKUP", 10)
    assert state_of(d1) == "MASTER"
    text = scrape(d1)
    assert vrrp_value(text, "lvs_agent_vrrp_became_master_total") == 1
    assert vrrp_value(text, "lvs_agent_vrrp_priority") == 150
    assert vrrp_value(text, "lvs_agent_vrrp_adverts_sent_total") >= 1
    assert vrrp_value(text, "lvs_agent_vrrp_gratuitous_announcements_sent_total") >= 1
    backup = scrape(d2)
    assert vrrp_value(backup, "lvs_agent_vrrp_adverts_received_total") >= 1
    assert vrrp_value(backup, "lvs_agent_vrrp_became_master_total") == 0

    # one model: status --json holds the counters the scrape shows (taken just before it)
    counters = status_json(a2)["vrrp"][0]["counters"]
    later = scrape(d2)
    assert counters["adverts_received"] <= vrrp_value(
        later, "lvs_agent_vrrp_adverts_received_total"
    )
    assert counters["became_master"] == vrrp_value(later, "lvs_agent_vrrp_became_master_total")

    assert a1.stop() == 0  # priority 0, then d2 takes over
    wait_single_holder((d1, d2), d2, timeout=5)
    d2.wait_for(lambda: state_of(d2) == "MASTER", 5)
    text = scrape(d2)
    assert vrrp_value(text, "lvs_agent_vrrp_became_master_total") == 1
    assert vrrp_value(text, "lvs_agent_vrrp_priority_zero_received_total") >= 1
    transition = vrrp_value(text, "lvs_agent_vrrp_last_transition_timestamp_seconds")
    assert time.time() - 10 < transition <= time.time()

    a1.start()  # preempts back
    wait_single_holder((d1, d2), d1, timeout=15)
    d2.wait_for(lambda: state_of(d2) == "BACKUP", 5)
    text = scrape(d2)
    assert vrrp_value(text, "lvs_agent_vrrp_released_master_total") == 1
    d1.wait_for(lambda: state_of(d1) == "MASTER", 5)


def promtool_check(text: str) -> None:
    assert shutil.which("promtool"), "promtool missing: tools/setup.sh installs Debian's prometheus"
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_accepts_a_scrape(pair):
    (d1, _d2), _agents = pair
    promtool_check(scrape(d1))


WEB = "192.168.77.20"
SCRIPTS = f"""\
vrrp_script chk_web {{
  script "/usr/bin/curl -sf --max-time 1 -o /dev/null http://{WEB}/"
  interval 1
  weight -20
}}
vrrp_script chk_slow {{
  script "/bin/sleep 5"
  interval 2
  timeout 1
  weight -10
}}
"""
TRACK = "  track_script {\n    chk_web\n    chk_slow\n  }\n"


def script_value(text: str, name: str, script: str, **labels) -> float:
    return samples(text)[(name, frozenset({"vrrp_script": script, **labels}.items()))]


def test_vrrp_script_status_durations_timeouts_and_last_change(lab, tmp_path):
    d1 = lab.host("d1", "192.168.77.11/24")
    web = Nginx(lab.host("web", f"{WEB}/24"), tmp_path).start()
    listen = f"  metrics_listen {d1.interface.ip}:{PORT}\n"
    text = config(SCRIPTS, instance_block(150, extra=TRACK), global_extra=listen)
    agent = Agent(d1, tmp_path, text).start()
    url = f"http://{d1.interface.ip}:{PORT}/metrics"
    d1.wait_for(
        lambda: d1.run(["curl", "-sf", "-o", "/dev/null", url], check=False).returncode == 0, 20
    )

    def timed_out_twice():
        text = scrape(d1)
        return script_value(text, "lvs_agent_vrrp_script_timeouts_total", "chk_slow") >= 2

    d1.wait_for(timed_out_twice, 20)
    text = scrape(d1)
    assert script_value(text, "lvs_agent_vrrp_script_up", "chk_web") == 1
    assert script_value(text, "lvs_agent_vrrp_script_up", "chk_slow") == 0
    assert vrrp_value(text, "lvs_agent_vrrp_effective_priority") == 140  # chk_slow's -10
    slow = "lvs_agent_vrrp_script_duration_seconds"
    count = script_value(text, slow + "_count", "chk_slow")
    assert count >= 2
    assert script_value(text, slow + "_bucket", "chk_slow", le="0.5") == 0
    assert script_value(text, slow + "_bucket", "chk_slow", le="+Inf") == count
    assert script_value(text, slow + "_sum", "chk_slow") >= count * 1.0  # killed at 1 s
    web_count = script_value(text, slow + "_count", "chk_web")
    assert web_count >= 2 and script_value(text, slow + "_sum", "chk_web") < web_count
    promtool_check(text)
    compressed = d1.run(["curl", "-sf", "--compressed", url]).stdout  # as Prometheus asks
    assert "lvs_agent_vrrp_script_duration_seconds_bucket{" in compressed
    head = d1.run(["curl", "-sf", "--compressed", "-D", "-", "-o", "/dev/null", url]).stdout
    assert "Content-Encoding: gzip" in head

    web.stop()
    stopped = time.time()
    d1.wait_for(lambda: script_value(scrape(d1), "lvs_agent_vrrp_script_up", "chk_web") == 0, 10)
    text = scrape(d1)
    changed = script_value(text, "lvs_agent_vrrp_script_last_change_timestamp_seconds", "chk_web")
    assert stopped <= changed <= time.time()
    assert vrrp_value(text, "lvs_agent_vrrp_effective_priority") == 120
    assert status_json(agent)["vrrp_scripts"]["chk_web"]["last_change"] == changed  # one model


def test_hostile_clients_of_the_metrics_port_do_not_stall_vrrp(pair):
    (d1, d2), (a1, _a2) = pair
    seconds = 3 * MASTER_DOWN_100
    before = len(a1.log_text())
    attack = d2.popen([PYTHON, "-c", HOSTILE, str(d1.interface.ip), str(PORT), str(seconds)])
    time.sleep(1)
    assert attack.poll() is None  # still at it
    assert stays(lambda: holders((d1, d2)) == [d1], seconds - 1.5)  # no takeover by d2
    attack.wait(15)
    assert state_of(d1) == "MASTER"  # served again once they are gone
    during = a1.log_text()[before:]
    assert "Entering BACKUP STATE" not in during
    assert "Traceback" not in during
