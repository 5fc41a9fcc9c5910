"""HTTP_GET and SSL_GET: every url answers with an expected status code (and MD5 digest)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Optional

from ...config.errors import Invalid
from ...config.model import CheckSettings, Location
from .base import DROPPED, CheckerKind, CheckResult, CheckSpec, open_socket

HEADER_LIMIT = 64 * 1024  # a status line plus headers larger than this is a failure
READ_CHUNK = 64 * 1024
DEFAULT_STATUS_RANGES = ((200, 299),)
HTTP_PROTOCOLS = ("1.0", "1.0C", "1.1")


@dataclass
class Url:
    path: str = "/"
    digest: Optional[str] = None
    status_codes: list[tuple[int, int]] = field(default_factory=list)  # empty = 200-299
    virtualhost: Optional[str] = None
    location: Location = field(default_factory=Location)


@dataclass
class HttpCheck(CheckSettings):
    kind: str = "HTTP_GET"  # or "SSL_GET"
    urls: list[Url] = field(default_factory=list)
    http_protocol: Optional[str] = None
    virtualhost: Optional[str] = None  # None = the real server's / virtual server's
    delay_before_retry: float = 3.0


@dataclass(frozen=True)
class UrlSpec:
    path: str = "/"
    digest: Optional[str] = None  # lower-case hex MD5 of the body, as genhash prints it
    status_ranges: tuple[tuple[int, int], ...] = DEFAULT_STATUS_RANGES
    virtualhost: Optional[str] = None  # None = the address checked


@dataclass(frozen=True)
class HttpOptions:
    urls: tuple[UrlSpec, ...] = ()
    http_protocol: Optional[str] = None


# ---- configuration ----------------------------------------------------------------------


def keywords(read) -> dict:
    return {
        "url": lambda node, checker: _url(read, node, checker),
        "http_protocol": read.lenient(
            "http_protocol", protocol_version, "Invalid http_protocol version {value}"
        ),
        "virtualhost": read.scalar("virtualhost", read.text),
    }


def blocks(read) -> dict:
    return {
        "url": {
            "path": read.scalar("path", read.text),
            "digest": read.scalar("digest", lambda node: _digest(read, node)),
            "status_code": lambda node, url: _status_code(read, node, url),
            "virtualhost": read.scalar("virtualhost", read.text),
        }
    }


def protocol_version(raw: str) -> str:
    """keepalived compares the version exactly, except that it also takes `1.0c`."""
    protocol = "1.0C" if raw == "1.0c" else raw
    if protocol not in HTTP_PROTOCOLS:
        raise ValueError(raw)
    return protocol


def _url(read, node, checker: HttpCheck) -> None:
    read.require_block(node)
    url = Url(location=Location(node.file, node.line))
    read.walk(node, "url", url)
    if not url.digest and not url.status_codes:
        url.status_codes = [(200, 299)]
    checker.urls.append(url)


def _digest(read, node) -> str:
    raw = read.value(node)
    if len(raw) != 32 or any(c not in "0123456789abcdefABCDEF" for c in raw):
        read.error(node, f"digest: '{raw}' is not an MD5 digest (32 hex digits)")
        raise Invalid
    return raw.lower()


def _status_code(read, node, url: Url) -> None:
    if not node.args or node.is_block:
        read.value(node)
    for word in node.args:
        low_text, _dash, high_text = word.partition("-")
        low = _status(low_text, 100)
        high = _status(high_text, low) if high_text and low is not None else low
        if low is None or high is None:
            read.warning(node, f"Invalid HTTP_GET status code '{word}'")  # keepalived skips it
            continue
        url.status_codes.append((low, high))


def _status(text: str, low: int) -> Optional[int]:
    return int(text) if text.isascii() and text.isdigit() and low <= int(text) <= 599 else None


def _problems(checker: HttpCheck) -> list[tuple[str, str]]:
    if checker.urls:
        return []
    return [(DROPPED, "HTTP/SSL_GET checker has no urls specified - ignoring")]


def _first(*values):
    return next((v for v in values if v is not None), None)


def inherit_virtualhost(checker: HttpCheck, real, virtual) -> None:
    """virtualhost: the checker's, else the real server's, else the virtual server's (a
    url's own virtualhost still comes first)."""
    checker.virtualhost = _first(checker.virtualhost, real.virtualhost, virtual.virtualhost)


def http_options(checker: HttpCheck) -> HttpOptions:
    urls = tuple(
        UrlSpec(
            path=url.path,
            digest=url.digest.lower() if url.digest else None,
            status_ranges=tuple(tuple(r) for r in url.status_codes) or DEFAULT_STATUS_RANGES,
            virtualhost=_first(url.virtualhost, checker.virtualhost),
        )
        for url in checker.urls
    )
    return HttpOptions(urls, checker.http_protocol)


# ---- probe ------------------------------------------------------------------------------


def build_request(spec: CheckSpec, url: UrlSpec) -> bytes:
    """The request keepalived sends (HTTP/1.0 unless http_protocol says otherwise)."""
    protocol = spec.options.http_protocol if spec.options else None
    host = url.virtualhost
    if not host:
        host = f"[{spec.address}]" if ":" in spec.address else spec.address
    default_port = 443 if spec.kind == "SSL_GET" else 80
    if spec.port != default_port:
        host = f"{host}:{spec.port}"
    version = "1.1" if protocol == "1.1" else "1.0"
    lines = [f"GET {url.path} HTTP/{version}", "User-Agent: KeepAliveClient", f"Host: {host}"]
    if protocol in ("1.1", "1.0C"):
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


async def fetch(
    spec: CheckSpec, url: UrlSpec, with_digest: bool
) -> tuple[int, dict[str, str], Optional[str]]:
    """GET one url: the status code, the headers and, `with_digest`, the MD5 of the body as
    HTTP_GET compares it and keepalived's genhash prints it (lower-case hex)."""
    sock = open_socket(spec, socket.SOCK_STREAM)
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
        if not with_digest:
            return status, headers, None
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
        return status, headers, md5.hexdigest()
    finally:
        writer.transport.abort()


async def http_probe(spec: CheckSpec) -> CheckResult:
    """Each url must complete within connect_timeout as a whole, so a server trickling a
    byte at a time cannot keep a check alive forever."""
    urls = spec.options.urls if spec.options else ()
    for number, url in enumerate(urls or (UrlSpec(),), start=1):
        where = f"url({number}) {url.path}: "
        try:
            status, _headers, digest = await asyncio.wait_for(
                fetch(spec, url, url.digest is not None), spec.connect_timeout
            )
        except asyncio.IncompleteReadError:
            return CheckResult.failed("bad_reply", where + "connection closed early")
        except asyncio.LimitOverrunError:
            return CheckResult.failed("bad_reply", where + "response head too large")
        except ValueError as exc:  # a malformed response head
            return CheckResult.failed("bad_reply", f"{where}{exc}")
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            return CheckResult.raised(exc, spec.connect_timeout, where)
        if not any(low <= status <= high for low, high in url.status_ranges):
            return CheckResult.failed("http_status", f"{where}status code {status}")
        if url.digest is not None and digest != url.digest.lower():
            return CheckResult.failed("http_digest", f"{where}MD5 digest {digest}")
    return CheckResult(True)


KINDS = tuple(
    CheckerKind(
        name=name,
        model=HttpCheck,
        probe=http_probe,
        keywords=keywords,
        blocks=blocks,
        problems=_problems,
        complete=inherit_virtualhost,
        options=http_options,
    )
    for name in ("HTTP_GET", "SSL_GET")
)
