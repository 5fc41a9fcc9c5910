"""The checker blocks of a real_server, one per kind of the `lvs.checkers` registry, and the
checkers' common options given on a checker, its real server or its virtual server."""

from __future__ import annotations

from typing import Any

from ...lvs import checkers  # the registry; read at parse time (it imports this package)
from ...lvs.checkers.base import DROPPED
from ..errors import Problem
from ..lexer import Node
from ..model import CheckSettings, RealServer, VirtualServer
from ..values import (
    IGNORE,
    TIMER_MAX,
    TIMER_MIN,
    UINT32_MAX,
    UINT_TIMER_MAX,
    Handler,
    Reader,
    decimal,
    location,
    whole,
)

# options that every checker resolves from its real server, then its virtual server
INHERITED_CHECKER_OPTIONS = ("connect_timeout", "retry", "delay_before_retry", "warmup")


def server_option_rules(server: str, delay_before_retry: str) -> dict:
    """keepalived's checks of the checker options given on a virtual or real server."""
    return {
        "connect_timeout": (
            decimal(TIMER_MIN, UINT_TIMER_MAX),
            f"{server} server connect_timeout {{value}} invalid - ignoring",
        ),
        "retry": (whole(1, UINT32_MAX), "retry value invalid - {value}"),
        "delay_before_retry": (
            decimal(0, TIMER_MAX),
            f"{server} server {delay_before_retry} '{{value}}' invalid - ignoring",
        ),
        "warmup": (decimal(0, TIMER_MAX), f"{server} server warmup '{{value}}' invalid - ignoring"),
    }


# level -> option -> (keepalived's check, keepalived's warning when it ignores the value)
CHECKER_OPTION_RULES = {
    "virtual": server_option_rules("virtual", "delay before retry"),
    "real": server_option_rules("real", "delay_before_retry"),
    "checker": {
        "connect_timeout": (
            decimal(TIMER_MIN, UINT_TIMER_MAX),
            "connect_timeout {value} invalid - ignoring",
        ),
        "retry": (whole(0, UINT32_MAX), "Invalid retry connection value '{value}'"),
        "delay_before_retry": (
            decimal(0, TIMER_MAX),
            "Invalid delay_before_retry connection value '{value}'",
        ),
        "warmup": (decimal(0, TIMER_MAX), "Invalid warmup connection value '{value}'"),
        "delay_loop": (decimal(TIMER_MIN, TIMER_MAX), "delay_loop '{value}' is invalid - ignoring"),
    },
}


class CheckerBlocks:
    """A table per checker kind (the common options, then the kind's own keywords and nested
    blocks), and the one resolution of what each checker inherits."""

    def __init__(self, read: Reader):
        self.read = read

    def top_level(self) -> dict[str, Handler]:
        return {}

    def tables(self) -> dict[str, dict[str, Handler]]:
        tables: dict[str, dict[str, Handler]] = {}
        for name, kind in checkers.KINDS.items():
            common = self.checker_table(kind.connection) if kind.common else {}
            tables[name] = {**common, **kind.keywords(self.read)}
            tables.update(kind.blocks(self.read))
        return tables

    def checker(self, node: Node, real: RealServer) -> None:
        """A checker block: its kind's model, read with the kind's keywords."""
        self.read.require_block(node)
        kind = checkers.KINDS[node.keyword]
        checker = kind.model(kind=node.keyword, location=location(node))
        self.read.walk(node, node.keyword, checker)
        if not self.read.tainted(node):
            problems = kind.problems(checker)
            for severity, message in problems:
                self.read.report(
                    Problem(node.file, node.line, message, severity.replace(DROPPED, "warning"))
                )
            if any(severity == DROPPED for severity, _message in problems):
                return  # keepalived runs the real server without this checker
        real.checkers = (*real.checkers, checker)

    def checker_table(self, connection: bool) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "delay_loop": self.checker_explicit,
            "connect_timeout": self.checker_explicit,
            "retry": self.checker_explicit,
            "delay_before_retry": self.checker_explicit,
            "warmup": self.checker_explicit,
        }
        if connection:
            table.update(self.read.connection_table())
        return table

    def checker_explicit(self, node: Node, checker: CheckSettings) -> None:
        value = self.checker_option(node, checker, "checker")
        self.read.state_of(checker).defaults[node.keyword] = value

    def checker_default(self, node: Node, target: Any) -> None:
        """connect_timeout/retry/delay_before_retry/warmup given for the checkers below."""
        state = self.read.state_of(target)
        level = "virtual" if isinstance(target, VirtualServer) else "real"
        state.defaults[node.keyword] = self.checker_option(node, target, level)

    def checker_option(self, node: Node, target: Any, level: str) -> Any:
        parse, message = CHECKER_OPTION_RULES[level][node.keyword]
        return self.read.tolerate(node, target, parse, message, IGNORE)

    def resolve(self, checker: CheckSettings, real: RealServer, server: VirtualServer) -> None:
        """The one place checkers inherit, once the virtual server is complete: each common
        option and delay_loop from the checker, else the real server, else the virtual server,
        else the kind model's default; then what the kind itself inherits or derives (HTTP's
        virtualhost, DNS's delay_before_retry, FILE_CHECK's fixed timers)."""
        explicit = self.read.state_of(checker).defaults
        sources = (explicit, self.read.state_of(real).defaults, self.read.state_of(server).defaults)
        for option in INHERITED_CHECKER_OPTIONS:
            for source in sources:
                if option in source:
                    setattr(checker, option, source[option])
                    break
        checker.delay_loop = explicit.get(
            "delay_loop", real.delay_loop if real.delay_loop is not None else server.delay_loop
        )
        checkers.KINDS[checker.kind].complete(checker, real, server)
