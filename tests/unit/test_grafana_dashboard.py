"""The Grafana dashboard shipped with the role: every PromQL expression in it parses (with
Prometheus' own parser, through `promtool check rules`) and uses only metric names the agent
exports (`metrics.sample_names()`, from the registry `metrics.METRICS`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lvsagent import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "roles/lvs_director/files/grafana/lvs-agent.json"
TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<range>\[[^\]]*\])
      | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
      | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
      | (?P<operator>==|!=|=~|!~|<=|>=|[-+*/%^(){},=<>])
      | (?P<space>\s+)""",
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "unless", "bool", "offset"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# the PromQL functions and aggregations the dashboard may call
FUNCTIONS = {"sum", "min", "max", "avg", "count", "rate", "increase", "histogram_quantile"}
FUNCTIONS |= {"time", "topk"}
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


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: a lexer over PromQL that skips strings, range
    durations, label matchers `{...}`, grouping label lists, functions and keywords."""
    tokens, position = [], 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        assert match, f"cannot read {expr[position:]!r} in {expr!r}"
        position = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
    names, depth, skip_until = set(), 0, None
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if skip_until is not None:  # inside {...} or a grouping list: label names
            if text == skip_until:
                skip_until = None
            continue
        if text == "{":
            skip_until = "}"
        elif kind == "name" and text in LABEL_LISTS:
            if following == "(":
                skip_until = ")"
            else:  # only group_left / group_right may go without labels
                assert text.startswith("group_"), expr
        elif kind == "name" and following in ("(", "by", "without"):  # `sum by (x) (...)`
            assert text in FUNCTIONS, f"unknown function {text} in {expr!r}"
        elif kind == "name" and text not in KEYWORDS:
            names.add(text)
        depth += {"(": 1, ")": -1}.get(text, 0)
        assert depth >= 0, expr
    assert depth == 0 and skip_until is None, expr
    return names


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
    assert shutil.which("promtool"), "promtool missing: tools/setup.sh installs Debian's prometheus"
    dashboard = json.loads(DASHBOARD.read_text())
    rules = []
    for number, expr in enumerate(expressions(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:expression_{number}", "expr": expr})
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


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
