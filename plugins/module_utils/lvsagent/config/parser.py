"""Build the typed model from the statement tree, with keepalived's meaning of each keyword.

Each block has a table `keyword -> handler` (config/blocks/, one module per block family,
all reading with the one `values.Reader`). A keyword missing from the table is a deprecated
alias (accepted, with a warning), a keyword lvs-agent deliberately ignores (warning), a
keyword valid only in another block, a keepalived keyword lvs-agent does not implement
(error "not supported by lvs-agent"), or an unknown keyword (error). Values are checked as
they are read; checks across objects live in `checks`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..ipvs.model import SCHED_FLAG_NAMES, SCHEDULERS
from ..ipvs.model import SERVICE_FLAGS as SCHEDULER_FLAGS
from ..lvs import checkers  # the registry; read at parse time (it imports this package)
from ..lvs.checkers.base import DROPPED
from . import checks
from .blocks import ParseState
from .blocks.global_defs import GlobalDefsBlock
from .blocks.trackers import TrackerBlocks
from .blocks.vrrp import VrrpBlocks
from .errors import ConfigError, Invalid, Problem
from .lexer import Lexer, Node, ReadError, Source, build_tree
from .model import (
    DEFAULT_PERSISTENCE_TIMEOUT,
    LVS_METHODS,
    PROTOCOLS,
    Checker,
    Config,
    RealServer,
    SorryServer,
    VirtualServer,
    VirtualServerGroup,
    VirtualServerGroupEntry,
    VrrpInstance,
)
from .redact import excerpt, redact
from .values import (
    IGNORE,
    INT32_MAX,
    TIMER_MAX,
    TIMER_MIN,
    UINT32_MAX,
    UINT_TIMER_MAX,
    BlockState,
    Handler,
    Ignored,
    Reader,
    any_case,
    decimal,
    exact,
    location,
    whole,
)

MAX_PERSISTENCE_TIMEOUT = 2678400  # keepalived's LVS_MAX_TIMEOUT: 31 days
PE_NAME_MAX = 15  # IP_VS_PENAME_MAXLEN less the terminating NUL
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


@dataclass
class PendingChecker:
    """A checker whose inherited options are resolved once its virtual server is complete."""

    checker: Checker
    explicit: dict
    real_server: RealServer
    real_server_defaults: dict


class Builder:
    """Walks the statement tree once and fills a Config."""

    def __init__(self, report: Callable[[Problem], None]):
        self.read = Reader(report)
        self.state = ParseState()
        self.current_server_state = BlockState()
        blocks = (
            GlobalDefsBlock(self.read, self.state),
            TrackerBlocks(self.read),
            VrrpBlocks(self.read, self.state),
        )
        top: dict[str, Handler] = {
            "virtual_server_group": self.virtual_server_group,
            "virtual_server": self.virtual_server,
        }
        tables: dict[str, dict[str, Handler]] = {
            "top": top,
            "virtual_server": self.virtual_server_table(),
            "real_server": self.real_server_table(),
        }
        for block in blocks:
            top.update(block.top_level())
            tables.update(block.tables())
        for name, kind in checkers.KINDS.items():
            common = self.checker_table(kind.connection) if kind.common else {}
            tables[name] = {**common, **kind.keywords(self.read)}
            tables.update(kind.blocks(self.read))
        self.read.add_tables(tables)

    def release(self) -> None:
        """Break the cycle reader -> tables -> bound methods -> blocks -> reader, so that
        reference counting frees the builder (the cyclic GC would walk its state in one long
        pause)."""
        self.read.tables.clear()
        release(self.read.state)
        release(self.state.instance_keywords)

    def build(self, nodes: list[Node]) -> Config:
        self.read.walk(Node(["<top>"], "", 0, children=nodes), "top", self.state.config)
        return self.state.config

    def virtual_server_group(self, node: Node, config: Config) -> None:
        name = self.read.block_name(node)
        group = VirtualServerGroup(name, location=location(node))
        for child in self.read.require_block(node):
            try:
                group.entries.append(self.group_entry(child))
            except Invalid:
                continue
        if name in config.virtual_server_groups:
            first = config.virtual_server_groups[name].location
            self.read.error(node, f"virtual_server_group {name} already defined at {first}")
            return
        config.virtual_server_groups[name] = group

    def group_entry(self, node: Node) -> VirtualServerGroupEntry:
        entry = VirtualServerGroupEntry(location=location(node))
        if node.keyword == "fwmark":
            if not node.args or len(node.args) > 2:
                self.read.error(node, "fwmark: expected 'fwmark N [inet|inet6]'")
                raise Invalid
            entry.fwmark = self.read.integer(node, 1, UINT32_MAX, node.args[0])
            if len(node.args) == 2:
                self.read.choice(node, ("inet", "inet6"), node.args[1])
            return entry
        if node.is_block or len(node.args) > 1:
            self.read.error(
                node,
                "virtual_server_group: expected 'ADDRESS [PORT]' alone on a line, "
                f"got more after '{excerpt(node.keyword)}'",
            )
            raise Invalid
        entry.address, entry.last_address = self.address_range(node, node.keyword)
        if node.args:
            entry.port = self.read.port(node, node.args[0])
        return entry

    def address_range(self, node: Node, raw: str) -> tuple[str, Optional[str]]:
        """`A`, `A-B` (B replaces the last byte, or the last group for IPv6), `A-FULL`, `A/nn`."""
        if "/" in raw:
            try:
                network = ipaddress.ip_network(raw, strict=False)
            except ValueError:
                self.read.error(node, f"invalid address range '{excerpt(raw)}'")
                raise Invalid from None
            return str(network[0]), str(network[-1])
        if "-" not in raw:
            return self.read.address(node, raw), None
        first_text, last_text = raw.split("-", 1)
        first = ipaddress.ip_address(self.read.address(node, first_text))
        try:
            last = ipaddress.ip_address(last_text)
        except ValueError:
            separator = "." if first.version == 4 else ":"
            head = str(first).rsplit(separator, 1)[0] if first.version == 4 else None
            if first.version == 6:
                head = first.exploded.rsplit(":", 1)[0]
            try:
                last = ipaddress.ip_address(f"{head}{separator}{last_text}")
            except ValueError:
                self.read.error(node, f"invalid address range '{excerpt(raw)}'")
                raise Invalid from None
        if last.version != first.version or last < first:
            self.read.error(node, f"invalid address range '{excerpt(raw)}'")
            raise Invalid
        return str(first), str(last)

    def virtual_server_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "lvs_sched": self.read.lenient(
                "lvs_sched", exact(SCHEDULERS), "Invalid lvs_scheduler '{value}' - ignoring"
            ),
            "lvs_method": self.read.scalar("lvs_method", self.forwarding("virtual")),
            "persistence_timeout": self.persistence_timeout,
            "persistence_engine": self.read.scalar("persistence_engine", self.persistence_engine),
            "persistence_granularity": self.read.scalar(
                "persistence_granularity", self.granularity
            ),
            "protocol": self.read.lenient(
                "protocol", any_case(PROTOCOLS), "Unknown protocol {value} - ignoring"
            ),
            "delay_loop": self.read.lenient(
                "delay_loop",
                decimal(TIMER_MIN, TIMER_MAX),
                "virtual server delay loop '{value}' invalid - ignoring",
            ),
            "quorum": self.read.lenient(
                "quorum",
                whole(1, UINT32_MAX),
                "Quorum {value} must be in [1, 4294967295]. Setting to 1.",
                fallback=1,
            ),
            "hysteresis": self.read.lenient(
                "hysteresis",
                whole(0, UINT32_MAX),
                "Hysteresis {value} must be in [0, 4294967295] - ignoring",
            ),
            "quorum_up": self.read.scalar("quorum_up", self.read.script),
            "quorum_down": self.read.scalar("quorum_down", self.read.script),
            "sorry_server": self.sorry_server,
            "sorry_server_inhibit": self.sorry_server_inhibit,
            "sorry_server_lvs_method": self.sorry_server_lvs_method,
            "inhibit_on_failure": self.read.scalar("inhibit_on_failure", self.read.always_on),
            "alpha": self.read.scalar("alpha", self.read.always_on),
            "omega": self.read.scalar("omega", self.read.always_on),
            "ha_suspend": self.read.scalar("ha_suspend", self.read.bare_flag),
            "virtualhost": self.read.scalar("virtualhost", self.read.text),
            "ip_family": self.ip_family,
            "real_server": self.real_server,
        }
        for name in SCHEDULER_FLAGS:
            table[name] = self.scheduler_flag
        table["hashed"] = self.hashed
        for name in INHERITED_CHECKER_OPTIONS:
            table[name] = self.checker_default
        return table

    def forwarding(self, server_type: str) -> Callable[[Node], str]:
        """lvs_method of a virtual, real or sorry server: an unknown method is ignored."""

        def read(node: Node) -> str:
            return self.lvs_method(node, server_type)

        return read

    def lvs_method(self, node: Node, server_type: str) -> str:
        if node.is_block or not node.args:
            return self.read.value(node)
        method = node.args[0]
        if method not in LVS_METHODS:
            self.read.warning(
                node, f"PARSER : unknown [{method}] routing method for {server_type} server."
            )
            raise Ignored
        if len(node.args) > 1:
            options = " ".join(node.args[1:])
            if method == "TUN":
                self.read.error(node, f"lvs_method TUN {options}: not supported by lvs-agent")
            else:
                self.read.error(node, f"lvs_method {method}: unexpected '{options}'")
            raise Invalid
        return method

    def persistence_timeout(self, node: Node, server: VirtualServer) -> None:
        if not node.args and not node.is_block:
            server.persistence_timeout = DEFAULT_PERSISTENCE_TIMEOUT
            return
        self.read.lenient(
            "persistence_timeout",
            whole(1, MAX_PERSISTENCE_TIMEOUT),
            "persistence_timeout invalid",  # 0 included: not persistent, as in keepalived
        )(node, server)

    def persistence_engine(self, node: Node) -> str:
        """An IPVS persistence engine (the kernel has `sip`): keepalived cuts a longer name."""
        name = self.read.value(node)
        if len(name) > PE_NAME_MAX:
            self.read.warning(node, f"persistence_name too long, truncating - {name}")
        return name[:PE_NAME_MAX]

    def granularity(self, node: Node) -> str:
        raw = self.read.value(node)
        if "." in raw:
            try:
                network = ipaddress.IPv4Network(f"0.0.0.0/{raw}")
            except ValueError:
                self.read.error(
                    node, f"persistence_granularity: '{raw}' is not a contiguous netmask"
                )
                raise Invalid from None
            return str(network.netmask)
        return str(self.read.integer(node, 1, 128, raw))

    def sorry_server(self, node: Node, server: VirtualServer) -> None:
        address, port = self.address_and_port(node)
        server.sorry_server = SorryServer(address, port, location=location(node))

    def sorry_server_inhibit(self, node: Node, server: VirtualServer) -> None:
        inhibit = self.read.flag(node)
        if server.sorry_server is None:
            self.read.warning(
                node, "Ignoring sorry_server inhibit used before or without sorry_server"
            )
            raise Ignored
        server.sorry_server.inhibit = inhibit

    def sorry_server_lvs_method(self, node: Node, server: VirtualServer) -> None:
        method = self.lvs_method(node, "sorry")
        if server.sorry_server is None:
            self.read.warning(node, "sorry_server forwarding used without sorry_server")
            raise Ignored
        server.sorry_server.lvs_method = method

    def ip_family(self, node: Node, server: VirtualServer) -> None:
        server.family = 4 if self.read.choice(node, ("inet", "inet6")) == "inet" else 6

    def scheduler_flag(self, node: Node, server: VirtualServer) -> None:
        self.read.bare_flag(node)
        if node.keyword not in server.scheduler_flags:
            server.scheduler_flags.append(node.keyword)

    def checker_default(self, node: Node, target: Any) -> None:
        """connect_timeout/retry/delay_before_retry/warmup given for the checkers below."""
        state = self.read.state_of(target)
        level = "virtual" if isinstance(target, VirtualServer) else "real"
        state.defaults[node.keyword] = self.checker_option(node, target, level)

    def checker_option(self, node: Node, target: Any, level: str) -> Any:
        parse, message = CHECKER_OPTION_RULES[level][node.keyword]
        return self.read.tolerate(node, target, parse, message, IGNORE)

    def address_and_port(self, node: Node) -> tuple[str, Optional[int]]:
        if node.is_block and node.keyword not in ("virtual_server", "real_server"):
            self.read.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args or len(node.args) > 2:
            self.read.error(node, f"{node.keyword}: expected 'ADDRESS [PORT]'")
            raise Invalid
        address = self.read.address(node, node.args[0])
        port = self.read.port(node, node.args[1]) if len(node.args) == 2 else None
        return address, port

    def virtual_server(self, node: Node, config: Config) -> None:
        self.read.require_block(node)
        server = VirtualServer(location=location(node))
        args = node.args
        if len(args) == 2 and args[0] in ("fwmark", "group"):
            if args[0] == "fwmark":
                server.kind, server.fwmark = (
                    "fwmark",
                    self.read.integer(node, 1, UINT32_MAX, args[1]),
                )
            else:
                server.kind, server.group = "group", args[1]
        elif args and args[0] not in ("fwmark", "group"):
            server.address, server.port = self.address_and_port(node)
            server.family = ipaddress.ip_address(server.address).version
        else:
            self.read.error(
                node, "virtual_server: expected 'ADDRESS [PORT]', 'fwmark N' or 'group NAME'"
            )
            raise Invalid
        state = self.read.walk(node, "virtual_server", server)
        if "lvs_sched" not in state.explicit:
            self.read.warning(
                node, f"virtual server {server.name}: no scheduler set, using '{server.lvs_sched}'"
            )
        self.complete_defaults(node, server, state, config)
        for pending in state.pending:
            self.resolve_checker(pending, server, state.defaults)
        self.drop_foreign_scheduler_flags(server, state)
        config.virtual_servers.append(server)

    def complete_defaults(
        self, node: Node, server: VirtualServer, state: BlockState, config: Config
    ) -> None:
        """keepalived's defaults for what the block left out, with its warnings."""
        name = f"virtual server {server.name}"
        group = config.virtual_server_groups.get(server.group or "")
        by_address = server.kind == "ip" or (
            group is not None and any(entry.address for entry in group.entries)
        )
        if "protocol" not in state.explicit and by_address:
            # the kernel's default for protocol 0 is UDP, and keepalived sets it explicitly
            self.read.warning(node, f"{name}: no protocol set - defaulting to UDP")
            server.protocol = "UDP"
        elif "protocol" in state.explicit and not by_address:
            where = state.explicit["protocol"]
            self.read.report(
                Problem(
                    where.file,
                    where.line,
                    f"{name}: protocol specified for fwmark - protocol will be ignored",
                    "warning",
                )
            )
        if server.persistence_granularity is not None and not server.persistence_timeout:
            server.persistence_timeout = DEFAULT_PERSISTENCE_TIMEOUT  # a granularity persists
        servers = [*server.real_servers, *filter(None, [server.sorry_server])]
        if "lvs_method" not in state.explicit and any(s.lvs_method is None for s in servers):
            self.read.warning(node, f"{name}: no forwarding method set, setting default NAT")

    def hashed(self, node: Node, server: VirtualServer) -> None:
        """An old scheduler flag keepalived reads and never applies."""
        self.read.bare_flag(node)
        self.read.warning(node, "hashed only applies to sh scheduler - ignoring")

    def drop_foreign_scheduler_flags(self, server: VirtualServer, state: BlockState) -> None:
        """sh-port and friends only mean something to their scheduler; keepalived drops them."""
        kept = []
        for flag in server.scheduler_flags:
            owner = flag.split("-")[0]
            if owner in SCHED_FLAG_NAMES and server.lvs_sched != owner:
                where = state.explicit[flag]
                self.read.report(
                    Problem(
                        where.file,
                        where.line,
                        f"{flag} only applies to the {owner} scheduler - ignoring",
                        "warning",
                    )
                )
                continue
            kept.append(flag)
        server.scheduler_flags = kept

    def real_server_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "weight": self.read.lenient(
                "weight",
                whole(0, INT32_MAX),
                "Real server weight {value} is outside range 0-2147483647",
            ),
            "lvs_method": self.read.scalar("lvs_method", self.forwarding("real")),
            "notify_up": self.read.scalar("notify_up", self.read.script),
            "notify_down": self.read.scalar("notify_down", self.read.script),
            "uthreshold": self.read.lenient(
                "uthreshold",
                whole(0, UINT32_MAX),
                "Invalid real_server uthreshold '{value}' - ignoring",
            ),
            "lthreshold": self.read.lenient(
                "lthreshold",
                whole(0, UINT32_MAX),
                "Invalid real_server lthreshold '{value}' - ignoring",
            ),
            "inhibit_on_failure": self.read.scalar("inhibit_on_failure", self.read.flag),
            "virtualhost": self.read.scalar("virtualhost", self.read.text),
            "alpha": self.read.scalar("alpha", self.read.flag),
            "delay_loop": self.read.lenient(
                "delay_loop",
                decimal(TIMER_MIN, TIMER_MAX),
                "real server delay_loop '{value}' invalid - ignoring",
            ),
        }
        for name in checkers.KINDS:
            table[name] = self.checker
        for name in INHERITED_CHECKER_OPTIONS:
            table[name] = self.checker_default
        return table

    def real_server(self, node: Node, server: VirtualServer) -> None:
        self.read.require_block(node)
        address, port = self.address_and_port(node)
        real = RealServer(address, port, location=location(node))
        self.current_server_state = self.read.state_of(server)
        self.read.walk(node, "real_server", real)
        server.real_servers.append(real)

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

    def checker_explicit(self, node: Node, checker: Checker) -> None:
        value = self.checker_option(node, checker, "checker")
        self.read.state_of(checker).defaults[node.keyword] = value

    def checker(self, node: Node, real: RealServer) -> None:
        """A checker block: its kind's model, read with the kind's keywords."""
        self.read.require_block(node)
        kind = checkers.KINDS[node.keyword]
        checker = kind.model(kind=node.keyword, location=location(node))
        state = self.read.walk(node, node.keyword, checker)
        if not self.read.tainted(node):
            problems = kind.problems(checker)
            for severity, message in problems:
                self.read.report(
                    Problem(node.file, node.line, message, severity.replace(DROPPED, "warning"))
                )
            if any(severity == DROPPED for severity, _message in problems):
                return  # keepalived runs the real server without this checker
        real.checkers.append(checker)
        self.current_server_state.pending.append(
            PendingChecker(checker, state.defaults, real, self.read.state_of(real).defaults)
        )

    def resolve_checker(self, pending: PendingChecker, server: VirtualServer, vs_defaults: dict):
        """The one place checkers inherit: each common option from the checker, else the real
        server, else the virtual server; then what the kind itself inherits or derives."""
        checker = pending.checker
        for option in INHERITED_CHECKER_OPTIONS:
            for source in (pending.explicit, pending.real_server_defaults, vs_defaults):
                if option in source:
                    setattr(checker, option, source[option])
                    break
        checker.delay_loop = pending.explicit.get(
            "delay_loop",
            pending.real_server.delay_loop
            if pending.real_server.delay_loop is not None
            else server.delay_loop,
        )
        checkers.KINDS[checker.kind].complete(checker, pending.real_server, server)


