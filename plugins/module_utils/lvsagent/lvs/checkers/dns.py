"""DNS_CHECK: a query (type, name) over UDP is answered with RCODE 0 (NOERROR).

As keepalived does, any answer with our id, the response bit and no error passes, whatever
its records: the check asks "does the server answer", not "what does it answer".
"""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass
from typing import Optional

from ...config.errors import Invalid
from ...config.model import CheckSettings
from .base import (
    CheckerKind,
    CheckResult,
    CheckSpec,
    connected_datagram_socket,
    exchange,
)

QUERY_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
CLASS_IN = 1
RECURSION_DESIRED = 0x0100
RESPONSE = 0x8000
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount


@dataclass
class DnsCheck(CheckSettings):
    kind: str = "DNS_CHECK"
    type: str = "SOA"
    name: str = "."
    retry: int = 3
    delay_before_retry: Optional[float] = None  # None = delay_loop (set by `complete`)


@dataclass(frozen=True)
class DnsOptions:
    type: str = "SOA"
    name: str = "."


def encode_name(name: str) -> bytes:
    """The wire form of a domain name; ValueError when it cannot be one."""
    labels = name.rstrip(".").split(".") if name != "." else []
    wire = b""
    for label in labels:
        raw = label.encode("ascii")  # UnicodeEncodeError is a ValueError
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"label '{label}' must have 1 to 63 characters")
        wire += bytes([len(raw)]) + raw
    wire += b"\0"
    if len(wire) > 255:
        raise ValueError("longer than 255 bytes")
    return wire


def build_query(query_id: int, options: DnsOptions) -> bytes:
    header = HEADER.pack(query_id, RECURSION_DESIRED, 1, 0, 0, 0)
    question = encode_name(options.name) + struct.pack("!HH", QUERY_TYPES[options.type], CLASS_IN)
    return header + question


def answer_problem(message: bytes, query_id: int) -> Optional[str]:
    """What our answer says: "" for NOERROR, the problem for an error; None for a message
    that is not our answer (too short, another id, a query), to keep waiting."""
    if len(message) < HEADER.size:
        return None
    got_id, flags = HEADER.unpack_from(message)[:2]
    if got_id != query_id or not flags & RESPONSE:
        return None
    rcode = flags & 0x000F
    return f"error answer (rcode = {rcode})" if rcode else ""


def keywords(read) -> dict:
    def name(node, checker: DnsCheck) -> None:
        text = read.value(node)
        try:
            encode_name(text)
        except ValueError as exc:
            read.error(node, f"name: '{text}' is not a domain name: {exc}")
            raise Invalid from None
        checker.name = text

    return {
        "type": read.scalar("type", lambda node: read.choice(node, tuple(QUERY_TYPES))),
        "name": name,
    }


def retry_after_delay_loop(checker: DnsCheck, real, virtual) -> None:
    """keepalived's DNS_CHECK retries after delay_loop unless delay_before_retry says."""
    if checker.delay_before_retry is None:
        checker.delay_before_retry = checker.delay_loop


async def dns_probe(spec: CheckSpec) -> CheckResult:
    options: DnsOptions = spec.options or DnsOptions()
    query_id = int.from_bytes(os.urandom(2), "big")
    try:
        sock = connected_datagram_socket(spec)
    except OSError as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    try:
        problem = await exchange(
            sock,
            build_query(query_id, options),
            None,
            spec.connect_timeout,
            lambda datagram, _source: answer_problem(datagram, query_id),
        )
    except (OSError, asyncio.TimeoutError) as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    finally:
        sock.close()
    return CheckResult.failed("bad_reply", problem) if problem else CheckResult(True)


KIND = CheckerKind(
    name="DNS_CHECK",
    model=DnsCheck,
    probe=dns_probe,
    keywords=keywords,
    complete=retry_after_delay_loop,
    options=lambda checker: DnsOptions(checker.type, checker.name),
    succeeded=lambda spec: f"DNS_CHECK ({spec.target}) succeeded.",
    failed=lambda spec, error: f"DNS_CHECK ({spec.target}) {error}.",
)
