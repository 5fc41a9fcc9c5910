"""The IPVS generic netlink family on the wire, encoded and decoded with struct.

Only the attributes IPVS uses are written; replies are split into attribute slices and a
value is decoded only when read (counters only when asked for). Layouts from
include/uapi/linux/ip_vs.h and net/netfilter/ipvs/ip_vs_ctl.c:
- addresses travel as a 16-byte union (IPv4 in the first 4), ports in network order;
- the kernel wants a netmask with every service (fwmark ones included); for IPv6 that
  "netmask" is a prefix length carried in the same 32 bits, in host byte order;
- dumped service flags carry HASHED (0x2), an internal kernel bit: it is masked.
"""

from __future__ import annotations

import hashlib
import operator
import socket
import struct
from functools import lru_cache
from typing import Optional

from .model import (
    FAMILIES,
    FLAG_HASHED,
    FLAG_ONEPACKET,
    FLAG_PERSISTENT,
    FLAG_SCHED,
    FORWARDING,
    GENERIC_SCHED_FLAG_NAMES,
    PROTOCOLS,
    SCHED_FLAG_NAMES,
    Destination,
    IpvsError,
    Netmask,
    Service,
    ServiceKey,
    Stats,
    default_netmask,
)

# -- netlink and generic netlink ------------------------------------------------------------

NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
GENL_HEADER = struct.Struct("=BBH")  # command, version, reserved
NLA_HEADER = struct.Struct("=HH")  # length, type
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

# -- IPVS -----------------------------------------------------------------------------------

IPVS_GENL_NAME = "IPVS"
IPVS_GENL_VERSION = 1
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2

SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = 6, 7, 8, 9
SVC_STATS, SVC_PE_NAME, SVC_STATS64 = 10, 11, 12

DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH = 5, 6
DEST_ACTIVE_CONNS, DEST_INACT_CONNS, DEST_PERSIST_CONNS = 7, 8, 9
DEST_STATS, DEST_ADDR_FAMILY, DEST_STATS64 = 10, 11, 12

FWD_MASK = 0x7  # IP_VS_CONN_F_FWD_MASK
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_BE16 = struct.Struct("!H")
_FLAGS = struct.Struct("=II")  # flags, mask
_STAT_FIELDS = (
    "connections",
    "packets_in",
    "packets_out",
    "bytes_in",
    "bytes_out",
    "cps",
    "packets_in_rate",
    "packets_out_rate",
    "bytes_in_rate",
    "bytes_out_rate",
)
_PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}
_FORWARDING_NAMES = {number: name for name, number in FORWARDING.items()}


def attr(kind: int, payload: bytes) -> bytes:
    length = NLA_HEADER.size + len(payload)
    return NLA_HEADER.pack(length, kind) + payload + b"\0" * (-length % 4)


def message(family: int, flags: int, seq: int, command: int, payload: bytes) -> bytes:
    """One generic netlink request: header, command, attributes."""
    length = NLMSG_HEADER.size + GENL_HEADER.size + len(payload)
    return (
        NLMSG_HEADER.pack(length, family, flags, seq, 0)
        + GENL_HEADER.pack(command, IPVS_GENL_VERSION, 0)
        + payload
    )


def attrs(data, start: int, end: int) -> dict:
    """{type: (start, end)} of the attributes in data[start:end]; nothing is decoded yet."""
    found = {}
    unpack = NLA_HEADER.unpack_from
    while start + 4 <= end:
        length, kind = unpack(data, start)
        if length < 4:
            break
        found[kind & NLA_TYPE_MASK] = (start + 4, start + length)
        start += (length + 3) & ~3
    return found


def messages(data):
    """(type, flags, seq, payload start, end) of each netlink message in a datagram."""
    offset, size = 0, len(data)
    while offset + NLMSG_HEADER.size <= size:
        length, kind, flags, seq, _port = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        yield kind, flags, seq, offset + NLMSG_HEADER.size, offset + length
        offset += (length + 3) & ~3


def error_code(data, start: int) -> int:
    """The errno of an NLMSG_ERROR (0 for an acknowledgement)."""
    return -struct.unpack_from("=i", data, start)[0]


# -- requests -------------------------------------------------------------------------------


def _packed_address(family: int, address: str) -> bytes:
    return socket.inet_pton(FAMILIES[family], address)


