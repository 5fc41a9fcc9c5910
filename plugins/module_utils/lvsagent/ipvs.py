"""IPVS over generic netlink (pyroute2): the one layer the modules and the reconciler share.

pyroute2 quirks handled here (measured against a real kernel):
- ``"update"`` sends a DELETE: edits use ``"set"``.
- ``from_message()`` fills missing fields with defaults: values are read from the raw
  ``IPVS_*_ATTR_*`` attributes instead.
- Dumped service flags carry HASHED (0x2), an internal kernel bit: it is masked.
- The kernel wants a netmask with every service (fwmark ones included); for IPv6 that
  "netmask" is a prefix length carried in the same 32 bits, in host byte order.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional, Union

from .netlink import (
    HAS_PYROUTE2,
    IPVS,
    IPVSDest,
    IPVSService,
    NetlinkError,
    missing_pyroute2,
)

PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
# IP_VS_CONN_F_* forwarding methods; "local" and "bypass" are only ever read.
FORWARDING = {"nat": 0, "local": 1, "tun": 2, "dr": 3, "bypass": 4}
FORWARDING_LABELS = {
    "nat": "Masq",
    "local": "Local",
    "tun": "Tunnel",
    "dr": "Route",
    "bypass": "Bypass",
}
SCHEDULERS = (
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
)  # fmt: skip

FLAG_PERSISTENT = 0x1
FLAG_HASHED = 0x2
FLAG_ONEPACKET = 0x4
FLAG_SCHED = (0x8, 0x10, 0x20)
# The three scheduler flags are named by the scheduler that gives them a meaning (as ipvsadm -b).
_SCHED_FLAG_NAMES = {
    "sh": ("sh-fallback", "sh-port", "flag-3"),
    "mh": ("mh-fallback", "mh-port", "flag-3"),
}
_GENERIC_SCHED_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
_FLAG_BITS = {"ops": FLAG_ONEPACKET}
for _names in (_GENERIC_SCHED_FLAG_NAMES, *_SCHED_FLAG_NAMES.values()):
    for _bit, _name in zip(FLAG_SCHED, _names):
        _FLAG_BITS[_name] = _bit
SERVICE_FLAGS = tuple(sorted(_FLAG_BITS))

Netmask = Union[str, int]


class IpvsError(Exception):
    """An IPVS operation failed; the text is meant for an operator, `errno` for code."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.errno = code


def _normalize_address(address: str) -> tuple[int, str]:
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None
    return ip.version, ip.compressed


@dataclass(frozen=True)
class ServiceKey:
    """What identifies a virtual service in the kernel: address+port+protocol, or fwmark."""

    family: int
    protocol: Optional[str] = None
    address: Optional[str] = None
    port: Optional[int] = None
    fwmark: Optional[int] = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be 4 or 6, not {self.family!r}")
        if self.fwmark is not None:
            if any(v is not None for v in (self.protocol, self.address, self.port)):
                raise ValueError("a fwmark service has no protocol, address or port")
            if not 1 <= int(self.fwmark) <= 0xFFFFFFFF:
                raise ValueError(f"fwmark must be 1..4294967295, not {self.fwmark}")
            object.__setattr__(self, "fwmark", int(self.fwmark))
            return
        if self.address is None or self.port is None or self.protocol is None:
            raise ValueError("a service needs address, port and protocol, or a fwmark")
        protocol = str(self.protocol).lower()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of tcp, udp, sctp, not {self.protocol!r}")
        version, address = _normalize_address(self.address)
        if version != self.family:
            raise ValueError(f"{address} is not an IPv{self.family} address")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "port", int(self.port))

    @classmethod
    def for_address(cls, address: str, port: int, protocol: str = "tcp") -> ServiceKey:
        return cls(_normalize_address(address)[0], protocol, address, port)

    @classmethod
    def for_fwmark(cls, fwmark: int, family: int = 4) -> ServiceKey:
        return cls(family, fwmark=fwmark)

    def __str__(self) -> str:
        return format_service(self)


