"""The keepalived.conf corpus (tests/unit/config/corpus) and its table of expected warnings.

Each top-level `*.conf` there is a configuration in the shape operators run (files under
`conf.d/` are only included). `expected.json` lists, per file, what lvs-agent and keepalived
2.2.7 each say about it, so both outputs are checked against one table.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Optional

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config", "corpus")
FILES = sorted(name for name in os.listdir(CORPUS) if name.endswith(".conf"))

# keepalived's lines that only detail the message next to them ("number '0' outside range")
KEEPALIVED_DETAILS = re.compile(r"^(number '.*' outside range|negative number|invalid number)")
# keepalived's messages that are not about a keyword of the file, and why lvs-agent is silent
# Script security is judged on the host (its users, the scripts' modes): both sides warn or
# neither, compared apart from the per-file table, which the unit tests read without host checks.
SCRIPT_SECURITY = "SECURITY VIOLATION - "
OUR_SCRIPT_HOST_WARNINGS = (SCRIPT_SECURITY, "WARNING - default user 'keepalived_script'")
# "(FILE: Line N) message" or "(Line N) message"
KEEPALIVED_LINE = re.compile(r"^\((?:(?P<file>[^:()]+): )?Line (?P<line>\d+)\) (?P<text>.*)$")


@dataclass(frozen=True)
class Expected:
    line: int
    ours: Optional[str]
    keepalived: Optional[str]
    keepalived_line: Optional[int] = None  # where keepalived says it, when not at `line`


def expected(name: str) -> list[Expected]:
    with open(os.path.join(CORPUS, "expected.json")) as handle:
        table = json.load(handle)
    return [Expected(*entry) for entry in table.get(name, [])]


def unmatched_ours(name: str, warnings: list[tuple[int, str]]) -> tuple[list, list]:
    """(our warnings no entry explains, entries with no such warning of ours)."""
    wanted = [entry for entry in expected(name) if entry.ours is not None]
    left = list(warnings)
    missing = []
    for entry in wanted:
        found = next((w for w in left if w[0] == entry.line and entry.ours in w[1]), None)
        if found is None:
            missing.append(entry)
        else:
            left.remove(found)
    return left, missing


def keepalived_messages(output: str) -> list[tuple[Optional[int], str]]:
    """keepalived's messages as (line or None, text), without detail lines."""
    messages = []
    for raw in output.splitlines():
        text = raw.strip()
        if not text:
            continue
        match = KEEPALIVED_LINE.match(text)
        line = int(match.group("line")) if match else None
        text = match.group("text") if match else text
        if KEEPALIVED_DETAILS.match(text) or text.startswith(SCRIPT_SECURITY):
            continue
        messages.append((line, text))
    return messages


def unmatched_keepalived(name: str, messages: list) -> tuple[list, list]:
    """(keepalived messages no entry explains, entries keepalived did not say)."""
    wanted = [entry for entry in expected(name) if entry.keepalived is not None]
    left = list(messages)
    missing = []
    for entry in wanted:
        found = next(
            (
                m
                for m in left
                if entry.keepalived in m[1] and m[0] in (None, entry.keepalived_line or entry.line)
            ),
            None,
        )
        if found is None:
            missing.append(entry)
        else:
            left.remove(found)
    return left, missing
