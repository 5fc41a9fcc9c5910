"""UDP_CHECK: a datagram sent to the service draws no ICMP error (or the expected reply).

Without require_reply the check passes unless an ICMP error (port or host unreachable)
comes back within connect_timeout; with it, a reply must come, its length within
min_reply_length..max_reply_length, and its first bytes must match the require_reply
HEX_STR (an X nibble matches anything).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Optional

from ...config.errors import Invalid
from ...config.model import CheckSettings
from .base import (
    CheckerKind,
    CheckResult,
    CheckSpec,
    connected_datagram_socket,
    connection_words,
    exchange,
)

DEFAULT_MAX_REPLY_LENGTH = 255
RANDOM_PAYLOAD_SIZE = 16  # sent when no payload is configured, as keepalived sends random bytes


@dataclass
class UdpCheck(CheckSettings):
    kind: str = "UDP_CHECK"
    payload: Optional[bytes] = None  # None = random bytes
    require_reply: bool = False
    reply_data: bytes = b""  # compared up to the shorter of it and the reply
    reply_mask: bytes = b""  # bits set here are not compared (X in the HEX_STR)
    min_reply_length: int = 0
    max_reply_length: int = DEFAULT_MAX_REPLY_LENGTH


@dataclass(frozen=True)
class UdpOptions:
    payload: Optional[bytes] = None
    require_reply: bool = False
    reply_data: bytes = b""
    reply_mask: bytes = b""
    min_reply_length: int = 0
    max_reply_length: int = DEFAULT_MAX_REPLY_LENGTH


def read_hex(words: list[str], wildcards: bool = False) -> tuple[bytes, bytes]:
    """keepalived's free-form HEX_STR: each word is read two digits at a time, a last odd
    digit is a byte of its own (`Ab12f 3` is AB 12 0F 03). With wildcards an X nibble
    matches anything: (data, mask) where the mask has the ignored bits set."""
    data, mask = bytearray(), bytearray()
    for word in words:
        for start in range(0, len(word), 2):
            pair = word[start : start + 2].rjust(2, "0")
            byte = ignored = 0
            for digit in pair:
                byte, ignored = byte << 4, ignored << 4
                if wildcards and digit in "xX":
                    ignored |= 0xF
                elif digit in "0123456789abcdefABCDEF":
                    byte |= int(digit, 16)
                else:
                    raise ValueError(f"'{digit}' is not a hex digit")
            data.append(byte)
            mask.append(ignored)
    return bytes(data), bytes(mask)


def keywords(read) -> dict:
    def payload(node, checker: UdpCheck) -> None:
        checker.payload = _hex(read, node, wildcards=False)[0]

    def require_reply(node, checker: UdpCheck) -> None:
        checker.require_reply = True
        if node.args:
            checker.reply_data, checker.reply_mask = _hex(read, node, wildcards=True)
            if not any(checker.reply_mask):
                checker.reply_mask = b""

    return {
        "payload": payload,
        "require_reply": require_reply,
        "min_reply_length": read.ranged("min_reply_length", 0, 65535),
        "max_reply_length": read.ranged("max_reply_length", 0, 65535),
    }


def _hex(read, node, wildcards: bool) -> tuple[bytes, bytes]:
    if node.is_block or not node.args:
        read.value(node)  # reports the block or the missing value, raises Invalid
    try:
        data, mask = read_hex(node.args, wildcards)
    except ValueError as exc:
        read.error(node, f"{node.keyword}: invalid hex string: {exc}")
        raise Invalid from None
    if not data:
        read.error(node, f"{node.keyword}: invalid hex string")
        raise Invalid
    return data, mask


def _problems(checker: UdpCheck) -> list[tuple[str, str]]:
    if checker.min_reply_length > checker.max_reply_length:
        return [
            (
                "error",
                f"UDP_CHECK min_reply_length {checker.min_reply_length} > max_reply_length "
                f"{checker.max_reply_length} - will always fail",
            )
        ]
    return []


def udp_options(checker: UdpCheck) -> UdpOptions:
    return UdpOptions(
        checker.payload,
        checker.require_reply,
        checker.reply_data,
        checker.reply_mask,
        checker.min_reply_length,
        checker.max_reply_length,
    )


def reply_problem(reply: bytes, options: UdpOptions) -> Optional[str]:
    """Why `reply` is not the expected one, or None when it is."""
    if not options.min_reply_length <= len(reply) <= options.max_reply_length:
        return (
            f"reply length {len(reply)} not in "
            f"{options.min_reply_length}-{options.max_reply_length}"
        )
    mask = options.reply_mask or bytes(len(options.reply_data))
    for got, want, ignored in zip(reply, options.reply_data, mask):
        if (got ^ want) & ~ignored & 0xFF:
            return "reply data mismatch"
    return None


async def udp_probe(spec: CheckSpec) -> CheckResult:
    options: UdpOptions = spec.options or UdpOptions()
    try:
        sock = connected_datagram_socket(spec)
    except OSError as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    try:
        payload = options.payload or os.urandom(RANDOM_PAYLOAD_SIZE)
        reply = await exchange(
            sock, payload, None, spec.connect_timeout, lambda datagram, _source: datagram
        )
    except asyncio.TimeoutError as exc:
        if options.require_reply:
            return CheckResult.raised(exc, spec.connect_timeout, "no reply: ")
        return CheckResult(True)  # silence: nothing said the port is closed
    except OSError as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    finally:
        sock.close()
    if options.require_reply:
        problem = reply_problem(reply, options)
        if problem:
            return CheckResult.failed("bad_reply", problem)
    return CheckResult(True)


KIND = CheckerKind(
    name="UDP_CHECK",
    model=UdpCheck,
    probe=udp_probe,
    keywords=keywords,
    problems=_problems,
    options=udp_options,
    **connection_words("UDP"),
)
