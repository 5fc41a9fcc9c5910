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

from ..scripts import split_command
from . import checks
from .errors import ConfigError, Problem
from .keywords import DEPRECATED_ALIASES, IGNORED, KEEPALIVED_KEYWORDS
from .lexer import Lexer, Node, ReadError, Source, build_tree
from .model import (
    DEFAULT_PERSISTENCE_TIMEOUT,
    LVS_METHODS,
    PROTOCOLS,
    SCHEDULER_FLAGS,
    SCHEDULERS,
    Checker,
    Config,
    HttpCheck,
    Location,
    MiscCheck,
    RealServer,
    Script,
    ScriptUser,
    SorryServer,
    SyncGroup,
    TcpCheck,
    TrackInterface,
    TrackScript,
    Url,
    VirtualAddress,
    VirtualServer,
    VirtualServerGroup,
    VirtualServerGroupEntry,
    VrrpInstance,
    VrrpScript,
)
from .redact import excerpt, redact

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
INTEGER = re.compile(r"[+-]?[0-9]+")
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
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
    "use_vmac",
    "track_group",
)
# options that every checker resolves from its real server, then its virtual server
INHERITED_CHECKER_OPTIONS = ("connect_timeout", "retry", "delay_before_retry", "warmup")

Handler = Callable[[Node, Any], None]


