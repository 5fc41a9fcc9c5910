"""Routes and rules through rtnetlink (pyroute2), as keepalived's netlink_route / netlink_rule
send them: static_routes and static_rules for the agent's life, an instance's virtual_routes
and virtual_rules while it is MASTER.

Requests go out on the AddressManager's rtnetlink socket, in the agent's loop. As keepalived,
an entry without no_track is tracked: its deletion by someone else is reported (a master then
steps down to backup, a static address, route or rule is restored).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from dataclasses import replace
from typing import Callable, Optional, Union

from ..config.model import RTPROT_KEEPALIVED, Config, Location, Route, Rule, VirtualAddress
from ..netlink import AsyncIPRoute
from .addresses import AddressManager
from .tracking import Link, LinkMonitor

log = logging.getLogger("lvsagent.vrrp")

Entry = Union[Route, Rule]

RTM_NEWROUTE = 24
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
RTNH_F_ONLINK = 0x4
FIB_RULE_INVERT = 0x2
# keepalived adds a route as `ip route prepend` unless the line says add or append
ROUTE_FLAGS = {
    "prepend": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
    "add": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    "append": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
}
RULE_ACTIONS = {"table": 1, "goto": 2, "nop": 3, "blackhole": 6, "unreachable": 7, "prohibit": 8}
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
GONE = (errno.ESRCH, errno.ENOENT, errno.ENODEV, errno.EADDRNOTAVAIL)
# rtnetlink multicast groups: IPv4 addresses, routes, rules; IPv6 addresses, routes, rules
DELETION_GROUPS = 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x40000
ROUTE_TYPE_NAMES = {1: "unicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw"}
MONITOR_RETRY = 0.1  # seconds before reading the deletion monitor again after an error
ANY_ADDRESS = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
Tracked = Union[Route, Rule, VirtualAddress]
OnDeleted = Callable[[Tracked], None]


def prefix(text: str) -> tuple[str, int]:
    network = ipaddress.ip_interface(text)
    return str(network.ip), network.network.prefixlen


def route_request(route: Route) -> dict:
    """The route's pyroute2 arguments; an interface named by the route must exist (OSError)."""
    destination, length = prefix(route.destination)
    request = {
        "family": FAMILIES[route.family],
        "dst": destination,
        "dst_len": length,
        "table": route.table,
        "proto": route.protocol,
        "type": route.type,
        "scope": route.scope,
        "flags": RTNH_F_ONLINK if route.onlink else 0,
    }
    optional = {
        "prefsrc": route.source,
        "gateway": route.via,
        "priority": route.metric,
        "tos": route.tos,
        "oif": socket.if_nametoindex(route.dev) if route.dev else None,
    }
    request.update((key, value) for key, value in optional.items() if value is not None)
    if route.nexthops:
        request["multipath"] = [
            {
                "gateway": hop.via,
                "oif": socket.if_nametoindex(hop.dev) if hop.dev else 0,
                "hops": hop.weight - 1,
                "flags": RTNH_F_ONLINK if hop.onlink else 0,
            }
            for hop in route.nexthops
        ]
    return request


def rule_request(rule: Rule) -> dict:
    request = {
        "family": FAMILIES[rule.family],
        "priority": rule.priority,
        "action": RULE_ACTIONS[rule.action],
        "flags": FIB_RULE_INVERT if rule.invert else 0,
    }
    for key, text in (("src", rule.source), ("dst", rule.destination)):
        if text is not None:
            request[key], request[f"{key}_len"] = prefix(text)
    optional = {
        "table": rule.table,
        "goto": rule.goto,
        "tos": rule.tos,
        "fwmark": rule.fwmark,
        "fwmask": rule.fwmask,
        "iifname": rule.iif,
        "oifname": rule.oif,
        "suppress_prefixlen": rule.suppress_prefixlength,
        "protocol": rule.protocol,
    }
    request.update((key, value) for key, value in optional.items() if value is not None)
    return request


def describe(entry: Union[Entry, VirtualAddress]) -> str:
    """An entry for the log: an address, a route's destination, a rule's selector."""
    if isinstance(entry, VirtualAddress):
        return f"address {entry.address} dev {entry.dev}"
    if isinstance(entry, Route):
        via = f" via {entry.via}" if entry.via else ""
        dev = f" dev {entry.dev}" if entry.dev else ""
        return f"route {entry.destination}{via}{dev} table {entry.table}"
    parts = [f"rule {entry.priority}: from {entry.source or 'all'}"]
    if entry.destination:
        parts.append(f"to {entry.destination}")
    parts.append(f"lookup {entry.table}" if entry.action == "table" else entry.action)
    return " ".join(parts)


