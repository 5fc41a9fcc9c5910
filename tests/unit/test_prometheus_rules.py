"""The Prometheus rules shipped with the role (roles/lvs_director/files/prometheus): Prometheus'
own parser accepts them, every expression uses metric names the agent exports (or series the
file records), and they record what `make lab` asks (tests/integration/netns/
test_prometheus_lab.py runs them in a real Prometheus)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from promql import metric_names, promtool_check_rules

from lvsagent import metrics

RULES = (
    Path(__file__).resolve().parents[2] / "roles/lvs_director/files/prometheus/lvs-agent-rules.yml"
)


def test_the_lexer_finds_metric_names_and_only_them():
    expr = (
        'histogram_quantile(0.95, sum by (le, job) (rate(a_seconds_bucket{job=~"x|y", '
        'b="c"}[5m]))) / ignoring (le) group_left b_total or on (x) time() - c offset 1m'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}
    with pytest.raises(AssertionError):
        metric_names("sum(a")
    with pytest.raises(AssertionError):
        metric_names("no_such_function(a)")


def test_every_rule_uses_metric_names_the_agent_exports_or_the_file_records():
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    assert recorded == {"lvs:vrrp_instance_master", "lvs:virtual_server_real_servers_up"}
    known = metrics.sample_names() | recorded
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names and names <= known, f"{sorted(names - known)} in {rule['expr']!r}"
    assert {rule["alert"] for rule in rules if "alert" in rule} == {
        "LvsVrrpNoMaster",
        "LvsVrrpSeveralMasters",
        "LvsRealServerDown",
        "LvsQuorumLost",
    }


def test_prometheus_own_parser_accepts_the_rules():
    assert "SUCCESS: 6 rules found" in promtool_check_rules(RULES)