def run(
    path: str,
    text: Optional[str],
    host_checks: bool,
    overrides: Optional[dict],
    config_id: Optional[str] = None,
) -> Config:
    problems: list[Problem] = []
    source = Source({os.path.abspath(k): v for k, v in (overrides or {}).items()})
    lexer = Lexer(source, problems.append, config_id)
    if text is None:
        try:
            text = source.read(path)
        except ReadError as error:
            raise ConfigError(
                [Problem(path, 0, f"cannot read the configuration file: {error}")]
            ) from error
    tokens = lexer.tokenize_file(path, text)
    tree = build_tree(tokens, problems.append)
    release(tokens)
    builder = Builder(problems.append)
    try:
        config = builder.build(tree)
        release(tree)
        config.files = lexer.files
        checks.check(
            config, problems.append, builder.state.instance_keywords, host_checks=host_checks
        )
    finally:
        builder.release()
    problems = [hide_secrets(problem, lexer.secrets) for problem in problems]
    errors = [problem for problem in problems if problem.severity == "error"]
    if errors:
        raise ConfigError(sorted_problems(problems, lexer.files))
    config.warnings = sorted_problems(problems, lexer.files)
    return config


def hide_secrets(problem: Problem, secrets: set[str]) -> Problem:
    """The one gate every problem passes: no message shows a password, whoever wrote it."""
    return dataclasses.replace(problem, message=redact(problem.message, secrets))


