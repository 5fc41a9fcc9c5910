"""Requests and replies of the IPVS generic netlink family, as values of .model."""

from __future__ import annotations

import socket
import struct
from typing import Optional

from ..netlink import IPVSDest, IPVSService
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


def _encode_netmask(family: int, netmask: Netmask) -> str:
    if family == 4:
        return str(netmask)
    # IPv6: the kernel reads the prefix length from the same 32 bits, in host byte order.
    return socket.inet_ntoa(struct.pack("=I", int(netmask)))


def _decode_netmask(family: int, raw: Optional[str]) -> Netmask:
    if raw is None:
        return default_netmask(family)
    if family == 4:
        return raw
    return struct.unpack("=I", socket.inet_aton(raw))[0]


def _decode_stats(nla) -> Optional[Stats]:
    if nla is None:
        return None
    get = nla.get_attr
    return Stats(
        connections=get("IPVS_STATS_ATTR_CONNS") or 0,
        packets_in=get("IPVS_STATS_ATTR_INPKTS") or 0,
        packets_out=get("IPVS_STATS_ATTR_OUTPKTS") or 0,
        bytes_in=get("IPVS_STATS_ATTR_INBYTES") or 0,
        bytes_out=get("IPVS_STATS_ATTR_OUTBYTES") or 0,
        cps=get("IPVS_STATS_ATTR_CPS") or 0,
        packets_in_rate=get("IPVS_STATS_ATTR_INPPS") or 0,
        packets_out_rate=get("IPVS_STATS_ATTR_OUTPPS") or 0,
        bytes_in_rate=get("IPVS_STATS_ATTR_INBPS") or 0,
        bytes_out_rate=get("IPVS_STATS_ATTR_OUTBPS") or 0,
    )


def service_from_message(msg) -> Service:
    attrs = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    get = attrs.get_attr
    family = 6 if get("IPVS_SVC_ATTR_AF") == socket.AF_INET6 else 4
    fwmark = get("IPVS_SVC_ATTR_FWMARK") or None
    if fwmark:
        key = ServiceKey(family, fwmark=fwmark)
    else:
        number = get("IPVS_SVC_ATTR_PROTOCOL")
        protocol = next((name for name, n in PROTOCOLS.items() if n == number), None)
        if protocol is None:
            raise IpvsError(f"the kernel holds a service with unknown protocol {number}")
        key = ServiceKey(family, protocol, get("IPVS_SVC_ATTR_ADDR"), get("IPVS_SVC_ATTR_PORT"))
    raw_flags = get("IPVS_SVC_ATTR_FLAGS")
    bits = raw_flags["flags"] & ~FLAG_HASHED if raw_flags is not None else 0
    scheduler = get("IPVS_SVC_ATTR_SCHED_NAME") or ""
    names = SCHED_FLAG_NAMES.get(scheduler, GENERIC_SCHED_FLAG_NAMES)
    flags = {name for bit, name in zip(FLAG_SCHED, names) if bits & bit}
    if bits & FLAG_ONEPACKET:
        flags.add("ops")
    return Service(
        key=key,
        scheduler=scheduler,
        persistence_timeout=(get("IPVS_SVC_ATTR_TIMEOUT") or 0) if bits & FLAG_PERSISTENT else 0,
        persistence_netmask=_decode_netmask(family, get("IPVS_SVC_ATTR_NETMASK")),
        flags=frozenset(flags),
        persistence_engine=get("IPVS_SVC_ATTR_PE_NAME") or None,
        stats=_decode_stats(get("IPVS_SVC_ATTR_STATS64") or get("IPVS_SVC_ATTR_STATS")),
    )


def destination_from_message(msg) -> Destination:
    attrs = msg.get_attr("IPVS_CMD_ATTR_DEST")
    get = attrs.get_attr
    method = (get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & 0x7
    forwarding = next((name for name, n in FORWARDING.items() if n == method), "nat")
    return Destination(
        address=get("IPVS_DEST_ATTR_ADDR"),
        port=get("IPVS_DEST_ATTR_PORT") or 0,
        forwarding=forwarding,
        weight=get("IPVS_DEST_ATTR_WEIGHT") or 0,
        upper_threshold=get("IPVS_DEST_ATTR_U_THRESH") or 0,
        lower_threshold=get("IPVS_DEST_ATTR_L_THRESH") or 0,
        active_connections=get("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0,
        inactive_connections=get("IPVS_DEST_ATTR_INACT_CONNS") or 0,
        persistent_connections=get("IPVS_DEST_ATTR_PERSIST_CONNS") or 0,
        stats=_decode_stats(get("IPVS_DEST_ATTR_STATS64") or get("IPVS_DEST_ATTR_STATS")),
    )


def service_request(key: ServiceKey, service: Optional[Service] = None):
    fields = {"af": FAMILIES[key.family]}
    if key.fwmark is not None:
        fields["fwmark"] = key.fwmark
    else:
        fields.update(protocol=PROTOCOLS[key.protocol], addr=key.address, port=key.port)
    if service is None:  # key only (get, delete): any netmask satisfies the kernel's parser
        service = Service(key)
    fields.update(
        sched_name=service.scheduler,
        timeout=service.persistence_timeout,
        netmask=_encode_netmask(key.family, service.persistence_netmask),
        flags={"flags": service.flag_bits, "mask": 0xFFFFFFFF},
    )
    if service.persistence_engine:  # a full entry without it makes the kernel drop the engine
        fields["pe_name"] = service.persistence_engine
    return IPVSService(**fields)


def destination_request(dest: Destination):
    return IPVSDest(
        addr=dest.address,
        addr_family=FAMILIES[dest.family],
        port=dest.port,
        fwd_method=FORWARDING[dest.forwarding],
        weight=dest.weight,
        u_thresh=dest.upper_threshold,
        l_thresh=dest.lower_threshold,
    )