def entry_key(entry: Tracked) -> tuple:
    """What identifies an address, route or rule in a deletion the kernel reports."""
    family = FAMILIES[entry.family]
    if isinstance(entry, VirtualAddress):
        address = entry.address
        return ("address", family, str(address.ip), address.network.prefixlen, entry.dev)
    if isinstance(entry, Route):
        return ("route", family, *prefix(entry.destination), entry.table, entry.type)
    source = prefix(entry.source) if entry.source else (None, 0)
    destination = prefix(entry.destination) if entry.destination else (None, 0)
    return ("rule", family, entry.priority, *source, *destination)


def deletion_key(message) -> Optional[tuple]:
    """The entry_key of a deleted address, or route or rule carrying keepalived's protocol."""
    family = message.get("family")
    if message["event"] == "RTM_DELADDR":
        address = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
        try:
            dev = socket.if_indextoname(message.get("index"))
        except OSError:
            return None  # the interface went, with its addresses: nothing to restore on it
        return ("address", family, address, message.get("prefixlen"), dev)
    if message["event"] == "RTM_DELROUTE" and message.get("proto") == RTPROT_KEEPALIVED:
        destination = message.get_attr("RTA_DST") or ANY_ADDRESS.get(family)
        table = message.get_attr("RTA_TABLE") or message.get("table")
        kind = ROUTE_TYPE_NAMES.get(message.get("type"))
        return ("route", family, destination, message.get("dst_len"), table, kind)
    if message["event"] == "RTM_DELRULE" and message.get_attr("FRA_PROTOCOL") == RTPROT_KEEPALIVED:
        return (
            "rule",
            family,
            message.get_attr("FRA_PRIORITY") or 0,
            message.get_attr("FRA_SRC"),
            message.get("src_len"),
            message.get_attr("FRA_DST"),
            message.get("dst_len"),
        )
    return None


class DeletionWatch:
    """keepalived's address, route and rule tracking: `on_deleted(entry)` once when the kernel
    reports a watched entry deleted. An entry is unwatched before the agent removes it itself."""

    def __init__(self) -> None:
        self._watched: dict[tuple, tuple[Tracked, OnDeleted]] = {}
        self._ipr = None
        self._task: Optional[asyncio.Task] = None

    async def watch(self, entry: Tracked, on_deleted: OnDeleted) -> None:
        if self._task is None:
            self._ipr = AsyncIPRoute()
            await self._ipr.bind(groups=DELETION_GROUPS)
            self._task = asyncio.get_running_loop().create_task(self._read())
        self._watched[entry_key(entry)] = (entry, on_deleted)

    def unwatch(self, entry: Tracked) -> None:
        self._watched.pop(entry_key(entry), None)

    async def _read(self) -> None:
        while True:
            try:
                async for message in self._ipr.get():
                    key = deletion_key(message)
                    entry, on_deleted = self._watched.pop(key, (None, None))
                    if entry is not None:
                        on_deleted(entry)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # an overrun or a message we cannot read: go on
                log.debug("Netlink: route/rule monitor - %s", error)
                await asyncio.sleep(MONITOR_RETRY)  # never a busy loop on a broken socket

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._ipr.close()
        self._watched.clear()


