"""The agent's nftables tables as libnftables JSON commands, and back.

NAT lives in `inet lvs_ha` (IPv4 and IPv6): NAT prerouting and output chains (arriving packets
and the director's own) whose rules look the packet's (daddr, l4proto, dport) up in the verdict
map of its family (`services4`, `services6`) and jump to that virtual service's own chain. A
service chain holds one rule: DNAT to `SELECTOR map { SLOTS : ADDRESS . PORT }`; without a live
real server, drop. The reply to a real server's packets is un-NATed by conntrack: the real
servers route through the director.

DR lives in `netdev lvs_ha`: `fwd` (the destination MAC rewritten, the VIP kept) exists only in
the netdev family's ingress hook. One ingress chain per device the DR real servers are reached
through (`in-DEVICE`: the one-armed director of DR, where clients and real servers share the
LAN) holds the same dispatch rules and maps; a service chain's rule is `SELECTOR vmap { SLOTS :
goto dr-... }`, each real server's chain counting the packet and forwarding it, `counter fwd ip
to ADDRESS device DEVICE` (see DR_PREFIX). The ingress hook comes before conntrack, so nothing
remembers a connection: DR takes the hashing schedulers only, whose slot of a client does not
move while its real server stays (slots.py).

persistence_timeout (NAT): per live real server, a set of its clients (each timing out) and a
chain adding the client to it and DNATing there; the service chain sends a client found in a
set to that chain, and schedules the others with `SELECTOR vmap { SLOTS : goto CHAIN }`.

The selector: rr and wrr take `numgen inc mod TOTAL`, each live real server owning as many
consecutive slots as its weight (wrr) or one (rr); sh and mh take `jhash ip saddr mod
slots.SLOTS`, over the consistent slot table of slots.py. The rule's comment names the
scheduler, so the table alone says what it does (status, audit). rr and wrr over more than
GROUPED_ABOVE live real servers take two steps: the service chain's rule picks a group chain
(`SELECTOR vmap { SLOTS : goto grp-... }`, a group owning its members' slots), whose rule picks
among about GROUP_SIZE real servers as above: nft builds a rule's map anew on each write, so
this keeps a health change to two small rules.

A change to one service (a health change) is one transaction that rewrites that service's
chain (flush + one rule), and the group chain of the real server that changed: the rest of
the table is never touched.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Optional

from ..ipvs import PROTOCOLS, Destination, Service, ServiceKey, Stats
from ..ipvs.plan import Change
from . import slots as hashing

FAMILY = "inet"  # NAT's table
DR_FAMILY = "netdev"  # DR's table: fwd exists only in the netdev family
TABLE = "lvs_ha"
TABLE_FAMILIES = {"nat": FAMILY, "dr": DR_FAMILY}  # a Destination's forwarding -> its table
SERVICES_MAPS = {4: "services4", 6: "services6"}  # IP version -> its services map
ADDRESS_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
NAT_FAMILIES = {4: "ip", 6: "ip6"}  # the payload protocol and the dnat/fwd family of a version
# The NAT base chains (each named after its hook) that send packets to the virtual services:
# those arriving, and the director's own (IPVS serves local clients too).
DISPATCH_HOOKS = ("prerouting", "output")
DSTNAT_PRIORITY = -100  # nft's "dstnat": where DNAT belongs in either hook
INGRESS_PRIORITY = 0  # DR's ingress chains: nothing else of the agent's shares the hook
INGRESS_PREFIX = "in-"  # DR's ingress chain of a device: in-eth0
PIECES_CACHED = 1024  # persistent services whose real servers' nft pieces are remembered
SLOTS_MAX = 2**31  # numgen's modulus is a u32; the slot total stays well inside it
# persistence_timeout (NAT): per live real server, a set of the clients it serves (`pin-`,
# each element timing out) and a chain recording the client there and DNATing to it (`to-`).
PIN_PREFIX, TO_PREFIX = "pin-", "to-"
# ... and per persistent service a chain of the rules sending a pinned client to its real
# server's `to-` chain, jumped to first: a health change leaves it alone (see plan()).
PINNED_PREFIX = "pinned-"
# rr/wrr with more than GROUPED_ABOVE live real servers: the service chain's rule picks one of
# a few group chains (`grp-SERVICE-N`), each a rule over about GROUP_SIZE of them, so a health
# change rewrites two small rules, not one of every real server (nft builds a rule's map anew).
GROUP_PREFIX = "grp-"
GROUPED_ABOVE = 64
GROUP_SIZE = 32
GROUPS_CACHED = 65536  # real servers whose group is remembered

# Counters (NAT): the `count` chain, on the forward hook after DNAT, files each forwarded
# packet of a DNATed connection under (VIP, protocol, real server, its port) in a dynamic set
# whose elements count: `in` the client's packets, `out` the real server's, `conns` the first
# packet of each connection. Read only when status or the metrics ask.
COUNT_CHAIN = "count"
COUNT_HOOK = {"type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}
COUNTER_SETS = ("in", "out", "conns")  # + the IP version: in4, out6, ...
COUNTER_SET_SIZE = 65535
# DR: the service rule sends each slot to its real server's chain, `dr-SERVICE-ADDRESS`, which
# counts and forwards: ingress comes before conntrack, so the chain's rules are the counters
# (`counter fwd ip to ADDRESS device DEV`; before it, for TCP, `tcp flags syn / syn,ack counter`:
# each connection's first packet). Made with the real server, deleted when it leaves (as IPVS
# forgets a removed real server's counters). Only what the client sends: the replies go
# straight from the real server.
DR_PREFIX = "dr-"
SYN_COUNTING = [
    {
        "match": {
            "op": "==",
            "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "ack"]]},
            "right": "syn",
        }
    },
    {"counter": None},
]

# What the nftables data plane does today; the configuration refuses anything else.
SCHEDULERS = ("rr", "wrr", "sh", "mh")
HASHED = ("sh", "mh")  # over the consistent slot table, keyed by the client's address
METHODS = ("NAT", "DR")
STATELESS_METHODS = ("DR",)  # before conntrack: only the hashing schedulers keep a client's flow
PERSISTENT_METHODS = ("NAT",)
FAMILIES = (4, 6)


def _named(address: str) -> str:
    """An address as part of an nft name (`fd00__2`)."""
    return address.replace(":", "_")


def _service_name(key: ServiceKey) -> str:
    """`tcp-10.0.0.100-80` (`tcp-fd00__100-80`): a virtual service in words nft's own parser
    reads too."""
    return f"{key.protocol}-{key.address.replace(':', '_')}-{key.port}"


def service_chain(key: ServiceKey) -> str:
    """`vs-tcp-10.0.0.100-80`: one chain per virtual service."""
    return f"vs-{_service_name(key)}"


def _protocol_match(protocol: str) -> dict:
    return {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": protocol}}


def _object(kind: str, family: str, **fields) -> dict:
    return {kind: {"family": family, "table": TABLE, **fields}}


def _table(family: str) -> dict:
    return {"table": {"family": family, "name": TABLE}}


def dispatch_rules(family: str, chain: str) -> list:
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
        rules.append(_object("rule", family, chain=chain, expr=[vmap]))
    return rules


def counting_rules(family: str) -> list:
    """The `count` chain's rules: per IP version, a DNATed connection's packets each way and
    its first one, each updating its set's element (and so its counter)."""
    rules = []
    for version in SERVICES_MAPS:
        ip = NAT_FAMILIES[version]
        vip = {"ct": {"key": f"{ip} daddr", "dir": "original"}}
        proto = {"meta": {"key": "l4proto"}}
        for name, direction, side, extra in (
            ("in", "original", "d", []),
            ("out", "reply", "s", []),
            ("conns", "original", "d", [_ct_match("state", "new")]),
        ):
            server = [
                {"payload": {"protocol": ip, "field": f"{side}addr"}},
                {"payload": {"protocol": "th", "field": f"{side}port"}},
            ]
            update = {
                "set": {
                    "op": "update",
                    "elem": {"concat": [vip, proto, *server]},
                    "set": f"@{name}{version}",
                    "stmt": [{"counter": None}],
                }
            }
            matches = [_ct_match("status", "dnat"), _ct_match("direction", direction), *extra]
            rules.append(_object("rule", family, chain=COUNT_CHAIN, expr=[*matches, update]))
    return rules


