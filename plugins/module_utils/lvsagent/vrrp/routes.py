"""Routes and rules through rtnetlink (pyroute2), as keepalived's netlink_route / netlink_rule
send them: static_routes and static_rules for the agent's life, an instance's virtual_routes
and virtual_rules while it is MASTER.

Requests go out on the AddressManager's rtnetlink socket, in the agent's loop.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import replace
from typing import Union

from ..config.model import Config, Location, Route, Rule, VirtualAddress
from .addresses import AddressManager

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


class RoutingManager:
    """Adds and removes routes and rules on the AddressManager's rtnetlink socket (and, for the
    static entries, addresses on their `dev` through it)."""

    def __init__(self, addresses: AddressManager) -> None:
        self.addresses = addresses

    async def apply_all(self, entries, add: bool, prefix: str, quiet: bool = False) -> None:
        """Each entry in turn; one that fails is logged (unless quiet: leftovers looked for)
        and must not keep the others away."""
        for entry in entries:
            try:
                if isinstance(entry, VirtualAddress):
                    action = self.addresses.add if add else self.addresses.remove
                    await action(entry, entry.dev)
                else:
                    await (self.add if add else self.remove)(entry)
            except Exception as error:
                if not quiet:
                    verb = "adding" if add else "removing"
                    log.error("%s%s %s failed: %s", prefix, verb, describe(entry), error)

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
    removes the entries gone from the file and adds the new ones, stop removes them all."""

    def __init__(self, routing: RoutingManager) -> None:
        self.routing = routing
        self.held: list = []  # addresses, then routes, then rules: the order they are added

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
        await self.routing.apply_all([e for e in wanted if e not in held], True, "static: ")

    async def stop(self) -> None:
        held, self.held = self.held, []
        await self.routing.apply_all(reversed(held), False, "static: ")
