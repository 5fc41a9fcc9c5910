"""The Grafana dashboard shipped with the role: every PromQL expression in it parses (with
Prometheus' own parser, through `promtool check rules`) and uses only metric names the agent
exports (`metrics.sample_names()`, from the registry `metrics.METRICS`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from promql import metric_names, promtool_check_rules

from lvsagent import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "roles/lvs_director/files/grafana/lvs-agent.json"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def expressions(dashboard: dict) -> list[str]:
    """The panels' queries, and the series selectors of the variables' Grafana
    `label_values(SELECTOR, LABEL)`."""
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            assert query == variable["definition"]
            selector = re.fullmatch(r"label_values\((.+), *\w+\)", query)
            assert selector, query
            found.append(selector.group(1))
    return found


def test_every_expression_uses_metric_names_the_agent_exports():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = metrics.sample_names()
    assert "lvs_agent_real_server_connections" not in exported  # a counter's sample is _total
    used = set()
    for expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{sorted(names - exported)} in {expr!r} are not exported"
        used |= names
    # what the dashboard is for: VRRP state, real servers up, connections per real server
    assert {"lvs_agent_vrrp_state", "lvs_agent_real_server_up"} <= used
    assert "lvs_agent_real_server_connections_total" in used
    assert "lvs_agent_real_server_connections_active" in used


def test_every_expression_parses_with_prometheus_own_parser(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    rules = []
    for number, expr in enumerate(expressions(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:expression_{number}", "expr": expr})
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool_check_rules(path)


def test_the_dashboard_is_importable_grafana_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert [target["refId"] for target in panel["targets"]]
    state = next(p for p in dashboard["panels"] if p["title"] == "VRRP state")
    assert state["type"] == "state-timeline"
