"""Build the typed model from the statement tree, with keepalived's meaning of each keyword.

Each block has a table `keyword -> handler`. A keyword missing from the table is a deprecated
alias (accepted, with a warning), a keyword lvs-agent deliberately ignores (warning), a
keyword valid only in another block, a keepalived keyword lvs-agent does not implement
(error "not supported by lvs-agent"), or an unknown keyword (error). Values are checked as
they are read; checks across objects live in `checks`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..ipvs.model import SCHED_FLAG_NAMES, SCHEDULERS
from ..ipvs.model import SERVICE_FLAGS as SCHEDULER_FLAGS
from ..lvs import checkers  # the registry; read at parse time (it imports this package)
from ..lvs.checkers.base import DROPPED
from ..scripts import split_command
from . import checks
from .errors import ConfigError, Invalid, Problem
from .keywords import AGENT_KEYWORDS, DEPRECATED_ALIASES, IGNORED, KEEPALIVED_KEYWORDS, OBSOLETE
from .lexer import Lexer, Node, ReadError, Source, build_tree
from .lvs_globals import LvsGlobals
from .model import (
    DATA_PLANES,
    DEFAULT_NFTABLES_TABLE,
    DEFAULT_PERSISTENCE_TIMEOUT,
    FIFO_PREFIXES,
    LVS_METHODS,
    PROTOCOLS,
    Checker,
    Config,
    GlobalDefs,
    Location,
    MetricsListen,
    RealServer,
    Script,
    ScriptUser,
    SorryServer,
    SyncGroup,
    TrackFile,
    TrackInterface,
    TrackProcess,
    TrackScript,
    VirtualAddress,
    VirtualServer,
    VirtualServerGroup,
    VirtualServerGroupEntry,
    VrrpInstance,
    VrrpScript,
)
from .redact import excerpt, redact
from .routing import read_route, read_rule

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
TIMER_MIN = 0.000001  # keepalived's timers count microseconds
TIMER_MAX = 1e9
MAX_PERSISTENCE_TIMEOUT = 2678400  # keepalived's LVS_MAX_TIMEOUT: 31 days
GARP_DELAY_MAX = UINT32_MAX // 1_000_000  # keepalived keeps timers in microseconds
SCRIPT_PERIOD_MAX = UINT32_MAX // 1_000_000
COMM_MAX = 15  # bytes of a process name the kernel keeps (/proc/PID/comm)
INTEGER = re.compile(r"[+-]?[0-9]+")
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
NFT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,62}")  # an nft identifier
BOOL_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
VIP_SCOPES = ("site", "link", "host", "nowhere", "global")
VIP_UNSUPPORTED_OPTIONS = (
    "home",
    "-nodad",
    "nodad",
    "mngtmpaddr",
    "noprefixroute",
    "autojoin",
    "preferred_lft",
    "track_group",
)
# options that every checker resolves from its real server, then its virtual server
INHERITED_CHECKER_OPTIONS = ("connect_timeout", "retry", "delay_before_retry", "warmup")
Handler = Callable[[Node, Any], None]


PE_NAME_MAX = 15  # IP_VS_PENAME_MAXLEN less the terminating NUL
IGNORE = object()  # `lenient` fallback: keepalived keeps what it had before the bad value


def whole(low: int, high: int) -> Callable[[str], int]:
    """Parser for keepalived's read_unsigned/read_int: an integer within [low, high]."""

    def parse(raw: str) -> int:
        if not INTEGER.fullmatch(raw) or not low <= int(raw, 10) <= high:
            raise ValueError(raw)
        return int(raw, 10)

    return parse


def decimal(low: float, high: float) -> Callable[[str], float]:
    """Parser for keepalived's read_decimal/read_timer: a number within [low, high]."""

    def parse(raw: str) -> float:
        if not DECIMAL.fullmatch(raw) or not low <= float(raw) <= high:
            raise ValueError(raw)
        return float(raw)

    return parse


def ip_text(raw: str) -> str:
    """Parser for an IP address, in its canonical text."""
    return str(ipaddress.ip_address(raw))


def any_case(options: tuple) -> Callable[[str], str]:
    """Parser for a word keepalived compares with strcasecmp."""

    def parse(raw: str) -> str:
        for option in options:
            if raw.upper() == option.upper():
                return option
        raise ValueError(raw)

    return parse


def exact(options: tuple) -> Callable[[str], str]:
    """Parser for a word keepalived compares with strcmp: case matters."""

    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(raw)
        return raw

    return parse


UINT_TIMER_MAX = UINT32_MAX / 1_000_000  # a timer keepalived reads into UINT_MAX microseconds


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


class Ignored(Invalid):
    """A value keepalived ignores with a warning; the warning has already been reported."""


@dataclass
class PendingChecker:
    """A checker whose inherited options are resolved once its virtual server is complete."""

    checker: Checker
    explicit: dict
    real_server: RealServer
    real_server_defaults: dict


@dataclass
class BlockState:
    """What the builder remembers about a block while it reads it."""

    explicit: dict = field(default_factory=dict)  # keyword given in the block -> Location
    defaults: dict = field(default_factory=dict)  # checker options given at this level
    pending: list = field(default_factory=list)  # PendingChecker, for a virtual server


def location(node: Node) -> Location:
    return Location(node.file, node.line)


