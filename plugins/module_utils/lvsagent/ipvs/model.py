"""The IPVS table as values: services, real servers, their keys, and the constants (schedulers,
flags, forwarding methods) the configuration layer shares with the kernel layer."""

from __future__ import annotations

import ipaddress
import socket
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Optional, Union

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
# Every scheduler the Linux IPVS code (and keepalived) knows.
SCHEDULERS = (
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
)  # fmt: skip
DEFAULT_SCHEDULER = "wlc"  # keepalived's IPVS_DEF_SCHED and ipvsadm's default

FLAG_PERSISTENT = 0x1
FLAG_HASHED = 0x2
FLAG_ONEPACKET = 0x4
FLAG_SCHED = (0x8, 0x10, 0x20)
# The three scheduler flags are named by the scheduler that gives them a meaning (as ipvsadm -b).
SCHED_FLAG_NAMES = {
    "sh": ("sh-fallback", "sh-port", "flag-3"),
    "mh": ("mh-fallback", "mh-port", "flag-3"),
}
GENERIC_SCHED_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
FLAG_BITS = {"ops": FLAG_ONEPACKET}
for _names in (GENERIC_SCHED_FLAG_NAMES, *SCHED_FLAG_NAMES.values()):
    for _bit, _name in zip(FLAG_SCHED, _names):
        FLAG_BITS[_name] = _bit
SERVICE_FLAGS = tuple(sorted(FLAG_BITS))

Netmask = Union[str, int]
# Objects kept by the ten thousand (real servers) carry no __dict__ where Python allows it.
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}


class IpvsError(Exception):
    """An IPVS operation failed; the text is meant for an operator, `errno` for code."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.errno = code


_CANONICAL: dict = {}  # address as given -> canonical text (the very same object when equal)
CANONICAL_CACHE = 1 << 16  # addresses remembered; the cache starts over beyond


def canonical_address(address: str) -> str:
    """The address's canonical text, parsed once per address: the same real servers are built
    pass after pass, and text already canonical (the parser's) is kept, not copied."""
    text = _CANONICAL.get(address)
    if text is None:
        text = _canonical_text(str(address))
        text = address if text == address else text
        if len(_CANONICAL) >= CANONICAL_CACHE:
            _CANONICAL.clear()
        _CANONICAL[address] = text
    return text


def _canonical_text(text: str) -> str:
    """IPv4 through inet_pton (as strict as ipaddress: four decimal parts, no leading zero,
    so what it accepts is canonical already; a tenth of ipaddress's time); IPv6 through
    ipaddress (its compressed form, which inet_ntop does not always write)."""
    try:
        if ":" not in text:
            socket.inet_pton(socket.AF_INET, text)
            return text
        return ipaddress.IPv6Address(text).compressed
    except (OSError, ValueError):
        raise ValueError(f"{text!r} is not an IP address") from None


def address_version(text: str) -> int:
    """4 or 6, of an address in canonical text."""
    return 6 if ":" in text else 4


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
        address = canonical_address(self.address)
        version = address_version(address)
        if version != self.family:
            raise ValueError(f"{address} is not an IPv{self.family} address")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "port", int(self.port))

    @classmethod
    def for_address(cls, address: str, port: int, protocol: str = "tcp") -> ServiceKey:
        return cls(address_version(canonical_address(address)), protocol, address, port)

    @classmethod
    def for_fwmark(cls, fwmark: int, family: int = 4) -> ServiceKey:
        return cls(family, fwmark=fwmark)

    def __str__(self) -> str:
        return format_service(self)


@dataclass(frozen=True, **SLOTS)  # one per real server in a status read
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


# Stats' counters (the other fields are rates): what status and the metrics report
KERNEL_COUNTERS = ("connections", "packets_in", "packets_out", "bytes_in", "bytes_out")


def default_netmask(family: int) -> Netmask:
    return "255.255.255.255" if family == 4 else 128


@lru_cache(maxsize=256)  # a few masks, read back with every service the audit compares
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
    names = SCHED_FLAG_NAMES.get(scheduler, GENERIC_SCHED_FLAG_NAMES)
    canonical = set()
    for name in flags:
        bit = FLAG_BITS.get(name)
        if bit is None:
            raise ValueError(f"unknown service flag {name!r} (known: {', '.join(SERVICE_FLAGS)})")
        canonical.add("ops" if bit == FLAG_ONEPACKET else names[FLAG_SCHED.index(bit)])
    return frozenset(canonical)


@dataclass
class Service:
    """A virtual service. Flags are named after the scheduler (sh-port = flag-2 under sh)."""

    key: ServiceKey
    scheduler: str = DEFAULT_SCHEDULER
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
            bits |= FLAG_BITS[name]
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


@dataclass(**SLOTS)
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
        self.address = canonical_address(self.address)
        if self.forwarding not in FORWARDING:
            raise ValueError(f"forwarding must be one of dr, nat, tun, not {self.forwarding!r}")
        if min(self.port, self.weight, self.upper_threshold, self.lower_threshold) < 0:
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
        return address_version(self.address)

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


def format_endpoint(address: str, port: int) -> str:
    """keepalived's way of naming an endpoint in logs: ``[10.0.0.2]:80``."""
    return f"[{address}]:{port}"


def format_service(key: ServiceKey) -> str:
    """``[10.0.0.100]:80`` (TCP implied, as keepalived logs it), ``[..]:53/udp`` or ``FWM 1``."""
    if key.fwmark is not None:
        return f"FWM {key.fwmark}" + (" IPv6" if key.family == 6 else "")
    suffix = "" if key.protocol == "tcp" else f"/{key.protocol}"
    return format_endpoint(key.address, key.port) + suffix
