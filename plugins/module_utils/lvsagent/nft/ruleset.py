"""The agent's nftables table as libnftables JSON commands, and back.

One table (`inet lvs_ha`, IPv4 and IPv6) holds everything: NAT prerouting and output chains
(arriving packets and the director's own) whose rules look the packet's (daddr, l4proto,
dport) up in the verdict map of its family (`services4`, `services6`) and jump to that
virtual service's own chain. A service chain holds one rule: DNAT to
`numgen inc mod TOTAL map { SLOTS : ADDRESS . PORT }`, each live real server owning as many
consecutive slots as its weight (wrr) or one (rr); without a live real server, drop. The
rule's comment names the scheduler, so the table alone says what it does (status, audit).

A change to one service (a health change) is one transaction that rewrites that service's
chain (flush + one rule): the rest of the table is never touched. The reply to a real
server's packets is un-NATed by conntrack: the real servers route through the director.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from ..ipvs import Destination, Service, ServiceKey
from ..ipvs.plan import Change

FAMILY = "inet"
TABLE = "lvs_ha"
SERVICES_MAPS = {4: "services4", 6: "services6"}  # IP version -> its services map
ADDRESS_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
NAT_FAMILIES = {4: "ip", 6: "ip6"}  # the payload protocol and the dnat family of a version
# The base chains (each named after its hook) that send packets to the virtual services:
# those arriving, and the director's own (IPVS serves local clients too).
DISPATCH_HOOKS = ("prerouting", "output")
DSTNAT_PRIORITY = -100  # nft's "dstnat": where DNAT belongs in either hook
SLOTS_MAX = 2**31  # numgen's modulus is a u32; the slot total stays well inside it

# What the nftables data plane does today; the configuration refuses anything else.
SCHEDULERS = ("rr", "wrr")
METHODS = ("NAT",)
FAMILIES = (4, 6)


def service_chain(key: ServiceKey) -> str:
    """`vs-tcp-10.0.0.100-80` (`vs-tcp-fd00__100-80`): one chain per virtual service, named
    after its key, in words nft's own parser reads too."""
    return f"vs-{key.protocol}-{key.address.replace(':', '_')}-{key.port}"


def _object(kind: str, **fields) -> dict:
    return {kind: {"family": FAMILY, "table": TABLE, **fields}}


def _table() -> dict:
    return {"table": {"family": FAMILY, "name": TABLE}}


def _dispatch_rules(hook: str) -> list:
    """One rule per IP version, each looking its packets up in its own map."""
    rules = []
    for version, name in SERVICES_MAPS.items():
        key = {
            "concat": [
                {"payload": {"protocol": NAT_FAMILIES[version], "field": "daddr"}},
                {"meta": {"key": "l4proto"}},
                {"payload": {"protocol": "th", "field": "dport"}},
            ]
        }
        vmap = {"vmap": {"key": key, "data": f"@{name}"}}
        rules.append(_object("rule", chain=hook, expr=[vmap]))
    return rules


def _dispatch_chain(hook: str) -> dict:
    return _object(
        "chain",
        name=hook,
        type="nat",
        hook=hook,
        prio=DSTNAT_PRIORITY,
        policy="accept",
    )


def _services_map(version: int) -> dict:
    address = ADDRESS_TYPES[version]
    map_type = [address, "inet_proto", "inet_service"]
    return _object("map", name=SERVICES_MAPS[version], type=map_type, map="verdict")


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def _match(key: ServiceKey) -> tuple:
    """A service's key in its services map: (address, protocol, port)."""
    return key.address, key.protocol, key.port


def _element(match: tuple, target: Optional[str] = None) -> dict:
    entry = {"concat": list(match)}
    elem = [entry, {"goto": {"target": target}}] if target is not None else entry
    name = SERVICES_MAPS[_version(match[0])]
    return {"element": {"family": FAMILY, "table": TABLE, "name": name, "elem": [elem]}}


def _service_key(match: tuple) -> Optional[ServiceKey]:
    """The service a map element stands for; None for one hand-added with, say, icmp."""
    address, protocol, port = match
    try:
        return ServiceKey(_version(address), protocol, address, port)
    except (TypeError, ValueError):
        return None


