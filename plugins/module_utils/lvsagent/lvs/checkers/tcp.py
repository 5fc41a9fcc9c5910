"""TCP_CHECK: the three-way handshake completes within connect_timeout."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from ...config.model import CheckSettings
from .base import CheckerKind, CheckResult, CheckSpec, connection_words, open_socket


@dataclass
class TcpCheck(CheckSettings):
    kind: str = "TCP_CHECK"


async def tcp_probe(spec: CheckSpec) -> CheckResult:
    loop = asyncio.get_running_loop()
    try:
        sock = open_socket(spec, socket.SOCK_STREAM)
    except OSError as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    try:
        await asyncio.wait_for(
            loop.sock_connect(sock, (spec.address, spec.port)), spec.connect_timeout
        )
    except (OSError, asyncio.TimeoutError) as exc:
        return CheckResult.raised(exc, spec.connect_timeout)
    finally:
        sock.close()
    return CheckResult(True)


KIND = CheckerKind(
    name="TCP_CHECK",
    model=TcpCheck,
    probe=tcp_probe,
    **connection_words("TCP", with_error=False),
)