def _ct_match(key: str, value: str) -> dict:
    operator = "==" if key == "direction" else "in"  # as nft lists them: state and status are bits
    return {"match": {"op": operator, "left": {"ct": {"key": key}}, "right": value}}


def counter_sets(family: str) -> dict:
    """The counting sets, name -> their fields."""
    sets = {}
    for version in SERVICES_MAPS:
        address = ADDRESS_TYPES[version]
        for name in COUNTER_SETS:
            sets[f"{name}{version}"] = {
                "type": [address, "inet_proto", address, "inet_service"],
                "size": COUNTER_SET_SIZE,
            }
    return sets


def base_rules(family: str, chain: str) -> list:
    """A base chain's rules: the counting chain's, or a dispatch chain's."""
    return counting_rules(family) if chain == COUNT_CHAIN else dispatch_rules(family, chain)


def base_chains(family: str, devices=()) -> dict:
    """The base chains a table needs, name -> their hook fields: NAT's two hooks and its
    counting chain, or DR's ingress chain of each device."""
    if family == FAMILY:
        nat = {"type": "nat", "prio": DSTNAT_PRIORITY, "policy": "accept"}
        return {**{hook: {"hook": hook, **nat} for hook in DISPATCH_HOOKS}, COUNT_CHAIN: COUNT_HOOK}
    ingress = {"type": "filter", "hook": "ingress", "prio": INGRESS_PRIORITY, "policy": "accept"}
    return {f"{INGRESS_PREFIX}{device}": {**ingress, "dev": device} for device in sorted(devices)}


def _services_map(family: str, version: int) -> dict:
    address = ADDRESS_TYPES[version]
    map_type = [address, "inet_proto", "inet_service"]
    return _object("map", family, name=SERVICES_MAPS[version], type=map_type, map="verdict")


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def _match(key: ServiceKey) -> tuple:
    """A service's key in its services map: (address, protocol, port)."""
    return key.address, key.protocol, key.port


def _element(match: tuple, target: Optional[str] = None, family: str = FAMILY) -> dict:
    entry = {"concat": list(match)}
    elem = [entry, {"goto": {"target": target}}] if target is not None else entry
    name = SERVICES_MAPS[_version(match[0])]
    return {"element": {"family": family, "table": TABLE, "name": name, "elem": [elem]}}


def _service_key(match: tuple) -> Optional[ServiceKey]:
    """The service a map element stands for; None for one hand-added with, say, icmp."""
    address, protocol, port = match
    try:
        return ServiceKey(_version(address), protocol, address, port)
    except (TypeError, ValueError):
        return None


def slots(service: Service, destinations: list[Destination]) -> tuple:
    """((address, port, first slot, last slot), ...) of the live real servers, by first slot.

    wrr gives each real server as many slots as its weight (so the table shows the weight;
    scaled down only if their sum passes SLOTS_MAX); rr one slot each; weight 0 none. sh and
    mh share the consistent slot table (a real server may own several runs of it).
    """
    live = [d for d in destinations if d.weight > 0]
    if service.scheduler in HASHED:
        owned = hashing.owners([(d.address, d.port, d.weight) for d in live])
        return tuple(
            (live[owner].address, live[owner].port, first, last)
            for owner, first, last in hashing.runs(owned)
        )
    weights = [1 if service.scheduler == "rr" else d.weight for d in live]
    return _consecutive([(d.address, d.port) for d in live], weights)