def encode_netmask(family: int, netmask: Netmask) -> bytes:
    if family == 4:
        return socket.inet_aton(str(netmask))
    # IPv6: the kernel reads the prefix length from the same 32 bits, in host byte order.
    return _U32.pack(int(netmask))


def decode_netmask(family: int, raw: Optional[bytes]) -> Netmask:
    if raw is None:
        return default_netmask(family)
    if family == 4:
        return socket.inet_ntoa(raw)
    return _U32.unpack(raw)[0]


def service_attr(key: ServiceKey, service: Optional[Service] = None) -> bytes:
    """IPVS_CMD_ATTR_SERVICE: the key, and the full entry (`service`, or defaults when only
    the key matters: get, delete, real server requests; any netmask satisfies the kernel)."""
    parts = [attr(SVC_AF, _U16.pack(FAMILIES[key.family]))]
    if key.fwmark is not None:
        parts.append(attr(SVC_FWMARK, _U32.pack(key.fwmark)))
    else:
        parts += [
            attr(SVC_PROTOCOL, _U16.pack(PROTOCOLS[key.protocol])),
            attr(SVC_ADDR, _packed_address(key.family, key.address)),
            attr(SVC_PORT, _BE16.pack(key.port)),
        ]
    if service is None:
        service = Service(key)
    parts += [
        attr(SVC_SCHED_NAME, service.scheduler.encode() + b"\0"),
        attr(SVC_FLAGS, _FLAGS.pack(service.flag_bits, 0xFFFFFFFF)),
        attr(SVC_TIMEOUT, _U32.pack(service.persistence_timeout)),
        attr(SVC_NETMASK, encode_netmask(key.family, service.persistence_netmask)),
    ]
    if service.persistence_engine:  # a full entry without it makes the kernel drop the engine
        parts.append(attr(SVC_PE_NAME, service.persistence_engine.encode() + b"\0"))
    return attr(CMD_ATTR_SERVICE, b"".join(parts))


@lru_cache(maxsize=4096)
def key_attr(key: ServiceKey) -> bytes:
    """service_attr(key) for requests naming the service only (its real servers: one per
    real server request, so it is encoded once)."""
    return service_attr(key)


# IPVS_CMD_ATTR_DEST with its seven attributes, per address size: one pack per real server.
# Each attribute: length, type, value, padding to 4 bytes; the port is packed already
# swapped to network order (one struct has one byte order).
_DEST_LAYOUT = {
    size: struct.Struct(f"=HH HH{size}s HHH2x HHH2x HHI HHI HHI HHI".replace(" ", ""))
    for size in (4, 16)
}


def destination_attr(dest: Destination) -> bytes:
    family = dest.family
    address = _packed_address(family, dest.address)
    layout = _DEST_LAYOUT[len(address)]
    return layout.pack(
        layout.size, CMD_ATTR_DEST,
        4 + len(address), DEST_ADDR, address,
        6, DEST_ADDR_FAMILY, FAMILIES[family],
        6, DEST_PORT, socket.htons(dest.port),
        8, DEST_FWD_METHOD, FORWARDING[dest.forwarding],
        8, DEST_WEIGHT, dest.weight,
        8, DEST_U_THRESH, dest.upper_threshold,
        8, DEST_L_THRESH, dest.lower_threshold,
    )  # fmt: skip


# -- replies --------------------------------------------------------------------------------

_STATS_KINDS = (SVC_STATS, SVC_STATS64)  # the same numbers under IPVS_CMD_ATTR_DEST
_NUMBERS = {1: "B", 2: "H", 4: "I", 8: "Q"}
_RAW = {  # attributes read as bytes whatever their size: addresses, names, flags (two u32)
    (CMD_ATTR_SERVICE, SVC_ADDR),
    (CMD_ATTR_SERVICE, SVC_SCHED_NAME),
    (CMD_ATTR_SERVICE, SVC_FLAGS),
    (CMD_ATTR_SERVICE, SVC_PE_NAME),
    (CMD_ATTR_DEST, DEST_ADDR),
}