def release(items: list | dict) -> None:
    """Free a large list or dict a slice at a time: freeing millions of objects at once is one
    long C call that holds the GIL, which would stall the agent's loop while a reload parses."""
    if isinstance(items, dict):
        for key in list(items):
            del items[key]
    while items:
        del items[-4096:]


def sorted_problems(problems: list[Problem], files: list[str]) -> list[Problem]:
    """File order as read, then line order, so output follows the configuration."""
    order = {name: index for index, name in enumerate(files)}
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (order.get(p.file, len(order)), p.line))


def load(
    path: str,
    *,
    host_checks: bool = True,
    overrides: Optional[dict] = None,
    config_id: Optional[str] = None,
) -> Config:
    """Read, parse and check the configuration at `path` (and the files it includes).
    `config_id` selects `@ID` lines, as keepalived's `-i` (None: the host name's first part)."""
    return run(path, None, host_checks, overrides, config_id)


def loads(
    text: str,
    filename: str = "<string>",
    *,
    host_checks: bool = False,
    config_id: Optional[str] = None,
) -> Config:
    """Parse and check configuration text; includes are resolved relative to `filename`."""
    return run(filename, text, host_checks, None, config_id)


# block of a vrrp_instance -> the VrrpInstance list its entries go to
ENTRY_BLOCKS = {
    "virtual_ipaddress": "virtual_ipaddresses",
    "virtual_ipaddress_excluded": "virtual_ipaddresses_excluded",
    "unicast_peer": "unicast_peers",
    "track_interface": "track_interfaces",
    "track_script": "track_scripts",
    "track_file": "track_files",
    "track_process": "track_processes",
}


def parse_entry(block: str, text: str, filename: str = "<string>") -> Any:
    """One entry of a vrrp_instance block, read exactly as in a file: e.g.
    `parse_entry("virtual_ipaddress", "10.0.0.1/24 dev eth0")` -> VirtualAddress.

    Returns a VirtualAddress, a peer address (str), a TrackInterface or a TrackScript;
    raises ConfigError when the entry is invalid.
    """
    problems: list[Problem] = []
    tokens = Lexer(Source(), problems.append).split_words(text, filename, 1)
    words = [token.text for token in tokens if token.kind == "word"]
    instance = VrrpInstance("entry")
    if not words or len(words) != len(tokens):
        problems.append(Problem(filename, 1, f"{block}: expected one entry, got '{text}'"))
    else:
        node = Node([block], filename, 1, children=[Node(words, filename, 1)])
        Builder(problems.append).read.tables["vrrp_instance"][block](node, instance)
    entries = getattr(instance, ENTRY_BLOCKS[block])
    if problems or not entries:  # what keepalived would correct is no entry to write either
        raise ConfigError(problems)
    return entries[0]
