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
_U64 = struct.Struct("=Q")
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
_STAT_32_BITS = {4, 5}  # INBYTES, OUTBYTES are 64 bits even in the 32-bit STATS
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


def _nested(data, start: int, end: int, kind: int) -> Optional[dict]:
    span = attrs(data, start + GENL_HEADER.size, end).get(kind)
    return None if span is None else attrs(data, *span)


def _u32(data, found: dict, kind: int) -> int:
    span = found.get(kind)
    return _U32.unpack_from(data, span[0])[0] if span else 0


def _text(data, found: dict, kind: int) -> str:
    span = found.get(kind)
    return bytes(data[span[0] : span[1]]).split(b"\0", 1)[0].decode() if span else ""


def _address(data, span, family: int) -> str:
    size = 4 if family == 4 else 16
    return socket.inet_ntop(FAMILIES[family], bytes(data[span[0] : span[0] + size]))


def _stats(data, found: dict, wide: int, narrow: int) -> Optional[Stats]:
    span = found.get(wide)
    is64 = span is not None
    span = span or found.get(narrow)
    if span is None:
        return None
    values = {}
    for kind, (start, _end) in attrs(data, *span).items():
        if 1 <= kind <= len(_STAT_FIELDS):
            fmt = _U64 if is64 or kind in _STAT_32_BITS else _U32
            values[_STAT_FIELDS[kind - 1]] = fmt.unpack_from(data, start)[0]
    return Stats(**values)


def decode_service(data, start: int, end: int, *, stats: bool = True) -> Service:
    """The service of one GET_SERVICE reply (payload data[start:end])."""
    found = _nested(data, start, end, CMD_ATTR_SERVICE) or {}
    family = 6 if _u32_16(data, found, SVC_AF) == socket.AF_INET6 else 4
    fwmark = _u32(data, found, SVC_FWMARK)
    if fwmark:
        key = ServiceKey(family, fwmark=fwmark)
    else:
        number = _u32_16(data, found, SVC_PROTOCOL)
        protocol = _PROTOCOL_NAMES.get(number)
        if protocol is None:
            raise IpvsError(f"the kernel holds a service with unknown protocol {number}")
        port = _BE16.unpack_from(data, found[SVC_PORT][0])[0]
        key = ServiceKey(family, protocol, _address(data, found[SVC_ADDR], family), port)
    flags_span = found.get(SVC_FLAGS)
    bits = _U32.unpack_from(data, flags_span[0])[0] & ~FLAG_HASHED if flags_span else 0
    scheduler = _text(data, found, SVC_SCHED_NAME)
    names = SCHED_FLAG_NAMES.get(scheduler, GENERIC_SCHED_FLAG_NAMES)
    flags = {name for bit, name in zip(FLAG_SCHED, names) if bits & bit}
    if bits & FLAG_ONEPACKET:
        flags.add("ops")
    netmask = found.get(SVC_NETMASK)
    return Service(
        key=key,
        scheduler=scheduler,
        persistence_timeout=_u32(data, found, SVC_TIMEOUT) if bits & FLAG_PERSISTENT else 0,
        persistence_netmask=decode_netmask(
            family, bytes(data[netmask[0] : netmask[0] + 4]) if netmask else None
        ),
        flags=frozenset(flags),
        persistence_engine=_text(data, found, SVC_PE_NAME) or None,
        stats=_stats(data, found, SVC_STATS64, SVC_STATS) if stats else None,
    )


def _u32_16(data, found: dict, kind: int) -> int:
    span = found.get(kind)
    return _U16.unpack_from(data, span[0])[0] if span else 0


def destination_fields(data, start: int, end: int) -> Optional[dict]:
    """The attribute slices of one GET_DEST reply's destination."""
    return _nested(data, start, end, CMD_ATTR_DEST)


def fingerprint(data, found: dict) -> bytes:
    """What identifies a real server and its settings, as raw bytes (counters left out): two
    equal fingerprints are equal Destinations, with nothing decoded."""
    addr, port = found[DEST_ADDR], found[DEST_PORT]
    parts = [
        bytes(data[addr[0] : min(addr[1], addr[0] + 16)]).ljust(16, b"\0"),
        bytes(data[port[0] : port[0] + 2]),
    ]
    for kind in (DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH):
        span = found.get(kind)
        parts.append(bytes(data[span[0] : span[0] + 4]) if span else b"\0\0\0\0")
    parts.append(_U32.pack(_u32(data, found, DEST_FWD_METHOD) & FWD_MASK))
    return b"".join(parts)


# address (16 bytes, IPv4 in the first 4), port (network order), weight, thresholds, method
_FINGERPRINT = struct.Struct("=16sHIIII")


def expected_fingerprint(dest: Destination) -> bytes:
    """The fingerprint the kernel reports for `dest` once it holds it (one pack, no cache:
    an audit's pace bounds how often it is asked, and 10,000 cached keys cost megabytes)."""
    return _FINGERPRINT.pack(
        _packed_address(dest.family, dest.address),
        socket.htons(dest.port),
        dest.weight,
        dest.upper_threshold,
        dest.lower_threshold,
        FORWARDING[dest.forwarding],
    )


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


def decode_destination(data, found: dict, family: int, *, stats: bool = True) -> Destination:
    """The Destination of one GET_DEST reply's attributes (`family`: the service's)."""
    if DEST_ADDR_FAMILY in found:
        family = 6 if _u32_16(data, found, DEST_ADDR_FAMILY) == socket.AF_INET6 else 4
    method = _u32(data, found, DEST_FWD_METHOD) & FWD_MASK
    return Destination(
        address=_address(data, found[DEST_ADDR], family),
        port=_BE16.unpack_from(data, found[DEST_PORT][0])[0] if DEST_PORT in found else 0,
        forwarding=_FORWARDING_NAMES.get(method, "nat"),
        weight=_u32(data, found, DEST_WEIGHT),
        upper_threshold=_u32(data, found, DEST_U_THRESH),
        lower_threshold=_u32(data, found, DEST_L_THRESH),
        active_connections=_u32(data, found, DEST_ACTIVE_CONNS),
        inactive_connections=_u32(data, found, DEST_INACT_CONNS),
        persistent_connections=_u32(data, found, DEST_PERSIST_CONNS),
        stats=_stats(data, found, DEST_STATS64, DEST_STATS) if stats else None,
    )