class Layout:
    """Where each attribute of one reply lies, as one struct: a reply laid out the same way
    (all the real servers of a dump are: the kernel writes the same attributes, in the same
    order, of the same sizes) is decoded by one unpack and checked by one compare of its
    attribute headers; nothing is split attribute by attribute.

    `index` maps an attribute's path (its parents' types, then its own) to its value's place
    in the unpacked tuple; `sizes` gives its size in bytes. Values of 1, 2 and 4 bytes are
    integers in host order (ports too: swap them), counters of 8 bytes as well; addresses,
    names, flags and values of other sizes are bytes. What follows a malformed attribute is
    skipped, as `attrs` skips it.
    """

    __slots__ = ("size", "index", "sizes", "reader", "_struct", "_headers", "_expected")

    def __init__(self, data, start: int, end: int):
        self.size = end - start
        self.index: dict = {}
        self.sizes: dict = {}
        self.reader = None  # what a decoder derived from `index`, kept with the layout
        formats, headers, leaves = [f"={GENL_HEADER.size}x"], [], []
        self._walk(data, start + GENL_HEADER.size, end, (), (formats, headers, leaves))
        self._struct = struct.Struct("".join(formats))
        places = [place for place, _value in headers]
        self._expected = tuple(value for _place, value in headers)
        self._headers = operator.itemgetter(*places) if places else lambda values: ()
        if len(places) == 1:
            self._expected = self._expected[0]

    def _walk(self, data, offset: int, stop: int, path: tuple, found: tuple):
        """Appends each attribute's struct format, header places and values, and its
        value's (path) to `found` (formats, headers, leaves)."""
        formats, headers, leaves = found
        while offset + NLA_HEADER.size <= stop:
            length, kind = NLA_HEADER.unpack_from(data, offset)
            if length < NLA_HEADER.size or offset + length > stop:
                break
            place = len(headers) + len(leaves)
            formats.append("HH")
            headers += [(place, length), (place + 1, kind)]
            here = path + (kind & NLA_TYPE_MASK,)
            size = length - NLA_HEADER.size
            if len(here) == 1 or (len(here) == 2 and here[1] in _STATS_KINDS):
                self._walk(data, offset + NLA_HEADER.size, offset + length, here, found)
            else:
                number = None if here in _RAW else _NUMBERS.get(size)
                formats.append(number or f"{size}s")
                leaves.append(here)
                self.index[here] = place + 2
                self.sizes[here] = size
            padded = min((length + 3) & ~3, stop - offset)
            if padded > length:
                formats.append(f"{padded - length}x")
            offset += padded
        if offset < stop:
            formats.append(f"{stop - offset}x")

    def unpack(self, data, start: int, end: int) -> Optional[tuple]:
        """The values of a reply laid out as this one, else None."""
        if end - start != self.size or self._struct.size != self.size:
            return None
        values = self._struct.unpack_from(data, start)
        return values if self._headers(values) == self._expected else None


_LEARNT: dict = {}  # reader class -> the layout of the last reply it read


def _layouts(replies: list, reader):
    """(reader, values) of each reply: `reader.of(layout)` is built once per layout (None
    when a reply lacks what it needs: that reply is left out). The last layout is kept for
    the next dump: a table's services, and its real servers, all read alike."""
    layout = _LEARNT.get(reader)
    for data, start, end in replies:
        values = None if layout is None else layout.unpack(data, start, end)
        if values is None:
            layout = Layout(data, start, end)
            layout.reader = reader.of(layout)
            values = layout.unpack(data, start, end)
            _LEARNT[reader] = layout
        if values is not None and layout.reader is not None:
            yield layout.reader, values


def _stats_places(index: dict, parent: int, wide: int, narrow: int) -> Optional[list]:
    """Where each Stats field lies: the 64-bit counters when the kernel sent them."""
    for kind in (wide, narrow):
        places = [index.get((parent, kind, field)) for field in range(1, len(_STAT_FIELDS) + 1)]
        if any(place is not None for place in places):
            return places
    return None


def _read_stats(values: tuple, places: Optional[list]) -> Optional[Stats]:
    if places is None:
        return None
    return Stats(*(0 if place is None else values[place] for place in places))


def _fields(layout: Layout, parent: int, wanted: dict) -> Optional[dict]:
    """{name: place} of the attributes `wanted` ({name: (type, sizes allowed)}); None when
    one is of another size. An absent one has place None (it reads as 0)."""
    places = {}
    for name, (kind, sizes) in wanted.items():
        path = (parent, kind)
        if path in layout.sizes and layout.sizes[path] not in sizes:
            return None
        places[name] = layout.index.get(path)
    return places


def _value(values: tuple, place: Optional[int], default=0):
    return default if place is None else values[place]


class _DestinationReader:
    """Reads Destinations (and fingerprints) out of a GET_DEST reply's values."""

    FIELDS = {
        "address": (DEST_ADDR, (4, 16)),
        "family": (DEST_ADDR_FAMILY, (2,)),
        "port": (DEST_PORT, (2,)),
        "method": (DEST_FWD_METHOD, (4,)),
        "weight": (DEST_WEIGHT, (4,)),
        "upper": (DEST_U_THRESH, (4,)),
        "lower": (DEST_L_THRESH, (4,)),
        "active": (DEST_ACTIVE_CONNS, (4,)),
        "inactive": (DEST_INACT_CONNS, (4,)),
        "persistent": (DEST_PERSIST_CONNS, (4,)),
    }

    @classmethod
    def of(cls, layout: Layout) -> Optional[_DestinationReader]:
        places = _fields(layout, CMD_ATTR_DEST, cls.FIELDS)
        if places is None or places["address"] is None:
            return None
        stats = _stats_places(layout.index, CMD_ATTR_DEST, DEST_STATS64, DEST_STATS)
        return cls(places, stats, layout.sizes[(CMD_ATTR_DEST, DEST_ADDR)] != 16)

    def __init__(self, places: dict, stats: Optional[list], short_address: bool):
        self._places = places
        self._stats = stats
        self._short_address = short_address  # the kernel's are 16 bytes, IPv4 in the first 4
        self._settings = [places[name] for name in ("port", "weight", "upper", "lower")]

    def fingerprint(self, values: tuple) -> tuple:
        """What identifies the real server and its settings (counters left out): equal to
        expected_fingerprint of an equal Destination, with nothing decoded."""
        p = self._places
        address = values[p["address"]]
        if self._short_address:
            address = address.ljust(16, b"\0")
        settings = (0 if place is None else values[place] for place in self._settings)
        return (address, *settings, _value(values, p["method"]) & FWD_MASK)

    def destination(self, values: tuple, family: int, stats: bool) -> Destination:
        p = self._places
        if p["family"] is not None:
            family = 6 if values[p["family"]] == socket.AF_INET6 else 4
        method = _value(values, p["method"]) & FWD_MASK
        return Destination(
            address=_address(values[p["address"]], family),
            port=socket.ntohs(_value(values, p["port"])),
            forwarding=_FORWARDING_NAMES.get(method, "nat"),
            weight=_value(values, p["weight"]),
            upper_threshold=_value(values, p["upper"]),
            lower_threshold=_value(values, p["lower"]),
            active_connections=_value(values, p["active"]),
            inactive_connections=_value(values, p["inactive"]),
            persistent_connections=_value(values, p["persistent"]),
            stats=_read_stats(values, self._stats) if stats else None,
        )


def _address(raw: bytes, family: int) -> str:
    return socket.inet_ntop(FAMILIES[family], raw[: 4 if family == 4 else 16])


def decode_destinations(replies: list, family: int, *, stats: bool = True) -> list:
    """The Destinations of a GET_DEST dump's replies (`family`: the service's)."""
    return [
        reader.destination(values, family, stats)
        for reader, values in _layouts(replies, _DestinationReader)
    ]


def fingerprints(replies: list) -> frozenset:
    """The fingerprints of a GET_DEST dump's real servers, with no object built."""
    return frozenset(
        reader.fingerprint(values) for reader, values in _layouts(replies, _DestinationReader)
    )


def expected_fingerprint(dest: Destination) -> tuple:
    """The fingerprint the kernel reports for `dest` once it holds it (no cache: an audit's
    pace bounds how often it is asked, and 10,000 cached keys cost megabytes)."""
    return (
        _packed_address(dest.family, dest.address).ljust(16, b"\0"),
        socket.htons(dest.port),
        dest.weight,
        dest.upper_threshold,
        dest.lower_threshold,
        FORWARDING[dest.forwarding],
    )


