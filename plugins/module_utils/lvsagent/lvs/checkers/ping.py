"""PING_CHECK: an ICMP (or ICMPv6) echo request is answered within connect_timeout.

The agent prefers an unprivileged ICMP datagram socket (the kernel picks the identifier,
fills the checksum and hands back only our replies); where net.ipv4.ping_group_range does
not allow it (a new network namespace allows nobody) it uses a raw socket, which needs
CAP_NET_RAW, and keeps only the echo replies carrying its own identifier and sequence.
Unlike keepalived, it never widens ping_group_range.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import socket
import struct
from dataclasses import dataclass
from typing import Optional

from ...config.model import CheckSettings
from .base import (
    CheckerKind,
    CheckResult,
    CheckSpec,
    connection_words,
    exchange,
    family,
    open_socket,
)

ECHO = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # (request, reply) types
PROTOCOL = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
PAYLOAD = bytes(range(56))  # the 56 data bytes ping(8) sends
_sequence = itertools.count(1)


@dataclass
class PingCheck(CheckSettings):
    kind: str = "PING_CHECK"


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(sock_family: int, identifier: int, sequence: int) -> bytes:
    request, _reply = ECHO[sock_family]
    header = struct.pack("!BBHHH", request, 0, 0, identifier, sequence)
    if sock_family == socket.AF_INET6:  # the kernel fills in the ICMPv6 checksum
        return header + PAYLOAD
    packet = header + PAYLOAD
    return packet[:2] + struct.pack("!H", checksum(packet)) + packet[4:]


def is_reply(packet: bytes, sock_family: int, raw: bool, identifier: int, sequence: int) -> bool:
    """Whether `packet` (as read from the socket) is the echo reply to our request."""
    if raw and sock_family == socket.AF_INET:
        if not packet:
            return False
        packet = packet[(packet[0] & 0x0F) * 4 :]  # a raw IPv4 socket hands the IP header too
    if len(packet) < 8:
        return False
    kind, _code, _sum, got_identifier, got_sequence = struct.unpack("!BBHHH", packet[:8])
    if kind != ECHO[sock_family][1] or got_sequence != sequence:
        return False
    return not raw or got_identifier == identifier  # a ping socket only sees its own replies


def _icmp_socket(spec: CheckSpec) -> tuple[socket.socket, bool]:
    """An ICMP datagram socket when allowed, else a raw one: (socket, raw)."""
    protocol = PROTOCOL[family(spec.address)]
    try:
        return open_socket(spec, socket.SOCK_DGRAM, protocol), False
    except PermissionError:
        return open_socket(spec, socket.SOCK_RAW, protocol), True


async def ping_probe(spec: CheckSpec) -> CheckResult:
    try:
        sock, raw = _icmp_socket(spec)
    except OSError as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    target = ipaddress.ip_address(spec.address)
    identifier = os.getpid() & 0xFFFF
    sequence = next(_sequence) & 0xFFFF

    def our_reply(packet: bytes, source: tuple) -> Optional[bool]:
        from_target = ipaddress.ip_address(source[0].split("%")[0]) == target
        if from_target and is_reply(packet, sock.family, raw, identifier, sequence):
            return True
        return None

    request = echo_request(sock.family, identifier, sequence)
    try:
        await exchange(sock, request, (spec.address, 0), spec.connect_timeout, our_reply)
    except (OSError, asyncio.TimeoutError) as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    finally:
        sock.close()
    return CheckResult(True)


KIND = CheckerKind(
    name="PING_CHECK",
    model=PingCheck,
    probe=ping_probe,
    **connection_words("ICMP"),
)
