"""VRRP advertisements on the wire: RFC 3768 (v2) and RFC 9568 (v3), as keepalived sends them.

Encoding gives the same bytes as keepalived 2.2.7 (see the reference captures); decoding never
raises anything but `InvalidPacket`, whose `reason` names the counter the packet is dropped under.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import NamedTuple, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

IPPROTO_VRRP = 112
ADVERTISEMENT = 1
VRRP_TTL = 255
VRRP_TOS = 0xC0  # keepalived's IPTOS_PREC_INTERNETCONTROL
MCAST_GROUP4 = ipaddress.IPv4Address("224.0.0.18")
MCAST_GROUP6 = ipaddress.IPv6Address("ff02::12")
AUTH_NONE = 0
AUTH_PASS = 1
AUTH_TYPES = {None: AUTH_NONE, "PASS": AUTH_PASS}
AUTH_DATA_LEN = 8
HEADER_LEN = 8
V2_ADDRESS_LEN = 4
# The smallest advert interval there is: VRRPv3 counts in centiseconds, and keepalived rounds a
# configured advert_int up to one at least; 0 on the wire is dropped, and a learned interval
# never goes below this.
MIN_ADVERT_INTERVAL = 0.01


class InvalidPacket(Exception):
    """A received packet that must be dropped; `reason` is a short counter name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Advertisement:
    """One VRRP advertisement. `interval` is in seconds for both versions."""

    version: int
    vrid: int
    priority: int
    addresses: tuple[IPAddress, ...]
    interval: float = 1.0
    auth_type: int = AUTH_NONE
    auth_data: bytes = field(default=b"", repr=False)
    # v3 over IPv4 only: whether the checksum covers the IPv4 pseudo-header (keepalived's default)
    pseudo_header_checksum: bool = True


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's complement sum, as used by IP, ICMP and VRRP."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(source: IPAddress, destination: IPAddress, protocol: int, length: int) -> bytes:
    """The IPv4 (RFC 768) or IPv6 (RFC 8200 8.1) pseudo-header that upper-layer checksums cover."""
    if source.version == 4:
        return source.packed + destination.packed + struct.pack("!BBH", 0, protocol, length)
    return source.packed + destination.packed + struct.pack("!I3xB", length, protocol)


def auth_data_for(password: str | None) -> bytes:
    """keepalived's PASS field: the password's first 8 bytes, NUL-padded."""
    return (password or "").encode()[:AUTH_DATA_LEN].ljust(AUTH_DATA_LEN, b"\0")


def encode(
    advert: Advertisement,
    source: IPAddress | None = None,
    destination: IPAddress | None = None,
) -> bytes:
    """The VRRP message (no IP header). v3 needs source and destination for the checksum."""
    count = len(advert.addresses)
    packed_addresses = b"".join(address.packed for address in advert.addresses)
    if advert.version == 2:
        header = struct.pack(
            "!BBBBBBH",
            0x20 | ADVERTISEMENT,
            advert.vrid,
            advert.priority,
            count,
            advert.auth_type,
            int(round(advert.interval)),
            0,
        )
        trailer = advert.auth_data if advert.auth_type == AUTH_PASS else bytes(AUTH_DATA_LEN)
        message = header + packed_addresses + trailer
        checksum = internet_checksum(message)
    else:
        centiseconds = int(round(advert.interval * 100)) & 0x0FFF
        header = struct.pack(
            "!BBBBHH", 0x30 | ADVERTISEMENT, advert.vrid, advert.priority, count, centiseconds, 0
        )
        message = header + packed_addresses
        covered = message
        if source is not None and (source.version == 6 or advert.pseudo_header_checksum):
            covered = pseudo_header(source, destination, IPPROTO_VRRP, len(message)) + message
        checksum = internet_checksum(covered)
    return message[:6] + struct.pack("!H", checksum) + message[8:]


class Message(NamedTuple):
    """A VRRP message whose header, length and checksum passed, its addresses still as bytes:
    the receive rules judge this before any address object is built."""

    version: int
    vrid: int
    priority: int
    count: int
    interval: float
    auth_type: int
    auth_data: bytes
    address_bytes: bytes
    pseudo_header_checksum: bool

    def packed_addresses(self) -> list[bytes]:
        size = len(self.address_bytes) // self.count if self.count else 4
        return [self.address_bytes[at : at + size] for at in range(0, self.count * size, size)]

    def advertisement(self) -> Advertisement:
        return Advertisement(
            version=self.version,
            vrid=self.vrid,
            priority=self.priority,
            addresses=tuple(ipaddress.ip_address(raw) for raw in self.packed_addresses()),
            interval=self.interval,
            auth_type=self.auth_type,
            auth_data=self.auth_data,
            pseudo_header_checksum=self.pseudo_header_checksum,
        )


