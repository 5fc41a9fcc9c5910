"""static_routes / virtual_routes and static_rules / virtual_rules lines, read as keepalived
2.2.7's alloc_route (vrrp_iproute.c) and alloc_rule (vrrp_iprule.c) read them.

Each reader takes the words of one line and a `say(severity, message)` callback. Where keepalived
drops the line with a message ("invalid route via address"), the message is a warning and the
reader returns None, as keepalived carries on without the line; an option keepalived implements
and lvs-agent does not is an error naming it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Collection
from typing import Callable, Optional

from .model import RTPROT_KEEPALIVED, NextHop, Route, Rule

Say = Callable[[str, str], None]
STRTOUL = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")

UINT32_MAX = 2**32 - 1
RULE_START_PRIORITY = 16384  # keepalived's first preference for a rule given none
IPROUTE2_DIR = "/etc/iproute2"  # keepalived 2.2.7 reads the names of tables, protocols... here
# keepalived's defaults, each kept unless the file gives another name to its number
RT_TABLES = {"default": 253, "main": 254, "local": 255}
RT_SCOPES = {"global": 0, "nowhere": 255, "host": 254, "link": 253, "site": 200}
RT_PROTOCOLS = {
    "none": 0,
    "redirect": 1,
    "kernel": 2,
    "boot": 3,
    "static": 4,
    "gated": 8,
    "ra": 9,
    "mrt": 10,
    "zebra": 11,
    "bird": 12,
    "babel": 42,
    "dnrouted": 13,
    "xorp": 14,
    "ntk": 15,
    "dhcp": 16,
}
ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit", "throw")
OTHER_ROUTE_TYPES = ("local", "broadcast", "anycast", "multicast", "nat", "xresolve")
RULE_ACTIONS = ("blackhole", "unreachable", "prohibit", "nop")
# what keepalived reads and lvs-agent does not apply: refused by name
UNSUPPORTED_ROUTE_OPTIONS = frozenset(
    """
    as from encap expires mtu hoplimit advmss rtt rttvar reordering window cwnd ssthresh realms
    rto_min initcwnd initrwnd features quickack congctl pref ttl-propagate fastopen_no_cookie vrf
    """.split()  # noqa: SIM905
)
UNSUPPORTED_NEXTHOP_OPTIONS = ("encap", "realms", "as")
UNSUPPORTED_RULE_OPTIONS = frozenset(
    """
    realms suppress_ifgroup sup_group tunnel-id uidrange l3mdev ipproto sport dport
    """.split()  # noqa: SIM905
)


class Dropped(Exception):
    """The line is left out; why has been said."""


class Duplicate(Exception):
    """A second track_group on the line: keepalived stops reading the line there."""


def network(text: str) -> Optional[str]:
    """keepalived's parse_route: ADDRESS[/LEN], or default/any/all (None: either family)."""
    if text in ("default", "any", "all"):
        return None
    if text == "default6":
        return "::/0"
    return str(ipaddress.ip_interface(text))


def address(text: str) -> str:
    return str(ipaddress.ip_address(text))


def number(text: str, high: int) -> int:
    """strtoul with base 0 (hexadecimal 0x.., octal 0.., decimal), as keepalived reads numbers
    here; within [0, high]."""
    if not STRTOUL.fullmatch(text):
        raise ValueError(text)
    value = int(text, 16) if text[:2].lower() == "0x" else int(text, 8 if text[0] == "0" else 10)
    if value > high:
        raise ValueError(text)
    return value


