"""Checks across objects, and keepalived's completion rules for VRRP instances.

keepalived completes each instance after reading it (version from the family, priority from
the state, clearing nopreempt for an initial MASTER...). The same rules are applied here, with
keepalived's warnings, so the model the engines get is the one keepalived would run.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from ..lvs.checkers.file import FileCheck
from ..lvs.checkers.misc import MiscCheck
from ..nft import ruleset as nft_ruleset
from ..scripts import (
    KEEPALIVED_SCRIPT_USER,
    Identity,
    program_path,
    resolve_identity,
    root_identity,
    split_command,
    unsafe_script,
)
from .errors import Problem
from .model import (
    DEFAULT_PERSISTENCE_TIMEOUT,
    DOWN_TIMER_ADVERTS,
    FIFO_PREFIXES,
    Config,
    Location,
    LvsTimeouts,
    RealServer,
    ScriptUser,
    SyncGroup,
    VirtualServer,
    VrrpInstance,
)

SYS_CLASS_NET = "/sys/class/net"
PRIORITY_OWNER = 255
MAX_V2_ADVERT_INT = 255
MAX_V3_ADVERT_INT = 40.95
AUTH_PASS_LENGTH = 8
VRRP_NOTIFY = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")
FIFO_SCRIPTS = tuple(f"{prefix}notify_fifo_script" for prefix in FIFO_PREFIXES)

Report = Callable[[Problem], None]


@dataclass(frozen=True)
class TrackedKind:
    """One kind of tracked object: the entries' attribute (of VrrpInstance and SyncGroup),
    keyword, and the Config attribute holding the blocks by name (None for interfaces)."""

    attribute: str
    keyword: str
    blocks: Optional[str]
    # keepalived's words: "Remove ... config"; "... with member having priority 255 - ..."
    remove: str = "vrrp instance"
    unweight: str = "clearing weight"


TRACKED_KINDS = (
    TrackedKind("track_interfaces", "track_interface", None, "vrrp instance or sync group"),
    TrackedKind("track_scripts", "track_script", "vrrp_scripts"),
    TrackedKind("track_files", "track_file", "track_files", unweight="setting weight 0"),
    TrackedKind("track_processes", "track_process", "track_processes", unweight="setting weight 0"),
)


class Completion:
    """Completes a built Config as keepalived does and runs every check across its objects,
    reporting through `report`."""

    def __init__(self, config: Config, report: Report, instance_keywords: dict):
        self.config = config
        self.report = report
        self.instance_keywords = instance_keywords

    def error(self, where: Location, message: str) -> None:
        self.report(Problem(where.file, where.line, message, "error"))

    def warning(self, where: Location, message: str) -> None:
        self.report(Problem(where.file, where.line, message, "warning"))

    def keyword_location(self, instance: VrrpInstance, keyword: str) -> Location:
        return self.instance_keywords.get(id(instance), {}).get(keyword, instance.location)

    # ---- VRRP ------------------------------------------------------------------------------

    def complete_instance(self, instance: VrrpInstance) -> None:
        given = self.instance_keywords.get(id(instance), {})
        name = f"({instance.name})"
        here = instance.location
        if "virtual_router_id" not in given:
            self.error(here, f"{name} virtual_router_id is required")
        if instance.interface is None and not instance.unicast_peers:
            self.error(here, f"{name} interface is required (unless unicast peers are given)")
        self.set_family(instance)
        self.set_version(instance, given)
        if "v3_checksum_as_v2" not in given:
            instance.checksum_with_pseudo_header = not self.config.global_defs.v3_checksum_as_v2
        strict = self.config.global_defs.vrrp_strict
        if not instance.virtual_ipaddresses:
            if instance.version == 3 or instance.family == 6 or strict:
                self.error(here, f"{name} No VIP specified; at least one is required")
            else:
                self.warning(here, f"{name} No VIP specified")
        if "priority" not in given and instance.state == "MASTER":
            instance.priority = PRIORITY_OWNER
        if "state" not in given and instance.priority == PRIORITY_OWNER:
            instance.state = "MASTER"
        if strict and (instance.state == "MASTER") != (instance.priority == PRIORITY_OWNER):
            self.warning(here, f"{name} State MASTER must match being address owner")
            instance.state = "MASTER" if instance.priority == PRIORITY_OWNER else "BACKUP"
        if strict and instance.accept and instance.version == 2:
            self.warning(
                given.get("accept", here),
                f"{name} warning - accept mode for VRRP version 2 does not comply with RFC3768"
                " - resetting",
            )
            instance.accept = False
        if strict and instance.down_timer_adverts != DOWN_TIMER_ADVERTS:
            self.warning(
                self.keyword_location(instance, "down_timer_adverts"),
                f"{name} down_timer_adverts is incompatible with strict mode - resetting",
            )
            instance.down_timer_adverts = DOWN_TIMER_ADVERTS
        if strict and instance.garp_lower_prio_repeat:
            self.warning(
                self.keyword_location(instance, "garp_lower_prio_repeat"),
                f"{name} Strict mode requires no repeat garps. resetting",
            )
            instance.garp_lower_prio_repeat = 0
        if strict and instance.garp_lower_prio_delay:
            self.warning(
                self.keyword_location(instance, "garp_lower_prio_delay"),
                f"{name} Strict mode requires no repeat garp delay. resetting",
            )
            instance.garp_lower_prio_delay = 0
        if strict and instance.lower_prio_no_advert is False:
            self.warning(
                self.keyword_location(instance, "lower_prio_no_advert"),
                f"{name} Strict mode requires no lower priority advert - resetting",
            )
            instance.lower_prio_no_advert = True
        if strict and instance.higher_prio_send_advert:
            self.warning(
                self.keyword_location(instance, "higher_prio_send_advert"),
                f"{name} strict mode requires higher_prio_send_advert to be clear - resetting",
            )
            instance.higher_prio_send_advert = False
        self.complete_authentication(instance, given)
        self.complete_preemption(instance, given)
        self.complete_advert_int(instance, given)
        self.complete_vmac(instance)
        if instance.unicast_ttl is not None and not instance.unicast_peers:
            self.error(
                self.keyword_location(instance, "unicast_ttl"),
                f"{name} unicast_ttl without unicast_peer: not supported by lvs-agent "
                "(keepalived resets it to 0 and sends its multicast adverts with TTL 0)",
            )
        if instance.check_unicast_src and not instance.unicast_peers:
            where = self.keyword_location(instance, "check_unicast_src")
            self.warning(where, f"{name} check_unicast_src has no effect without unicast_peer")
        if (
            instance.family == 6
            and not instance.unicast_peers
            and instance.virtual_ipaddresses
            and not instance.virtual_ipaddresses[0].address.ip.is_link_local
        ):
            where = instance.virtual_ipaddresses[0].location
            self.warning(where, f"{name} the first IPv6 VIP address must be link local")

    def complete_vmac(self, instance: VrrpInstance) -> None:
        """keepalived's vrrp_end_handler and vrrp_complete_instance on use_vmac, in order."""
        name = f"({instance.name})"
        where = self.keyword_location(instance, "use_vmac")
        if instance.use_vmac and instance.unicast_peers:
            if instance.interface is None:
                self.warning(
                    where,
                    f"{name}: Cannot use VMAC/ipvlan with unicast and no interface - clearing "
                    "use_vmac",
                )
                instance.use_vmac, instance.vmac_name = False, None
            elif not instance.vmac_xmit_base:
                self.warning(
                    where, f"{name} unicast with use_vmac requires vmac_xmit_base - setting"
                )
                instance.vmac_xmit_base = True
        if instance.promote_secondaries and instance.use_vmac:
            self.warning(
                self.keyword_location(instance, "promote_secondaries"),
                f"{name} promote_secondaries is automatically set for vmacs - ignoring",
            )
            instance.promote_secondaries = False
        base = self.keyword_location(instance, "vmac_xmit_base")
        if instance.vmac_xmit_base and not instance.use_vmac:
            self.warning(base, f"{name} vmac_xmit_base is only valid with a vmac")
            instance.vmac_xmit_base = False
        if instance.vmac_xmit_base and self.config.global_defs.vrrp_strict:
            self.warning(base, f"{name} xmit_base is incompatible with strict mode - resetting")
            instance.vmac_xmit_base = False
        for vip in instance.virtual_ipaddresses + instance.virtual_ipaddresses_excluded:
            if not vip.use_vmac:
                continue
            on_vmac = vip.dev in (None, instance.interface) and vip.family == instance.family
            if instance.use_vmac and on_vmac:
                self.warning(
                    vip.location,
                    f"{name} use_vmac specified for VIP/eVIP {vip.address} and vrrp instance",
                )
            else:
                self.error(
                    vip.location,
                    f"{name} {vip.address.ip} use_vmac: a VMAC of an address's own "
                    "(outside the instance's use_vmac) is not supported by lvs-agent",
                )

    def name_vmacs(self) -> None:
        """keepalived's create_vmac_name: PREFIX.VRID, else PREFIX6.VRID (IPv6 first),
        PREFIX1.VRID, ... - a name no other instance uses, cut to an interface name's 15."""
        taken = {i.vmac_name for i in self.config.vrrp_instances if i.vmac_name}
        prefix = self.config.global_defs.vmac_prefix or "vrrp"
        for instance in self.config.vrrp_instances:
            if not instance.use_vmac or instance.vmac_name:
                continue
            vrid = instance.virtual_router_id
            if instance.family == 6:
                numbers = [6, *(n for n in range(1, 100) if n != 6)]
            else:
                numbers = list(range(1, 100))
            for number in ["", *numbers]:
                suffix = f"{number}.{vrid}"
                candidate = prefix[: 15 - len(suffix)] + suffix
                if candidate not in taken:
                    break
            instance.vmac_name = candidate
            taken.add(candidate)

    def set_family(self, instance: VrrpInstance) -> None:
        vips = instance.virtual_ipaddresses
        if vips:
            instance.family = vips[0].family
        elif instance.virtual_ipaddresses_excluded:
            instance.family = instance.virtual_ipaddresses_excluded[0].family
        for vip in vips[1:]:
            if vip.family != instance.family:
                self.error(
                    vip.location,
                    f"({instance.name}) {vip.address}: all virtual_ipaddress entries must be "
                    f"IPv{instance.family} (use virtual_ipaddress_excluded to mix families)",
                )
        seen: dict[tuple, Location] = {}
        for vip in vips + instance.virtual_ipaddresses_excluded:
            key = (vip.address.ip, vip.dev)
            if key in seen:
                self.warning(
                    vip.location,
                    f"({instance.name}) {vip.address.ip} is listed twice (first at {seen[key]})",
                )
            seen.setdefault(key, vip.location)
        addresses = [("unicast_peer", peer) for peer in instance.unicast_peers]
        for keyword in ("unicast_src_ip", "mcast_src_ip"):
            if getattr(instance, keyword):
                addresses.append((keyword, getattr(instance, keyword)))
        for keyword, address in addresses:
            if ipaddress.ip_address(address).version != instance.family:
                where = self.keyword_location(instance, keyword)
                self.error(
                    where,
                    f"({instance.name}) {keyword} {address} is not IPv{instance.family} "
                    "like the instance",
                )

    def set_version(self, instance: VrrpInstance, given: dict) -> None:
        if "version" not in given:
            instance.version = 3 if instance.family == 6 else self.config.global_defs.vrrp_version
        elif instance.family == 6 and instance.version == 2:
            self.error(given["version"], f"({instance.name}) cannot use IPv6 with VRRP version 2")

    def complete_authentication(self, instance: VrrpInstance, given: dict) -> None:
        name = f"({instance.name})"
        if instance.auth_type is None:
            if instance.auth_pass is not None and "auth_type" not in given:
                self.warning(given["auth_pass"], f"{name} auth_pass without auth_type is ignored")
            instance.auth_pass = None
            return
        where = given.get("auth_type", instance.location)
        if self.config.global_defs.vrrp_strict:
            self.warning(where, f"{name} Strict mode does not support authentication. Ignoring.")
        elif instance.version == 3:
            self.warning(where, f"{name} VRRP version 3 does not support authentication. Ignoring.")
        elif not instance.auth_pass:
            self.warning(where, f"{name} Authentication specified but no password given. Ignoring")
        else:
            if len(instance.auth_pass) > AUTH_PASS_LENGTH:
                self.warning(
                    given["auth_pass"],
                    f"{name} auth_pass is longer than {AUTH_PASS_LENGTH} characters: "
                    f"only the first {AUTH_PASS_LENGTH} are sent",
                )
            return
        instance.auth_type = None
        instance.auth_pass = None

    def complete_preemption(self, instance: VrrpInstance, given: dict) -> None:
        name = f"({instance.name})"
        if instance.priority == PRIORITY_OWNER and instance.nopreempt:
            self.warning(
                given["nopreempt"],
                f"{name} nopreempt is incompatible with priority {PRIORITY_OWNER} - resetting",
            )
            instance.nopreempt = False
        if instance.state == "MASTER":
            if instance.nopreempt:
                self.warning(
                    given["nopreempt"],
                    f"{name} Warning - nopreempt will not work with initial state MASTER"
                    " - clearing",
                )
                instance.nopreempt = False
            if instance.preempt_delay:
                self.warning(
                    given["preempt_delay"],
                    f"{name} Warning - preempt delay will not work with initial state MASTER"
                    " - clearing",
                )
                instance.preempt_delay = 0.0
        if instance.preempt_delay and instance.nopreempt:
            self.warning(
                given["preempt_delay"],
                f"{name} preempt_delay is incompatible with nopreempt mode - resetting",
            )
            instance.preempt_delay = 0.0

    def complete_advert_int(self, instance: VrrpInstance, given: dict) -> None:
        where = given.get("advert_int", instance.location)
        name = f"({instance.name})"
        interval = instance.advert_int
        if instance.version == 2:
            if interval > MAX_V2_ADVERT_INT:
                self.warning(
                    where,
                    f"{name} VRRPv2 advertisement interval {interval:.2f}s is out of range. "
                    f"Must be less than 256s. Setting to {MAX_V2_ADVERT_INT}s",
                )
                instance.advert_int = float(MAX_V2_ADVERT_INT)
            elif interval != int(interval):
                rounded = max(1, int(interval + 0.5))
                self.warning(
                    where,
                    f"{name} VRRPv2 advertisement interval {interval:g}s must be an integer - "
                    f"rounding to {rounded}s",
                )
                instance.advert_int = float(rounded)
        else:
            if interval > MAX_V3_ADVERT_INT:
                self.warning(
                    where,
                    f"{name} VRRPv3 advertisement interval {interval:.2f}s is out of range. "
                    f"Must be less than 40.96s. Setting to {MAX_V3_ADVERT_INT}s",
                )
                instance.advert_int = interval = MAX_V3_ADVERT_INT
            centiseconds = interval * 100
            if abs(centiseconds - round(centiseconds)) > 1e-6:
                rounded = max(1, int(centiseconds + 0.5)) / 100
                self.warning(
                    where,
                    f"{name} VRRPv3 advertisement interval {interval:g}s must be in units of "
                    f"10ms - rounding to {rounded:g}s",
                )
                instance.advert_int = rounded

    def check_instances(self) -> None:
        names: dict[str, VrrpInstance] = {}
        for instance in self.config.vrrp_instances:
            if instance.name in names:
                first = names[instance.name].location
                self.error(
                    instance.location, f"vrrp_instance {instance.name} already defined at {first}"
                )
            names.setdefault(instance.name, instance)
            self.complete_instance(instance)
            self.drop_unknown_scripts(instance)
            self.check_tracked(f"({instance.name})", instance)
        self.name_vmacs()
        self.check_duplicate_vrids()
        self.check_sync_groups(names)
        self.complete_sync_daemon(names)
        self.complete_static_track_groups(names)

    def complete_static_track_groups(self, instances: dict[str, VrrpInstance]) -> None:
        """keepalived's static_track_group_init: a group keeps the instances that exist (none
        left, it is removed); each instance of the group of a tracked static address, route or
        rule then tracks the entry's interface (address dev, route dev, rule iif), FAULT while
        it is down or gone."""
        groups = self.config.static_track_groups
        for name, group in list(groups.items()):
            if not group.group:
                self.warning(group.location, f"Static track group {name} has no virtual router(s)")
            else:
                for member in group.group:
                    if member not in instances:
                        self.warning(
                            group.location,
                            f"vrrp instance {member} specified in track group {name} doesn't "
                            "exist - ignoring",
                        )
                group.group = [m for m in dict.fromkeys(group.group) if m in instances]
                if not group.group:
                    self.warning(
                        group.location, f"Static track group {name} has no VRRP instance(s)"
                    )
            if not group.group:
                self.warning(group.location, f"Static track group {name} init fails - removing")
                del groups[name]
        config = self.config
        tracked = (
            ("address", config.static_addresses, "dev"),
            ("route", config.static_routes, "dev"),
            ("rule", config.static_rules, "iif"),
        )
        for what, entries, attribute in tracked:
            for entry in entries:
                if entry.track_group is None:
                    continue
                if entry.no_track:
                    self.warning(
                        entry.location,
                        f"Static {what} has both track_group and no_track set - not tracking",
                    )
                    continue
                group = groups.get(entry.track_group)
                for member in group.group if group else ():
                    tracking = instances[member].static_track_interfaces
                    if getattr(entry, attribute) not in tracking:
                        tracking.append(getattr(entry, attribute))

    def complete_sync_daemon(self, instances: dict[str, VrrpInstance]) -> None:
        """lvs_sync_daemon's instance must exist (keepalived drops the daemon otherwise); its
        sync id defaults to that instance's VRID, else 0."""
        daemon = self.config.global_defs.lvs_sync_daemon
        if daemon is None or daemon.instance is None:
            if daemon is not None and daemon.sync_id is None:
                daemon.sync_id = 0
            return
        instance = instances.get(daemon.instance)
        if instance is None:
            self.warning(
                daemon.location,
                f"Unable to find vrrp instance {daemon.instance} for lvs_syncd - "
                "clearing lvs_syncd config",
            )
            self.config.global_defs.lvs_sync_daemon = None
        elif daemon.sync_id is None:
            daemon.sync_id = instance.virtual_router_id

    def drop_unknown_scripts(self, tracker) -> None:
        """keepalived tracks no script it cannot find, and says so."""
        kept = []
        for track in tracker.track_scripts:
            if track.name in self.config.vrrp_scripts:
                kept.append(track)
            else:
                self.warning(
                    track.location,
                    f"({tracker.name}) track script {track.name} not found, ignoring...",
                )
        tracker.track_scripts = kept

    def check_tracked(self, owner: str, target: Any) -> None:
        """track_file / track_process entries (of an instance or a sync group) name blocks that
        exist (a duplicate entry was already dropped with keepalived's warning by the parser)."""
        kinds = (
            ("track_file", target.track_files, self.config.track_files),
            ("track_process", target.track_processes, self.config.track_processes),
        )
        for keyword, tracks, known in kinds:
            for track in tracks:
                if track.name not in known:
                    block = "track_file" if keyword == "track_file" else "vrrp_track_process"
                    self.error(
                        track.location, f"{owner} {keyword} {track.name}: no {block} of that name"
                    )

    def check_fifos(self) -> None:
        """A *_fifo_script needs its FIFO; the FIFOs must differ (keepalived's rule)."""
        settings = self.config.global_defs
        paths: dict[str, str] = {}
        for prefix in FIFO_PREFIXES:
            path = getattr(settings, f"{prefix}notify_fifo")
            script = getattr(settings, f"{prefix}notify_fifo_script")
            if script is not None and path is None:
                self.error(script.location, f"{prefix}notify_fifo_script needs {prefix}notify_fifo")
            if path is not None and path in paths:
                self.error(
                    settings.location,
                    f"{prefix}notify_fifo {path} is already {paths[path]}: the FIFOs must differ",
                )
            if path is not None:
                paths.setdefault(path, f"{prefix}notify_fifo")

    def check_duplicate_vrids(self) -> None:
        seen: dict[tuple, list[VrrpInstance]] = {}
        for instance in self.config.vrrp_instances:
            if instance.interface is None:
                continue
            key = (instance.interface, instance.family, instance.virtual_router_id)
            for other in seen.get(key, []):
                peers = set(instance.unicast_peers)
                other_peers = set(other.unicast_peers)
                if (not peers and not other_peers) or peers & other_peers:
                    self.error(
                        self.keyword_location(instance, "virtual_router_id"),
                        f"({instance.name}) virtual_router_id {instance.virtual_router_id} is "
                        f"already used on {instance.interface} by {other.name} "
                        f"({other.location})",
                    )
                    break
            seen.setdefault(key, []).append(instance)

    def check_sync_groups(self, instances: dict[str, VrrpInstance]) -> None:
        group_names: dict[str, Location] = {}
        kept = []
        for group in self.config.sync_groups:
            if group.name in group_names:
                self.error(
                    group.location,
                    f"vrrp_sync_group {group.name} already defined at {group_names[group.name]}",
                )
            group_names.setdefault(group.name, group.location)
            self.check_tracked(f"vrrp_sync_group {group.name}", group)
            self.drop_unknown_scripts(group)
            members = []
            for member in group.group:
                instance = instances.get(member)
                if instance is None:
                    self.warning(
                        group.location,
                        f"Virtual router {member} specified in sync group {group.name} doesn't "
                        "exist - ignoring",
                    )
                elif instance.sync_group not in (None, group.name):
                    self.warning(
                        group.location,
                        f"Virtual router {member} cannot exist in more than one sync group; "
                        f"ignoring {group.name}",
                    )
                else:
                    instance.sync_group = group.name
                    members.append(instance)
                    self.check_owner_member(group, members)
            group.group = [instance.name for instance in members]
            if any(instance.priority == PRIORITY_OWNER for instance in members):
                self.unweight_group_tracking(group)
            for instance in members:
                self.take_group_tracking(group, instance)
            if not members:
                self.warning(
                    group.location, f"Sync group {group.name} has no virtual router(s). removing"
                )
                continue
            kept.append(group)
            if len(group.group) == 1:
                self.warning(
                    group.location,
                    f"Sync group {group.name} has only 1 virtual router(s) - "
                    "this probably isn't what you want",
                )
        self.config.sync_groups = kept

    def check_owner_member(self, group: SyncGroup, members: list[VrrpInstance]) -> None:
        """keepalived's warning (vrrp_sync_group_init) when a BACKUP member follows members
        that are all initial MASTER and address owner: the group cannot start in one state."""
        *before, last = members
        if (
            before
            and last.state == "BACKUP"
            and all(m.state == "MASTER" and m.priority == PRIORITY_OWNER for m in before)
        ):
            self.warning(
                group.location,
                f"Sync group {group.name} has some member(s) as address owner and some not as "
                "address owner. This won't work.",
            )

    def unweight_group_tracking(self, group: SyncGroup) -> None:
        """keepalived: with an address owner among the members, the group's tracking is
        unweighted (a failure is FAULT) for every member."""
        for kind in TRACKED_KINDS:
            entries = []
            for entry in getattr(group, kind.attribute):
                if self.tracked_weight(kind, entry):
                    self.warning(
                        entry.location,
                        f"({group.name}) Cannot have weighted {kind.keyword.replace('_', ' ')} "
                        f"'{entry.name}' with member having priority {PRIORITY_OWNER} - "
                        f"{kind.unweight}",
                    )
                    entry = replace(entry, weight=0)
                entries.append(entry)
            setattr(group, kind.attribute, entries)

    def take_group_tracking(self, group: SyncGroup, instance: VrrpInstance) -> None:
        """keepalived's rules (vrrp_complete_instance, sync_group_tracking_init): every member
        tracks what its group tracks, with the group's weights. Without sync_group_tracking_weight
        a member's own weighted entries are not used (see `unweighted`). An entry in both keeps
        the member's when that is unweighted, else takes the group's."""
        for kind in TRACKED_KINDS:
            entries = getattr(instance, kind.attribute)
            if not group.tracking_weight:
                entries = [self.unweighted(instance, kind, entry) for entry in entries]
            merged = {entry.name: entry for entry in entries if entry is not None}
            for entry in getattr(group, kind.attribute):
                own = merged.get(entry.name)
                if own is not None:
                    self.warning(
                        own.location,
                        f"({instance.name}) {kind.keyword} {entry.name} is configured on VRRP "
                        f"instance and sync group. Remove {kind.remove} config",
                    )
                if own is None or self.tracked_weight(kind, own):
                    merged[entry.name] = entry
            setattr(instance, kind.attribute, list(merged.values()))

    def tracked_weight(self, kind: TrackedKind, entry: Any) -> int:
        """The entry's weight, else the tracked block's."""
        if entry.weight is not None:
            return entry.weight
        block = getattr(self.config, kind.blocks).get(entry.name)
        return block.weight if block is not None else 0

    def unweighted(self, instance: VrrpInstance, kind: TrackedKind, entry: Any) -> Any:
        """A sync group member's own entry as keepalived 2.2.7 keeps it, with its warning: a
        weighted interface, or a file at the default weight 1, becomes unweighted; a weighted
        script or file is dropped (None); a track_process is kept as it is."""
        weight = self.tracked_weight(kind, entry)
        name = f"({instance.name})"
        if not weight or kind.keyword == "track_process":
            return entry
        if kind.keyword == "track_interface":
            message = f"{name} ignoring {entry.name} tracked interface weight due to SYNC group"
        elif kind.keyword == "track_file" and weight == 1:
            message = (
                f"{name} ignoring weight from tracked file {entry.name} due to SYNC group. "
                "specify weight 0"
            )
        elif kind.keyword == "track_file":
            message = (
                f"{name} ignoring tracked file {entry.name} with weight {weight} due to SYNC group"
            )
        else:
            message = f"{name} ignoring tracked script {entry.name} with weights due to SYNC group"
        self.warning(entry.location, message)
        if kind.keyword == "track_interface" or (kind.keyword == "track_file" and weight == 1):
            return replace(entry, weight=0)
        return None

    # ---- LVS -------------------------------------------------------------------------------

    def check_virtual_servers(self) -> None:
        seen: dict[tuple, VirtualServer] = {}
        kept = []
        for server in self.config.virtual_servers:
            self.check_virtual_server(server)
            if not server.real_servers:
                self.warning(
                    server.location, f"Virtual server {server.name} has no real servers - ignoring"
                )
                continue
            kept.append(server)
            key = self.service_key(server)
            if key in seen:
                self.error(
                    server.location,
                    f"virtual server {server.name} {server.protocol} already defined at "
                    f"{seen[key].location}",
                )
            seen.setdefault(key, server)
        self.config.virtual_servers = kept

    @staticmethod
    def service_key(server: VirtualServer) -> tuple:
        if server.kind == "fwmark":
            return ("fwmark", server.fwmark, server.family)
        return (server.kind, server.address, server.port, server.group, server.protocol)

    def check_virtual_server(self, server: VirtualServer) -> None:
        name = f"virtual server {server.name}"
        if server.kind == "group" and server.group not in self.config.virtual_server_groups:
            self.error(server.location, f"{name}: no virtual_server_group named {server.group}")
        if server.kind == "ip" and server.port is None and not server.persistence_timeout:
            self.warning(
                server.location,
                f"{name}: zero port only valid for persistent services - setting",
            )
            server.persistence_timeout = DEFAULT_PERSISTENCE_TIMEOUT
        if server.ha_suspend and server.kind == "fwmark":
            self.warning(
                server.location, f"{name}: cannot use ha_suspend with fwmarks - clearing ha_suspend"
            )
            server.ha_suspend = False
        if "ops" in server.scheduler_flags and server.kind == "ip" and server.protocol != "UDP":
            self.warning(server.location, f"{name}: one packet scheduling requires UDP - resetting")
            server.scheduler_flags.remove("ops")
        if server.kind != "ip":
            self.derive_family(server)
        if server.persistence_granularity is not None:
            is_mask = "." in server.persistence_granularity
            if is_mask != (server.family == 4):
                self.error(
                    server.location,
                    f"{name}: persistence_granularity {server.persistence_granularity} does not "
                    f"suit an IPv{server.family} service",
                )
        endpoints: dict[tuple, Location] = {}
        kept = []
        for real in server.real_servers:
            method = real.lvs_method or server.lvs_method
            family = ipaddress.ip_address(real.address).version
            endpoint = (real.address, real.port)
            if method != "TUN" and family != server.family:
                self.warning(
                    real.location,
                    f"Address family of virtual server and real server {real.address} don't "
                    "match - skipping real server.",
                )
            elif endpoint in endpoints:
                self.warning(
                    real.location,
                    f"VS {server.name}: real server {real.address} port {real.port} is duplicated "
                    f"(first at {endpoints[endpoint]}) - removing second rs",
                )
            else:
                endpoints[endpoint] = real.location
                kept.append(real)
                self.attach_track_files(real)
        server.real_servers = kept
        sorry = server.sorry_server
        if (
            sorry is not None
            and (sorry.lvs_method or server.lvs_method) != "TUN"
            and ipaddress.ip_address(sorry.address).version != server.family
        ):
            self.warning(
                sorry.location,
                f"Address family of virtual server and sorry server {sorry.address} don't match "
                "- skipping sorry server.",
            )
            server.sorry_server = None

    def check_data_plane(self) -> None:
        """lvs_data_plane nftables: what the nftables data plane does not do yet is refused
        where it is written, never run differently."""
        defs = self.config.global_defs
        if defs.lvs_data_plane != "nftables":
            return
        plane = "with lvs_data_plane nftables"
        if defs.lvs_sync_daemon is not None:
            self.error(defs.lvs_sync_daemon.location, f"lvs_sync_daemon is IPVS's: not {plane}")
        ipvs_only = {
            "lvs_timeouts": defs.lvs_timeouts != LvsTimeouts(),
            "lvs_flush": defs.lvs_flush,
            "lvs_flush_on_stop full": defs.lvs_flush_on_stop == "full",
        }
        for keyword in (keyword for keyword, used in ipvs_only.items() if used):
            self.error(defs.location, f"{keyword} is IPVS's: not {plane}")
        for server in self.config.virtual_servers:
            self.check_nftables_server(server, plane)

    def check_nftables_server(self, server: VirtualServer, plane: str) -> None:
        name = f"virtual server {server.name}"
        refused = []
        if server.kind != "ip":
            refused.append(f"a {server.kind} virtual server")
        if server.family not in nft_ruleset.FAMILIES:
            refused.append(f"IPv{server.family}")
        if server.lvs_sched not in nft_ruleset.SCHEDULERS:
            schedulers = "|".join(nft_ruleset.SCHEDULERS)
            refused.append(f"lvs_sched {server.lvs_sched} (use {schedulers})")
        if server.persistence_granularity is not None:
            refused.append("persistence_granularity")
        if server.persistence_engine is not None:
            refused.append("persistence_engine")
        if server.scheduler_flags:
            refused.append(" ".join(server.scheduler_flags))
        methods = {real.lvs_method or server.lvs_method for real in server.real_servers}
        if server.sorry_server is not None:
            methods.add(server.sorry_server.lvs_method or server.lvs_method)
        for method in sorted(methods - set(nft_ruleset.METHODS)):
            refused.append(f"lvs_method {method} (use {'|'.join(nft_ruleset.METHODS)})")
        if len(methods & set(nft_ruleset.METHODS)) > 1:
            refused.append(f"lvs_method {' and '.join(sorted(methods))} in one virtual server")
        stateless = methods & set(nft_ruleset.STATELESS_METHODS)
        if stateless and server.lvs_sched not in nft_ruleset.HASHED:
            refused.append(
                f"lvs_method {min(stateless)} with lvs_sched {server.lvs_sched} (use "
                f"{'|'.join(nft_ruleset.HASHED)}: nothing tracks its connections)"
            )
        unpinned = methods & set(nft_ruleset.METHODS) - set(nft_ruleset.PERSISTENT_METHODS)
        if server.persistence_timeout and unpinned:
            refused.append(f"persistence_timeout with lvs_method {min(unpinned)}")
        sorry = [server.sorry_server] if server.sorry_server is not None else []
        for real in [*server.real_servers, *sorry]:
            method = real.lvs_method or server.lvs_method
            if method in nft_ruleset.STATELESS_METHODS and real.port not in (None, server.port):
                self.error(
                    real.location,
                    f"{name}: real server {real.address} port {real.port}: lvs_method {method} "
                    f"keeps the virtual server's port {server.port} {plane}",
                )
        if any(real.uthreshold or real.lthreshold for real in server.real_servers):
            refused.append("uthreshold/lthreshold")
        for what in refused:
            self.error(server.location, f"{name}: {what} is not available {plane}")

    def attach_track_files(self, real: RealServer) -> None:
        """Each FILE_CHECK gets the track_file it names; without one keepalived drops it."""
        kept = []
        for checker in real.checkers:
            if isinstance(checker, FileCheck):
                checker.tracked = self.config.track_files.get(checker.track_file)
                if checker.tracked is None:
                    self.warning(
                        checker.location,
                        f"track_file {checker.track_file} not found - ignoring the FILE_CHECK",
                    )
                    continue
            kept.append(checker)
        real.checkers = kept

    def derive_family(self, server: VirtualServer) -> None:
        """fwmark and group services take their family from their non-tunnelled servers."""
        for real in server.real_servers:
            if (real.lvs_method or server.lvs_method) != "TUN":
                server.family = ipaddress.ip_address(real.address).version
                return
        if server.kind == "group":
            group = self.config.virtual_server_groups.get(server.group)
            for entry in group.entries if group else []:
                if entry.address:
                    server.family = ipaddress.ip_address(entry.address).version
                    return

    # ---- host ------------------------------------------------------------------------------

    def check_host(self) -> None:
        for instance in self.config.vrrp_instances:
            if instance.interface and not interface_exists(instance.interface):
                self.error(
                    self.keyword_location(instance, "interface"),
                    f"({instance.name}) interface {instance.interface} does not exist on this host",
                )
            for vip in instance.virtual_ipaddresses + instance.virtual_ipaddresses_excluded:
                if vip.dev and not interface_exists(vip.dev):
                    self.error(
                        vip.location,
                        f"({instance.name}) {vip.address}: interface {vip.dev} does not exist "
                        "on this host",
                    )
            for track in instance.track_interfaces:
                if not interface_exists(track.name):
                    self.warning(
                        track.location,
                        f"({instance.name}) track_interface {track.name} does not exist "
                        "on this host",
                    )
        for group in self.config.garp_groups:
            for name, where in group.interfaces.items():
                if not interface_exists(name):
                    self.warning(
                        where, f"WARNING - interface {name} specified for garp_group doesn't exist"
                    )
        self.check_routing_devices()

    def check_routing_devices(self) -> None:
        """The interfaces static addresses, routes and rules name (keepalived drops such a line
        with "interface ... doesn't exist"; lvs-agent could not install it)."""
        config = self.config
        owners = [("static_ipaddress", [(a, a.address, [a.dev]) for a in config.static_addresses])]
        routes = [("static_routes", config.static_routes)]
        rules = [("static_rules", config.static_rules)]
        for instance in config.vrrp_instances:
            routes.append((f"({instance.name}) virtual_routes", instance.virtual_routes))
            rules.append((f"({instance.name}) virtual_rules", instance.virtual_rules))
        for owner, entries in routes:
            owners.append(
                (
                    owner,
                    [(r, r.destination, [r.dev, *(h.dev for h in r.nexthops)]) for r in entries],
                )
            )
        for owner, entries in rules:
            owners.append(
                (owner, [(r, f"preference {r.priority}", [r.iif, r.oif]) for r in entries])
            )
        for owner, entries in owners:
            for entry, what, devices in entries:
                for dev in filter(None, devices):
                    if not interface_exists(dev):
                        self.error(
                            entry.location,
                            f"{owner} {what}: interface {dev} does not exist on this host",
                        )

    # ---- scripts (host): whom each one runs as, and enable_script_security ------------------

    def scripts(self) -> Iterator[tuple[str, str, Optional[ScriptUser], Any, Location]]:
        """(what, command, user, object to give its run_as, location) of every script run."""
        config = self.config
        used = {t.name for i in config.vrrp_instances for t in i.track_scripts}
        used.update(t.name for g in config.sync_groups for t in g.track_scripts)
        for name, script in config.vrrp_scripts.items():
            if name in used:
                yield f"vrrp_script {name}", script.script, script.user, script, script.location
        start_stop = ("startup_script", "shutdown_script")
        owners = [("global_defs", config.global_defs, FIFO_SCRIPTS + start_stop)]
        owners += [(f"({i.name})", i, VRRP_NOTIFY) for i in config.vrrp_instances]
        owners += [(f"vrrp_sync_group {g.name}", g, VRRP_NOTIFY) for g in config.sync_groups]
        for server in config.virtual_servers:
            owners.append((f"virtual server {server.name}", server, ("quorum_up", "quorum_down")))
            for real in server.real_servers:
                what = f"virtual server {server.name} real server {real.address}"
                owners.append((what, real, ("notify_up", "notify_down")))
                for checker in real.checkers:
                    if isinstance(checker, MiscCheck):
                        where = checker.location
                        yield f"{what} MISC_CHECK", checker.misc_path, checker.user, checker, where
        for what, owner, keywords in owners:
            for keyword in keywords:
                script = getattr(owner, keyword)
                if script is not None:
                    yield f"{what} {keyword}", script.command, script.user, script, script.location

    def check_scripts(self) -> None:
        settings = self.config.global_defs
        default: Optional[Identity] = None
        default_known = False
        first: Optional[Location] = None
        insecure = False
        if settings.script_user is not None:  # resolved even when every script names its user
            default, default_known = self.default_identity(settings.script_user.location), True
        for what, command, user, target, where in self.scripts():
            first = first or where
            if user is None and not default_known:
                default, default_known = self.default_identity(where), True
            try:
                identity = self.identity(user) if user is not None else default
            except LookupError as exc:
                self.error(user.location, f"{what}: {exc}")
                continue
            if identity is None:
                if settings.script_user is None:
                    self.error(
                        where,
                        f"{what}: Unable to set default user {KEEPALIVED_SCRIPT_USER} for script "
                        "(enable_script_security: set script_user, or create the user)",
                    )
                continue
            target.run_as = identity
            try:
                program = split_command(command)[0]
            except ValueError:
                continue  # the parser has said what is wrong with the line
            path = program_path(program)
            if path is None:
                self.warning(where, f"{what}: Cannot find script {program} in path")
                continue
            unsafe = unsafe_script(identity, path)
            if unsafe is None:
                continue
            insecure = True
            if settings.enable_script_security:
                self.error(
                    where,
                    f"{what}: {unsafe} - SECURITY VIOLATION, enable_script_security "
                    "refuses to run it as root",
                )
            else:
                self.warning(where, f"{what}: {unsafe}.")
        if first is not None and not settings.enable_script_security:
            self.warning(
                first,
                "SECURITY VIOLATION - scripts are being executed but script_security not "
                "enabled." + (" There are insecure scripts." if insecure else ""),
            )

    def identity(self, user: ScriptUser) -> Identity:
        settings = self.config.global_defs
        return resolve_identity(
            user.user,
            user.group,
            settings.set_supplementary_groups,
            settings.enable_script_security,
        )

    def default_identity(self, where: Location) -> Optional[Identity]:
        """script_user; else keepalived_script if it exists; else root, with keepalived's
        warning, or None when enable_script_security forbids that."""
        settings = self.config.global_defs
        if settings.script_user is not None:
            try:
                return self.identity(settings.script_user)
            except LookupError as exc:
                self.error(settings.script_user.location, f"script_user: {exc}")
                return None
        try:
            return self.identity(ScriptUser(KEEPALIVED_SCRIPT_USER))
        except LookupError:
            pass
        if settings.enable_script_security:
            return None
        self.warning(
            where,
            f"WARNING - default user '{KEEPALIVED_SCRIPT_USER}' for script execution does not "
            "exist - please create.",
        )
        return root_identity(False)


def interface_exists(name: str) -> bool:
    return os.path.exists(os.path.join(SYS_CLASS_NET, name))


def check(config: Config, report: Report, instance_keywords: dict, *, host_checks: bool) -> None:
    """Complete the VRRP instances and report every problem across objects."""
    completion = Completion(config, report, instance_keywords)
    completion.check_instances()
    completion.check_fifos()
    completion.check_virtual_servers()
    completion.check_data_plane()
    if host_checks:
        completion.check_host()
        completion.check_scripts()
