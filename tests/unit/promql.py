"""PromQL in the collection's files (the Grafana dashboard, the Prometheus rules): the metric
names an expression selects, and Prometheus' own parser (`promtool check rules`) on it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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


def promtool_check_rules(path: Path) -> str:
    """`promtool check rules` on a rules file; its output, or AssertionError with it."""
    assert shutil.which("promtool"), "promtool missing: tools/setup.sh installs Debian's prometheus"
    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout
