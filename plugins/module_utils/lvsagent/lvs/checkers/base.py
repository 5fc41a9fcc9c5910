"""What every checker kind shares: the spec of one check, its result, and the kind's entry.

A kind is one module of this package that fills a `CheckerKind`: its config model, the
keywords its block accepts, how a parsed checker becomes a `CheckSpec`, the async probe,
and its log words. The registry in `__init__` maps keepalived's block name to the kind.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import ssl
import struct
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ...config.model import CheckSettings, VirtualServer

# A spec made without the parser (genhash, benchmarks, tests) takes the parser's defaults.
_PARSED = CheckSettings()


@dataclass(frozen=True)
class CheckSpec:
    """Everything that defines one checker: equal specs share one running check."""

    kind: str  # a name in the registry: "TCP_CHECK", "HTTP_GET", ...
    address: str
    port: int
    connect_timeout: float = _PARSED.connect_timeout
    retry: int = _PARSED.retry
    delay_before_retry: float = _PARSED.delay_before_retry
    delay_loop: float = VirtualServer.delay_loop
    warmup: Optional[float] = _PARSED.warmup  # None = a random delay up to delay_loop
    alpha: bool = False  # start down until the first success
    bindto: Optional[str] = None
    bind_port: Optional[int] = None
    options: Any = None  # the kind's own frozen settings (HttpOptions, UdpOptions, ...)

    @property
    def target(self) -> str:
        """keepalived's `[192.168.179.99]:80`."""
        return f"[{self.address}]:{self.port}"


# Why a probe failed, in a few words a metric can carry as a label: every failed CheckResult
# names one of these (its `reason`).
FAILURE_REASONS = (
    "timeout",
    "refused",
    "reset",
    "unreachable",
    "tls",
    "http_status",
    "http_digest",
    "exit_status",
    "bad_reply",
    "file_value",
    "other",
)
ERRNO_REASONS = {
    errno.ETIMEDOUT: "timeout",
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str = ""  # why it failed, for logs and `status`
    weight: Optional[int] = None  # MISC_CHECK with misc_dynamic: the weight the script asked for
    offset: int = 0  # FILE_CHECK: what the file's value adds to the real server's weight
    reason: str = ""  # a FAILURE_REASONS name when not ok

    @classmethod
    def failed(cls, reason: str, error: str) -> CheckResult:
        return cls(False, error, reason=reason)

    @classmethod
    def raised(
        cls, exc: BaseException, timeout: float, context: str = "", suffix: str = ""
    ) -> CheckResult:
        """A probe that raised: `describe`'s words (between `context` and `suffix`), the
        reason by its type."""
        return cls(False, context + describe(exc, timeout) + suffix, reason=reason_of(exc))


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLError):  # an OSError, its errno the library's
        return "tls"
    if isinstance(exc, OSError):
        return ERRNO_REASONS.get(exc.errno, "other")
    return "other"


RECEIVE_SIZE = 65536  # a datagram, whole

Probe = Callable[[CheckSpec], Awaitable[CheckResult]]


async def nothing_to_prepare(spec: CheckSpec) -> None:
    return None


DROPPED = "dropped"  # a `problems` severity: warned about and left out of the configuration


@dataclass(frozen=True)
class CheckerKind:
    """One checker kind, as the parser, the engine and the health loop see it.

    `keywords(read)` returns the block's own `keyword -> handler(node, checker)` table, built
    on the parser's value readers `read` (the common options are the parser's, and
    `connection` adds connect_ip, connect_port, bindto, bind_port); `blocks(read)` returns
    tables of nested blocks (HTTP's url); without `common` the block takes none of the common
    options (delay_loop, retry, ...: FILE_CHECK). `problems(checker)` lists what is wrong with the
    block as a whole, as (severity, message) with severity "error", "warning" or DROPPED (a
    warning, and the checker is left out, as keepalived leaves it out).
    `complete(checker, real_server, virtual_server)` fills what the kind inherits or derives,
    once the parser has resolved the common options (HTTP's virtualhost, DNS's
    delay_before_retry); after it the model holds final values, and `options(checker)`
    only translates them into `CheckSpec.options`. `prepare(spec)` runs once before a
    check's first probe (FILE_CHECK's init_file).
    """

    name: str
    model: type
    probe: Probe
    keywords: Callable[[Any], dict] = lambda read: {}
    blocks: Callable[[Any], dict] = lambda read: {}
    connection: bool = True
    common: bool = True
    problems: Callable[[Any], list[tuple[str, str]]] = lambda checker: []
    complete: Callable[[Any, Any, Any], None] = lambda checker, real, virtual: None
    options: Callable[[Any], Any] = lambda checker: None
    prepare: Callable[[CheckSpec], Awaitable[None]] = nothing_to_prepare
    succeeded: Callable[[CheckSpec], str] = lambda spec: f"{spec.kind} to {spec.target} success."
    failed: Callable[[CheckSpec, str], str] = lambda spec, error: (
        f"{spec.kind} to {spec.target} failed: {error}."
    )


def connection_words(protocol: str, with_error: bool = True) -> dict:
    """keepalived's `<PROTOCOL> connection to [addr]:port success.` / `... failed.` log words
    (with the reason appended, unless keepalived's exact TCP line is wanted)."""

    def failed(spec: CheckSpec, error: str) -> str:
        reason = f": {error}" if with_error else ""
        return f"{protocol} connection to {spec.target} failed{reason}."

    return {
        "succeeded": lambda spec: f"{protocol} connection to {spec.target} success.",
        "failed": failed,
    }


def family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def open_socket(spec: CheckSpec, kind: int, protocol: int = 0) -> socket.socket:
    """A non-blocking socket towards spec.address, bound as bindto/bind_port say."""
    sock = socket.socket(family(spec.address), kind, protocol)
    try:
        sock.setblocking(False)
        if kind == socket.SOCK_STREAM:
            # Reset on close: thousands of checks a second would otherwise pile up TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if spec.bindto or spec.bind_port:
            any_address = "::" if sock.family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((spec.bindto or any_address, spec.bind_port or 0))
    except OSError:
        sock.close()
        raise
    return sock


def connected_datagram_socket(spec: CheckSpec) -> socket.socket:
    """A UDP socket connected to the target: the kernel reports the ICMP errors for its
    datagrams (port or host unreachable) on it, as keepalived's UDP checks rely on."""
    sock = open_socket(spec, socket.SOCK_DGRAM)
    try:
        sock.connect((spec.address, spec.port))
    except OSError:
        sock.close()
        raise
    return sock


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout after {timeout:g}s"
    if isinstance(exc, ssl.SSLError):  # its errno is the library's, not the system's
        return f"TLS: {getattr(exc, 'reason', None) or exc}".lower()
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def readable(sock: socket.socket, timeout: float) -> None:
    """Waits until `sock` has data or an error to read (asyncio.TimeoutError after timeout).

    Raw and ICMP sockets cannot go through the loop's datagram transports, and
    loop.sock_recvfrom needs Python 3.11, so this waits on the loop's reader directly.
    """
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await asyncio.wait_for(ready, timeout)
    finally:
        loop.remove_reader(sock.fileno())


async def exchange(
    sock: socket.socket,
    request: bytes,
    destination: Optional[tuple],
    timeout: float,
    accept: Callable[[bytes, Any], Any],
) -> Any:
    """Sends one datagram (to `destination`, or where `sock` is connected) and returns the
    first `accept(datagram, source)` that is not None: datagrams that are not the answer
    are skipped. asyncio.TimeoutError after `timeout`; an ICMP error reported on a
    connected socket raises its OSError (ECONNREFUSED for a closed port)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if destination is None:
        sock.send(request)
    else:
        sock.sendto(request, destination)
    while True:
        await readable(sock, max(0.0, deadline - loop.time()))
        try:
            datagram, source = sock.recvfrom(RECEIVE_SIZE)
        except BlockingIOError:
            continue
        answer = accept(datagram, source)
        if answer is not None:
            return answer