def slots(service: Service, destinations: list[Destination]) -> tuple:
    """((address, port, first slot, last slot), ...) of the live real servers, in order.

    wrr gives each real server as many slots as its weight (so the table shows the weight;
    scaled down only if their sum passes SLOTS_MAX); rr one slot each; weight 0 none.
    """
    live = [d for d in destinations if d.weight > 0]
    weights = [1 if service.scheduler == "rr" else d.weight for d in live]
    total = sum(weights)
    if total > SLOTS_MAX:
        weights = [max(1, w * SLOTS_MAX // total) for w in weights]
    result, first = [], 0
    for dest, weight in zip(live, weights):
        result.append((dest.address, dest.port, first, first + weight - 1))
        first += weight
    return tuple(result)


@dataclass(frozen=True)
class ServiceRule:
    """What a service chain's rule does, compared between the desired and the live table."""

    family: str  # the dnat's: NAT_FAMILIES
    protocol: str
    scheduler: str
    slots: tuple  # see slots()
    modulus: int  # numgen's; the slots' total when the rule is whole

    def expr(self) -> list:
        left = {"meta": {"key": "l4proto"}}
        protocol = {"match": {"op": "==", "left": left, "right": self.protocol}}
        if not self.slots:
            return [protocol, {"drop": None}]
        mapping = [
            [{"range": [first, last]}, {"concat": [address, port]}]
            for address, port, first, last in self.slots
        ]
        numgen = {"numgen": {"mode": "inc", "mod": self.modulus}}
        lookup = {"key": numgen, "data": {"set": mapping}}
        return [protocol, {"dnat": {"family": self.family, "addr": {"map": lookup}}}]

    def destinations(self) -> list[Destination]:
        return [
            Destination(address, port, "nat", last - first + 1)
            for address, port, first, last in self.slots
        ]


def desired_rule(service: Service, destinations: list[Destination]) -> ServiceRule:
    taken = slots(service, destinations)
    modulus = taken[-1][3] + 1 if taken else 0
    family = NAT_FAMILIES[service.key.family]
    return ServiceRule(family, service.key.protocol, service.scheduler, taken, modulus)


def _slot_range(value) -> tuple:
    if isinstance(value, dict) and "range" in value:
        first, last = value["range"]
        return first, last
    return value, value


def parse_rule(rule: dict, family: str) -> Optional[ServiceRule]:
    """The ServiceRule a listed rule is, or None when it is not one this module writes.

    `family` is that of the service the chain is for: a drop rule does not say it."""
    scheduler = rule.get("comment", "")
    try:
        match, action = rule["expr"]
        protocol = match["match"]["right"]
        if action == {"drop": None}:
            return ServiceRule(family, protocol, scheduler, (), 0)
        if action["dnat"]["family"] != family:
            return None
        lookup = action["dnat"]["addr"]["map"]
        modulus = lookup["key"]["numgen"]["mod"]
        found = []
        for slot, target in lookup["data"]["set"]:
            address, port = target["concat"]
            found.append((address, port, *_slot_range(slot)))
        ordered = tuple(sorted(found, key=lambda entry: entry[2]))
    except (KeyError, TypeError, ValueError):
        return None
    return ServiceRule(family, protocol, scheduler, ordered, modulus)


@dataclass
class LiveTable:
    """The agent's table as its JSON listing shows it (absent: `present` False)."""

    present: bool = False
    dispatch: dict = field(default_factory=dict)  # dispatch chain (hook) -> its rules' exprs
    services_maps: set = field(default_factory=set)  # names
    elements: dict = field(default_factory=dict)  # _match() -> the chain it jumps to, or None
    chains: dict = field(default_factory=dict)  # service chain name -> [rules]


def applied(live: LiveTable, commands: list) -> LiveTable:
    """What `live` holds once nftables committed `commands` (this module's own vocabulary):
    the plane's view after its own transaction, without listing the table again."""
    after = LiveTable(
        live.present,
        {hook: list(rules) for hook, rules in live.dispatch.items()},
        set(live.services_maps),
        dict(live.elements),
        dict(live.chains),  # each chain's list is replaced, never changed in place
    )
    for command in commands:
        ((verb, body),) = command.items()
        ((kind, fields),) = body.items()
        name = fields.get("name") or fields.get("chain")
        if kind == "table":
            after = LiveTable(present=verb == "add")
        elif kind == "map":
            after.services_maps.add(name)
        elif kind == "element":
            entry = fields["elem"][0]
            match = tuple((entry[0] if verb == "add" else entry)["concat"])
            if verb == "add":
                after.elements[match] = entry[1]["goto"]["target"]
            else:
                after.elements.pop(match, None)
        elif name in DISPATCH_HOOKS:
            rules = after.dispatch.setdefault(name, [])
            if kind == "rule":
                rules.append(fields["expr"])
            elif verb == "flush":
                rules.clear()
        elif kind == "rule":
            after.chains[name] = [*after.chains.get(name, []), fields]
        elif verb == "delete":
            after.chains.pop(name, None)
        else:  # add or flush a service chain
            after.chains[name] = [] if verb == "flush" else after.chains.get(name, [])
    return after


def parse_listing(listing: Optional[dict]) -> LiveTable:
    live = LiveTable()
    if listing is None:
        return live
    live.present = True
    for item in listing.get("nftables", []):
        if "chain" in item:
            name = item["chain"]["name"]
            if name in DISPATCH_HOOKS:
                live.dispatch.setdefault(name, [])
            else:
                live.chains.setdefault(name, [])
        elif "rule" in item:
            rule = item["rule"]
            if rule["chain"] in DISPATCH_HOOKS:
                live.dispatch.setdefault(rule["chain"], []).append(rule.get("expr"))
            else:
                live.chains.setdefault(rule["chain"], []).append(rule)
        elif "map" in item and item["map"]["name"] in SERVICES_MAPS.values():
            live.services_maps.add(item["map"]["name"])
            for match, verdict in item["map"].get("elem", []):
                jump = verdict.get("goto") if isinstance(verdict, dict) else None
                live.elements[tuple(match["concat"])] = (jump or {}).get("target")
    return live


def live_rule(live: LiveTable, key: ServiceKey) -> Optional[ServiceRule]:
    """The service chain's rule, when the chain holds exactly one."""
    rules = live.chains.get(service_chain(key))
    if rules is None or len(rules) != 1:
        return None
    return parse_rule(rules[0], NAT_FAMILIES[key.family])


def live_service(live: LiveTable, key: ServiceKey) -> Optional[ServiceRule]:
    """The service's rule when packets reach it: its element jumps to its chain."""
    jumps = live.elements.get(_match(key)) == service_chain(key)
    return live_rule(live, key) if jumps else None


def _base(live: LiveTable) -> list:
    """Commands putting back the table, its dispatch chains and rules, and the services maps."""
    commands = []
    if not live.present:
        commands.append({"add": _table()})
    for version, name in SERVICES_MAPS.items():
        if name not in live.services_maps:
            commands.append({"add": _services_map(version)})
    for hook in DISPATCH_HOOKS:
        if hook not in live.dispatch:
            commands.append({"add": _dispatch_chain(hook)})
        rules = _dispatch_rules(hook)
        if live.dispatch.get(hook) != [rule["rule"]["expr"] for rule in rules]:
            if hook in live.dispatch:
                commands.append({"flush": _object("chain", name=hook)})
            commands.extend({"add": rule} for rule in rules)
    return commands


def _rule(key: ServiceKey, rule: ServiceRule) -> dict:
    return _object("rule", chain=service_chain(key), expr=rule.expr(), comment=rule.scheduler)


def plan(desired: dict, live: LiveTable, retired, *, whole_table: bool) -> tuple:
    """(changes, commands, repaired): what differs, one transaction fixing it, and whether
    the table's base (or an element no service stands for) was repaired.

    `desired` maps ServiceKey -> (Service, [Destination]). With `whole_table`, service
    chains and elements nobody declared are removed too (the table is the agent's alone).
    """
    changes, commands, chains = [], [], []
    base = _base(live)
    for key, (service, destinations) in desired.items():
        wanted = desired_rule(service, destinations)
        name = service_chain(key)
        if name not in live.chains:
            changes.append(Change("add_service", key, service))
            chains.append({"add": _object("chain", name=name)})
            commands.append({"add": _rule(key, wanted)})
        elif live_rule(live, key) != wanted:
            changes.append(Change("edit_service", key, service))
            commands.append({"flush": _object("chain", name=name)})
            commands.append({"add": _rule(key, wanted)})
        match = _match(key)
        if live.elements.get(match) != name:
            if not changes or changes[-1].key != key:
                changes.append(Change("edit_service", key, service))
            if match in live.elements:
                commands.append({"delete": _element(match)})
            commands.append({"add": _element(match, name)})
    declared = {_match(key) for key in desired}
    gone = {_match(key): key for key in retired if key not in desired}
    if whole_table:
        for match in live.elements:
            if match not in declared:
                gone.setdefault(match, _service_key(match))
    foreign = False
    for match, key in gone.items():
        if key is not None and (match in live.elements or service_chain(key) in live.chains):
            changes.append(Change("delete_service", key))
        if match in live.elements:
            commands.append({"delete": _element(match)})
            foreign = foreign or key is None
    stale = {service_chain(key) for key in gone.values() if key is not None}
    if whole_table:
        stale |= set(live.chains) - {service_chain(key) for key in desired}
    commands.extend(
        {"delete": _object("chain", name=name)} for name in sorted(stale) if name in live.chains
    )
    return changes, base + chains + commands, foreign or (bool(base) and live.present)


def read(live: LiveTable, keys) -> dict:
    """ServiceKey -> (Service, [Destination]) as the table holds them (for status)."""
    table = {}
    for key in keys:
        rule = live_service(live, key)
        if rule is not None:
            scheduler = rule.scheduler or "?"
            table[key] = (Service(key, scheduler=scheduler), rule.destinations())
    return table


def delete_table() -> list:
    return [{"delete": _table()}]
