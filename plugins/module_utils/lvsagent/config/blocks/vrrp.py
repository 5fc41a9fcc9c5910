"""VRRP: vrrp_instance and vrrp_sync_group, and the static addresses, routes and rules
(keepalived reads the same lines in an instance's virtual_ipaddress, virtual_routes, ...)."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, Callable

from ..errors import Invalid, Problem
from ..keywords import IGNORED, KEEPALIVED_KEYWORDS
from ..lexer import Node
from ..lvs_globals import LvsGlobals
from ..model import (
    Config,
    GarpGroup,
    StaticTrackGroup,
    SyncGroup,
    TrackInterface,
    TrackScript,
    VirtualAddress,
    VrrpInstance,
)
from ..redact import excerpt
from ..routing import read_route, read_rule
from ..values import (
    GARP_DELAY_MAX,
    INT32_MAX,
    UINT32_MAX,
    UINT_TIMER_MAX,
    Handler,
    Ignored,
    Reader,
    decimal,
    exact,
    location,
    whole,
)
from . import ParseState

VIP_SCOPES = ("site", "link", "host", "nowhere", "global")
VIP_UNSUPPORTED_OPTIONS = (
    "home",
    "-nodad",
    "nodad",
    "mngtmpaddr",
    "noprefixroute",
    "autojoin",
    "preferred_lft",
)


class VrrpBlocks:
    """vrrp_instance, vrrp_sync_group, track_group, static_ipaddress, static_routes and
    static_rules."""

    def __init__(self, read: Reader, state: ParseState):
        self.read = read
        self.state = state

    def top_level(self) -> dict[str, Handler]:
        return {
            "vrrp_sync_group": self.sync_group,
            "vrrp_instance": self.vrrp_instance,
            "track_group": self.static_track_group,
            "garp_group": self.garp_group,
            "static_ipaddress": self.static_addresses,
            "static_routes": self.routing_lines("static_routes", self.static_route_line),
            "static_rules": self.routing_lines("static_rules", self.static_rule_line),
        }

    def tables(self) -> dict[str, dict[str, Handler]]:
        return {
            "vrrp_sync_group": self.sync_group_table(),
            "track_group": {"group": self.static_track_group_members},
            "garp_group": {
                "garp_interval": self.read.lenient(
                    "garp_interval",
                    decimal(0, UINT_TIMER_MAX),
                    "garp_group garp_interval '{value}' invalid",
                ),
                "gna_interval": self.read.lenient(
                    "gna_interval",
                    decimal(0, UINT_TIMER_MAX),
                    "garp_group gna_interval '{value}' invalid",
                ),
                "interface": self.garp_group_interface,
                "interfaces": self.garp_group_interfaces,
            },
            "vrrp_instance": self.vrrp_instance_table(),
            "authentication": {
                "auth_type": self.auth_type,
                "auth_pass": self.read.scalar("auth_pass", self.read.text),
            },
        }

    def vrrp_instance(self, node: Node, config: Config) -> None:
        name = self.read.block_name(node)
        instance = VrrpInstance(name, location=location(node))
        # keepalived copies the global value when the block starts
        instance.down_timer_adverts = config.global_defs.vrrp_down_timer_adverts
        self.state.instance_keywords[id(instance)] = self.read.walk(
            node, "vrrp_instance", instance
        ).explicit
        config.vrrp_instances.append(instance)

    def vrrp_instance_table(self) -> dict[str, Handler]:
        return {
            "state": self.read.lenient(
                "state",
                exact(("MASTER", "BACKUP")),
                "({name}) unknown state '{value}', defaulting to BACKUP",
                fallback="BACKUP",
            ),
            "interface": self.read.scalar("interface", self.read.interface_name),
            "lvs_sync_daemon_interface": LvsGlobals(
                self.read, self.state.config
            ).lvs_sync_daemon_interface,
            "virtual_router_id": self.read.ranged("virtual_router_id", 1, 255),
            "priority": self.read.lenient(
                "priority",
                whole(1, 255),
                "({name}) Priority not valid! must be between 1 & 255. Using default 100",
                fallback=100,
            ),
            "advert_int": self.read.lenient(  # rounded and capped per version in checks
                "advert_int",
                decimal(0.01, 255),
                "({name}) Advert interval ({value}) not valid! Must be > 0 - ignoring",
            ),
            "version": self.read.lenient(
                "version", whole(2, 3), "({name}): Version must be either 2 or 3"
            ),
            "nopreempt": self.read.scalar("nopreempt", self.read.bare_flag),
            "preempt": self.preempt,
            "preempt_delay": self.read.lenient(
                "preempt_delay",
                decimal(0, 1000),
                "({name}) Preempt_delay not valid! must be between 0-1000",
                fallback=0.0,
            ),
            "authentication": self.authentication,
            "unicast_src_ip": self.read.scalar("unicast_src_ip", self.read.address),
            "mcast_src_ip": self.read.scalar("mcast_src_ip", self.read.address),
            "unicast_peer": self.unicast_peers,
            "unicast_ttl": self.read.lenient(
                "unicast_ttl",
                whole(0, 255),
                "({name}): TTL '{value}' not valid - must be between 0 & 255",
            ),
            "check_unicast_src": self.read.scalar("check_unicast_src", self.read.bare_flag),
            "virtual_ipaddress": self.virtual_addresses("virtual_ipaddresses"),
            "virtual_ipaddress_excluded": self.virtual_addresses("virtual_ipaddresses_excluded"),
            "virtual_routes": self.routing_lines("virtual_routes", read_route),
            "virtual_rules": self.routing_lines("virtual_rules", self.rule_line),
            "track_interface": self.track_interfaces,
            "track_script": self.tracked_names("track_scripts", "track_script"),
            "track_file": self.tracked_names("track_files", "track_file", 254),
            "track_process": self.tracked_names("track_processes", "track_process", 254),
            "dont_track_primary": self.read.scalar("dont_track_primary", self.read.bare_flag),
            "notify_master": self.read.scalar("notify_master", self.read.script),
            "notify_backup": self.read.scalar("notify_backup", self.read.script),
            "notify_fault": self.read.scalar("notify_fault", self.read.script),
            "notify_stop": self.read.scalar("notify_stop", self.read.script),
            "notify": self.read.scalar("notify", self.read.script),
            "garp_master_delay": self.read.lenient(
                "garp_master_delay",
                whole(0, GARP_DELAY_MAX),
                "({name}): garp_master_delay '{value}' invalid - ignoring",
            ),
            "garp_master_repeat": self.read.repeat_count(
                "garp_master_repeat", "({name}): garp_master_repeat"
            ),
            "garp_master_refresh": self.read.lenient(
                "garp_master_refresh",
                whole(0, UINT32_MAX),
                "({name}): Invalid garp_master_refresh '{value}' - ignoring",
                fallback=0,
            ),
            "garp_master_refresh_repeat": self.read.repeat_count(
                "garp_master_refresh_repeat", "({name}): garp_master_refresh_repeat"
            ),
            "v3_checksum_as_v2": self.checksum_style,
            "accept": self.read.scalar("accept", self.read.bare_flag),
            "no_accept": self.read.scalar("accept", lambda node: not self.read.bare_flag(node)),
            "native_ipv6": self.native_ipv6,
            "use_vmac": self.use_vmac,
            "vmac_xmit_base": self.read.scalar("vmac_xmit_base", self.read.bare_flag),
            "promote_secondaries": self.read.scalar("promote_secondaries", self.read.bare_flag),
            "down_timer_adverts": self.read.lenient(
                "down_timer_adverts",
                whole(1, 100),
                "({name}): Invalid down_timer_adverts [1:100] '{value}'",
            ),
            "garp_lower_prio_delay": self.read.lenient(
                "garp_lower_prio_delay",
                whole(0, GARP_DELAY_MAX),
                "({name}): garp_lower_prio_delay '{value}' invalid - ignoring",
            ),
            "garp_lower_prio_repeat": self.read.lenient(
                "garp_lower_prio_repeat",
                whole(0, INT32_MAX),
                "({name}): Invalid garp_lower_prio_repeat '{value}'",
            ),
            "lower_prio_no_advert": self.read.scalar("lower_prio_no_advert", self.read.flag),
            "higher_prio_send_advert": self.read.scalar("higher_prio_send_advert", self.read.flag),
        }

    def use_vmac(self, node: Node, instance: VrrpInstance) -> None:
        """use_vmac [NAME]: the macvlan's name is checked as keepalived's dev_name_valid; a MAC
        address (a word with ':') instead of the VRRP one is refused."""
        if node.is_block:
            self.read.error(node, "use_vmac does not take a block")
            raise Invalid
        if any(":" in word for word in node.args[:2]):
            self.read.error(node, "use_vmac with a MAC address: not supported by lvs-agent")
            raise Invalid
        if len(node.args) > 1:
            self.read.extra_arguments(node, node.args[1:])
        instance.use_vmac = True
        if not node.args:
            return
        name = node.args[0]
        if len(name) > 15 or name in (".", "..") or "/" in name:
            self.read.warning(
                node, f"VMAC interface name '{name}' too long or invalid characters - ignoring"
            )
            return
        for other in self.state.config.vrrp_instances:
            if other.vmac_name == name:
                self.read.warning(
                    node,
                    f"({instance.name}) VRRP instance {other.name} is already using {name} - "
                    "ignoring name",
                )
                return
        instance.vmac_name = name

    def preempt(self, node: Node, instance: VrrpInstance) -> None:
        self.read.bare_flag(node)
        self.read.warning(node, "preempt is deprecated (preempting is the default)")
        instance.nopreempt = False

    def native_ipv6(self, node: Node, instance: VrrpInstance) -> None:
        self.read.bare_flag(node)
        self.read.warning(
            node, "native_ipv6 is deprecated: the family comes from the virtual addresses"
        )

    def checksum_style(self, node: Node, instance: VrrpInstance) -> None:
        instance.checksum_with_pseudo_header = not self.read.flag(node)

    def authentication(self, node: Node, instance: VrrpInstance) -> None:
        self.read.require_block(node)
        self.read.walk(node, "authentication", instance)

    def auth_type(self, node: Node, instance: VrrpInstance) -> None:
        kind = self.read.value(node)
        if kind not in ("PASS", "AH"):
            self.read.warning(node, f"({instance.name}) unknown authentication type '{kind}'")
            raise Ignored
        if kind == "AH":
            self.read.error(node, "auth_type AH: not supported by lvs-agent")
            raise Invalid
        instance.auth_type = kind

    def unicast_peers(self, node: Node, instance: VrrpInstance) -> None:
        for child in self.read.require_block(node):
            if child.args:
                self.read.error(
                    child,
                    f"unicast_peer option '{excerpt(child.args[0])}': not supported by lvs-agent",
                )
                continue
            try:
                peer = dataclasses.replace(child, words=["unicast_peer", child.keyword])
                instance.unicast_peers.append(self.read.address(peer))
            except Invalid:
                continue

    def virtual_addresses(self, attribute: str) -> Handler:
        def handle(node: Node, instance: VrrpInstance) -> None:
            addresses = getattr(instance, attribute)
            for child in self.read.require_block(node):
                try:
                    addresses.append(self.virtual_address(child))
                except Invalid:
                    continue

        return handle

    def virtual_address(self, node: Node, static: bool = False) -> VirtualAddress:
        """A virtual_ipaddress line; `static`: a static_ipaddress line, which alone takes
        track_group (elsewhere keepalived's unknown entry, as the group name after it)."""
        raw = node.keyword
        try:
            address = ipaddress.ip_interface(raw)
        except ValueError:
            self.read.warning(node, f"VRRP parsed invalid IP {excerpt(raw)}. skipping IP...")
            raise Ignored from None
        vip = VirtualAddress(address, location=location(node))
        words = node.args
        index = 0
        while index < len(words):
            option = words[index]
            if option in ("dev", "label", "scope", "brd", "broadcast", "peer"):
                if index + 1 >= len(words):
                    self.read.warning(node, f"No {option} parameter specified for {raw}")
                    raise Ignored
                self.vip_option(node, vip, option, words[index + 1])
                index += 2
            elif option in ("no_track", "use_vmac"):
                setattr(vip, option, True)
                index += 1
            elif static and option == "track_group":
                if index + 1 >= len(words):
                    self.read.warning(node, f"No {option} parameter specified for {raw}")
                    raise Ignored
                if not self.static_track_group_option(node, vip, words[index + 1]):
                    break  # keepalived stops reading the line at a second track_group
                index += 2
            elif option in VIP_UNSUPPORTED_OPTIONS:
                self.read.error(node, f"{raw}: option '{option}' not supported by lvs-agent")
                raise Invalid
            else:
                self.read.warning(
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
                self.read.warning(
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
                self.read.warning(
                    node, f"Invalid scope '{value}' specified for {node.keyword} - ignoring"
                )
                return
            vip.scope = value
        elif option == "peer":
            vip.peer = self.read.address(node, value)
        else:
            if value != "+" and value != "-":
                value = self.read.address(node, value)
            vip.broadcast = value

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
        for child in self.read.require_block(node):
            owner, name = target.name, child.keyword
            if any(entry.name == name for entry in entries):
                self.read.warning(child, f"({owner}) duplicate {block} {name} - ignoring")
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
            self.read.warning(
                node, f"({owner}) unknown {block} {name} option {words[0]} - ignoring"
            )
            raise Ignored
        if len(words) == 1:
            self.read.warning(
                node, f"({owner}) weight without value specified for {block} {name} - ignoring"
            )
            raise Ignored
        try:
            weight = whole(-254, 254)(words[1])
        except ValueError:
            self.read.warning(
                node,
                f"({owner}) weight {words[1]} for {name} must be between [-{limit}..{limit}] "
                "inclusive. Ignoring...",
            )
            weight = default
        if limit == 253 and weight in (-254, 254):
            self.read.warning(
                node, f"({owner}) weight for {name} cannot be +/-254. Setting to +/-253"
            )
            weight = 253 if weight > 0 else -253
        reverse = False
        if len(words) > 2 and words[2] in ("reverse", "noreverse"):
            reverse = words[2] == "reverse"
        elif len(words) > 2:
            self.read.warning(
                node, f"({owner}) unknown {block} {name} weight option {words[2]} - ignoring"
            )
        return weight, reverse

    def sync_group(self, node: Node, config: Config) -> None:
        name = self.read.block_name(node)
        group = SyncGroup(name, location=location(node))
        table = self.read.tables["vrrp_sync_group"]
        children = node.children or []
        bare = [c for c in children if not c.unsupported and not c.args and not c.is_block]
        known = table.keys() | KEEPALIVED_KEYWORDS | IGNORED
        old_style = [c for c in bare if c.keyword not in known]
        for child in old_style:
            # keepalived 1.x listed the instances directly in the group; 2.x ignores them
            self.read.warning(
                child,
                f"Unknown keyword '{excerpt(child.keyword)}' - instance names belong in "
                "'group { }'; ignored, as keepalived does",
            )
        node = Node(node.words, node.file, node.line, [c for c in children if c not in old_style])
        self.read.walk(node, "vrrp_sync_group", group)
        if not group.group and not self.read.tainted(node):
            self.read.warning(node, f"Sync group {name} has no virtual router(s). removing")
            return
        config.sync_groups.append(group)

    def sync_group_table(self) -> dict[str, Handler]:
        return {
            "group": self.sync_group_members,
            "notify_master": self.read.scalar("notify_master", self.read.script),
            "notify_backup": self.read.scalar("notify_backup", self.read.script),
            "notify_fault": self.read.scalar("notify_fault", self.read.script),
            "notify_stop": self.read.scalar("notify_stop", self.read.script),
            "notify": self.read.scalar("notify", self.read.script),
            "track_interface": self.track_interfaces,
            "track_script": self.tracked_names("track_scripts", "track_script"),
            "track_file": self.tracked_names("track_files", "track_file", 254),
            "track_process": self.tracked_names("track_processes", "track_process", 254),
            "sync_group_tracking_weight": self.read.scalar("tracking_weight", self.read.bare_flag),
            "global_tracking": self.global_tracking,
        }

    def global_tracking(self, node: Node, group: SyncGroup) -> None:
        self.read.warning(
            node,
            f"({group.name}) global_tracking is deprecated. Use track_interface/script/file on "
            "the sync group",
        )
        group.tracking_weight = self.read.bare_flag(node)

    def sync_group_members(self, node: Node, group: SyncGroup) -> None:
        for child in self.read.require_block(node):
            if child.args or child.is_block:
                self.read.error(
                    child,
                    "group: expected a vrrp_instance name alone on a line, "
                    f"got more after '{excerpt(child.keyword)}'",
                )
                continue
            group.group.append(child.keyword)

    def static_addresses(self, node: Node, config: Config) -> None:
        """static_ipaddress: virtual_ipaddress lines; no dev is keepalived's default_interface."""
        for child in self.read.require_block(node):
            try:
                vip = self.virtual_address(child, static=True)
            except Invalid:
                continue
            if vip.dev is None:
                self.state.default_interface = (
                    self.state.default_interface or self.state.config.global_defs.default_interface
                )
                vip.dev = self.state.default_interface
            config.static_addresses.append(vip)

    def routing_lines(self, attribute: str, read: Callable) -> Handler:
        """static_/virtual_ routes and rules: each line read by config/routing.py."""

        def handle(node: Node, target: Any) -> None:
            for child in self.read.require_block(node):
                if child.is_block:
                    self.read.error(child, f"{node.keyword}: an entry does not take a block")
                    continue

                def say(severity: str, message: str, child: Node = child) -> None:
                    self.read.report(Problem(child.file, child.line, message, severity))

                entry = read(child.words, say)
                if entry is not None:
                    getattr(target, attribute).append(
                        dataclasses.replace(entry, location=location(child))
                    )

        return handle

    def rule_line(self, words: list[str], say: Callable) -> Any:
        """keepalived numbers the rules given no preference over the whole configuration."""
        return read_rule(words, say, self.state.rule_priorities)

    def static_route_line(self, words: list[str], say: Callable) -> Any:
        return read_route(words, say, self.state.config.static_track_groups)

    def static_rule_line(self, words: list[str], say: Callable) -> Any:
        return read_rule(
            words, say, self.state.rule_priorities, self.state.config.static_track_groups
        )

    # ---- garp_group (pacing of gratuitous ARPs / NAs) --------------------------------------

    def garp_group(self, node: Node, config: Config) -> None:
        """keepalived's garp_group: a group that sets no interval is dropped with its message."""
        self.read.require_block(node)
        group = GarpGroup(location=location(node))
        config.garp_groups.append(group)
        self.read.walk(node, "garp_group", group)
        if group.garp_interval is None and group.gna_interval is None:
            self.read.warning(node, "garp_group does not have any delay set - removing")
            config.garp_groups.remove(group)

    def garp_group_interface(self, node: Node, group: GarpGroup) -> None:
        self.add_garp_interface(node, group, self.read.value(node))

    def garp_group_interfaces(self, node: Node, group: GarpGroup) -> None:
        children = self.read.require_block(node)
        if not children:
            self.read.warning(node, "Warning - empty garp_group interfaces block")
        for child in children:
            for name in child.words:
                self.add_garp_interface(child, group, name)

    def add_garp_interface(self, node: Node, group: GarpGroup, name: str) -> None:
        """An interface belongs to one garp_group: the first that names it."""
        if any(name in other.interfaces for other in self.state.config.garp_groups):
            self.read.warning(node, f"garp_group already specified for {name} - ignoring")
            return
        group.interfaces[name] = location(node)

    # ---- track_group (static tracking) ---------------------------------------------------

    def static_track_group(self, node: Node, config: Config) -> None:
        """keepalived's static_track_group_handler: a group without one name, or of a name
        already defined, is skipped with a message."""
        self.read.require_block(node)
        if len(node.args) != 1:
            self.read.warning(node, "track_group must have a name - skipping")
            return
        name = node.args[0]
        if name in config.static_track_groups:
            self.read.warning(node, f"track_group {name} already defined")
            return
        group = StaticTrackGroup(name, location=location(node))
        config.static_track_groups[name] = group
        self.read.walk(node, "track_group", group)

    def static_track_group_members(self, node: Node, group: StaticTrackGroup) -> None:
        """Every word of the block is an instance name (keepalived's read_value_block); a
        second non-empty list is skipped, keepalived's message naming a sync group."""
        if group.group:
            self.read.warning(node, f"Group list already specified for sync group {group.name}")
            return
        for child in self.read.require_block(node):
            group.group.extend(child.words)
        if not group.group:
            self.read.warning(node, f"Warning - track group {group.name} has empty group block")

    def static_track_group_option(self, node: Node, vip: VirtualAddress, name: str) -> bool:
        """`track_group NAME` on a static address: False for a second one (the rest of the
        line is not read)."""
        if vip.track_group is not None:
            self.read.warning(node, f"track_group {name} is a duplicate")
            return False
        if name in self.state.config.static_track_groups:
            vip.track_group = name
        else:
            self.read.warning(node, f"track_group {name} not found")
        return True