@dataclass(frozen=True)
class Stats:
    """Counters and rates as `ipvsadm --stats` / `--rate` show them."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cps: int = 0
    packets_in_rate: int = 0
    packets_out_rate: int = 0
    bytes_in_rate: int = 0
    bytes_out_rate: int = 0


def default_netmask(family: int) -> Netmask:
    return "255.255.255.255" if family == 4 else 128


def normalize_netmask(family: int, netmask: Optional[Netmask]) -> Netmask:
    """IPv4: a dotted mask ("255.255.255.0", also given as 24); IPv6: a prefix length 1..128."""
    if netmask is None:
        return default_netmask(family)
    if family == 4:
        text = str(netmask)
        try:
            network = ipaddress.IPv4Network(f"0.0.0.0/{text}")
        except ValueError:
            raise ValueError(f"{netmask!r} is not an IPv4 netmask") from None
        return str(network.netmask)
    text = str(netmask).lstrip("/")
    if not text.isdigit() or not 1 <= int(text) <= 128:
        raise ValueError(f"an IPv6 persistence netmask is a prefix length 1..128, not {netmask!r}")
    return int(text)


def _canonical_flags(flags, scheduler: str) -> frozenset:
    names = _SCHED_FLAG_NAMES.get(scheduler, _GENERIC_SCHED_FLAG_NAMES)
    canonical = set()
    for name in flags:
        bit = _FLAG_BITS.get(name)
        if bit is None:
            raise ValueError(f"unknown service flag {name!r} (known: {', '.join(SERVICE_FLAGS)})")
        canonical.add("ops" if bit == FLAG_ONEPACKET else names[FLAG_SCHED.index(bit)])
    return frozenset(canonical)


@dataclass
class Service:
    """A virtual service. Flags are named after the scheduler (sh-port = flag-2 under sh)."""

    key: ServiceKey
    scheduler: str = "wlc"
    persistence_timeout: int = 0
    persistence_netmask: Optional[Netmask] = None
    flags: frozenset = frozenset()
    persistence_engine: Optional[str] = field(default=None, compare=False)
    stats: Optional[Stats] = field(default=None, compare=False)

    def __post_init__(self):
        if not self.scheduler:
            raise ValueError("a service needs a scheduler")
        if self.persistence_timeout < 0:
            raise ValueError("persistence_timeout cannot be negative")
        self.persistence_netmask = normalize_netmask(self.key.family, self.persistence_netmask)
        self.flags = _canonical_flags(self.flags, self.scheduler)

    @property
    def flag_bits(self) -> int:
        bits = FLAG_PERSISTENT if self.persistence_timeout else 0
        for name in self.flags:
            bits |= _FLAG_BITS[name]
        return bits

    def to_dict(self) -> dict:
        return {
            **service_key_dict(self.key),
            "scheduler": self.scheduler,
            "persistence_timeout": self.persistence_timeout,
            "persistence_netmask": self.persistence_netmask,
            "flags": sorted(self.flags),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Service:
        """The service to_dict() described (how `lvs-agent status` rebuilds the agent's table)."""
        key = ServiceKey(
            data["family"], data["protocol"], data["address"], data["port"], data["fwmark"]
        )
        return cls(
            key,
            scheduler=data["scheduler"],
            persistence_timeout=data["persistence_timeout"],
            persistence_netmask=data["persistence_netmask"],
            flags=frozenset(data["flags"]),
        )


@dataclass
class Destination:
    """A real server of a service. Connection counters are read-only and never compared."""

    address: str
    port: int
    forwarding: str = "dr"
    weight: int = 1
    upper_threshold: int = 0
    lower_threshold: int = 0
    active_connections: int = field(default=0, compare=False)
    inactive_connections: int = field(default=0, compare=False)
    persistent_connections: int = field(default=0, compare=False)
    stats: Optional[Stats] = field(default=None, compare=False)

    def __post_init__(self):
        self.address = _normalize_address(self.address)[1]
        if self.forwarding not in FORWARDING:
            raise ValueError(f"forwarding must be one of dr, nat, tun, not {self.forwarding!r}")
        for name in ("port", "weight", "upper_threshold", "lower_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")
        if self.lower_threshold > self.upper_threshold:  # the kernel answers ERANGE
            raise ValueError(
                f"lower_threshold {self.lower_threshold} is above upper_threshold "
                f"{self.upper_threshold}"
            )

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version

    def to_dict(self) -> dict:
        return {
            "address": self.address,
            "port": self.port,
            "forwarding": self.forwarding,
            "weight": self.weight,
            "upper_threshold": self.upper_threshold,
            "lower_threshold": self.lower_threshold,
        }


def service_key_dict(key: ServiceKey) -> dict:
    return {
        "family": key.family,
        "protocol": key.protocol,
        "address": key.address,
        "port": key.port,
        "fwmark": key.fwmark,
    }


Table = dict  # dict[ServiceKey, tuple[Service, list[Destination]]]


def service_key_from(
    address: Optional[str] = None,
    port: Optional[int] = None,
    protocol: Optional[str] = "tcp",
    fwmark: Optional[int] = None,
    family: int = 4,
) -> ServiceKey:
    """The key named by user options: a fwmark (with a family) or address+port+protocol."""
    if fwmark is not None:
        if address is not None or port is not None:
            raise ValueError("a service is either fwmark or address+port, not both")
        return ServiceKey.for_fwmark(fwmark, family)
    if address is None or port is None:
        raise ValueError("a service needs address and port, or fwmark")
    return ServiceKey.for_address(address, port, protocol or "tcp")


def with_changes(current, default, **changes):
    """`current` (or `default` when absent) with the changes that are not None.

    An option left out keeps what the kernel holds, so an entry made by ipvsadm is left alone
    unless it conflicts with what was asked.
    """
    return replace(current or default, **{k: v for k, v in changes.items() if v is not None})


DESTINATION_OPTIONS = ("forwarding", "weight", "upper_threshold", "lower_threshold")


def desired_destination(current: list, key: ServiceKey, options: dict) -> Destination:
    """The real server `options` ask for (address, port: None = the service's, and
    DESTINATION_OPTIONS): the one the kernel holds with the options given applied."""
    port = options["port"] if options["port"] is not None else (key.port or 0)
    wanted = Destination(options["address"], port)
    have = next((d for d in current if (d.address, d.port) == (wanted.address, wanted.port)), None)
    return with_changes(have, wanted, **{name: options[name] for name in DESTINATION_OPTIONS})


@dataclass
class DestinationPlan:
    """The smallest set of changes that turns the current real servers into the desired ones."""

    add: list = field(default_factory=list)
    edit: list = field(default_factory=list)
    delete: list = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.add or self.edit or self.delete)

    def result(self, current: list) -> list:
        """The real servers once the plan is applied (what check mode reports)."""
        gone = {(d.address, d.port) for d in (*self.delete, *self.edit)}
        return [d for d in current if (d.address, d.port) not in gone] + self.edit + self.add

    def apply(self, client: IpvsClient, key: ServiceKey, done: Optional[list] = None) -> None:
        """Deletes, edits, then adds; each step that succeeded is appended to `done`, so a
        failure part-way can say what was already changed."""
        done = [] if done is None else done
        for dest in self.delete:
            client.delete_destination(key, dest.address, dest.port)
            done.append(f"deleted real server {format_endpoint(dest.address, dest.port)}")
        for dest in self.edit:
            client.edit_destination(key, dest)
            done.append(f"changed real server {format_endpoint(dest.address, dest.port)}")
        for dest in self.add:
            client.add_destination(key, dest)
            done.append(f"added real server {format_endpoint(dest.address, dest.port)}")