def parse(data: bytes, source: IPAddress, destination: IPAddress) -> Message:
    """Verify one VRRP message (the RFC 3768/9568 7.1 checks that need no configuration),
    cheapest first; the log text of an `InvalidPacket` is in keepalived's words."""
    if len(data) < HEADER_LEN:
        raise InvalidPacket("truncated", f"vrrp packet too short, length {len(data)}")
    version_type, vrid, priority, count = data[0], data[1], data[2], data[3]
    version = version_type >> 4
    if version not in (2, 3) or (version == 2 and source.version == 6):
        raise InvalidPacket("version", f"wrong version. Received {version}")
    if version_type & 0x0F != ADVERTISEMENT:
        raise InvalidPacket("type", f"Invalid packet type. {version_type & 0x0F} and expect 1")
    address_len = 4 if source.version == 4 else 16
    trailer_len = AUTH_DATA_LEN if version == 2 else 0
    expected = HEADER_LEN + count * address_len + trailer_len
    if len(data) < expected:
        raise InvalidPacket(
            "truncated", f"vrrp packet too short, length {len(data)} and expect {expected}"
        )
    data = data[:expected]
    address_bytes = data[HEADER_LEN : HEADER_LEN + count * address_len]
    if version == 2:
        if internet_checksum(data) != 0:
            raise InvalidPacket("checksum", "Invalid VRRPv2 checksum")
        if data[5] == 0:
            raise InvalidPacket("interval 0", "advertisement interval 0")
        return Message(
            2, vrid, priority, count, float(data[5]), data[4], data[-AUTH_DATA_LEN:],
            address_bytes, True,
        )  # fmt: skip
    with_pseudo = pseudo_header(source, destination, IPPROTO_VRRP, len(data)) + data
    if internet_checksum(with_pseudo) == 0:
        pseudo = True
    elif source.version == 4 and internet_checksum(data) == 0:
        pseudo = False
    else:
        raise InvalidPacket("checksum", "Invalid VRRPv3 checksum")
    centiseconds = struct.unpack_from("!H", data, 4)[0] & 0x0FFF
    if centiseconds == 0:
        raise InvalidPacket("interval 0", "advertisement interval 0")
    return Message(
        3, vrid, priority, count, centiseconds / 100, AUTH_NONE, b"", address_bytes, pseudo
    )


def decode(data: bytes, source: IPAddress, destination: IPAddress) -> Advertisement:
    """Parse and verify one VRRP message into an `Advertisement` (addresses included)."""
    return parse(data, source, destination).advertisement()


@dataclass(frozen=True)
class IPv4Header:
    """The fields of a received IPv4 header that the receive rules look at."""

    ttl: int
    protocol: int
    source: ipaddress.IPv4Address
    destination: ipaddress.IPv4Address
    header_len: int
    total_len: int


def parse_ipv4_header(data: bytes) -> IPv4Header:
    """Read the IPv4 header a raw socket hands over in front of the payload."""
    if len(data) < 20 or data[0] >> 4 != 4:
        raise InvalidPacket("truncated", "no IPv4 header")
    header_len = (data[0] & 0x0F) * 4
    total_len = struct.unpack_from("!H", data, 2)[0]
    if header_len < 20 or len(data) < header_len:
        raise InvalidPacket("truncated", "short IPv4 header")
    return IPv4Header(
        ttl=data[8],
        protocol=data[9],
        source=ipaddress.IPv4Address(data[12:16]),
        destination=ipaddress.IPv4Address(data[16:20]),
        header_len=header_len,
        total_len=min(total_len, len(data)),
    )


def ipv4_header(
    source: ipaddress.IPv4Address,
    destination: ipaddress.IPv4Address,
    payload_len: int,
    identification: int,
    ttl: int = VRRP_TTL,
) -> bytes:
    """keepalived's own IPv4 header (IP_HDRINCL): TOS 0xc0, TTL 255 (or unicast_ttl), DF clear,
    protocol 112."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        VRRP_TOS,
        20 + payload_len,
        identification & 0xFFFF,
        0,
        ttl,
        IPPROTO_VRRP,
        0,
        source.packed,
        destination.packed,
    )
    return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
NA_OVERRIDE = 0x20000000


def gratuitous_arp(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """Whole Ethernet frame of keepalived's gratuitous ARP: a request with sender = target = VIP."""
    own = mac_bytes(mac)
    ethernet = BROADCAST_MAC + own + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own + address.packed
    return ethernet + arp + BROADCAST_MAC + address.packed


def unsolicited_neighbour_advert(mac: str, address: ipaddress.IPv6Address) -> bytes:
    """Whole frame of an unsolicited NA (override flag, target link-layer option) to ff02::1."""
    own = mac_bytes(mac)
    body = struct.pack("!I", NA_OVERRIDE) + address.packed + struct.pack("!BB", 2, 1) + own
    checksum = internet_checksum(
        pseudo_header(address, ALL_NODES, 58, 4 + len(body)) + struct.pack("!BBH", 136, 0, 0) + body
    )
    icmp = struct.pack("!BBH", 136, 0, checksum) + body
    ipv6 = struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + address.packed + ALL_NODES.packed
    return ALL_NODES_MAC + own + struct.pack("!H", ETH_P_IPV6) + ipv6 + icmp