class RoutingManager:
    """Adds and removes routes and rules on the AddressManager's rtnetlink socket (and, for the
    static entries, addresses on their `dev` through it); tracks what it added."""

    def __init__(self, addresses: AddressManager, deletions: Optional[DeletionWatch] = None):
        self.addresses = addresses
        self.deletions = deletions or DeletionWatch()

    async def apply_all(
        self,
        entries,
        add: bool,
        prefix: str,
        quiet: bool = False,
        on_deleted: Optional[OnDeleted] = None,
    ) -> None:
        """Each entry in turn; one that fails is logged (unless quiet: leftovers looked for)
        and must not keep the others away. An entry added without no_track is watched with
        `on_deleted`; an entry is unwatched before its removal."""
        for entry in entries:
            try:
                if add:
                    await self._add(entry)
                    if on_deleted is not None and not entry.no_track:
                        await self.deletions.watch(entry, on_deleted)
                else:
                    self.deletions.unwatch(entry)
                    await self._remove(entry)
            except Exception as error:
                if not quiet:
                    verb = "adding" if add else "removing"
                    log.error("%s%s %s failed: %s", prefix, verb, describe(entry), error)

    async def _add(self, entry: Tracked) -> None:
        if isinstance(entry, VirtualAddress):
            await self.addresses.add(entry, entry.dev)
        else:
            await self.add(entry)

    async def _remove(self, entry: Tracked) -> None:
        if isinstance(entry, VirtualAddress):
            await self.addresses.remove(entry, entry.dev)
        else:
            await self.remove(entry)

    async def add(self, entry: Entry) -> None:
        ipr = await self.addresses.rtnl()
        try:
            if isinstance(entry, Route):
                command = (RTM_NEWROUTE, ROUTE_FLAGS[entry.mode])
                await ipr.route(command, **route_request(entry))
            else:
                await ipr.rule("add", **rule_request(entry))
        except Exception as error:
            if getattr(error, "code", None) != errno.EEXIST:
                raise

    async def remove(self, entry: Entry) -> None:
        """Gone already (or its interface gone, and the route with it) is removed."""
        ipr = await self.addresses.rtnl()
        try:
            request = route_request(entry) if isinstance(entry, Route) else rule_request(entry)
        except OSError:
            return  # an interface of the route is gone
        try:
            if isinstance(entry, Route):
                await ipr.route("del", **request)
            else:
                await ipr.rule("del", **request)
        except Exception as error:
            if getattr(error, "code", None) not in GONE:
                raise


class StaticEntries:
    """static_ipaddress, static_routes, static_rules: installed while the agent runs, whatever
    the VRRP states. As keepalived: at start what a killed run left is removed first, a reload
    removes the entries gone from the file and adds the new ones, stop removes them all.

    A tracked entry deleted is added again at once; one that cannot be (its interface down or
    gone: the kernel took the routes on it) is added again when its interface comes up
    (keepalived's interface_up). The instances of its track_group watch that interface."""

    def __init__(self, routing: RoutingManager, links: LinkMonitor) -> None:
        self.routing = routing
        self.links = links
        self.held: list = []  # addresses, then routes, then rules: the order they are added
        self._restoring: set[asyncio.Task] = set()
        self._up: dict[str, bool] = {}  # the interfaces of the tracked addresses and routes

    @staticmethod
    def wanted(config: Config) -> list:
        addresses = [replace(vip, location=Location()) for vip in config.static_addresses]
        return [*addresses, *config.static_routes, *config.static_rules]

    async def start(self, config: Config) -> None:
        await self.routing.apply_all(reversed(self.wanted(config)), False, "", quiet=True)
        await self.update(config)

    async def update(self, config: Config) -> None:
        wanted = self.wanted(config)
        held, self.held = self.held, wanted
        gone = [entry for entry in reversed(held) if entry not in wanted]
        await self.routing.apply_all(gone, False, "static: ")
        new = [entry for entry in wanted if entry not in held]
        await self.routing.apply_all(new, True, "static: ", on_deleted=self._restore)
        self._watch_links()

    @staticmethod
    def _on_link(entry: Tracked) -> Optional[str]:
        """The interface a tracked address or route is added again on when it comes up (rules
        stay when an interface goes: keepalived restores none)."""
        if entry.no_track or isinstance(entry, Rule):
            return None
        return entry.dev

    def _watch_links(self) -> None:
        self.links.unwatch(self._link_changed)
        devices = dict.fromkeys(filter(None, map(self._on_link, self.held)))
        self._up = {dev: self.links.watch(dev, self._link_changed).up for dev in devices}

    def _link_changed(self, ifname: str, link: Link) -> None:
        was_up, self._up[ifname] = self._up.get(ifname, False), link.up
        if link.up and not was_up:
            for entry in self.held:
                if self._on_link(entry) == ifname:
                    self._restore(entry)

    def _restore(self, entry: Tracked) -> None:
        """keepalived's reinstate_static_address / _route / _rule: a tracked entry comes back."""
        log.info("Restoring deleted static %s", describe(entry))
        task = asyncio.get_running_loop().create_task(
            self.routing.apply_all([entry], True, "static: ", on_deleted=self._restore)
        )
        self._restoring.add(task)
        task.add_done_callback(self._restoring.discard)

    async def stop(self) -> None:
        self.links.unwatch(self._link_changed)
        for task in list(self._restoring):
            await task
        held, self.held = self.held, []
        await self.routing.apply_all(reversed(held), False, "static: ")
        await self.routing.deletions.close()