class _ServiceReader:
    """Reads Services out of a GET_SERVICE reply's values."""

    FIELDS = {
        "family": (SVC_AF, (2,)),
        "protocol": (SVC_PROTOCOL, (2,)),
        "address": (SVC_ADDR, (4, 16)),
        "port": (SVC_PORT, (2,)),
        "fwmark": (SVC_FWMARK, (4,)),
        "flags": (SVC_FLAGS, (8,)),
        "timeout": (SVC_TIMEOUT, (4,)),
        "netmask": (SVC_NETMASK, (4,)),
    }

    @classmethod
    def of(cls, layout: Layout) -> Optional[_ServiceReader]:
        places = _fields(layout, CMD_ATTR_SERVICE, cls.FIELDS)
        if places is None:
            return None
        for name, kind in (("scheduler", SVC_SCHED_NAME), ("engine", SVC_PE_NAME)):
            places[name] = layout.index.get((CMD_ATTR_SERVICE, kind))
        return cls(places, _stats_places(layout.index, CMD_ATTR_SERVICE, SVC_STATS64, SVC_STATS))

    def __init__(self, places: dict, stats: Optional[list]):
        self._places = places
        self._stats = stats

    def service(self, values: tuple, stats: bool) -> Service:
        p = self._places
        family = 6 if _value(values, p["family"]) == socket.AF_INET6 else 4
        fwmark = _value(values, p["fwmark"])
        if fwmark:
            key = ServiceKey(family, fwmark=fwmark)
        else:
            number = _value(values, p["protocol"])
            protocol = _PROTOCOL_NAMES.get(number)
            if protocol is None:
                raise IpvsError(f"the kernel holds a service with unknown protocol {number}")
            if p["address"] is None or p["port"] is None:
                raise IpvsError("the kernel sent a service without its address or port")
            address = _address(values[p["address"]], family)
            key = ServiceKey(family, protocol, address, socket.ntohs(values[p["port"]]))
        flags_raw = _value(values, p["flags"], None)
        bits = _FLAGS.unpack(flags_raw)[0] & ~FLAG_HASHED if flags_raw else 0
        scheduler = _text(_value(values, p["scheduler"], b""))
        names = SCHED_FLAG_NAMES.get(scheduler, GENERIC_SCHED_FLAG_NAMES)
        flags = {name for bit, name in zip(FLAG_SCHED, names) if bits & bit}
        if bits & FLAG_ONEPACKET:
            flags.add("ops")
        netmask = _value(values, p["netmask"], None)
        return Service(
            key=key,
            scheduler=scheduler,
            persistence_timeout=_value(values, p["timeout"]) if bits & FLAG_PERSISTENT else 0,
            persistence_netmask=decode_netmask(
                family, None if netmask is None else _U32.pack(netmask)
            ),
            flags=frozenset(flags),
            persistence_engine=_text(_value(values, p["engine"], b"")) or None,
            stats=_read_stats(values, self._stats) if stats else None,
        )


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode()


def decode_services(replies: list, *, stats: bool = True) -> list:
    """The Services of GET_SERVICE replies."""
    return [reader.service(values, stats) for reader, values in _layouts(replies, _ServiceReader)]


def settings_digest(replies: list) -> Optional[bytes]:
    """A digest of a GET_DEST dump's settings as the kernel wrote them, counters left out,
    with one slice per message and nothing decoded.

    ip_vs_genl_fill_dest writes the settings first and the counters from ACTIVE_CONNS on, so
    every message of a dump has the same settings length: it is measured on the first one and
    checked on each. None when a message is laid out otherwise (then compare fingerprints).
    """
    if not replies:
        return b""
    data, start, end = replies[0]
    nest = start + GENL_HEADER.size
    if NLA_HEADER.unpack_from(data, nest)[1] & NLA_TYPE_MASK != CMD_ATTR_DEST:
        return None
    span = attrs(data, nest + NLA_HEADER.size, end).get(DEST_ACTIVE_CONNS)
    if span is None:
        return None
    cut = span[0] - NLA_HEADER.size - start
    parts = []
    unpack = NLA_HEADER.unpack_from
    for data, start, end in replies:
        if start + cut + NLA_HEADER.size > end or unpack(data, start + cut)[1] != DEST_ACTIVE_CONNS:
            return None
        parts.append(data[start : start + cut])
    return hashlib.blake2b(b"".join(parts), digest_size=16).digest()
