"""LVS: virtual_server_group, virtual_server and its real_server blocks (their checker blocks
are read by `checkers`)."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Callable, Optional

from ...ipvs.model import SCHED_FLAG_NAMES, SCHEDULERS
from ...ipvs.model import SERVICE_FLAGS as SCHEDULER_FLAGS
from ...lvs import checkers  # the registry; read at parse time (it imports this package)
from ..errors import Invalid, Problem
from ..lexer import Node
from ..model import (
    DEFAULT_PERSISTENCE_TIMEOUT,
    LVS_METHODS,
    PROTOCOLS,
    Config,
    RealServer,
    SorryServer,
    VirtualServer,
    VirtualServerGroup,
    VirtualServerGroupEntry,
)
from ..redact import excerpt
from ..values import (
    INT32_MAX,
    TIMER_MAX,
    TIMER_MIN,
    UINT32_MAX,
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
from .checkers import INHERITED_CHECKER_OPTIONS, CheckerBlocks

MAX_PERSISTENCE_TIMEOUT = 2678400  # keepalived's LVS_MAX_TIMEOUT: 31 days
PE_NAME_MAX = 15  # IP_VS_PENAME_MAXLEN less the terminating NUL


class LvsBlocks:
    """virtual_server_group, virtual_server, real_server; `checks` reads the checker blocks
    and resolves what each checker inherits once its virtual server is complete."""

    def __init__(self, read: Reader, checks: CheckerBlocks):
        self.read = read
        self.checks = checks

    def top_level(self) -> dict[str, Handler]:
        return {
            "virtual_server_group": self.virtual_server_group,
            "virtual_server": self.virtual_server,
        }

    def tables(self) -> dict[str, dict[str, Handler]]:
        return {
            "virtual_server": self.virtual_server_table(),
            "real_server": self.real_server_table(),
        }

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
        for real in server.real_servers:
            for checker in real.checkers:
                self.checks.resolve(checker, real, server)
        self.drop_foreign_scheduler_flags(server, state)
        config.virtual_servers.append(server)
        checkers = (checker for real in server.real_servers for checker in real.checkers)
        self.read.forget(itertools.chain((server,), server.real_servers, checkers))

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
            table[name] = self.checks.checker_default
        return table

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

    def hashed(self, node: Node, server: VirtualServer) -> None:
        """An old scheduler flag keepalived reads and never applies."""
        self.read.bare_flag(node)
        self.read.warning(node, "hashed only applies to sh scheduler - ignoring")

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

    def real_server(self, node: Node, server: VirtualServer) -> None:
        self.read.require_block(node)
        address, port = self.address_and_port(node)
        real = RealServer(address, port, location=location(node))
        self.read.walk(node, "real_server", real)
        server.real_servers.append(real)

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
            table[name] = self.checks.checker
        for name in INHERITED_CHECKER_OPTIONS:
            table[name] = self.checks.checker_default
        return table