def iproute2_names(file: str, defaults: dict, high: int) -> dict:
    """keepalived's rttables.c: `NUMBER NAME` lines of /etc/iproute2/FILE, then each default
    whose number the file does not name."""
    names: dict = {}
    path = os.path.join(IPROUTE2_DIR, file)
    with contextlib.suppress(OSError):
        if os.path.isfile(path):  # a FIFO or a device there must not hang the parser
            with open(path, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    words = line.split("#", 1)[0].split()
                    with contextlib.suppress(ValueError):
                        if len(words) == 2:
                            names.setdefault(words[1], number(words[0], high))
    numbers = set(names.values())
    for name, value in defaults.items():
        if value not in numbers:
            names.setdefault(name, value)  # the file's entries are looked at first
    return names


def named(file: str, defaults: dict, high: int) -> Callable[[str], int]:
    """A number (strtoul base 0), else a name of the iproute2 file (read when a name is used)."""

    def parse(text: str) -> int:
        try:
            return number(text, high)
        except ValueError:
            names = iproute2_names(file, defaults, high)
            if text not in names:
                raise
            return names[text]

    return parse


def family_of(text: Optional[str]) -> Optional[int]:
    return None if text is None else ipaddress.ip_interface(text).version


class Words:
    """The words of a line, read one at a time; a missing value drops the line."""

    def __init__(self, words: list[str], say: Say, groups: Optional[Collection] = None) -> None:
        self.words, self.index, self.say = words, 0, say
        self.groups = groups  # the track_group names defined so far; None: not a static line
        self.family: Optional[int] = None
        self.destination_text = ""  # a route's destination as written, for messages

    def more(self) -> bool:
        return self.index < len(self.words)

    def next(self) -> str:
        if not self.more():
            self.drop(f"missing value after '{self.words[-1]}'")
        word = self.words[self.index]
        self.index += 1
        return word

    def peek(self) -> Optional[str]:
        return self.words[self.index] if self.more() else None

    def drop(self, message: str) -> None:
        self.say("warning", message)
        raise Dropped

    def refuse(self, message: str) -> None:
        self.say("error", message)
        raise Dropped

    def read(self, parse: Callable[[str], object], message: str):
        text = self.next()
        try:
            return parse(text)
        except ValueError:
            self.drop(message.format(text))

    def track_group(self, fields: dict) -> None:
        """`track_group NAME` (static lines only), looked up when read, as keepalived does: a
        group defined further down the file is not found."""
        name = self.next()
        if "track_group" in fields:
            self.say("warning", f"track_group {name} is a duplicate")
            raise Duplicate
        if name in self.groups:
            fields["track_group"] = name
        else:
            self.say("warning", f"track_group {name} not found")

    def family_word(self, word: str, what: str) -> bool:
        """`inet` / `inet6` forcing the family of a route or rule: True when `word` is one."""
        if word not in ("inet", "inet6"):
            return False
        family, other = (4, 6) if word == "inet" else (6, 4)
        self.set_family(family, f"{word} specified for IPv{other} {what}")
        return True

    def set_family(self, family: Optional[int], mixed: str) -> None:
        if family is None:
            return
        if self.family not in (None, family):
            self.drop(mixed)
        self.family = family


def read_route(words: list[str], say: Say, groups: Optional[Collection] = None) -> Optional[Route]:
    """`groups`: the track_group names defined so far, for a static_routes line."""
    try:
        return route_from(Words(words, say, groups))
    except Dropped:
        return None


def route_from(line: Words) -> Route:
    fields: dict = {}
    mixed = "Cannot mix IPv4 and IPv6 addresses for route"
    while line.more():
        word = line.next()
        if line.family_word(word, "route"):
            continue
        if word == "track_group" and line.groups is not None:
            try:
                line.track_group(fields)
            except Duplicate:
                line.drop(f"Route has trailing nonsense - {line.words[line.index - 1]}")
        elif word == "src":
            fields["source"] = line.read(address, "invalid route src address {}")
            line.set_family(ipaddress.ip_address(fields["source"]).version, mixed)
        elif word in ("via", "gw"):
            if word == "gw":
                line.say("warning", '"gw" for routes is deprecated. Please use "via"')
            fields["via"] = via(line, mixed)
        elif word in ("tos", "dsfield"):
            fields["tos"] = line.read(named("rt_dsfield", {}, 255), "TOS value {} is invalid")
        elif word == "table":
            fields["table"] = line.read(
                named("rt_tables", RT_TABLES, UINT32_MAX), "Routing table {} not found for route"
            )
        elif word == "protocol":
            fields["protocol"] = line.read(
                named("rt_protos", RT_PROTOCOLS, 255), "Protocol {} not found or invalid for route"
            )
        elif word == "scope":
            fields["scope"] = line.read(
                named("rt_scopes", RT_SCOPES, 255), "Scope {} not found or invalid for route"
            )
        elif word in ("metric", "priority", "preference"):
            fields["metric"] = line.read(
                lambda t: number(t, UINT32_MAX), "Invalid metric {} specified for route"
            )
        elif word in ("dev", "oif"):
            fields["dev"] = line.next()
        elif word == "onlink":
            fields["onlink"] = True
        elif word in ("add", "prepend", "append"):
            fields["mode"] = word
        elif word == "or":
            line.say("warning", '"or" for routes is deprecated. Please use "nexthop"')
            if "nexthops" in fields:
                line.say("warning", '"or" route already specified - ignoring subsequent')
                line.next()
                continue
            second = line.read(address, 'Invalid "or" address {}')
            fields["nexthops"] = (NextHop(via=fields.pop("via", None)), NextHop(via=second))
        elif word == "nexthop":
            if "nexthops" in fields:
                line.drop('Cannot specify nexthops with "or" route')
            line.index -= 1  # the nexthops read from this word to the end of the line
            fields["nexthops"] = nexthops(line, mixed)
        elif word == "no_track":
            fields["no_track"] = True
        elif word in UNSUPPORTED_ROUTE_OPTIONS:
            line.refuse(f"route option '{word}': not supported by lvs-agent")
        else:
            destination(line, word, fields, mixed)
    return complete_route(line, fields)


def via(line: Words, mixed: str) -> str:
    if line.peek() in ("inet", "inet6"):
        line.set_family(4 if line.next() == "inet" else 6, mixed)
    gateway = line.read(address, "invalid route via address {}")
    line.set_family(ipaddress.ip_address(gateway).version, mixed)
    return gateway


def destination(line: Words, word: str, fields: dict, mixed: str) -> None:
    """`[to] [TYPE] PREFIX`: anything else is keepalived's "unknown route keyword"."""
    if word == "to":
        word = line.next()
    if word in OTHER_ROUTE_TYPES:
        line.refuse(f"route type '{word}': not supported by lvs-agent")
    if word in ROUTE_TYPES:
        fields["type"] = word
        word = line.next()
    line.destination_text = word
    try:
        fields["destination"] = network(word)
    except ValueError:
        line.drop(f"unknown route keyword {word}")
    fields["any_destination"] = fields["destination"] is None
    line.set_family(family_of(fields["destination"]), f"{mixed} ({word})")


def nexthops(line: Words, mixed: str) -> tuple:
    """`nexthop via A dev D weight W onlink nexthop ...`: the rest of the line."""
    hops = []
    while line.more():
        if line.next() != "nexthop":
            line.drop(f"Route has trailing nonsense after nexthops - {line.words[line.index - 1]}")
        hop: dict = {}
        while line.more() and line.peek() != "nexthop":
            word = line.next()
            if word == "via":
                hop["via"] = via(line, mixed)
            elif word == "dev":
                hop["dev"] = line.next()
            elif word == "weight":
                hop["weight"] = line.read(lambda t: number(t, 256), "Invalid weight {}")
                if hop["weight"] == 0:
                    line.drop("Invalid weight 0 specified for route")
            elif word == "onlink":
                hop["onlink"] = True
            elif word in UNSUPPORTED_NEXTHOP_OPTIONS:
                line.refuse(f"nexthop option '{word}': not supported by lvs-agent")
            else:
                line.drop(f"Route has trailing nonsense after nexthops - {word}")
        hops.append(NextHop(**hop))
    return tuple(hops)


def complete_route(line: Words, fields: dict) -> Route:
    """keepalived's checks once the line is read: a destination, the tracking protocol."""
    if "destination" not in fields:
        line.drop("Route must have a destination")
    if keepalived_protocol(line, fields, "Route") and "dev" not in fields:
        line.say(
            "warning",
            f"Warning - cannot track route {line.destination_text} with no interface "
            "specified, not tracking",
        )
        fields["no_track"] = True
    if "track_group" in fields and "dev" not in fields:
        line.say("warning", "Static route cannot have track group if no oif specified")
        del fields["track_group"]
    family = line.family or 4
    if fields.pop("any_destination"):
        fields["destination"] = "0.0.0.0/0" if family == 4 else "::/0"
    return Route(family=family, **fields)


def keepalived_protocol(line: Words, fields: dict, what: str) -> bool:
    """A tracked entry (no no_track) carries keepalived's protocol: True when tracked."""
    if fields.get("no_track"):
        return False
    if fields.get("protocol", RTPROT_KEEPALIVED) != RTPROT_KEEPALIVED:
        line.say(
            "warning",
            f"{what} cannot be tracked if protocol is not RTPROT_KEEPALIVED(18), "
            "resetting protocol",
        )
    fields["protocol"] = RTPROT_KEEPALIVED
    return True


def read_rule(
    words: list[str], say: Say, priorities: dict, groups: Optional[Collection] = None
) -> Optional[Rule]:
    """`priorities`: the next preference for a rule given none, per family (keepalived counts
    down from 16384 across the whole configuration); `groups`: the track_group names defined so
    far, for a static_rules line."""
    line = Words(words, say, groups)
    try:
        fields = rule_fields(line)
    except Dropped:
        return None
    family = line.family or 4
    if "priority" not in fields:
        fields["priority"] = priorities.get(family, RULE_START_PRIORITY)
        priorities[family] = fields["priority"] - 1
        say(
            "warning",
            f"Rule has no preference specified - setting to {fields['priority']}. "
            "This is probably not what you want.",
        )
    return Rule(family=family, **fields)


def rule_fields(line: Words) -> dict:
    fields: dict = {}
    mixed = "rule specification has mixed IPv4 and IPv6"
    while line.more():
        word = line.next()
        if line.family_word(word, "rule"):
            continue
        if word == "track_group" and line.groups is not None:
            try:
                line.track_group(fields)
            except Duplicate:
                break  # keepalived keeps the rule as read so far
        elif word in ("from", "to"):
            key = "source" if word == "from" else "destination"
            fields[key] = line.read(network, f"Invalid rule {word} address {{}}")
            line.set_family(family_of(fields[key]), mixed)
        elif word in ("table", "lookup"):
            table = line.read(
                named("rt_tables", RT_TABLES, UINT32_MAX), "Routing table {} not found for rule"
            )
            if table == 0:
                line.drop("Table 0 is not valid")
            set_action(line, fields, "table")
            fields["table"] = table
        elif word == "not":
            fields["invert"] = True
        elif word in ("preference", "order", "priority"):
            fields["priority"] = line.read(
                lambda t: number(t, UINT32_MAX), f"Invalid rule preference {word} specified"
            )
        elif word in ("tos", "dsfield"):
            fields["tos"] = line.read(named("rt_dsfield", {}, 255), "TOS value {} is invalid")
        elif word == "fwmark":
            fields["fwmark"], fields["fwmask"] = line.read(
                fwmark, "Invalid rule fwmark {} specified"
            )
        elif word in ("suppress_prefixlength", "sup_pl"):
            fields["suppress_prefixlength"] = line.read(
                lambda t: number(t, 2**31 - 1), "Invalid suppress_prefixlength {} specified"
            )
        elif word in ("dev", "iif"):
            fields["iif"] = line.next()
        elif word == "oif":
            fields["oif"] = line.next()
        elif word == "protocol":
            fields["protocol"] = line.read(lambda t: number(t, 255), "Invalid protocol {}")
        elif word == "no_track":
            fields["no_track"] = True
        elif word in UNSUPPORTED_RULE_OPTIONS:
            line.refuse(f"rule option '{word}': not supported by lvs-agent")
        else:
            rule_action(line, word, fields)
    return complete_rule(line, fields)


def fwmark(text: str) -> tuple:
    """MARK[/MASK], each read by strtoul with base 0."""
    mark, _slash, mask = text.partition("/")
    return number(mark, UINT32_MAX), (number(mask, UINT32_MAX) if mask else None)


def set_action(line: Words, fields: dict, action: str) -> None:
    if "action" in fields:
        line.drop(
            "Cannot specify more than one of table/nop/goto/blackhole/prohibit/unreachable for rule"
        )
    fields["action"] = action


def rule_action(line: Words, word: str, fields: dict) -> None:
    if word == "type":
        word = line.next()
    if word == "goto":
        fields["goto"] = line.read(lambda t: number(t, UINT32_MAX), "Invalid target {} specified")
    elif word not in RULE_ACTIONS:
        if word in ROUTE_TYPES or word in OTHER_ROUTE_TYPES:
            line.drop(f"Invalid rule action {word}")
        line.drop(f"Unknown rule option {word}")
    set_action(line, fields, word)


def complete_rule(line: Words, fields: dict) -> dict:
    if fields.get("action") == "goto":
        if "priority" not in fields:
            line.drop(f"Invalid rule - goto target {fields['goto']} specified without preference")
        if fields["priority"] >= fields["goto"]:
            line.drop(
                f"Invalid rule - preference {fields['priority']} >= goto target {fields['goto']}"
            )
    if "action" not in fields:
        line.drop("No action specified for rule - ignoring")
    if "suppress_prefixlength" in fields and fields["action"] != "table":
        line.drop("suppressor/realm specified for non table action - skipping")
    keepalived_protocol(line, fields, "Rule")
    if "track_group" in fields and "iif" not in fields:
        line.say("warning", "Static rule cannot have track_group if dev/iif not specified")
        del fields["track_group"]
    fields.setdefault("protocol", None)  # untracked: the kernel's default, as keepalived
    return fields