class Builder:
    """Walks the statement tree once and fills a Config."""

    def __init__(self, report: Callable[[Problem], None]):
        self.report = report
        self.config = Config()
        self.state: dict[int, BlockState] = {}
        self.instance_keywords: dict[int, dict] = {}  # id(instance) -> keyword -> Location
        self.current_server_state = BlockState()
        self.rule_priorities: dict[int, int] = {}  # family -> next preference given by default
        self.default_interface: Optional[str] = None  # as keepalived: fixed by its first use
        self.lvs_globals = LvsGlobals(self)
        self.tables: dict[str, dict[str, Handler]] = {
            "top": {
                "global_defs": self.global_defs,
                "vrrp_script": self.vrrp_script,
                "track_file": self.track_file,
                "vrrp_track_file": self.track_file,
                "vrrp_track_process": self.track_process,
                "vrrp_sync_group": self.sync_group,
                "vrrp_instance": self.vrrp_instance,
                "static_ipaddress": self.static_addresses,
                "static_routes": self.routing_lines("static_routes", read_route),
                "static_rules": self.routing_lines("static_rules", self.rule_line),
                "virtual_server_group": self.virtual_server_group,
                "virtual_server": self.virtual_server,
            },
            "global_defs": self.global_defs_table(),
            "vrrp_script": self.vrrp_script_table(),
            "track_file": self.track_file_table(),
            "vrrp_track_process": self.track_process_table(),
            "vrrp_sync_group": self.sync_group_table(),
            "vrrp_instance": self.vrrp_instance_table(),
            "authentication": {
                "auth_type": self.auth_type,
                "auth_pass": self.scalar("auth_pass", self.text),
            },
            "virtual_server": self.virtual_server_table(),
            "real_server": self.real_server_table(),
        }
        for name, kind in checkers.KINDS.items():
            common = self.checker_table(kind.connection) if kind.common else {}
            self.tables[name] = {**common, **kind.keywords(self)}
            self.tables.update(kind.blocks(self))
        self.everywhere = {keyword for table in self.tables.values() for keyword in table}

    # ---- problems -------------------------------------------------------------------------

    def error(self, node: Node, message: str) -> None:
        self.report(Problem(node.file, node.line, message, "error"))

    def warning(self, node: Node, message: str) -> None:
        self.report(Problem(node.file, node.line, message, "warning"))

    # ---- walking blocks -------------------------------------------------------------------

    def walk(self, node: Node, table_name: str, target: Any) -> BlockState:
        state = self.state.setdefault(id(target), BlockState())
        table = self.tables[table_name]
        for child in node.children or []:
            if child.unsupported:
                continue
            keyword = child.keyword
            handler = table.get(keyword)
            if (
                handler is None
                and keyword in DEPRECATED_ALIASES
                and self.still_read(keyword, table_name)
            ):
                replacement = DEPRECATED_ALIASES[keyword]
                if replacement in table:
                    self.warning(child, f"{keyword} is deprecated, use {replacement}")
                    keyword, handler = replacement, table[replacement]
                    child = dataclasses.replace(child, words=[replacement, *child.args])
            if handler is None:
                self.unhandled(child, table_name)
                continue
            state.explicit[keyword] = location(child)
            try:
                handler(child, target)
            except Ignored:
                state.explicit.pop(keyword, None)  # as keepalived: as if never written
            except Invalid:
                continue
        return state

    def unhandled(self, node: Node, block: str) -> None:
        keyword = node.keyword
        where = "at top level" if block == "top" else f"in {block}"
        if keyword in IGNORED:
            self.warning(node, f"{keyword}: not supported by lvs-agent, ignored")
        elif not self.still_read(keyword, block):
            self.warning(node, f"Unknown keyword '{keyword}' - obsolete, ignored as by keepalived")
        elif keyword == "real_server":
            self.error(node, "real_server outside a virtual_server")
        elif keyword in AGENT_KEYWORDS:
            home = AGENT_KEYWORDS[keyword]
            self.error(node, f"{keyword} is not valid {where}: lvs-agent reads it in {home}")
        elif keyword in self.everywhere and keyword in self.tables:
            self.error(node, f"{keyword} block is not valid {where}")
        elif keyword in self.everywhere or keyword in DEPRECATED_ALIASES:
            self.error(node, f"{keyword} is not valid {where}")
        elif keyword in KEEPALIVED_KEYWORDS:
            self.error(node, f"{keyword}: not supported by lvs-agent")
        else:
            self.error(node, f"unknown keyword '{excerpt(keyword)}' {where}")

    def release(self) -> None:
        """Break the cycle self -> tables -> bound methods -> self, so that reference counting
        frees the builder (the cyclic GC would walk its state in one long pause)."""
        self.tables.clear()
        self.lvs_globals = None
        release(self.state)
        release(self.instance_keywords)

    @staticmethod
    def still_read(keyword: str, block: str) -> bool:
        """False for a keyword keepalived 2.2 no longer knows in this block."""
        return keyword not in OBSOLETE or block in OBSOLETE[keyword]

    def build(self, nodes: list[Node]) -> Config:
        self.walk(Node(["<top>"], "", 0, children=nodes), "top", self.config)
        return self.config

    # ---- value readers (raise Invalid after reporting) --------------------------------------

    def value(self, node: Node) -> str:
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args:
            self.error(node, f"{node.keyword}: missing value")
            raise Invalid
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        return node.args[0]

    def text(self, node: Node) -> str:
        return self.value(node)

    def integer(self, node: Node, low: int, high: int, text: Optional[str] = None) -> int:
        raw = self.value(node) if text is None else text
        if not INTEGER.fullmatch(raw):
            self.error(node, f"{node.keyword}: '{raw}' is not an integer")
            raise Invalid
        number = int(raw, 10)
        if not low <= number <= high:
            self.error(node, f"{node.keyword}: {number} is out of range {low}-{high}")
            raise Invalid
        return number

    def number(self, node: Node, low: float, high: float, text: Optional[str] = None) -> float:
        raw = self.value(node) if text is None else text
        if not DECIMAL.fullmatch(raw):
            self.error(node, f"{node.keyword}: '{raw}' is not a number")
            raise Invalid
        number = float(raw)
        if not low <= number <= high:
            self.error(node, f"{node.keyword}: {raw} is out of range {low:g}-{high:g}")
            raise Invalid
        return number

    def flag(self, node: Node) -> bool:
        """A keyword alone means on; an optional <BOOL> may follow."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args:
            return True
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        word = node.args[0].lower()
        if word not in BOOL_WORDS:
            self.warning(node, f"Invalid {node.keyword} parameter {node.args[0]}")
            raise Ignored
        return BOOL_WORDS[word]

    def always_on(self, node: Node) -> bool:
        """A virtual_server flag: keepalived 2.2 sets it whatever word follows, even `off`."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if node.args:
            self.warning(
                node,
                f"{' '.join(node.words)}: keepalived ignores the value on a virtual_server "
                f"and turns {node.keyword} on",
            )
        return True

    def bare_flag(self, node: Node) -> bool:
        """A keyword that takes no value at all."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if node.args:
            self.extra_arguments(node, node.args)
        return True

    def choice(self, node: Node, options: tuple, text: Optional[str] = None) -> str:
        raw = self.value(node) if text is None else text
        for option in options:
            if raw.upper() == option.upper():
                return option
        self.error(node, f"{node.keyword}: '{raw}' is not one of {'|'.join(options)}")
        raise Invalid

    def address(self, node: Node, text: Optional[str] = None) -> str:
        raw = self.value(node) if text is None else text
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            self.error(node, f"{node.keyword}: invalid IP address '{excerpt(raw)}'")
            raise Invalid from None

    def port(self, node: Node, text: str) -> int:
        return self.integer(node, 0, 65535, text)

    def single_port(self, node: Node) -> int:
        return self.port(node, self.value(node))

    def extra_arguments(self, node: Node, words: list[str]) -> None:
        self.warning(node, f"{node.keyword}: ignoring extra arguments: {' '.join(words)}")

    def script(self, node: Node) -> Script:
        """A notify/quorum script: the command, optionally followed by USER [GROUP]."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args:
            self.error(node, f"{node.keyword}: missing script")
            raise Invalid
        command = self.command(node, node.args[0])
        user = self.script_user(node, node.args[1:]) if len(node.args) > 1 else None
        return Script(command, user, location(node))

    def command(self, node: Node, text: str) -> str:
        """A script line: its words must split (balanced quotes) into at least a program."""
        try:
            split_command(text)
        except ValueError as exc:
            self.error(node, f"{node.keyword}: cannot split '{text}' into words: {exc}")
            raise Invalid from None
        return text

    def script_user(self, node: Node, words: Optional[list[str]] = None) -> ScriptUser:
        """keepalived's `username [:][groupname]`: `nobody nogroup`, `nobody:nogroup`, ..."""
        words = node.args if words is None else words
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        text = " ".join(words)
        if ":" in text:
            names = [name.strip() for name in text.split(":", 1)]
            malformed = any(not name or len(name.split()) != 1 for name in names)
        else:
            names = text.split()
            malformed = len(names) not in (1, 2)
        if malformed:
            self.error(
                node,
                f"{node.keyword}: expected USER [GROUP] or USER:GROUP, got '{' '.join(words)}'",
            )
            raise Invalid
        return ScriptUser(names[0], names[1] if len(names) == 2 else None, location(node))

    def require_block(self, node: Node) -> list[Node]:
        if not node.is_block:
            self.error(node, f"{node.keyword}: expected a block {{ ... }}")
            raise Invalid
        return [child for child in node.children or [] if not child.unsupported]

    def scalar(self, attribute: str, reader: Callable[[Node], Any]) -> Handler:
        """Handler that stores `reader(node)` in `target.attribute`."""

        def handle(node: Node, target: Any) -> None:
            setattr(target, attribute, reader(node))

        return handle

    def ranged(self, attribute: str, low: int, high: int) -> Handler:
        return self.scalar(attribute, lambda node: self.integer(node, low, high))

    def timer(self, attribute: str, low: float = 0.0, high: float = 1e9) -> Handler:
        return self.scalar(attribute, lambda node: self.number(node, low, high))

    def unsupported_value(self, accepted: Callable[[Node], bool]) -> Callable[[Node], None]:
        """Reader for keywords whose only supported value is the default."""

        def read(node: Node) -> None:
            if not accepted(node):
                self.error(node, f"{' '.join(node.words)}: not supported by lvs-agent")
                raise Invalid

        return read

    def lenient(
        self, attribute: str, parse: Callable[[str], Any], message: str, fallback: Any = IGNORE
    ) -> Handler:
        """A value keepalived reports and then ignores (or replaces by `fallback`): the same
        warning, in its words, and the same outcome. `message` may use {name} and {value}."""

        def handle(node: Node, target: Any) -> None:
            setattr(target, attribute, self.tolerate(node, target, parse, message, fallback))

        return handle

    def tolerate(
        self, node: Node, target: Any, parse: Callable[[str], Any], message: str, fallback: Any
    ) -> Any:
        raw = self.value(node)
        try:
            return parse(raw)
        except ValueError:
            self.warning(node, message.format(name=getattr(target, "name", ""), value=raw))
            if fallback is IGNORE:
                raise Ignored from None
            return fallback

    def repeat_count(self, attribute: str, label: str) -> Handler:
        """A gratuitous ARP count: keepalived ignores a bad one and turns 0 into 1."""
        read = self.lenient(
            attribute, whole(0, UINT32_MAX), label + " '{value}' invalid - ignoring"
        )

        def handle(node: Node, target: Any) -> None:
            read(node, target)
            if getattr(target, attribute) == 0:
                name = getattr(target, "name", "")
                self.warning(
                    node, f"{label.format(name=name)} must be greater than 0, setting to 1"
                )
                setattr(target, attribute, 1)

        return handle

    def script_period(self, attribute: str, invalid: str) -> Handler:
        """vrrp_script interval/timeout: whole seconds; 0 becomes 1, anything else is ignored."""
        read = self.lenient(attribute, whole(0, SCRIPT_PERIOD_MAX), invalid + " - ignoring")

        def handle(node: Node, script: VrrpScript) -> None:
            read(node, script)
            if getattr(script, attribute) == 0:
                self.warning(
                    node,
                    f"({script.name}): vrrp script {attribute} must be greater than 0, "
                    "setting to 1",
                )
                setattr(script, attribute, 1)

        return handle

    # ---- global_defs -----------------------------------------------------------------------

    def global_defs_table(self) -> dict[str, Handler]:
        return {
            "router_id": self.scalar("router_id", self.text),
            "vrrp_version": self.lenient(
                "vrrp_version", whole(2, 3), "VRRP Error: Version must be either 2 or 3"
            ),
            "vrrp_garp_master_delay": self.lenient(
                "vrrp_garp_master_delay",
                whole(0, GARP_DELAY_MAX),
                "vrrp_garp_master_delay '{value}' invalid - ignoring",
            ),
            "vrrp_garp_master_repeat": self.repeat_count(
                "vrrp_garp_master_repeat", "vrrp_garp_master_repeat"
            ),
            "vrrp_garp_master_refresh": self.lenient(
                "vrrp_garp_master_refresh",
                whole(0, UINT32_MAX),
                "Invalid vrrp_garp_master_refresh '{value}' - ignoring",
            ),
            "vrrp_garp_master_refresh_repeat": self.repeat_count(
                "vrrp_garp_master_refresh_repeat", "vrrp_garp_master_refresh_repeat"
            ),
            "vrrp_garp_interval": self.lenient(
                "vrrp_garp_interval",
                decimal(TIMER_MIN, UINT_TIMER_MAX),
                "vrrp_garp_interval '{value}' is invalid",
            ),
            "vrrp_gna_interval": self.lenient(
                "vrrp_gna_interval",
                decimal(TIMER_MIN, UINT_TIMER_MAX),
                "vrrp_gna_interval '{value}' is invalid",
            ),
            "vrrp_startup_delay": self.lenient(
                "vrrp_startup_delay",
                decimal(0.001, UINT_TIMER_MAX),
                "vrrp_startup_delay '{value}' is invalid",
            ),
            "vrrp_mcast_group4": self.scalar("vrrp_mcast_group4", self.multicast_group(4)),
            "vrrp_mcast_group6": self.scalar("vrrp_mcast_group6", self.multicast_group(6)),
            "script_user": self.scalar("script_user", self.script_user),
            "enable_script_security": self.scalar("enable_script_security", self.bare_flag),
            "set_supplementary_groups": self.scalar("set_supplementary_groups", self.bare_flag),
            "vrrp_strict": self.scalar("vrrp_strict", self.bare_flag),
            "nftables": self.scalar("nftables", self.nftables_table),
            "nftables_priority": self.ranged("nftables_priority", -INT32_MAX - 1, INT32_MAX),
            "nftables_counters": self.scalar("nftables_counters", self.bare_flag),
            "nftables_ifindex": self.scalar("nftables_ifindex", self.bare_flag),
            "vrrp_iptables": self.vrrp_iptables,
            "vrrp_min_garp": self.min_garp,
            **{
                f"{kind}_script{suffix}": handler
                for kind in ("startup", "shutdown")
                for suffix, handler in (
                    ("", self.start_stop_script(kind)),
                    (
                        "_timeout",
                        self.lenient(
                            f"{kind}_script_timeout",
                            whole(1, 1000),
                            f"{kind}_script_timeout '{{value}}' must be in [1, 1000] - ignoring",
                        ),
                    ),
                )
            },
            "vrrp_down_timer_adverts": self.lenient(
                "vrrp_down_timer_adverts",
                whole(1, 100),
                "Invalid vrrp_down_timer_adverts [1:100] '{value}'",
            ),
            "default_interface": self.scalar("default_interface", self.interface_name),
            "vmac_prefix": self.vmac_prefix,
            "v3_checksum_as_v2": self.scalar("v3_checksum_as_v2", self.flag),
            "vrrp_check_unicast_src": self.scalar("vrrp_check_unicast_src", self.bare_flag),
            "vrrp_garp_lower_prio_delay": self.lenient(
                "vrrp_garp_lower_prio_delay",
                whole(0, GARP_DELAY_MAX),
                "vrrp_garp_lower_prio_delay '{value}' invalid - ignoring",
            ),
            "vrrp_garp_lower_prio_repeat": self.lenient(
                "vrrp_garp_lower_prio_repeat",
                whole(0, INT32_MAX),
                "Invalid vrrp_garp_lower_prio_repeat '{value}'",
            ),
            "vrrp_lower_prio_no_advert": self.scalar("vrrp_lower_prio_no_advert", self.flag),
            "vrrp_higher_prio_send_advert": self.scalar("vrrp_higher_prio_send_advert", self.flag),
            **{
                f"{prefix}notify_fifo{suffix}": self.scalar(f"{prefix}notify_fifo{suffix}", reader)
                for prefix in FIFO_PREFIXES
                for suffix, reader in (("", self.fifo_path), ("_script", self.script))
            },
            **self.lvs_globals.global_handlers(),
            "metrics_listen": self.scalar("metrics_listen", self.metrics_listen),
            "lvs_data_plane": self.scalar(
                "lvs_data_plane", lambda node: self.choice(node, DATA_PLANES)
            ),
        }

    def metrics_listen(self, node: Node) -> MetricsListen:
        """ADDRESS:PORT, an IPv6 address in brackets."""
        host, colon, port = self.value(node).rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if not colon or (":" in host and not bracketed):
            self.error(node, f"{node.keyword}: expected ADDRESS:PORT or [IPV6]:PORT")
            raise Invalid
        address = self.address(node, host[1:-1] if bracketed else host)
        return MetricsListen(address, self.integer(node, 1, 65535, port), location(node))

    def multicast_group(self, family: int) -> Callable[[Node], str]:
        def read(node: Node) -> str:
            address = ipaddress.ip_address(self.address(node))
            if address.version != family or not address.is_multicast:
                self.error(
                    node, f"{node.keyword}: {address} is not an IPv{family} multicast address"
                )
                raise Invalid
            return str(address)

        return read

    def fifo_path(self, node: Node) -> str:
        """keepalived's optional owner after the FIFO's name is not supported."""
        if len(node.args) > 1:
            self.error(node, f"{node.keyword}: an owner for the FIFO is not supported by lvs-agent")
            raise Invalid
        return self.value(node)

    def nftables_table(self, node: Node) -> str:
        """A table name nft reads as one word (keepalived passes any name to libnftnl)."""
        if not node.args:
            return DEFAULT_NFTABLES_TABLE
        name = self.value(node)
        if not NFT_NAME.fullmatch(name):
            self.error(node, f"nftables: table name '{excerpt(name)}' not supported by lvs-agent")
            raise Invalid
        return name

    def start_stop_script(self, kind: str) -> Handler:
        """keepalived keeps the first startup_script / shutdown_script."""

        def handle(node: Node, global_defs: GlobalDefs) -> None:
            if getattr(global_defs, f"{kind}_script") is not None:
                self.warning(node, f"{kind} script already specified")
                raise Ignored
            setattr(global_defs, f"{kind}_script", self.script(node))

        return handle

    def min_garp(self, node: Node, global_defs: GlobalDefs) -> None:
        """keepalived's vrrp_min_garp: one gratuitous ARP / NA, no delayed burst, no refresh;
        only the settings still at their default when it is read change."""
        if not self.flag(node):
            return
        defaults = GlobalDefs()
        for name, value in (("repeat", 1), ("refresh", 0), ("refresh_repeat", 0), ("delay", 0)):
            attribute = f"vrrp_garp_master_{name}"
            if getattr(global_defs, attribute) == getattr(defaults, attribute):
                setattr(global_defs, attribute, value)

    def vrrp_iptables(self, node: Node, global_defs: GlobalDefs) -> None:
        """keepalived 2.2.7 as Debian builds it has no iptables: it uses its nftables table."""
        self.warning(
            node,
            "iptables not supported, using nftables instead. Please replace 'vrrp_iptables "
            "and 'vrrp_ipsets' with 'nftables' config option",
        )
        if global_defs.nftables is None:
            global_defs.nftables = DEFAULT_NFTABLES_TABLE

    def vmac_prefix(self, node: Node, global_defs: GlobalDefs) -> None:
        """keepalived keeps the first vmac_prefix."""
        prefix = self.value(node)
        if global_defs.vmac_prefix is not None:
            self.warning(node, f"vmac prefix has already been specified - ignoring {prefix}")
            raise Ignored
        global_defs.vmac_prefix = prefix

    def global_defs(self, node: Node, config: Config) -> None:
        self.require_block(node)
        config.global_defs.location = location(node)
        self.walk(node, "global_defs", config.global_defs)

    # ---- vrrp_script -----------------------------------------------------------------------

    def vrrp_script_table(self) -> dict[str, Handler]:
        return {
            "script": self.scalar("script", lambda node: self.command(node, self.value(node))),
            "interval": self.script_period(
                "interval", "({name}): vrrp script interval '{value}' must be between 1 and 4294"
            ),
            "timeout": self.script_period(
                "timeout", "({name}): vrrp script timeout '{value}' invalid"
            ),
            "weight": self.script_weight,
            "rise": self.lenient(
                "rise",
                whole(1, INT32_MAX),
                "({name}): vrrp script rise value '{value}' invalid, defaulting to 1",
                fallback=1,
            ),
            "fall": self.lenient(
                "fall",
                whole(1, INT32_MAX),
                "({name}): vrrp script fall value '{value}' invalid, defaulting to 1",
                fallback=1,
            ),
            "user": self.scalar("user", self.script_user),
            "init_fail": self.scalar("init_fail", self.bare_flag),
        }

    def script_weight(self, node: Node, script: VrrpScript) -> None:
        if not node.args:
            self.error(node, "weight: missing value")
            raise Invalid
        script.weight = self.integer(node, -253, 253, node.args[0])
        option = node.args[1] if len(node.args) > 1 else None
        script.weight_reverse = option == "reverse"
        if option not in (None, "reverse"):
            self.warning(node, f"vrrp_script {script.name} unknown weight option {option}")

    def vrrp_script(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        script = VrrpScript(name, location=location(node))
        state = self.walk(node, "vrrp_script", script)
        if not script.script:
            if not self.tainted(node):  # keepalived drops it; who tracks it is told so
                self.warning(node, f"No script set for vrrp_script {name} - removing")
            return
        if "timeout" not in state.explicit:
            script.timeout = script.interval
        self.define(node, config.vrrp_scripts, script, "vrrp_script")

    # ---- track_file, vrrp_track_process ---------------------------------------------------

    def track_file_table(self) -> dict[str, Handler]:
        return {
            "file": self.scalar("file", self.text),
            "weight": self.tracked_weight(-254, 254),
            "init_file": self.init_file,
        }

    def reverse_option(self, node: Node, words: list[str]) -> bool:
        if not words:
            return False
        if len(words) == 1 and words[0] in ("reverse", "noreverse"):
            return words[0] == "reverse"
        self.error(node, f"{node.keyword}: unexpected '{excerpt(words[0])}' (expected reverse)")
        raise Invalid

    def tracked_weight(self, low: int, high: int) -> Handler:
        """`weight N [reverse]` of a track_file or vrrp_track_process block."""

        def handle(node: Node, target: Any) -> None:
            if not node.args:
                self.error(node, "weight: missing value")
                raise Invalid
            target.weight = self.integer(node, low, high, node.args[0])
            target.weight_reverse = self.reverse_option(node, node.args[1:])

        return handle

    def init_file(self, node: Node, track: TrackFile) -> None:
        """`init_file [VALUE] [overwrite]`: write VALUE (default 0) to the file at start."""
        track.init_value = 0
        for word in node.args:
            if word == "overwrite":
                track.init_overwrite = True
            else:
                track.init_value = self.integer(node, -254, 254, word)

    def track_file(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        if node.keyword == "vrrp_track_file":
            self.warning(node, "vrrp_track_file is deprecated, use track_file")
        track = TrackFile(name, location=location(node))
        self.walk(node, "track_file", track)
        if not track.file and not self.tainted(node):
            self.error(node, f"track_file {name}: no file given")
        self.define(node, config.track_files, track, "track_file")

    def track_process_table(self) -> dict[str, Handler]:
        return {
            "process": self.process,
            "param_match": self.param_match,
            "weight": self.tracked_weight(-254, 254),
            "quorum": self.ranged("quorum", 0, INT32_MAX),
            "quorum_max": self.ranged("quorum_max", 0, INT32_MAX),
            "fork_delay": self.timer("fork_delay", 0, 86400),
            "terminate_delay": self.timer("terminate_delay", 0, 86400),
            "delay": self.both_delays,
            "full_command": self.scalar("full_command", self.bare_flag),
        }

    def process(self, node: Node, track: TrackProcess) -> None:
        """`process NAME [PARAM ...]`: parameters mean the command line is matched, exactly
        unless param_match says otherwise."""
        if node.is_block or not node.args:
            self.error(node, "process: expected a process name [parameters]")
            raise Invalid
        track.process, track.params = node.args[0], list(node.args[1:])

    def param_match(self, node: Node, track: TrackProcess) -> None:
        track.param_match = self.choice(node, ("initial", "partial")) if node.args else "exact"

    def both_delays(self, node: Node, track: TrackProcess) -> None:
        track.fork_delay = track.terminate_delay = self.number(node, 0, 86400)

    def track_process(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        track = TrackProcess(name, location=location(node))
        state = self.walk(node, "vrrp_track_process", track)
        if "quorum" not in state.explicit and track.quorum_max is not None:
            track.quorum = min(track.quorum, track.quorum_max)  # quorum_max 0: none may run
        if not track.process and not self.tainted(node):
            self.error(node, f"vrrp_track_process {name}: no process given")
        by_name = not (track.params or track.param_match or track.full_command)
        if by_name and len(track.process.encode()) > COMM_MAX:
            self.warning(
                node,
                f"vrrp_track_process {name}: the kernel keeps {COMM_MAX} bytes of a process "
                f"name, so '{excerpt(track.process)}' never matches; use full_command",
            )
        if track.quorum_max is not None and track.quorum_max < track.quorum:
            self.error(node, f"vrrp_track_process {name}: quorum_max is below quorum")
        self.define(node, config.track_processes, track, node.keyword)

    def define(self, node: Node, known: dict, item: Any, kind: str) -> None:
        """Record a named block; a second one of the same name is an error."""
        if item.name in known:
            self.error(node, f"{kind} {item.name} already defined at {known[item.name].location}")
            return
        known[item.name] = item

    def block_name(self, node: Node) -> str:
        self.require_block(node)
        if not node.args:
            self.error(node, f"{node.keyword}: missing name")
            raise Invalid
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        return node.args[0]

    @staticmethod
    def tainted(node: Node) -> bool:
        """True when part of the block was rejected, so missing settings are expected."""
        waiting = list(node.children or [])
        while waiting:
            child = waiting.pop()
            if child.unsupported:
                return True
            waiting.extend(child.children or [])
        return False

    # ---- vrrp_sync_group -------------------------------------------------------------------

    def sync_group_table(self) -> dict[str, Handler]:
        return {
            "group": self.sync_group_members,
            "notify_master": self.scalar("notify_master", self.script),
            "notify_backup": self.scalar("notify_backup", self.script),
            "notify_fault": self.scalar("notify_fault", self.script),
            "notify_stop": self.scalar("notify_stop", self.script),
            "notify": self.scalar("notify", self.script),
            "track_interface": self.track_interfaces,
            "track_script": self.tracked_names("track_scripts", "track_script"),
            "track_file": self.tracked_names("track_files", "track_file", 254),
            "track_process": self.tracked_names("track_processes", "track_process", 254),
            "sync_group_tracking_weight": self.scalar("tracking_weight", self.bare_flag),
            "global_tracking": self.global_tracking,
        }

    def global_tracking(self, node: Node, group: SyncGroup) -> None:
        self.warning(
            node,
            f"({group.name}) global_tracking is deprecated. Use track_interface/script/file on "
            "the sync group",
        )
        group.tracking_weight = self.bare_flag(node)

    def sync_group_members(self, node: Node, group: SyncGroup) -> None:
        for child in self.require_block(node):
            if child.args or child.is_block:
                self.error(
                    child,
                    "group: expected a vrrp_instance name alone on a line, "
                    f"got more after '{excerpt(child.keyword)}'",
                )
                continue
            group.group.append(child.keyword)

    def sync_group(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        group = SyncGroup(name, location=location(node))
        table = self.tables["vrrp_sync_group"]
        children = node.children or []
        bare = [c for c in children if not c.unsupported and not c.args and not c.is_block]
        known = table.keys() | KEEPALIVED_KEYWORDS | IGNORED
        old_style = [c for c in bare if c.keyword not in known]
        for child in old_style:
            # keepalived 1.x listed the instances directly in the group; 2.x ignores them
            self.warning(
                child,
                f"Unknown keyword '{excerpt(child.keyword)}' - instance names belong in "
                "'group { }'; ignored, as keepalived does",
            )
        node = Node(node.words, node.file, node.line, [c for c in children if c not in old_style])
        self.walk(node, "vrrp_sync_group", group)
        if not group.group and not self.tainted(node):
            self.warning(node, f"Sync group {name} has no virtual router(s). removing")
            return
        config.sync_groups.append(group)

    # ---- vrrp_instance ---------------------------------------------------------------------

    def vrrp_instance_table(self) -> dict[str, Handler]:
        return {
            "state": self.lenient(
                "state",
                exact(("MASTER", "BACKUP")),
                "({name}) unknown state '{value}', defaulting to BACKUP",
                fallback="BACKUP",
            ),
            "interface": self.scalar("interface", self.interface_name),
            "lvs_sync_daemon_interface": self.lvs_globals.lvs_sync_daemon_interface,
            "virtual_router_id": self.ranged("virtual_router_id", 1, 255),
            "priority": self.lenient(
                "priority",
                whole(1, 255),
                "({name}) Priority not valid! must be between 1 & 255. Using default 100",
                fallback=100,
            ),
            "advert_int": self.lenient(  # rounded and capped per version in checks
                "advert_int",
                decimal(0.01, 255),
                "({name}) Advert interval ({value}) not valid! Must be > 0 - ignoring",
            ),
            "version": self.lenient(
                "version", whole(2, 3), "({name}): Version must be either 2 or 3"
            ),
            "nopreempt": self.scalar("nopreempt", self.bare_flag),
            "preempt": self.preempt,
            "preempt_delay": self.lenient(
                "preempt_delay",
                decimal(0, 1000),
                "({name}) Preempt_delay not valid! must be between 0-1000",
                fallback=0.0,
            ),
            "authentication": self.authentication,
            "unicast_src_ip": self.scalar("unicast_src_ip", self.address),
            "mcast_src_ip": self.scalar("mcast_src_ip", self.address),
            "unicast_peer": self.unicast_peers,
            "unicast_ttl": self.lenient(
                "unicast_ttl",
                whole(0, 255),
                "({name}): TTL '{value}' not valid - must be between 0 & 255",
            ),
            "check_unicast_src": self.scalar("check_unicast_src", self.bare_flag),
            "virtual_ipaddress": self.virtual_addresses("virtual_ipaddresses"),
            "virtual_ipaddress_excluded": self.virtual_addresses("virtual_ipaddresses_excluded"),
            "virtual_routes": self.routing_lines("virtual_routes", read_route),
            "virtual_rules": self.routing_lines("virtual_rules", self.rule_line),
            "track_interface": self.track_interfaces,
            "track_script": self.tracked_names("track_scripts", "track_script"),
            "track_file": self.tracked_names("track_files", "track_file", 254),
            "track_process": self.tracked_names("track_processes", "track_process", 254),
            "dont_track_primary": self.scalar("dont_track_primary", self.bare_flag),
            "notify_master": self.scalar("notify_master", self.script),
            "notify_backup": self.scalar("notify_backup", self.script),
            "notify_fault": self.scalar("notify_fault", self.script),
            "notify_stop": self.scalar("notify_stop", self.script),
            "notify": self.scalar("notify", self.script),
            "garp_master_delay": self.lenient(
                "garp_master_delay",
                whole(0, GARP_DELAY_MAX),
                "({name}): garp_master_delay '{value}' invalid - ignoring",
            ),
            "garp_master_repeat": self.repeat_count(
                "garp_master_repeat", "({name}): garp_master_repeat"
            ),
            "garp_master_refresh": self.lenient(
                "garp_master_refresh",
                whole(0, UINT32_MAX),
                "({name}): Invalid garp_master_refresh '{value}' - ignoring",
                fallback=0,
            ),
            "garp_master_refresh_repeat": self.repeat_count(
                "garp_master_refresh_repeat", "({name}): garp_master_refresh_repeat"
            ),
            "v3_checksum_as_v2": self.checksum_style,
            "accept": self.scalar("accept", self.bare_flag),
            "no_accept": self.scalar("accept", lambda node: not self.bare_flag(node)),
            "native_ipv6": self.native_ipv6,
            "use_vmac": self.use_vmac,
            "vmac_xmit_base": self.scalar("vmac_xmit_base", self.bare_flag),
            "promote_secondaries": self.scalar("promote_secondaries", self.bare_flag),
            "down_timer_adverts": self.lenient(
                "down_timer_adverts",
                whole(1, 100),
                "({name}): Invalid down_timer_adverts [1:100] '{value}'",
            ),
            "garp_lower_prio_delay": self.lenient(
                "garp_lower_prio_delay",
                whole(0, GARP_DELAY_MAX),
                "({name}): garp_lower_prio_delay '{value}' invalid - ignoring",
            ),
            "garp_lower_prio_repeat": self.lenient(
                "garp_lower_prio_repeat",
                whole(0, INT32_MAX),
                "({name}): Invalid garp_lower_prio_repeat '{value}'",
            ),
            "lower_prio_no_advert": self.scalar("lower_prio_no_advert", self.flag),
            "higher_prio_send_advert": self.scalar("higher_prio_send_advert", self.flag),
        }

    def interface_name(self, node: Node) -> str:
        name = self.value(node)
        if len(name) > 15 or "/" in name or name in (".", ".."):
            self.error(node, f"{node.keyword}: '{name}' is not a valid interface name")
            raise Invalid
        return name

    def use_vmac(self, node: Node, instance: VrrpInstance) -> None:
        """use_vmac [NAME]: the macvlan's name is checked as keepalived's dev_name_valid; a MAC
        address (a word with ':') instead of the VRRP one is refused."""
        if node.is_block:
            self.error(node, "use_vmac does not take a block")
            raise Invalid
        if any(":" in word for word in node.args[:2]):
            self.error(node, "use_vmac with a MAC address: not supported by lvs-agent")
            raise Invalid
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        instance.use_vmac = True
        if not node.args:
            return
        name = node.args[0]
        if len(name) > 15 or name in (".", "..") or "/" in name:
            self.warning(
                node, f"VMAC interface name '{name}' too long or invalid characters - ignoring"
            )
            return
        for other in self.config.vrrp_instances:
            if other.vmac_name == name:
                self.warning(
                    node,
                    f"({instance.name}) VRRP instance {other.name} is already using {name} - "
                    "ignoring name",
                )
                return
        instance.vmac_name = name

    def preempt(self, node: Node, instance: VrrpInstance) -> None:
        self.bare_flag(node)
        self.warning(node, "preempt is deprecated (preempting is the default)")
        instance.nopreempt = False

    def native_ipv6(self, node: Node, instance: VrrpInstance) -> None:
        self.bare_flag(node)
        self.warning(node, "native_ipv6 is deprecated: the family comes from the virtual addresses")

    def checksum_style(self, node: Node, instance: VrrpInstance) -> None:
        instance.checksum_with_pseudo_header = not self.flag(node)

    def authentication(self, node: Node, instance: VrrpInstance) -> None:
        self.require_block(node)
        self.walk(node, "authentication", instance)

    def auth_type(self, node: Node, instance: VrrpInstance) -> None:
        kind = self.value(node)
        if kind not in ("PASS", "AH"):
            self.warning(node, f"({instance.name}) unknown authentication type '{kind}'")
            raise Ignored
        if kind == "AH":
            self.error(node, "auth_type AH: not supported by lvs-agent")
            raise Invalid
        instance.auth_type = kind

    def unicast_peers(self, node: Node, instance: VrrpInstance) -> None:
        for child in self.require_block(node):
            if child.args:
                self.error(
                    child,
                    f"unicast_peer option '{excerpt(child.args[0])}': not supported by lvs-agent",
                )
                continue
            try:
                peer = dataclasses.replace(child, words=["unicast_peer", child.keyword])
                instance.unicast_peers.append(self.address(peer))
            except Invalid:
                continue

    def virtual_addresses(self, attribute: str) -> Handler:
        def handle(node: Node, instance: VrrpInstance) -> None:
            addresses = getattr(instance, attribute)
            for child in self.require_block(node):
                try:
                    addresses.append(self.virtual_address(child))
                except Invalid:
                    continue

        return handle

    def virtual_address(self, node: Node) -> VirtualAddress:
        raw = node.keyword
        try:
            address = ipaddress.ip_interface(raw)
        except ValueError:
            self.warning(node, f"VRRP parsed invalid IP {excerpt(raw)}. skipping IP...")
            raise Ignored from None
        vip = VirtualAddress(address, location=location(node))
        words = node.args
        index = 0
        while index < len(words):
            option = words[index]
            if option in ("dev", "label", "scope", "brd", "broadcast", "peer"):
                if index + 1 >= len(words):
                    self.warning(node, f"No {option} parameter specified for {raw}")
                    raise Ignored
                self.vip_option(node, vip, option, words[index + 1])
                index += 2
            elif option in ("no_track", "use_vmac"):
                setattr(vip, option, True)
                index += 1
            elif option in VIP_UNSUPPORTED_OPTIONS:
                self.error(node, f"{raw}: option '{option}' not supported by lvs-agent")
                raise Invalid
            else:
                self.warning(
                    node,
                    f"Unknown configuration entry '{excerpt(option)}' for ip address - ignoring",
                )
                index += 1
        if address.version == 6:
            self.no_ipv6_scope_or_label(node, vip)
        return vip

    def no_ipv6_scope_or_label(self, node: Node, vip: VirtualAddress) -> None:
        """keepalived drops what only IPv4 addresses have."""
        for option in ("scope", "label"):
            if getattr(vip, option) is not None:
                self.warning(
                    node,
                    f"Cannot specify {option} for IPv6 addresses ({node.keyword}) - "
                    f"ignoring {option}",
                )
                setattr(vip, option, None)

    def vip_option(self, node: Node, vip: VirtualAddress, option: str, value: str) -> None:
        if option == "dev":
            vip.dev = value
        elif option == "label":
            vip.label = value
        elif option == "scope":
            if value not in VIP_SCOPES and not value.isdigit():
                self.warning(
                    node, f"Invalid scope '{value}' specified for {node.keyword} - ignoring"
                )
                return
            vip.scope = value
        elif option == "peer":
            vip.peer = self.address(node, value)
        else:
            if value != "+" and value != "-":
                value = self.address(node, value)
            vip.broadcast = value

    def static_addresses(self, node: Node, config: Config) -> None:
        """static_ipaddress: virtual_ipaddress lines; no dev is keepalived's default_interface."""
        for child in self.require_block(node):
            try:
                vip = self.virtual_address(child)
            except Invalid:
                continue
            if vip.dev is None:
                self.default_interface = (
                    self.default_interface or self.config.global_defs.default_interface
                )
                vip.dev = self.default_interface
            config.static_addresses.append(vip)

    def routing_lines(self, attribute: str, read: Callable) -> Handler:
        """static_/virtual_ routes and rules: each line read by config/routing.py."""

        def handle(node: Node, target: Any) -> None:
            for child in self.require_block(node):
                if child.is_block:
                    self.error(child, f"{node.keyword}: an entry does not take a block")
                    continue

                def say(severity: str, message: str, child: Node = child) -> None:
                    self.report(Problem(child.file, child.line, message, severity))

                entry = read(child.words, say)
                if entry is not None:
                    getattr(target, attribute).append(
                        dataclasses.replace(entry, location=location(child))
                    )

        return handle

    def rule_line(self, words: list[str], say: Callable) -> Any:
        """keepalived numbers the rules given no preference over the whole configuration."""
        return read_rule(words, say, self.rule_priorities)

    def track_interfaces(self, node: Node, target: Any) -> None:
        self.tracked(node, target, target.track_interfaces, TrackInterface, "track_interface", 0)

    def tracked_names(self, attribute: str, block: str, limit: int = 253) -> Handler:
        """track_script / track_file / track_process: NAME [weight N [reverse|noreverse]]
        (keepalived: +/-253 for scripts, +/-254 for files and processes)."""

        def handle(node: Node, target: Any) -> None:
            entries = getattr(target, attribute)
            self.tracked(node, target, entries, TrackScript, block, None, limit)

        return handle

    def tracked(
        self,
        node: Node,
        target: Any,
        entries: list,
        kind: type,
        block: str,
        default: Any,
        limit: int = 253,
    ) -> None:
        """Entries of a track_* block, read as keepalived's alloc_track_* does: a bad entry is
        dropped and a bad weight replaced, each with keepalived's warning."""
        for child in self.require_block(node):
            owner, name = target.name, child.keyword
            if any(entry.name == name for entry in entries):
                self.warning(child, f"({owner}) duplicate {block} {name} - ignoring")
                continue
            track = kind(name, location=location(child))
            try:
                if child.args:
                    track.weight, track.reverse = self.track_weight(
                        child, owner, block, default, limit
                    )
            except Invalid:
                continue
            entries.append(track)

    def track_weight(
        self, node: Node, owner: str, block: str, default: Any, limit: int = 253
    ) -> tuple[Any, bool]:
        name, words = node.keyword, node.args
        if words[0] != "weight":
            self.warning(node, f"({owner}) unknown {block} {name} option {words[0]} - ignoring")
            raise Ignored
        if len(words) == 1:
            self.warning(
                node, f"({owner}) weight without value specified for {block} {name} - ignoring"
            )
            raise Ignored
        try:
            weight = whole(-254, 254)(words[1])
        except ValueError:
            self.warning(
                node,
                f"({owner}) weight {words[1]} for {name} must be between [-{limit}..{limit}] "
                "inclusive. Ignoring...",
            )
            weight = default
        if limit == 253 and weight in (-254, 254):
            self.warning(node, f"({owner}) weight for {name} cannot be +/-254. Setting to +/-253")
            weight = 253 if weight > 0 else -253
        reverse = False
        if len(words) > 2 and words[2] in ("reverse", "noreverse"):
            reverse = words[2] == "reverse"
        elif len(words) > 2:
            self.warning(
                node, f"({owner}) unknown {block} {name} weight option {words[2]} - ignoring"
            )
        return weight, reverse

    def vrrp_instance(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        instance = VrrpInstance(name, location=location(node))
        # keepalived copies the global value when the block starts
        instance.down_timer_adverts = config.global_defs.vrrp_down_timer_adverts
        self.instance_keywords[id(instance)] = self.walk(node, "vrrp_instance", instance).explicit
        config.vrrp_instances.append(instance)

    # ---- virtual_server_group --------------------------------------------------------------

    def virtual_server_group(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        group = VirtualServerGroup(name, location=location(node))
        for child in self.require_block(node):
            try:
                group.entries.append(self.group_entry(child))
            except Invalid:
                continue
        if name in config.virtual_server_groups:
            first = config.virtual_server_groups[name].location
            self.error(node, f"virtual_server_group {name} already defined at {first}")
            return
        config.virtual_server_groups[name] = group

    def group_entry(self, node: Node) -> VirtualServerGroupEntry:
        entry = VirtualServerGroupEntry(location=location(node))
        if node.keyword == "fwmark":
            if not node.args or len(node.args) > 2:
                self.error(node, "fwmark: expected 'fwmark N [inet|inet6]'")
                raise Invalid
            entry.fwmark = self.integer(node, 1, UINT32_MAX, node.args[0])
            if len(node.args) == 2:
                self.choice(node, ("inet", "inet6"), node.args[1])
            return entry
        if node.is_block or len(node.args) > 1:
            self.error(
                node,
                "virtual_server_group: expected 'ADDRESS [PORT]' alone on a line, "
                f"got more after '{excerpt(node.keyword)}'",
            )
            raise Invalid
        entry.address, entry.last_address = self.address_range(node, node.keyword)
        if node.args:
            entry.port = self.port(node, node.args[0])
        return entry

    def address_range(self, node: Node, raw: str) -> tuple[str, Optional[str]]:
        """`A`, `A-B` (B replaces the last byte, or the last group for IPv6), `A-FULL`, `A/nn`."""
        if "/" in raw:
            try:
                network = ipaddress.ip_network(raw, strict=False)
            except ValueError:
                self.error(node, f"invalid address range '{excerpt(raw)}'")
                raise Invalid from None
            return str(network[0]), str(network[-1])
        if "-" not in raw:
            return self.address(node, raw), None
        first_text, last_text = raw.split("-", 1)
        first = ipaddress.ip_address(self.address(node, first_text))
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
                self.error(node, f"invalid address range '{excerpt(raw)}'")
                raise Invalid from None
        if last.version != first.version or last < first:
            self.error(node, f"invalid address range '{excerpt(raw)}'")
            raise Invalid
        return str(first), str(last)

    # ---- virtual_server --------------------------------------------------------------------

    def virtual_server_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "lvs_sched": self.lenient(
                "lvs_sched", exact(SCHEDULERS), "Invalid lvs_scheduler '{value}' - ignoring"
            ),
            "lvs_method": self.scalar("lvs_method", self.forwarding("virtual")),
            "persistence_timeout": self.persistence_timeout,
            "persistence_engine": self.scalar("persistence_engine", self.persistence_engine),
            "persistence_granularity": self.scalar("persistence_granularity", self.granularity),
            "protocol": self.lenient(
                "protocol", any_case(PROTOCOLS), "Unknown protocol {value} - ignoring"
            ),
            "delay_loop": self.lenient(
                "delay_loop",
                decimal(TIMER_MIN, TIMER_MAX),
                "virtual server delay loop '{value}' invalid - ignoring",
            ),
            "quorum": self.lenient(
                "quorum",
                whole(1, UINT32_MAX),
                "Quorum {value} must be in [1, 4294967295]. Setting to 1.",
                fallback=1,
            ),
            "hysteresis": self.lenient(
                "hysteresis",
                whole(0, UINT32_MAX),
                "Hysteresis {value} must be in [0, 4294967295] - ignoring",
            ),
            "quorum_up": self.scalar("quorum_up", self.script),
            "quorum_down": self.scalar("quorum_down", self.script),
            "sorry_server": self.sorry_server,
            "sorry_server_inhibit": self.sorry_server_inhibit,
            "sorry_server_lvs_method": self.sorry_server_lvs_method,
            "inhibit_on_failure": self.scalar("inhibit_on_failure", self.always_on),
            "alpha": self.scalar("alpha", self.always_on),
            "omega": self.scalar("omega", self.always_on),
            "ha_suspend": self.scalar("ha_suspend", self.bare_flag),
            "virtualhost": self.scalar("virtualhost", self.text),
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
            return self.value(node)
        method = node.args[0]
        if method not in LVS_METHODS:
            self.warning(
                node, f"PARSER : unknown [{method}] routing method for {server_type} server."
            )
            raise Ignored
        if len(node.args) > 1:
            options = " ".join(node.args[1:])
            if method == "TUN":
                self.error(node, f"lvs_method TUN {options}: not supported by lvs-agent")
            else:
                self.error(node, f"lvs_method {method}: unexpected '{options}'")
            raise Invalid
        return method

    def persistence_timeout(self, node: Node, server: VirtualServer) -> None:
        if not node.args and not node.is_block:
            server.persistence_timeout = DEFAULT_PERSISTENCE_TIMEOUT
            return
        self.lenient(
            "persistence_timeout",
            whole(1, MAX_PERSISTENCE_TIMEOUT),
            "persistence_timeout invalid",  # 0 included: not persistent, as in keepalived
        )(node, server)

    def persistence_engine(self, node: Node) -> str:
        """An IPVS persistence engine (the kernel has `sip`): keepalived cuts a longer name."""
        name = self.value(node)
        if len(name) > PE_NAME_MAX:
            self.warning(node, f"persistence_name too long, truncating - {name}")
        return name[:PE_NAME_MAX]

    def granularity(self, node: Node) -> str:
        raw = self.value(node)
        if "." in raw:
            try:
                network = ipaddress.IPv4Network(f"0.0.0.0/{raw}")
            except ValueError:
                self.error(node, f"persistence_granularity: '{raw}' is not a contiguous netmask")
                raise Invalid from None
            return str(network.netmask)
        return str(self.integer(node, 1, 128, raw))

    def sorry_server(self, node: Node, server: VirtualServer) -> None:
        address, port = self.address_and_port(node)
        server.sorry_server = SorryServer(address, port, location=location(node))

    def sorry_server_inhibit(self, node: Node, server: VirtualServer) -> None:
        inhibit = self.flag(node)
        if server.sorry_server is None:
            self.warning(node, "Ignoring sorry_server inhibit used before or without sorry_server")
            raise Ignored
        server.sorry_server.inhibit = inhibit

    def sorry_server_lvs_method(self, node: Node, server: VirtualServer) -> None:
        method = self.lvs_method(node, "sorry")
        if server.sorry_server is None:
            self.warning(node, "sorry_server forwarding used without sorry_server")
            raise Ignored
        server.sorry_server.lvs_method = method

    def ip_family(self, node: Node, server: VirtualServer) -> None:
        server.family = 4 if self.choice(node, ("inet", "inet6")) == "inet" else 6

    def scheduler_flag(self, node: Node, server: VirtualServer) -> None:
        self.bare_flag(node)
        if node.keyword not in server.scheduler_flags:
            server.scheduler_flags.append(node.keyword)

    def checker_default(self, node: Node, target: Any) -> None:
        """connect_timeout/retry/delay_before_retry/warmup given for the checkers below."""
        state = self.state.setdefault(id(target), BlockState())
        level = "virtual" if isinstance(target, VirtualServer) else "real"
        state.defaults[node.keyword] = self.checker_option(node, target, level)

    def checker_option(self, node: Node, target: Any, level: str) -> Any:
        parse, message = CHECKER_OPTION_RULES[level][node.keyword]
        return self.tolerate(node, target, parse, message, IGNORE)

    def address_and_port(self, node: Node) -> tuple[str, Optional[int]]:
        if node.is_block and node.keyword not in ("virtual_server", "real_server"):
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args or len(node.args) > 2:
            self.error(node, f"{node.keyword}: expected 'ADDRESS [PORT]'")
            raise Invalid
        address = self.address(node, node.args[0])
        port = self.port(node, node.args[1]) if len(node.args) == 2 else None
        return address, port

    def virtual_server(self, node: Node, config: Config) -> None:
        self.require_block(node)
        server = VirtualServer(location=location(node))
        args = node.args
        if len(args) == 2 and args[0] in ("fwmark", "group"):
            if args[0] == "fwmark":
                server.kind, server.fwmark = "fwmark", self.integer(node, 1, UINT32_MAX, args[1])
            else:
                server.kind, server.group = "group", args[1]
        elif args and args[0] not in ("fwmark", "group"):
            server.address, server.port = self.address_and_port(node)
            server.family = ipaddress.ip_address(server.address).version
        else:
            self.error(
                node, "virtual_server: expected 'ADDRESS [PORT]', 'fwmark N' or 'group NAME'"
            )
            raise Invalid
        state = self.walk(node, "virtual_server", server)
        if "lvs_sched" not in state.explicit:
            self.warning(
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
            self.warning(node, f"{name}: no protocol set - defaulting to UDP")
            server.protocol = "UDP"
        elif "protocol" in state.explicit and not by_address:
            where = state.explicit["protocol"]
            self.report(
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
            self.warning(node, f"{name}: no forwarding method set, setting default NAT")

    def hashed(self, node: Node, server: VirtualServer) -> None:
        """An old scheduler flag keepalived reads and never applies."""
        self.bare_flag(node)
        self.warning(node, "hashed only applies to sh scheduler - ignoring")

    def drop_foreign_scheduler_flags(self, server: VirtualServer, state: BlockState) -> None:
        """sh-port and friends only mean something to their scheduler; keepalived drops them."""
        kept = []
        for flag in server.scheduler_flags:
            owner = flag.split("-")[0]
            if owner in SCHED_FLAG_NAMES and server.lvs_sched != owner:
                where = state.explicit[flag]
                self.report(
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

    # ---- real_server and checkers ----------------------------------------------------------

    def real_server_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "weight": self.lenient(
                "weight",
                whole(0, INT32_MAX),
                "Real server weight {value} is outside range 0-2147483647",
            ),
            "lvs_method": self.scalar("lvs_method", self.forwarding("real")),
            "notify_up": self.scalar("notify_up", self.script),
            "notify_down": self.scalar("notify_down", self.script),
            "uthreshold": self.lenient(
                "uthreshold",
                whole(0, UINT32_MAX),
                "Invalid real_server uthreshold '{value}' - ignoring",
            ),
            "lthreshold": self.lenient(
                "lthreshold",
                whole(0, UINT32_MAX),
                "Invalid real_server lthreshold '{value}' - ignoring",
            ),
            "inhibit_on_failure": self.scalar("inhibit_on_failure", self.flag),
            "virtualhost": self.scalar("virtualhost", self.text),
            "alpha": self.scalar("alpha", self.flag),
            "delay_loop": self.lenient(
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
        self.require_block(node)
        address, port = self.address_and_port(node)
        real = RealServer(address, port, location=location(node))
        self.current_server_state = self.state.setdefault(id(server), BlockState())
        self.walk(node, "real_server", real)
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
            table.update(self.connection_table())
        return table

    def connection_table(self) -> dict[str, Handler]:
        """Where a checker connects to and from (also SMTP_CHECK's host blocks)."""
        return {
            "connect_ip": self.lenient(
                "connect_ip", ip_text, "Invalid connect_ip address {value} - ignoring"
            ),
            "connect_port": self.lenient(
                "connect_port", whole(1, 65535), "Invalid checker connect_port '{value}'"
            ),
            "bindto": self.lenient("bindto", ip_text, "Invalid bindto address {value} - ignoring"),
            "bind_port": self.lenient(
                "bind_port", whole(1, 65535), "Invalid checker bind_port '{value}'"
            ),
        }

    def checker_explicit(self, node: Node, checker: Checker) -> None:
        value = self.checker_option(node, checker, "checker")
        self.state.setdefault(id(checker), BlockState()).defaults[node.keyword] = value

    def checker(self, node: Node, real: RealServer) -> None:
        """A checker block: its kind's model, read with the kind's keywords."""
        self.require_block(node)
        kind = checkers.KINDS[node.keyword]
        checker = kind.model(kind=node.keyword, location=location(node))
        state = self.walk(node, node.keyword, checker)
        if not self.tainted(node):
            problems = kind.problems(checker)
            for severity, message in problems:
                self.report(
                    Problem(node.file, node.line, message, severity.replace(DROPPED, "warning"))
                )
            if any(severity == DROPPED for severity, _message in problems):
                return  # keepalived runs the real server without this checker
        real.checkers.append(checker)
        self.current_server_state.pending.append(
            PendingChecker(checker, state.defaults, real, self.state_of(real).defaults)
        )

    def state_of(self, target: Any) -> BlockState:
        return self.state.setdefault(id(target), BlockState())

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
        checks.check(config, problems.append, builder.instance_keywords, host_checks=host_checks)
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
        Builder(problems.append).tables["vrrp_instance"][block](node, instance)
    entries = getattr(instance, ENTRY_BLOCKS[block])
    if problems or not entries:  # what keepalived would correct is no entry to write either
        raise ConfigError(problems)
    return entries[0]