def plan_destinations(current: list, desired: list, *, purge: bool = False) -> DestinationPlan:
    """Adds the missing, edits the different (never delete and re-add: that drops
    connections), and deletes the undeclared ones only when `purge` is set."""
    existing = {(d.address, d.port): d for d in current}
    wanted = {(d.address, d.port) for d in desired}
    plan = DestinationPlan()
    for dest in desired:
        have = existing.get((dest.address, dest.port))
        if have is None:
            plan.add.append(dest)
        elif have != dest:
            plan.edit.append(dest)
    if purge:
        plan.delete = [d for d in current if (d.address, d.port) not in wanted]
    return plan


# ---------------------------------------------------------------------------------------
# Formatting


def format_endpoint(address: str, port: int) -> str:
    """keepalived's way of naming an endpoint in logs: ``[10.0.0.2]:80``."""
    return f"[{address}]:{port}"


def format_service(key: ServiceKey) -> str:
    """``[10.0.0.100]:80`` (TCP implied, as keepalived logs it), ``[..]:53/udp`` or ``FWM 1``."""
    if key.fwmark is not None:
        return f"FWM {key.fwmark}" + (" IPv6" if key.family == 6 else "")
    suffix = "" if key.protocol == "tcp" else f"/{key.protocol}"
    return format_endpoint(key.address, key.port) + suffix