class Invalid(Exception):
    """A value could not be read; the problem has already been reported."""


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
        self.tables: dict[str, dict[str, Handler]] = {
            "top": {
                "global_defs": self.global_defs,
                "vrrp_script": self.vrrp_script,
                "vrrp_sync_group": self.sync_group,
                "vrrp_instance": self.vrrp_instance,
                "virtual_server_group": self.virtual_server_group,
                "virtual_server": self.virtual_server,
            },
            "global_defs": self.global_defs_table(),
            "vrrp_script": self.vrrp_script_table(),
            "vrrp_sync_group": self.sync_group_table(),
            "vrrp_instance": self.vrrp_instance_table(),
            "authentication": {
                "auth_type": self.auth_type,
                "auth_pass": self.scalar("auth_pass", self.text),
            },
            "virtual_server": self.virtual_server_table(),
            "real_server": self.real_server_table(),
            "TCP_CHECK": self.checker_table(connection=True),
            "HTTP_GET": self.http_checker_table(),
            "SSL_GET": self.http_checker_table(),
            "MISC_CHECK": self.misc_checker_table(),
            "url": {
                "path": self.scalar("path", self.text),
                "digest": self.scalar("digest", self.digest),
                "status_code": self.status_code,
                "virtualhost": self.scalar("virtualhost", self.text),
            },
        }
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
            if handler is None and keyword in DEPRECATED_ALIASES:
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
            except Invalid:
                continue
        return state

    def unhandled(self, node: Node, block: str) -> None:
        keyword = node.keyword
        where = "at top level" if block == "top" else f"in {block}"
        if keyword in IGNORED:
            self.warning(node, f"{keyword}: not supported by lvs-agent, ignored")
        elif keyword == "real_server":
            self.error(node, "real_server outside a virtual_server")
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
        release(self.state)
        release(self.instance_keywords)

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
            self.error(
                node, f"{node.keyword}: '{node.args[0]}' is not one of on|off|true|false|yes|no"
            )
            raise Invalid
        return BOOL_WORDS[word]

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

    def digest(self, node: Node) -> str:
        raw = self.value(node)
        if len(raw) != 32 or any(c not in "0123456789abcdefABCDEF" for c in raw):
            self.error(node, f"digest: '{raw}' is not an MD5 digest (32 hex digits)")
            raise Invalid
        return raw.lower()

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

    # ---- global_defs -----------------------------------------------------------------------

    def global_defs_table(self) -> dict[str, Handler]:
        return {
            "router_id": self.scalar("router_id", self.text),
            "vrrp_version": self.ranged("vrrp_version", 2, 3),
            "vrrp_garp_master_delay": self.ranged("vrrp_garp_master_delay", 0, 86400),
            "vrrp_garp_master_repeat": self.ranged("vrrp_garp_master_repeat", 1, 255),
            "vrrp_garp_master_refresh": self.ranged("vrrp_garp_master_refresh", 0, 86400),
            "vrrp_garp_master_refresh_repeat": self.ranged(
                "vrrp_garp_master_refresh_repeat", 1, 255
            ),
            "vrrp_garp_interval": self.timer("vrrp_garp_interval", 0, 1),
            "vrrp_gna_interval": self.timer("vrrp_gna_interval", 0, 1),
            "vrrp_startup_delay": self.timer("vrrp_startup_delay", 0, 3600),
            "vrrp_mcast_group4": self.scalar("vrrp_mcast_group4", self.multicast_group(4)),
            "vrrp_mcast_group6": self.scalar("vrrp_mcast_group6", self.multicast_group(6)),
            "script_user": self.scalar("script_user", self.script_user),
            "enable_script_security": self.scalar("enable_script_security", self.bare_flag),
            "set_supplementary_groups": self.scalar("set_supplementary_groups", self.bare_flag),
            "vrrp_strict": self.scalar("vrrp_strict", self.bare_flag),
            "v3_checksum_as_v2": self.scalar("v3_checksum_as_v2", self.flag),
            "vrrp_check_unicast_src": self.scalar("vrrp_check_unicast_src", self.bare_flag),
        }

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

    def global_defs(self, node: Node, config: Config) -> None:
        self.require_block(node)
        config.global_defs.location = location(node)
        self.walk(node, "global_defs", config.global_defs)

    # ---- vrrp_script -----------------------------------------------------------------------

    def vrrp_script_table(self) -> dict[str, Handler]:
        return {
            "script": self.scalar("script", lambda node: self.command(node, self.value(node))),
            "interval": self.timer("interval", 0.001, 86400),
            "timeout": self.timer("timeout", 0.001, 86400),
            "weight": self.script_weight,
            "rise": self.ranged("rise", 1, INT32_MAX),
            "fall": self.ranged("fall", 1, INT32_MAX),
            "user": self.scalar("user", self.script_user),
            "init_fail": self.scalar("init_fail", self.bare_flag),
        }

    def script_weight(self, node: Node, script: VrrpScript) -> None:
        if not node.args:
            self.error(node, "weight: missing value")
            raise Invalid
        script.weight = self.integer(node, -253, 253, node.args[0])
        script.weight_reverse = self.reverse_option(node, node.args[1:])

    def reverse_option(self, node: Node, words: list[str]) -> bool:
        if not words:
            return False
        if len(words) == 1 and words[0] in ("reverse", "noreverse"):
            return words[0] == "reverse"
        self.error(node, f"{node.keyword}: unexpected '{' '.join(words)}' (expected reverse)")
        raise Invalid

    def vrrp_script(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        script = VrrpScript(name, location=location(node))
        state = self.walk(node, "vrrp_script", script)
        if not script.script and not self.tainted(node):
            self.error(node, f"vrrp_script {name}: no script given")
        if "timeout" not in state.explicit:
            script.timeout = script.interval
        if name in config.vrrp_scripts:
            first = config.vrrp_scripts[name].location
            self.error(node, f"vrrp_script {name} already defined at {first}")
            return
        config.vrrp_scripts[name] = script

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
            "track_script": self.track_scripts,
        }

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
        old_style = [
            c for c in bare if c.keyword not in table and c.keyword not in KEEPALIVED_KEYWORDS
        ]
        if old_style:
            # keepalived 1.x samples list the instances directly in the sync group
            self.warning(
                old_style[0],
                f"vrrp_sync_group {name}: instance names outside 'group {{ }}' are deprecated",
            )
            group.group.extend(c.keyword for c in old_style)
            node = Node(
                node.words, node.file, node.line, [c for c in children if c not in old_style]
            )
        self.walk(node, "vrrp_sync_group", group)
        config.sync_groups.append(group)

    # ---- vrrp_instance ---------------------------------------------------------------------

    def vrrp_instance_table(self) -> dict[str, Handler]:
        return {
            "state": self.scalar("state", lambda node: self.choice(node, ("MASTER", "BACKUP"))),
            "interface": self.scalar("interface", self.interface_name),
            "virtual_router_id": self.ranged("virtual_router_id", 1, 255),
            "priority": self.ranged("priority", 1, 255),
            "advert_int": self.timer("advert_int", 0.001, 4095),  # per version in checks
            "version": self.ranged("version", 2, 3),
            "nopreempt": self.scalar("nopreempt", self.bare_flag),
            "preempt": self.preempt,
            "preempt_delay": self.timer("preempt_delay", 0, 1000),
            "authentication": self.authentication,
            "unicast_src_ip": self.scalar("unicast_src_ip", self.address),
            "mcast_src_ip": self.scalar("mcast_src_ip", self.address),
            "unicast_peer": self.unicast_peers,
            "check_unicast_src": self.scalar("check_unicast_src", self.bare_flag),
            "virtual_ipaddress": self.virtual_addresses("virtual_ipaddresses"),
            "virtual_ipaddress_excluded": self.virtual_addresses("virtual_ipaddresses_excluded"),
            "track_interface": self.track_interfaces,
            "track_script": self.track_scripts,
            "dont_track_primary": self.scalar("dont_track_primary", self.bare_flag),
            "notify_master": self.scalar("notify_master", self.script),
            "notify_backup": self.scalar("notify_backup", self.script),
            "notify_fault": self.scalar("notify_fault", self.script),
            "notify_stop": self.scalar("notify_stop", self.script),
            "notify": self.scalar("notify", self.script),
            "garp_master_delay": self.ranged("garp_master_delay", 0, 86400),
            "garp_master_repeat": self.ranged("garp_master_repeat", 1, 255),
            "garp_master_refresh": self.ranged("garp_master_refresh", 0, 86400),
            "garp_master_refresh_repeat": self.ranged("garp_master_refresh_repeat", 1, 255),
            "v3_checksum_as_v2": self.checksum_style,
            "accept": self.scalar("accept", self.bare_flag),
            "no_accept": self.scalar("accept", lambda node: not self.bare_flag(node)),
            "native_ipv6": self.native_ipv6,
        }

    def interface_name(self, node: Node) -> str:
        name = self.value(node)
        if len(name) > 15 or "/" in name or name in (".", ".."):
            self.error(node, f"{node.keyword}: '{name}' is not a valid interface name")
            raise Invalid
        return name

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
        kind = self.choice(node, ("PASS", "AH"))
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
            self.error(node, f"invalid virtual address '{excerpt(raw)}'")
            raise Invalid from None
        vip = VirtualAddress(address, location=location(node))
        words = node.args
        index = 0
        while index < len(words):
            option = words[index]
            if option in ("dev", "label", "scope", "brd", "broadcast", "peer"):
                if index + 1 >= len(words):
                    self.error(node, f"{raw}: '{option}' needs a value")
                    raise Invalid
                self.vip_option(node, vip, option, words[index + 1])
                index += 2
            elif option == "no_track":
                vip.no_track = True
                index += 1
            elif option in VIP_UNSUPPORTED_OPTIONS:
                self.error(node, f"{raw}: option '{option}' not supported by lvs-agent")
                raise Invalid
            else:
                self.error(node, f"{raw}: unknown option '{excerpt(option)}'")
                raise Invalid
        return vip

    def vip_option(self, node: Node, vip: VirtualAddress, option: str, value: str) -> None:
        if option == "dev":
            vip.dev = value
        elif option == "label":
            vip.label = value
        elif option == "scope":
            if value not in VIP_SCOPES and not value.isdigit():
                self.error(node, f"{node.keyword}: unknown scope '{value}'")
                raise Invalid
            vip.scope = value
        elif option == "peer":
            vip.peer = self.address(node, value)
        else:
            if value != "+" and value != "-":
                value = self.address(node, value)
            vip.broadcast = value

    def track_interfaces(self, node: Node, target: Any) -> None:
        for child in self.require_block(node):
            track = TrackInterface(child.keyword, location=location(child))
            try:
                if child.args:
                    track.weight, track.reverse = self.track_weight(child, -253, 253)
            except Invalid:
                continue
            target.track_interfaces.append(track)

    def track_scripts(self, node: Node, target: Any) -> None:
        for child in self.require_block(node):
            track = TrackScript(child.keyword, location=location(child))
            try:
                if child.args:
                    track.weight, track.reverse = self.track_weight(child, -253, 253)
            except Invalid:
                continue
            target.track_scripts.append(track)

    def track_weight(self, node: Node, low: int, high: int) -> tuple[int, bool]:
        words = node.args
        if words[0] != "weight" or len(words) < 2:
            self.error(node, f"{node.keyword}: expected 'weight N', got '{excerpt(words[0])}'")
            raise Invalid
        weight = int(words[1], 10) if INTEGER.fullmatch(words[1]) else high + 1
        if not low <= weight <= high:
            self.error(node, f"{node.keyword}: weight must be between {low} and {high}")
            raise Invalid
        return weight, self.reverse_option(node, words[2:])

    def vrrp_instance(self, node: Node, config: Config) -> None:
        name = self.block_name(node)
        instance = VrrpInstance(name, location=location(node))
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
            "lvs_sched": self.scalar("lvs_sched", lambda node: self.choice(node, SCHEDULERS)),
            "lvs_method": self.scalar("lvs_method", self.lvs_method),
            "persistence_timeout": self.persistence_timeout,
            "persistence_granularity": self.scalar("persistence_granularity", self.granularity),
            "protocol": self.scalar("protocol", lambda node: self.choice(node, PROTOCOLS)),
            "delay_loop": self.timer("delay_loop", 0.001, 86400),
            "quorum": self.ranged("quorum", 1, UINT32_MAX),
            "hysteresis": self.ranged("hysteresis", 0, UINT32_MAX),
            "quorum_up": self.scalar("quorum_up", self.script),
            "quorum_down": self.scalar("quorum_down", self.script),
            "sorry_server": self.sorry_server,
            "sorry_server_inhibit": self.sorry_server_inhibit,
            "sorry_server_lvs_method": self.sorry_server_lvs_method,
            "inhibit_on_failure": self.scalar("inhibit_on_failure", self.flag),
            "alpha": self.scalar("alpha", self.flag),
            "omega": self.scalar("omega", self.flag),
            "ha_suspend": self.scalar("ha_suspend", self.bare_flag),
            "virtualhost": self.scalar("virtualhost", self.text),
            "ip_family": self.ip_family,
            "real_server": self.real_server,
        }
        for name in SCHEDULER_FLAGS:
            table[name] = self.scheduler_flag
        for name in INHERITED_CHECKER_OPTIONS:
            table[name] = self.checker_default
        return table

    def lvs_method(self, node: Node) -> str:
        if node.is_block or not node.args:
            return self.value(node)
        method = self.choice(node, LVS_METHODS, node.args[0])
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
        server.persistence_timeout = self.integer(node, 1, UINT32_MAX)

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
            self.error(node, "sorry_server_inhibit before or without sorry_server")
            raise Invalid
        server.sorry_server.inhibit = inhibit

    def sorry_server_lvs_method(self, node: Node, server: VirtualServer) -> None:
        method = self.lvs_method(node)
        if server.sorry_server is None:
            self.error(node, "sorry_server_lvs_method before or without sorry_server")
            raise Invalid
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
        state.defaults[node.keyword] = self.checker_option(node)

    def checker_option(self, node: Node) -> Any:
        if node.keyword == "retry":
            return self.integer(node, 0, UINT32_MAX)
        return self.number(node, 0, 86400)

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
        for pending in state.pending:
            self.resolve_checker(pending, server, state.defaults)
        self.drop_foreign_scheduler_flags(server, state)
        config.virtual_servers.append(server)

    def drop_foreign_scheduler_flags(self, server: VirtualServer, state: BlockState) -> None:
        """sh-port and friends only mean something to their scheduler; keepalived drops them."""
        kept = []
        for flag in server.scheduler_flags:
            owner = flag.split("-")[0]
            if owner in ("sh", "mh") and server.lvs_sched != owner:
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
            "weight": self.ranged("weight", 0, 65535),
            "lvs_method": self.scalar("lvs_method", self.lvs_method),
            "notify_up": self.scalar("notify_up", self.script),
            "notify_down": self.scalar("notify_down", self.script),
            "uthreshold": self.ranged("uthreshold", 0, UINT32_MAX),
            "lthreshold": self.ranged("lthreshold", 0, UINT32_MAX),
            "inhibit_on_failure": self.scalar("inhibit_on_failure", self.flag),
            "virtualhost": self.scalar("virtualhost", self.text),
            "alpha": self.scalar("alpha", self.flag),
            "delay_loop": self.timer("delay_loop", 0.001, 86400),
            "TCP_CHECK": self.checker(TcpCheck),
            "HTTP_GET": self.checker(HttpCheck),
            "SSL_GET": self.checker(HttpCheck),
            "MISC_CHECK": self.checker(MiscCheck),
        }
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
            table.update(
                {
                    "connect_ip": self.scalar("connect_ip", self.address),
                    "connect_port": self.scalar(
                        "connect_port", lambda n: self.port(n, self.value(n))
                    ),
                    "bindto": self.scalar("bindto", self.address),
                    "bind_port": self.scalar("bind_port", lambda n: self.port(n, self.value(n))),
                }
            )
        return table

    def http_checker_table(self) -> dict[str, Handler]:
        table = self.checker_table(connection=True)
        table.update(
            {
                "url": self.url,
                "http_protocol": self.scalar(
                    "http_protocol", lambda node: self.choice(node, ("1.0", "1.0C", "1.1"))
                ),
                "virtualhost": self.scalar("virtualhost", self.text),
            }
        )
        return table

    def misc_checker_table(self) -> dict[str, Handler]:
        table = self.checker_table(connection=False)
        table.update(
            {
                "misc_path": self.scalar(
                    "misc_path", lambda node: self.command(node, self.value(node))
                ),
                "misc_timeout": self.timer("misc_timeout", 0.001, 86400),
                "misc_dynamic": self.scalar("misc_dynamic", self.bare_flag),
                "user": self.scalar("user", self.script_user),
            }
        )
        return table

    def checker_explicit(self, node: Node, checker: Checker) -> None:
        value = (
            self.number(node, 0.001, 86400)
            if node.keyword == "delay_loop"
            else self.checker_option(node)
        )
        self.state.setdefault(id(checker), BlockState()).defaults[node.keyword] = value

    def checker(self, kind: type) -> Handler:
        def handle(node: Node, real: RealServer) -> None:
            self.require_block(node)
            checker = kind(location=location(node))
            if isinstance(checker, HttpCheck):
                checker.kind = node.keyword
            state = self.walk(node, node.keyword, checker)
            if isinstance(checker, HttpCheck) and not checker.urls and not self.tainted(node):
                self.error(node, f"{node.keyword}: at least one url {{ }} is required")
            if isinstance(checker, MiscCheck) and not checker.misc_path and not self.tainted(node):
                self.error(node, "MISC_CHECK: misc_path is required")
            real.checkers.append(checker)
            self.current_server_state.pending.append(
                PendingChecker(checker, state.defaults, real, self.state_of(real).defaults)
            )

        return handle

    def state_of(self, target: Any) -> BlockState:
        return self.state.setdefault(id(target), BlockState())

    def url(self, node: Node, checker: HttpCheck) -> None:
        self.require_block(node)
        url = Url(location=location(node))
        self.walk(node, "url", url)
        if not url.digest and not url.status_codes:
            url.status_codes = [(200, 299)]
        checker.urls.append(url)

    def status_code(self, node: Node, url: Url) -> None:
        if not node.args or node.is_block:
            self.value(node)
        for word in node.args:
            low_text, _dash, high_text = word.partition("-")
            low = self.integer(node, 100, 599, low_text)
            high = self.integer(node, low, 599, high_text) if high_text else low
            url.status_codes.append((low, high))

    def resolve_checker(self, pending: PendingChecker, server: VirtualServer, vs_defaults: dict):
        """Fill each inherited option: checker, else real server, else virtual server."""
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
    if any(problem.severity == "error" for problem in problems) or not entries:
        raise ConfigError(problems)
    return entries[0]