def _consecutive(targets: list, weights: list) -> tuple:
    """((address, port, first slot, last slot), ...): each target `weight` consecutive slots
    (scaled down only if their sum passes SLOTS_MAX)."""
    total = sum(weights)
    if total > SLOTS_MAX:
        weights = [max(1, w * SLOTS_MAX // total) for w in weights]
    result, first = [], 0
    for (address, port), weight in zip(targets, weights):
        result.append((address, port, first, first + weight - 1))
        first += weight
    return tuple(result)


@dataclass(frozen=True)
class ServiceRule:
    """What a service chain's rule does, compared between the desired and the live table."""

    family: str  # the dnat's or the selector's: NAT_FAMILIES
    protocol: str
    scheduler: str
    slots: tuple  # see slots()
    modulus: int  # the selector's; the slots' total when the rule is whole
    pinned: bool = False  # persistence: slots go to the `to-` chains their "address" names
    grouped: bool = False  # slots go to the `grp-` chains their "address" names
    forwarders: bool = False  # DR: slots go to the `dr-` chains their "address" names

    def selector(self) -> dict:
        if self.scheduler in HASHED:
            saddr = {"payload": {"protocol": self.family, "field": "saddr"}}
            return {"jhash": {"mod": self.modulus, "seed": hashing.SEED, "expr": saddr}}
        return {"numgen": {"mode": "inc", "mod": self.modulus}}

    def expr(self) -> list:
        protocol = _protocol_match(self.protocol)
        if not self.slots:
            return [protocol, {"drop": None}]
        mapping = []
        chains = self.pinned or self.grouped or self.forwarders
        for address, port, first, last in self.slots:
            target = {"goto": {"target": address}} if chains else {"concat": [address, port]}
            if self.scheduler in HASHED or first == last:  # single slots: no interval to build
                mapping.extend([slot, target] for slot in range(first, last + 1))
            else:
                mapping.append([{"range": [first, last]}, target])
        if chains:
            return [protocol, {"vmap": {"key": self.selector(), "data": {"set": mapping}}}]
        lookup = {"map": {"key": self.selector(), "data": {"set": mapping}}}
        return [protocol, {"dnat": {"family": self.family, "addr": lookup}}]

    def owned(self) -> dict:
        """(address, port) -> the slots it owns; a pinned rule's address is a `to-` chain, a
        grouped one's a `grp-` chain, a DR one's a `dr-` chain. Made once per rule (a plan asks
        several times)."""
        return self._owned

    @cached_property
    def _owned(self) -> dict:
        owned: dict = {}
        for address, port, first, last in self.slots:
            owned[(address, port)] = owned.get((address, port), 0) + last - first + 1
        return owned

    def destinations(self) -> list[Destination]:
        """Each real server of a NAT rule once, its weight the slots it owns."""
        return [Destination(*endpoint, "nat", count) for endpoint, count in self.owned().items()]


def desired_rule(
    service: Service, destinations: list[Destination], device: Optional[str] = None
) -> ServiceRule:
    """The rule wanted; `device` (DR only) is where the real servers are reached."""
    taken = slots(service, destinations)
    if not taken:
        modulus = 0
    elif service.scheduler in HASHED:
        modulus = hashing.SLOTS
    else:
        modulus = taken[-1][3] + 1
    forwarders = device is not None and bool(taken)
    if forwarders:  # DR: each real server's chain (dr_chains) forwards, on the service's port
        taken = tuple((dr_chain(service.key, address), None, *span) for address, _p, *span in taken)
    pinned = bool(service.persistence_timeout and taken)  # without, it drops: nothing to pin
    if pinned:
        pieces = pinned_pieces(service.key, service.persistence_timeout)
        taken = tuple((pieces[address, port][1], None, *span) for address, port, *span in taken)
    family = NAT_FAMILIES[service.key.family]
    return ServiceRule(
        family,
        service.key.protocol,
        service.scheduler,
        taken,
        modulus,
        pinned,
        forwarders=forwarders,
    )


def dr_chain(key: ServiceKey, address: str) -> str:
    return f"{DR_PREFIX}{_service_name(key)}-{_named(address)}"


def dr_chains(key: ServiceKey, rule: ServiceRule, destinations: list, device: str) -> dict:
    """The `dr-` chains a DR service's rule sends to -> their rules' exprs (see DR_PREFIX),
    written as nft lists them (nft drops the `meta l4proto tcp` that `tcp flags` implies)."""
    owned = rule.owned()
    chains = {}
    for dest in destinations:
        name = dr_chain(key, dest.address)
        if (name, None) in owned:
            fwd = {"fwd": {"dev": device, "family": rule.family, "addr": dest.address}}
            first = [SYN_COUNTING] if key.protocol == "tcp" else []
            chains[name] = [*first, [{"counter": None}, fwd]]
    return chains


def _uncounted(expr: list) -> list:
    """A rule's exprs with its counter's values left out (they move with the traffic)."""
    return [
        {"counter": None} if isinstance(statement, dict) and "counter" in statement else statement
        for statement in expr
    ]


def dr_counters(rules: list) -> tuple:
    """(address, Stats) from a `dr-` chain's rules as listed: the fwd rule's counter (packets
    in) and the SYN one's (connections); None when the chain is not one this module writes."""
    found = {}
    try:
        for rule in rules:
            expr = rule["expr"]
            counter = next((s["counter"] for s in expr if "counter" in s), None) or {}
            fwd = expr[-1].get("fwd", {})
            found["fwd" if fwd else "syn"] = (
                fwd.get("addr"),
                counter.get("packets", 0),
                counter.get("bytes", 0),
            )
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    if "fwd" not in found:
        return None
    address, packets, octets = found["fwd"]
    connections = found.get("syn", (None, 0, 0))[1]
    return address, Stats(connections=connections, packets_in=packets, bytes_in=octets)


def desired_rules(
    service: Service, destinations: list[Destination], device: Optional[str] = None
) -> tuple:
    """(the service chain's rule, {group chain: its rule}): see GROUPED_ABOVE. A real server's
    group is its endpoint's hash modulo a power of two fixed by how many real servers there are,
    so one coming or going changes its group's rule only (and the service's, of group totals)."""
    live = [d for d in destinations if d.weight > 0]
    if service.scheduler in HASHED or len(live) <= GROUPED_ABOVE:
        return desired_rule(service, destinations, device), {}
    count = 1 << ((len(destinations) - 1) // GROUP_SIZE).bit_length()
    members: dict = {}
    for dest in live:
        members.setdefault(_group(dest.address, dest.port, count), []).append(dest)
    named = sorted((group_chain(service.key, index), found) for index, found in members.items())
    groups = {chain: desired_rule(service, found, device) for chain, found in named}
    taken = _consecutive([(chain, None) for chain in groups], [r.modulus for r in groups.values()])
    family = NAT_FAMILIES[service.key.family]
    top = ServiceRule(
        family, service.key.protocol, service.scheduler, taken, taken[-1][3] + 1, grouped=True
    )
    return top, groups


@lru_cache(maxsize=GROUPS_CACHED)
def _group(address: str, port: int, count: int) -> int:
    return zlib.crc32(f"{address} {port}".encode()) % count


def group_chain(key: ServiceKey, index: int) -> str:
    return f"{GROUP_PREFIX}{_service_name(key)}-{index}"


class PinnedPieces(dict):
    """(address, port) -> (`pin-` set, `to-` chain, the rule sending a pinned client there,
    the `to-` chain's rule, the set's fields) of one real server of a persistent service, made
    on first use and remembered: a health change of a large service would otherwise spend
    most of its time rebuilding them (they are only ever read). Names read
    `pin-tcp-10.0.0.100-80-60-10.1.0.2-8080`: the service, its timeout (a new timeout is a new
    set), the real server."""

    def __init__(self, key: ServiceKey, timeout: int):
        super().__init__()
        self.key, self.timeout = key, timeout

    def __missing__(self, endpoint: tuple) -> tuple:
        address, port = endpoint
        family = NAT_FAMILIES[self.key.family]
        owner = f"{_service_name(self.key)}-{self.timeout}-{address.replace(':', '_')}-{port}"
        pin, to = PIN_PREFIX + owner, TO_PREFIX + owner
        saddr = {"payload": {"protocol": family, "field": "saddr"}}
        pinned = [
            {"match": {"op": "==", "left": saddr, "right": f"@{pin}"}},
            {"goto": {"target": to}},
        ]
        update = {"set": {"op": "update", "elem": saddr, "set": f"@{pin}"}}
        dnat = {"dnat": {"family": family, "addr": address, "port": port}}
        recording = [_protocol_match(self.key.protocol), update, dnat]
        fields = {
            "type": ADDRESS_TYPES[self.key.family],
            "flags": ["timeout"],
            "timeout": self.timeout,
        }
        self[endpoint] = (pin, to, pinned, recording, fields)
        return self[endpoint]


@lru_cache(maxsize=PIECES_CACHED)
def pinned_pieces(key: ServiceKey, timeout: int) -> PinnedPieces:
    return PinnedPieces(key, timeout)


def pinned_chain(key: ServiceKey) -> str:
    return f"{PINNED_PREFIX}{_service_name(key)}"


def to_chain(service: Service, address: str, port: int) -> str:
    return pinned_pieces(service.key, service.persistence_timeout)[address, port][1]


def pin_set(service: Service, address: str, port: int) -> str:
    return pinned_pieces(service.key, service.persistence_timeout)[address, port][0]


def _owned_by(name: str, key: ServiceKey) -> bool:
    """Whether a `pin-` set, or a `to-`, `grp-`, `dr-` or `pinned-` chain, belongs to the
    service `key`."""
    owner = _service_name(key) + "-"
    prefixes = (PIN_PREFIX, TO_PREFIX, GROUP_PREFIX, DR_PREFIX)
    return name == pinned_chain(key) or any(name.startswith(prefix + owner) for prefix in prefixes)


@dataclass(frozen=True)
class Pinning:
    """A persistent service's pieces beside its rule: the service chain's rules before it
    (a pinned client goes to its real server's chain), the `to-` chains and `pin-` sets."""

    rules: tuple = ()  # exprs
    chains: dict = field(default_factory=dict)  # to- chain -> its one rule's expr, as `rules`
    sets: dict = field(default_factory=dict)  # pin- set -> its fields


def pinning(service: Service, destinations: list[Destination]) -> Pinning:
    """What persistence_timeout adds for the live real servers (nothing without it)."""
    timeout = service.persistence_timeout
    if not timeout:
        return Pinning()
    rules, chains, sets = [], {}, {}
    pieces = pinned_pieces(service.key, timeout)
    for dest in (d for d in destinations if d.weight > 0):
        pin, to, pinned, recording, fields = pieces[dest.address, dest.port]
        rules.append(pinned)
        chains[to] = recording
        sets[pin] = fields
    return Pinning(tuple(rules), chains, sets)


def _slot_range(value) -> tuple:
    if isinstance(value, dict) and "range" in value:
        first, last = value["range"]
        return first, last
    return value, value


def _merged(found: list) -> tuple:
    """Adjacent slots of one real server as one run, as slots() gives them."""
    runs = []
    for address, port, first, last in found:
        if runs and runs[-1][:2] == [address, port] and runs[-1][3] + 1 == first:
            runs[-1][3] = last
        else:
            runs.append([address, port, first, last])
    return tuple(tuple(run) for run in runs)


def _selector_fits(selector: dict, scheduler: str, family: str) -> bool:
    """Whether the listed selector is the one `scheduler` is written with."""
    if scheduler not in HASHED:
        return selector.get("numgen", {}).get("mode") == "inc"
    jhash = selector.get("jhash", {})
    saddr = {"payload": {"protocol": family, "field": "saddr"}}
    fixed = (jhash.get("mod"), jhash.get("seed"), jhash.get("expr"))
    return fixed == (hashing.SLOTS, hashing.SEED, saddr)


def _parsed(live: LiveTable, rule: dict, family: str) -> Optional[ServiceRule]:
    """parse_rule, remembered in `live` by the rule's identity (the rule kept with it, so its
    id stays its own): a table known from `applied` holds the very rules the plane wrote,
    which each pass would otherwise parse again (a grouped service's every one)."""
    found = live.parsed.get(id(rule))
    if found is not None and found[0] is rule and found[1] == family:
        return found[2]
    parsed = parse_rule(rule, family)
    live.parsed[id(rule)] = (rule, family, parsed)
    return parsed


def parse_rule(rule: dict, family: str) -> Optional[ServiceRule]:
    """The ServiceRule a listed rule is, or None when it is not one this module writes.

    `family` is that of the service the chain is for (a drop rule does not say it)."""
    scheduler = rule.get("comment", "")
    try:
        match, action = rule["expr"]
        protocol = match["match"]["right"]
        if action == {"drop": None}:
            return ServiceRule(family, protocol, scheduler, (), 0)
        ((verb, body),) = action.items()
        if verb == "vmap":
            lookup = body
        elif verb == "dnat" and body["family"] == family:
            lookup = body["addr"]["map"]
        else:
            return None
        selector = lookup["key"]
        if not _selector_fits(selector, scheduler, family):
            return None
        modulus = next(iter(selector.values()))["mod"]
        found = []
        for slot, target in lookup["data"]["set"]:
            if verb == "vmap":
                address, target_port = target["goto"]["target"], None
            else:
                address, target_port = target["concat"]
            found.append((address, target_port, *_slot_range(slot)))
        ordered = _merged(sorted(found, key=lambda entry: entry[2]))
        grouped = verb == "vmap" and all(entry[0].startswith(GROUP_PREFIX) for entry in found)
        forwarders = verb == "vmap" and all(entry[0].startswith(DR_PREFIX) for entry in found)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    pinned = verb == "vmap" and not grouped and not forwarders
    return ServiceRule(family, protocol, scheduler, ordered, modulus, pinned, grouped, forwarders)


@dataclass
class LiveTable:
    """One of the agent's tables as its JSON listing shows it (absent: `present` False)."""

    present: bool = False
    dispatch: dict = field(default_factory=dict)  # base chain -> its rules' exprs
    services_maps: set = field(default_factory=set)  # names
    elements: dict = field(default_factory=dict)  # _match() -> the chain it jumps to, or None
    chains: dict = field(default_factory=dict)  # service (and to-) chain name -> [rules]
    family: str = FAMILY
    sets: dict = field(default_factory=dict)  # pin- (and counting) set name -> its timeout
    counters: dict = field(default_factory=dict)  # counting set -> {element: (packets, bytes)}
    # id(rule) -> (rule, family, its ServiceRule): see _parsed(); shared with the
    # table `applied` makes of it, which forgets the rules it flushes
    parsed: dict = field(default_factory=dict, compare=False, repr=False)


def applied(live: LiveTable, commands: list) -> LiveTable:
    """What `live` holds once nftables committed `commands` (this module's own vocabulary;
    those for the other table are left out): the plane's view after its own transaction,
    without listing the table again."""
    after = LiveTable(
        live.present,
        {chain: list(rules) for chain, rules in live.dispatch.items()},
        set(live.services_maps),
        dict(live.elements),
        dict(live.chains),  # each chain's list is replaced, never changed in place
        live.family,
        dict(live.sets),
        parsed=live.parsed,
    )
    for command in commands:
        ((verb, body),) = command.items()
        ((kind, fields),) = body.items()
        if fields["family"] != live.family:
            continue
        name = fields.get("name") or fields.get("chain")
        if kind == "table":
            after = LiveTable(present=verb == "add", family=live.family)
        elif kind == "map":
            after.services_maps.add(name)
        elif kind == "set":
            if verb == "add":
                after.sets[name] = fields.get("timeout")
            elif verb == "delete":
                after.sets.pop(name, None)
        elif kind == "element":
            entry = fields["elem"][0]
            match = tuple((entry[0] if verb == "add" else entry)["concat"])
            if verb == "add":
                after.elements[match] = entry[1]["goto"]["target"]
            else:
                after.elements.pop(match, None)
        elif name in after.dispatch or "hook" in fields:
            _apply_to_chain(
                after.dispatch, verb, kind, name, fields["expr"] if kind == "rule" else None
            )
        else:
            if kind == "chain" and verb != "add":
                for rule in after.chains.get(name, ()):
                    after.parsed.pop(id(rule), None)
            _apply_to_chain(after.chains, verb, kind, name, fields if kind == "rule" else None)
    return after


def _apply_to_chain(chains: dict, verb: str, kind: str, name: str, rule) -> None:
    """A chain command on `chains` (name -> rules); each changed list is a new one."""
    if kind == "rule":
        chains[name] = [*chains.get(name, []), rule]
    elif verb == "delete":
        chains.pop(name, None)
    else:  # add or flush
        chains[name] = [] if verb == "flush" else chains.get(name, [])


# nft lists a protocol by its number where the C library finds no /etc/protocols (Debian 12
# without netbase; nft 1.1 knows the names itself): read back as the name this module writes.
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}


def _named(protocol):
    return PROTOCOL_NAMES.get(protocol, protocol) if isinstance(protocol, int) else protocol


def _named_concat(values: list) -> tuple:
    """An (address, protocol, ...) element's key with its protocol named."""
    return tuple(_named(value) if index == 1 else value for index, value in enumerate(values))


def _named_rule(rule: dict) -> dict:
    """The rule with its `meta l4proto` matches naming their protocol."""
    exprs = []
    for expr in rule.get("expr", []):
        match = expr.get("match") if isinstance(expr, dict) else None
        if isinstance(match, dict) and match.get("left") == {"meta": {"key": "l4proto"}}:
            expr = {"match": {**match, "right": _named(match.get("right"))}}
        exprs.append(expr)
    return {**rule, "expr": exprs} if "expr" in rule else rule


def parse_listing(
    listing: Optional[dict], family: str = FAMILY, counters: bool = False
) -> LiveTable:
    """The table a listing shows; its counting sets' elements only with `counters` (status)."""
    live = LiveTable(family=family)
    if listing is None:
        return live
    live.present = True
    for item in listing.get("nftables", []):
        if "chain" in item:
            name = item["chain"]["name"]
            (live.dispatch if "hook" in item["chain"] else live.chains).setdefault(name, [])
        elif "rule" in item:
            rule = _named_rule(item["rule"])
            if rule["chain"] in live.dispatch:
                live.dispatch[rule["chain"]].append(rule.get("expr"))
            else:
                live.chains.setdefault(rule["chain"], []).append(rule)
        elif "set" in item:
            live.sets[item["set"]["name"]] = item["set"].get("timeout")
            if counters and item["set"]["name"] in counter_sets(family):
                live.counters[item["set"]["name"]] = _counted(item["set"].get("elem", []))
        elif "map" in item and item["map"]["name"] in SERVICES_MAPS.values():
            live.services_maps.add(item["map"]["name"])
            for match, verdict in item["map"].get("elem", []):
                jump = verdict.get("goto") if isinstance(verdict, dict) else None
                live.elements[_named_concat(match["concat"])] = (jump or {}).get("target")
    return live


def _counted(elements: list) -> dict:
    """A counting set's elements: (VIP, protocol, real server, port) -> (packets, bytes)."""
    counted = {}
    for element in elements:
        body = element.get("elem", {}) if isinstance(element, dict) else {}
        counter = body.get("counter") or {}
        try:
            counted[_named_concat(body["val"]["concat"])] = (counter["packets"], counter["bytes"])
        except (KeyError, TypeError):
            continue
    return counted


def stats(live: LiveTable, key: ServiceKey, address: str, port: int) -> Stats:
    """A NAT real server's counters in service `key`, as IPVS gives them (no rates)."""
    element = (key.address, key.protocol, address, port)
    found = {
        name: live.counters.get(f"{name}{key.family}", {}).get(element, (0, 0))
        for name in COUNTER_SETS
    }
    return Stats(
        connections=found["conns"][0],
        packets_in=found["in"][0],
        bytes_in=found["in"][1],
        packets_out=found["out"][0],
        bytes_out=found["out"][1],
    )


def _summed(counters: list) -> Stats:
    """A virtual service's counters: its real servers' together."""
    fields = ("connections", "packets_in", "bytes_in", "packets_out", "bytes_out")
    return Stats(**{name: sum(getattr(c, name) for c in counters) for name in fields})


def live_rule(live: LiveTable, key: ServiceKey) -> Optional[ServiceRule]:
    """The service chain's rule: its last (a persistent service's pinned rules come first)."""
    rules = live.chains.get(service_chain(key))
    if not rules:
        return None
    return _parsed(live, rules[-1], NAT_FAMILIES[key.family])


def _exprs(live: LiveTable, chain: str) -> Optional[list]:
    rules = live.chains.get(chain)
    return None if rules is None else [rule["expr"] for rule in rules]


def _pinned_endpoint(live: LiveTable, chain: str) -> Optional[tuple]:
    """(address, port) a `to-` chain DNATs to."""
    try:
        dnat = live.chains[chain][0]["expr"][-1]["dnat"]
        return dnat["addr"], dnat["port"]
    except (IndexError, KeyError, TypeError):
        return None


def live_service(live: LiveTable, key: ServiceKey) -> Optional[ServiceRule]:
    """The service's rule when packets reach it: its element jumps to its chain."""
    jumps = live.elements.get(_match(key)) == service_chain(key)
    return live_rule(live, key) if jumps else None


def _base(live: LiveTable, wanted: dict) -> tuple:
    """(commands putting back the table, its base chains and their rules, and the services
    maps; whether that repairs what was there; commands removing the base chains no longer
    `wanted`). A DR ingress chain comes and goes with the devices DR uses: its coming is
    no repair."""
    family, commands, repaired = live.family, [], False
    if not live.present:
        commands.append({"add": _table(family)})
    for version, name in SERVICES_MAPS.items():
        if name not in live.services_maps:
            commands.append({"add": _services_map(family, version)})
            repaired = live.present
    for name, fields in (counter_sets(family) if family == FAMILY else {}).items():
        if name not in live.sets:
            commands.append({"add": _object("set", family, name=name, **fields)})
    for chain, hook in wanted.items():
        if chain not in live.dispatch:
            commands.append({"add": _object("chain", family, name=chain, **hook)})
            repaired = repaired or (live.present and family == FAMILY)
        rules = base_rules(family, chain)
        if live.dispatch.get(chain) != [rule["rule"]["expr"] for rule in rules]:
            if chain in live.dispatch:
                commands.append({"flush": _object("chain", family, name=chain)})
                repaired = True
            commands.extend({"add": rule} for rule in rules)
    unwanted = []
    for chain in sorted(set(live.dispatch) - set(wanted)):
        unwanted.append({"flush": _object("chain", family, name=chain)})
        unwanted.append({"delete": _object("chain", family, name=chain)})
    return commands, repaired, unwanted


def _rule(key: ServiceKey, rule: ServiceRule, family: str) -> dict:
    return _rule_in(service_chain(key), rule, family)


def _rule_in(chain: str, rule: ServiceRule, family: str) -> dict:
    return _object("rule", family, chain=chain, expr=rule.expr(), comment=rule.scheduler)


def _live_groups(live: LiveTable, key: ServiceKey, top: Optional[ServiceRule]) -> dict:
    """The group chains a grouped service rule sends to -> their rule (None: not one of ours)."""
    if top is None or not top.grouped:
        return {}
    found = {}
    for chain, _port in top.owned():
        rules = live.chains.get(chain)
        found[chain] = _parsed(live, rules[-1], top.family) if rules else None
    return found


def _leaves(top: Optional[ServiceRule], groups: dict) -> list:
    """The rules that pick a real server (or its `to-` chain): the groups', else the top's."""
    if top is not None and top.grouped:
        return [rule for rule in groups.values() if rule is not None]
    return [] if top is None else [top]


def plan(desired: dict, live: LiveTable, retired, *, whole_table: bool, devices=None) -> tuple:
    """(changes, commands, repaired): what differs, one transaction fixing it, and whether
    the table's base (or an element no service stands for) was repaired.

    `desired` maps ServiceKey -> (Service, [Destination]): the services of this table. With
    `whole_table`, service chains and elements nobody declared are removed too (the table is
    the agent's alone). `devices` (the DR table): ServiceKey -> the device its real servers
    are reached through. The DR table is made only once a service needs it.
    """
    family, devices = live.family, devices or {}
    if family == DR_FAMILY and not live.present and not desired:
        return [], [], False
    changes, commands, chains, helpers, kept, unused = [], [], [], [], set(), []
    base, repaired, unwanted = _base(live, base_chains(family, set(filter(None, devices.values()))))
    for key, (service, destinations) in desired.items():
        wanted, groups = desired_rules(service, destinations, devices.get(key))
        before = live_rule(live, key)
        before_groups = _live_groups(live, key, before)
        pins = pinning(service, destinations)
        forwarders = dr_chains(key, wanted, destinations, devices.get(key))
        kept |= set(pins.chains) | set(pins.sets) | set(groups) | set(forwarders)
        forwarding = _dr_commands(live, forwarders)
        helpers += _pinning_commands(live, pins) + forwarding
        name = service_chain(key)
        lead = [[{"jump": {"target": pinned_chain(key)}}]] if service.persistence_timeout else []
        rules = [_object("rule", family, chain=name, expr=expr) for expr in lead]
        rules.append(_rule(key, wanted, family))
        if service.persistence_timeout:
            kept.add(pinned_chain(key))
            leaving = _leaves(before, before_groups)
            added, pinned_commands = _pinned_rules(
                live, key, pins, _leaves(wanted, groups), leaving, whole_table
            )
            chains += added
            commands += pinned_commands
        rewritten = bool(forwarding)  # a real server's own chain (DR) or its group's
        for chain, rule in groups.items():
            if chain not in live.chains:
                chains.append({"add": _object("chain", family, name=chain)})
            elif before_groups.get(chain) == rule and len(live.chains[chain]) == 1:
                continue
            else:
                commands.append({"flush": _object("chain", family, name=chain)})
            commands.append({"add": _rule_in(chain, rule, family)})
            rewritten = True
        unused += [chain for chain in before_groups if chain not in groups]
        unused += [
            chain
            for chain, _port in (before.owned() if before and before.forwarders else ())
            if chain not in forwarders
        ]
        if name not in live.chains:
            changes.append(Change("add_service", key, service))
            chains.append({"add": _object("chain", family, name=name)})
            commands.extend({"add": rule} for rule in rules)
        elif before != wanted or _exprs(live, name)[:-1] != lead:
            changes.append(Change("edit_service", key, service))
            commands.append({"flush": _object("chain", family, name=name)})
            commands.extend({"add": rule} for rule in rules)
        elif rewritten:
            changes.append(Change("edit_service", key, service))
        match = _match(key)
        if live.elements.get(match) != name:
            if not changes or changes[-1].key != key:
                changes.append(Change("edit_service", key, service))
            if match in live.elements:
                commands.append({"delete": _element(match, family=family)})
            commands.append({"add": _element(match, name, family)})
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
            commands.append({"delete": _element(match, family=family)})
            foreign = foreign or key is None
    stale = {service_chain(key) for key in gone.values() if key is not None}
    services = [key for key in (*desired, *gone.values()) if key is not None]
    helpers_prefixes = (PIN_PREFIX, TO_PREFIX, PINNED_PREFIX, GROUP_PREFIX, DR_PREFIX)
    pinned = [n for n in (*live.chains, *live.sets) if n.startswith(helpers_prefixes)]
    if whole_table:
        stale |= {name for name in live.chains if not name.startswith(helpers_prefixes)}
        stale -= {service_chain(key) for key in desired}
        leftover = [name for name in pinned if name not in kept]
    else:  # a slice keeps a persistent service's pieces its `pinned-` chain may refer to
        retiring = [key for key in services if key not in desired]
        leftover = [n for n in pinned if n not in kept and any(_owned_by(n, k) for k in retiring)]
        leftover += [name for name in unused if name not in leftover]
    commands.extend(
        {"delete": _object("chain", family, name=name)}
        for name in sorted(stale)
        if name in live.chains
    )
    late = [  # once nothing refers to them: the `pinned-` chains, the other chains, the rest
        {"delete": _object("chain" if name in live.chains else "set", family, name=name)}
        for name in sorted(
            leftover,
            key=lambda name: (name not in live.chains, not name.startswith(PINNED_PREFIX), name),
        )
    ]
    commands = base + chains + helpers + commands + late + unwanted
    return changes, commands, foreign or repaired


def _pinned_rules(
    live: LiveTable, key: ServiceKey, pins: Pinning, wanted: list, before: list, whole_table: bool
) -> tuple:
    """(chain commands, commands) keeping the `pinned-` chain of a persistent service.

    A real server leaving only has its set flushed (its clients scheduled again), its rule
    and chain left in place, unreachable: a health change rewrites the service chain's two
    rules, never the pinned ones. One coming back finds them; a new one's rule is appended.
    A full pass makes the chain exactly the live real servers' rules again."""
    family, chain = live.family, pinned_chain(key)
    have = _exprs(live, chain)
    if have is None:
        return [{"add": _object("chain", family, name=chain)}], _added(chain, pins.rules, family)
    commands = []
    if whole_table and sorted(map(repr, have)) != sorted(map(repr, pins.rules)):
        commands.append({"flush": _object("chain", family, name=chain)})
        commands += _added(chain, pins.rules, family)
    else:
        present = set(map(_goto_target, have))
        missing = [expr for to, expr in zip(pins.chains, pins.rules) if to not in present]
        commands += _added(chain, missing, family)
    staying = {to for rule in wanted for to, _port in rule.owned()}
    for rule in before:
        for to, _port in rule.owned() if rule.pinned else ():
            pin = PIN_PREFIX + to[len(TO_PREFIX) :]
            if to not in staying and pin in live.sets and pin not in pins.sets:
                commands.append({"flush": _object("set", family, name=pin)})
    return [], commands


def _added(chain: str, exprs, family: str) -> list:
    return [{"add": _object("rule", family, chain=chain, expr=expr)} for expr in exprs]


def _goto_target(expr: list) -> Optional[str]:
    """The chain a pinned rule sends its clients to (what tells one from another)."""
    try:
        return expr[-1]["goto"]["target"]
    except (IndexError, KeyError, TypeError):
        return None


def _dr_commands(live: LiveTable, forwarders: dict) -> list:
    """The `dr-` chains a DR service lacks, or has otherwise (counters aside)."""
    commands = []
    for name, exprs in forwarders.items():
        rules = live.chains.get(name)
        if rules is not None and [_uncounted(rule["expr"]) for rule in rules] == exprs:
            continue
        commands.append(
            {"flush" if rules is not None else "add": _object("chain", live.family, name=name)}
        )
        commands += [{"add": _object("rule", live.family, chain=name, expr=e)} for e in exprs]
    return commands


def _pinning_commands(live: LiveTable, pins: Pinning) -> list:
    """The `pin-` sets and `to-` chains a persistent service lacks, or has otherwise."""
    commands = []
    for name, fields in pins.sets.items():
        if live.sets.get(name) != fields["timeout"]:
            commands.append({"add": _object("set", live.family, name=name, **fields)})
    for name, expr in pins.chains.items():
        rules = live.chains.get(name)
        if rules is None or len(rules) != 1 or rules[0]["expr"] != expr:
            verb = "flush" if name in live.chains else "add"
            commands.append({verb: _object("chain", live.family, name=name)})
            commands.append({"add": _object("rule", live.family, chain=name, expr=expr)})
    return commands


def read(live: LiveTable, keys) -> dict:
    """ServiceKey -> (Service, [Destination]) as the table holds them (for status), with
    their counters."""
    table = {}
    for key in keys:
        rule = live_service(live, key)
        if rule is None:
            continue
        service, destinations = _read_service(live, key, rule)
        if live.family == FAMILY:
            destinations = [
                replace(d, stats=stats(live, key, d.address, d.port)) for d in destinations
            ]
        if all(d.stats is not None for d in destinations):
            service = replace(service, stats=_summed([d.stats for d in destinations]))
        table[key] = (service, destinations)
    return table


def _read_service(live: LiveTable, key: ServiceKey, rule: ServiceRule) -> tuple:
    service = Service(key, scheduler=rule.scheduler or "?")
    if rule.forwarders:
        return service, _read_forwarders(live, key, rule)
    leaves = _leaves(rule, _live_groups(live, key, rule))
    if not any(leaf.pinned for leaf in leaves):
        return service, [dest for leaf in leaves for dest in leaf.destinations()]
    chains = {to: count for leaf in leaves for (to, _port), count in leaf.owned().items()}
    pins = {PIN_PREFIX + to[len(TO_PREFIX) :] for to in chains}
    timeout = max((live.sets[pin] for pin in pins if live.sets.get(pin)), default=0)
    endpoints = {to: _pinned_endpoint(live, to) for to in chains}
    destinations = [
        Destination(*endpoints[to], "nat", count)
        for to, count in chains.items()
        if endpoints[to] is not None
    ]
    return Service(key, service.scheduler, persistence_timeout=timeout), destinations


def _read_forwarders(live: LiveTable, key: ServiceKey, rule: ServiceRule) -> list:
    """A DR service's real servers from their `dr-` chains, with their counters."""
    destinations = []
    for (chain, _port), count in rule.owned().items():
        found = dr_counters(live.chains.get(chain, []))
        if found is not None:
            address, counted = found
            destinations.append(Destination(address, key.port, "dr", count, stats=counted))
    return destinations


def delete_table(family: str = FAMILY) -> list:
    return [{"delete": _table(family)}]