def _ipvsadm_endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ipvsadm_service_name(key: ServiceKey) -> str:
    if key.fwmark is not None:
        return f"FWM  {key.fwmark}" + (" IPv6" if key.family == 6 else "")
    return f"{key.protocol.upper():<4} {_ipvsadm_endpoint(key.address, key.port)}"


def _largenum(value: int) -> str:
    """A counter as ipvsadm prints it without -x: 9 columns, K/M/G/T past 100 million."""
    if value < 10**8:
        return f"{value:9d}"
    for limit, unit, scale in ((10**9, "K", 10**3), (10**11, "M", 10**6), (10**14, "G", 10**9)):
        if value < limit:
            return f"{value // scale:8d}{unit}"
    return f"{value // 10**12:8d}T"


def render_table(
    table: Table,
    *,
    stats: bool = False,
    annotate: Optional[Callable[[ServiceKey, Destination], str]] = None,
) -> str:
    """The table in `ipvsadm -Ln` layout (``--stats`` with stats=True), sorted as ipvsadm sorts.

    `annotate(key, destination)` may append a column to each real server line, which is how
    `lvs-agent status` shows health next to the kernel's view.
    """
    if stats:
        lines = [
            f"{'Prot LocalAddress:Port':<33}"
            + "".join(f" {h:>8}" for h in ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")),
            "  -> RemoteAddress:Port",
        ]
    else:
        lines = [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        ]
    for key in sorted(table, key=_ipvsadm_sort_key):
        service, destinations = table[key]
        name = _ipvsadm_service_name(key)
        if stats:
            lines.append(f"{name:<33}" + _stats_columns(service.stats))
        else:
            lines.append(f"{name} {_ipvsadm_service_flags(service)}")
        for dest in sorted(destinations, key=_destination_sort_key):
            endpoint = _ipvsadm_endpoint(dest.address, dest.port)
            if stats:
                line = f"  -> {endpoint:<28}" + _stats_columns(dest.stats)
            else:
                line = (
                    f"  -> {endpoint:<28} {FORWARDING_LABELS[dest.forwarding]:<7} "
                    f"{dest.weight:<6d} {dest.active_connections:<10d} "
                    f"{dest.inactive_connections:<10d}"
                )
            if annotate is not None:
                line = f"{line} {annotate(key, dest)}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def table_as_data(table: Table) -> list:
    """The table as plain data with counters (ipvs_info, JSON output), in ipvsadm's order."""
    return [
        {
            **table[key][0].to_dict(),
            "stats": asdict(table[key][0].stats or Stats()),
            "realservers": [
                {
                    **dest.to_dict(),
                    "active_connections": dest.active_connections,
                    "inactive_connections": dest.inactive_connections,
                    "persistent_connections": dest.persistent_connections,
                    "stats": asdict(dest.stats or Stats()),
                }
                for dest in sorted(table[key][1], key=_destination_sort_key)
            ],
        }
        for key in sorted(table, key=_ipvsadm_sort_key)
    ]


def _ipvsadm_service_flags(service: Service) -> str:
    text = service.scheduler
    sched = sorted(service.flags - {"ops"}, key=lambda n: _FLAG_BITS[n])
    if sched:
        text += f" ({','.join(sched)})"
    if service.persistence_timeout:
        text += f" persistent {service.persistence_timeout}"
        if service.persistence_netmask != default_netmask(service.key.family):
            text += f" mask {service.persistence_netmask}"
        if service.persistence_engine:
            text += f" pe {service.persistence_engine}"
    if "ops" in service.flags:
        text += " ops"
    return text


def _stats_columns(stats: Optional[Stats]) -> str:
    stats = stats or Stats()
    values = (stats.connections, stats.packets_in, stats.packets_out, stats.bytes_in)
    return "".join(_largenum(v) for v in (*values, stats.bytes_out))


def _ipvsadm_sort_key(key: ServiceKey):
    # libipvs's ipvs_cmp_services: fwmark (0 for address services), family, protocol,
    # address, port.
    if key.fwmark is not None:
        return (key.fwmark, FAMILIES[key.family], 0, b"", 0)
    packed = ipaddress.ip_address(key.address).packed
    return (0, FAMILIES[key.family], PROTOCOLS[key.protocol], packed, key.port)


def _destination_sort_key(dest: Destination):
    return (dest.family, ipaddress.ip_address(dest.address).packed, dest.port)


# ---------------------------------------------------------------------------------------
# Netlink


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


def _service_from_message(msg) -> Service:
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
    names = _SCHED_FLAG_NAMES.get(scheduler, _GENERIC_SCHED_FLAG_NAMES)
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


def _destination_from_message(msg) -> Destination:
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


def _service_request(key: ServiceKey, service: Optional[Service] = None):
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


def _destination_request(dest: Destination):
    return IPVSDest(
        addr=dest.address,
        addr_family=FAMILIES[dest.family],
        port=dest.port,
        fwd_method=FORWARDING[dest.forwarding],
        weight=dest.weight,
        u_thresh=dest.upper_threshold,
        l_thresh=dest.lower_threshold,
    )


class IpvsClient:
    """Reads and changes the kernel's IPVS table of the current network namespace.

    `netlink` is anything with pyroute2's ``IPVS`` interface (``service(cmd, service)``,
    ``dest(cmd, service, dest)``); unit tests pass a fake, everything else the real socket.
    """

    def __init__(self, netlink=None):
        if netlink is None:
            if not HAS_PYROUTE2:
                raise IpvsError(missing_pyroute2())
            try:
                netlink = IPVS()
            except NetlinkError as exc:
                raise self._connect_error(exc) from None
            except OSError as exc:
                raise IpvsError(f"cannot open a netlink socket: {exc}", exc.errno or 0) from None
        self._netlink = netlink

    def close(self) -> None:
        close = getattr(self._netlink, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> IpvsClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- services -------------------------------------------------------------------------

    def services(self) -> list:
        """Every virtual service, with its stats."""
        messages = self._call("list the virtual services", self._netlink.service, "dump")
        return [_service_from_message(msg) for msg in messages]

    def service(self, key: ServiceKey) -> Optional[Service]:
        """The service as the kernel holds it, or None."""
        try:
            messages = self._service_call("get", f"read virtual service {key}", key)
        except IpvsError as exc:
            if exc.errno == errno.ESRCH:
                return None
            raise
        return next((_service_from_message(msg) for msg in messages), None)

    def add_service(self, service: Service) -> None:
        self._service_call("add", f"add virtual service {service.key}", service.key, service)

    def edit_service(self, service: Service) -> None:
        self._service_call("set", f"change virtual service {service.key}", service.key, service)

    def delete_service(self, key: ServiceKey) -> None:
        self._service_call("del", f"delete virtual service {key}", key)

    def _service_call(self, command: str, action: str, key: ServiceKey, service=None):
        scheduler = service.scheduler if service is not None else None
        request = _service_request(key, service)
        return self._call(action, self._netlink.service, command, request, scheduler=scheduler)

    # -- destinations ---------------------------------------------------------------------

    def destinations(self, key: ServiceKey) -> list:
        """The real servers of the service; none when the service does not exist (the kernel
        answers a dump for a missing service with nothing)."""
        messages = self._dest_call("dump", f"list the real servers of {key}", key)
        return [_destination_from_message(msg) for msg in messages]

    def add_destination(self, key: ServiceKey, dest: Destination) -> None:
        endpoint = format_endpoint(dest.address, dest.port)
        self._dest_call("add", f"add real server {endpoint} to {key}", key, dest)

    def edit_destination(self, key: ServiceKey, dest: Destination) -> None:
        endpoint = format_endpoint(dest.address, dest.port)
        self._dest_call("set", f"change real server {endpoint} of {key}", key, dest)

    def delete_destination(self, key: ServiceKey, address: str, port: int) -> None:
        dest = Destination(address, port)
        endpoint = format_endpoint(dest.address, dest.port)
        self._dest_call("del", f"delete real server {endpoint} from {key}", key, dest)

    def _dest_call(self, command: str, action: str, key: ServiceKey, dest=None):
        args = [_service_request(key)]
        if dest is not None:
            args.append(_destination_request(dest))
        return self._call(action, self._netlink.dest, command, *args)

    def table(self) -> Table:
        """The whole table: {key: (service, [destinations])}."""
        return {svc.key: (svc, self.destinations(svc.key)) for svc in self.services()}

    def genl_request(self, action: str, message, flags: int) -> tuple:
        """Any IPVS command on this socket (lvs.syncd builds the daemon and config ones)."""
        try:
            return tuple(self._netlink.nlm_request(message, self._netlink.prid, flags))
        except NetlinkError as exc:
            raise IpvsError(f"cannot {action}: {os.strerror(exc.code)}", exc.code) from None
        except OSError as exc:
            raise IpvsError(f"cannot {action}: {exc}", exc.errno or 0) from None

    # -- errors ---------------------------------------------------------------------------

    @staticmethod
    def _connect_error(exc) -> IpvsError:
        if exc.code == errno.ENOENT:
            return IpvsError(
                "IPVS is not available in this kernel: load the ip_vs module", errno.ENOENT
            )
        if exc.code in (errno.EPERM, errno.EACCES):
            return IpvsError("IPVS needs root (CAP_NET_ADMIN): permission denied", exc.code)
        return IpvsError(f"cannot reach IPVS over netlink: {exc}", exc.code)

    def _call(self, action: str, method, *args, scheduler: Optional[str] = None):
        """Runs one netlink request; `scheduler` is given for service add/edit requests."""
        try:
            return tuple(method(*args))
        except NetlinkError as exc:
            raise self._translate(action, exc.code, scheduler) from None
        except OSError as exc:
            raise IpvsError(f"cannot {action}: {exc}", exc.errno or 0) from None

    @staticmethod
    def _translate(action: str, code: int, scheduler: Optional[str]) -> IpvsError:
        if code == errno.EEXIST:
            reason = "it already exists"
        elif code == errno.ESRCH:
            reason = "the virtual service does not exist"
        elif code == errno.ENOENT and scheduler is not None:
            reason = f"scheduler {scheduler!r} is not available (no ip_vs_{scheduler} module)"
        elif code == errno.ENOENT:
            reason = "the real server does not exist"
        elif code in (errno.EPERM, errno.EACCES):
            reason = "permission denied: IPVS needs root (CAP_NET_ADMIN)"
        elif code == errno.ERANGE:
            reason = "the lower threshold is above the upper threshold (ERANGE)"
        elif code == errno.EINVAL:
            reason = "the kernel rejected the request as invalid (EINVAL)"
        else:
            reason = f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
        return IpvsError(f"cannot {action}: {reason}", code)
