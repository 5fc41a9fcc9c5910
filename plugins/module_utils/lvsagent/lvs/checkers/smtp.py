"""SMTP_CHECK: the server greets with 220, answers HELO with 250 and QUIT with a line.

Each `host { }` block (deprecated in keepalived, still accepted) is one more server to
converse with, its unset connection options taken from the checker; all must pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from dataclasses import dataclass, field
from typing import Optional

from ...config.model import CheckSettings, Location
from .base import CheckerKind, CheckResult, CheckSpec, open_socket

DEFAULT_HELO_NAME = "smtpchecker.keepalived.org"
LINE_LIMIT = 1024  # RFC 5321 allows 512 octets a reply line; more is not an SMTP server


@dataclass
class SmtpHost:
    connect_ip: Optional[str] = None  # None = the checker's
    connect_port: Optional[int] = None
    bindto: Optional[str] = None
    bind_port: Optional[int] = None
    location: Location = field(default_factory=Location)


@dataclass
class SmtpCheck(CheckSettings):
    kind: str = "SMTP_CHECK"
    helo_name: str = DEFAULT_HELO_NAME
    hosts: list[SmtpHost] = field(default_factory=list)  # empty = the checker's own target


@dataclass(frozen=True)
class SmtpTarget:
    address: Optional[str] = None  # None = the spec's
    port: Optional[int] = None
    bindto: Optional[str] = None
    bind_port: Optional[int] = None


@dataclass(frozen=True)
class SmtpOptions:
    helo_name: str = DEFAULT_HELO_NAME
    hosts: tuple[SmtpTarget, ...] = ()


def keywords(read) -> dict:
    def host(node, checker: SmtpCheck) -> None:
        read.require_block(node)
        entry = SmtpHost(location=Location(node.file, node.line))
        read.walk(node, "host", entry)
        read.warning(node, "SMTP_CHECK host block is deprecated, define more checkers instead")
        checker.hosts.append(entry)

    return {"helo_name": read.scalar("helo_name", read.text), "host": host}


def smtp_options(checker: SmtpCheck) -> SmtpOptions:
    hosts = tuple(
        SmtpTarget(
            host.connect_ip or checker.connect_ip,
            host.connect_port if host.connect_port is not None else checker.connect_port,
            host.bindto or checker.bindto,
            host.bind_port if host.bind_port is not None else checker.bind_port,
        )
        for host in checker.hosts
    )
    return SmtpOptions(checker.helo_name, hosts)


async def read_reply(reader: asyncio.StreamReader) -> Optional[int]:
    """The code of one (possibly multi-line) reply; None for a line that has none."""
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n") or not line[:3].isdigit():
            return None
        if line[3:4] != b"-":  # `250-...` lines continue the reply
            return int(line[:3])


async def converse(spec: CheckSpec, helo_name: str) -> str:
    """One SMTP conversation; "" when it went as it should, else what went wrong."""
    sock = open_socket(spec, socket.SOCK_STREAM)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (spec.address, spec.port))
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
    try:
        if await read_reply(reader) != 220:
            return "Bad greeting banner"
        writer.write(f"HELO {helo_name}\r\n".encode("latin-1"))
        if await read_reply(reader) != 250:
            return "Bad HELO response"
        writer.write(b"QUIT\r\n")
        return "" if (await reader.readline()).endswith(b"\n") else "Read failure"
    finally:
        writer.transport.abort()


async def smtp_probe(spec: CheckSpec) -> CheckResult:
    options: SmtpOptions = spec.options or SmtpOptions()
    for target in options.hosts or (SmtpTarget(),):
        host = dataclasses.replace(
            spec,
            address=target.address or spec.address,
            port=target.port if target.port is not None else spec.port,
            bindto=target.bindto or spec.bindto,
            bind_port=target.bind_port if target.bind_port is not None else spec.bind_port,
        )
        try:
            problem = await asyncio.wait_for(
                converse(host, options.helo_name), spec.connect_timeout
            )
        except (asyncio.LimitOverrunError, ValueError):
            problem = "Reply line too long"
        except (OSError, asyncio.TimeoutError) as exc:
            return CheckResult.raised(
                exc, spec.connect_timeout, suffix=f" from server {host.target}"
            )
        if problem:
            return CheckResult.failed("bad_reply", f"{problem} from server {host.target}")
    return CheckResult(True)


KIND = CheckerKind(
    name="SMTP_CHECK",
    model=SmtpCheck,
    probe=smtp_probe,
    keywords=keywords,
    blocks=lambda read: {"host": read.connection_table()},
    options=smtp_options,
    succeeded=lambda spec: f"Remote SMTP server {spec.target} succeed on service.",
    failed=lambda spec, error: f"SMTP_CHECK {error}.",
)
