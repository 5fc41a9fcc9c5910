"""The probes behind TCP_CHECK, HTTP_GET, SSL_GET and MISC_CHECK.

A probe does one attempt and reports what it saw; retries, delays and up/down decisions
belong to `health`. Probes run on the agent's event loop (no thread per check) and never
raise: whatever a real server sends back, the answer is a `CheckResult`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Optional

from ..scripts import Identity, run_script, split_command

HEADER_LIMIT = 64 * 1024  # a status line plus headers larger than this is a failure
READ_CHUNK = 64 * 1024
DEFAULT_STATUS_RANGES = ((200, 299),)


@dataclass(frozen=True)
class UrlSpec:
    path: str = "/"
    digest: Optional[str] = None  # lower-case hex MD5 of the body, as genhash prints it
    status_ranges: tuple[tuple[int, int], ...] = DEFAULT_STATUS_RANGES
    virtualhost: Optional[str] = None  # None = the address checked


@dataclass(frozen=True)
class CheckSpec:
    """Everything that defines one checker: equal specs share one running check."""

    kind: str  # "TCP_CHECK", "HTTP_GET", "SSL_GET" or "MISC_CHECK"
    address: str
    port: int
    connect_timeout: float = 5.0
    retry: int = 1
    delay_before_retry: float = 1.0
    delay_loop: float = 60.0
    warmup: Optional[float] = None  # None = a random delay up to delay_loop
    alpha: bool = False  # start down until the first success
    bindto: Optional[str] = None
    bind_port: Optional[int] = None
    urls: tuple[UrlSpec, ...] = ()
    http_protocol: Optional[str] = None
    misc_path: str = ""
    misc_timeout: Optional[float] = None
    misc_dynamic: bool = False
    run_as: Optional[Identity] = None  # None: as the agent (a config loaded without host checks)

    @property
    def target(self) -> str:
        """keepalived's `[192.168.179.99]:80`."""
        return f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str = ""  # why it failed, for logs and `status`
    weight: Optional[int] = None  # MISC_CHECK with misc_dynamic: the weight the script asked for


async def probe(spec: CheckSpec) -> CheckResult:
    """One attempt of the checker described by `spec`."""
    try:
        if spec.kind == "TCP_CHECK":
            return await tcp_probe(spec)
        if spec.kind in ("HTTP_GET", "SSL_GET"):
            return await http_probe(spec)
        if spec.kind == "MISC_CHECK":
            return await misc_probe(spec)
        return CheckResult(False, f"unknown checker {spec.kind}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a probe must never take the agent down
        return CheckResult(False, f"{type(exc).__name__}: {exc}")


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _open_socket(spec: CheckSpec) -> socket.socket:
    sock = socket.socket(_family(spec.address), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        # Reset on close: thousands of checks a second would otherwise pile up TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if spec.bindto or spec.bind_port:
            any_address = "::" if sock.family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((spec.bindto or any_address, spec.bind_port or 0))
    except OSError:
        sock.close()
        raise
    return sock


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout after {timeout:g}s"
    if isinstance(exc, ssl.SSLError):  # its errno is the library's, not the system's
        return f"TLS: {exc.reason or exc}".lower()
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def tcp_probe(spec: CheckSpec) -> CheckResult:
    """TCP_CHECK: the three-way handshake completes within connect_timeout."""
    loop = asyncio.get_running_loop()
    try:
        sock = _open_socket(spec)
    except OSError as exc:
        return CheckResult(False, _describe(exc, spec.connect_timeout))
    try:
        await asyncio.wait_for(
            loop.sock_connect(sock, (spec.address, spec.port)), spec.connect_timeout
        )
    except (OSError, asyncio.TimeoutError) as exc:
        return CheckResult(False, _describe(exc, spec.connect_timeout))
    finally:
        sock.close()
    return CheckResult(True)


def build_request(spec: CheckSpec, url: UrlSpec) -> bytes:
    """The request keepalived sends (HTTP/1.0 unless http_protocol says otherwise)."""
    host = url.virtualhost
    if not host:
        host = f"[{spec.address}]" if ":" in spec.address else spec.address
    default_port = 443 if spec.kind == "SSL_GET" else 80
    if spec.port != default_port:
        host = f"{host}:{spec.port}"
    version = "1.1" if spec.http_protocol == "1.1" else "1.0"
    lines = [f"GET {url.path} HTTP/{version}", "User-Agent: KeepAliveClient", f"Host: {host}"]
    if spec.http_protocol in ("1.1", "1.0C"):
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head; ValueError if malformed."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _tls_context() -> ssl.SSLContext:
    # keepalived's SSL_GET checks that the server speaks TLS, not who it is.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _fetch(spec: CheckSpec, url: UrlSpec) -> tuple[int, Optional[str]]:
    """GET one url: the status code and, when a digest is wanted, the MD5 of the body."""
    sock = _open_socket(spec)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (spec.address, spec.port))
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(
        sock=sock,
        ssl=_tls_context() if spec.kind == "SSL_GET" else None,
        server_hostname="" if spec.kind == "SSL_GET" else None,
        limit=HEADER_LIMIT,
    )
    try:
        writer.write(build_request(spec, url))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = parse_head(head[:-4])
        if url.digest is None:
            return status, None
        remaining = int(headers["content-length"]) if "content-length" in headers else None
        md5 = hashlib.md5()
        while remaining is None or remaining > 0:
            size = READ_CHUNK if remaining is None else min(remaining, READ_CHUNK)
            chunk = await reader.read(size)
            if not chunk:
                break
            md5.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
        return status, md5.hexdigest()
    finally:
        writer.transport.abort()


async def http_probe(spec: CheckSpec) -> CheckResult:
    """HTTP_GET / SSL_GET: every url answers with an expected status (and digest).

    Each url must complete within connect_timeout as a whole, so a server trickling a
    byte at a time cannot keep a check alive forever.
    """
    for number, url in enumerate(spec.urls or (UrlSpec(),), start=1):
        try:
            status, digest = await asyncio.wait_for(_fetch(spec, url), spec.connect_timeout)
        except asyncio.IncompleteReadError:
            return CheckResult(False, f"url({number}) {url.path}: connection closed early")
        except asyncio.LimitOverrunError:
            return CheckResult(False, f"url({number}) {url.path}: response head too large")
        except (OSError, asyncio.TimeoutError, ValueError, ssl.SSLError) as exc:
            reason = _describe(exc, spec.connect_timeout)
            return CheckResult(False, f"url({number}) {url.path}: {reason}")
        if not any(low <= status <= high for low, high in url.status_ranges):
            return CheckResult(False, f"url({number}) {url.path}: status code {status}")
        if url.digest is not None and digest != url.digest.lower():
            return CheckResult(False, f"url({number}) {url.path}: MD5 digest {digest}")
    return CheckResult(True)


def dynamic_weight(exit_code: int) -> Optional[int]:
    """misc_dynamic: exit status 2-255 sets the weight to status - 2."""
    return exit_code - 2 if 2 <= exit_code <= 255 else None


async def misc_probe(spec: CheckSpec) -> CheckResult:
    """MISC_CHECK: run misc_path; exit 0 passes, 1 fails, 2-255 set a weight (misc_dynamic)."""
    timeout = spec.misc_timeout if spec.misc_timeout else spec.delay_loop
    try:
        argv = split_command(spec.misc_path)
    except ValueError as exc:
        return CheckResult(False, f"misc_path: {exc}")
    outcome = await run_script(argv, spec.run_as, timeout)
    if outcome.ok:
        return CheckResult(True)
    if spec.misc_dynamic and outcome.code is not None and dynamic_weight(outcome.code) is not None:
        return CheckResult(True, weight=dynamic_weight(outcome.code))
    return CheckResult(False, outcome.error)
