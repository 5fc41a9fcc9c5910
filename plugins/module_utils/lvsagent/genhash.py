"""`lvs-agent genhash`: the MD5 digest of a url's body, for HTTP_GET/SSL_GET `digest` lines.

The options are keepalived's genhash ones (-s, -p, -u, -S, -V, -P, -t, -v) and the digest is
what HTTP_GET compares, computed by the same request and code (`lvs.checkers.http.fetch`).
Without -v only the digest is printed, as keepalived's genhash does; a failure is reported on
stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time

from .cli import say
from .lvs.checkers import CheckSpec
from .lvs.checkers.base import describe
from .lvs.checkers.http import HttpOptions, UrlSpec, fetch, protocol_version


def resolve(server: str) -> str:
    """An address as given, or the first address a host name resolves to."""
    return socket.getaddrinfo(server, None, proto=socket.IPPROTO_TCP)[0][4][0]


def genhash(args: argparse.Namespace) -> int:
    try:
        address = resolve(args.server)
    except (OSError, UnicodeError) as error:
        say(f"Cannot resolve {args.server}: {error}", sys.stderr)
        return 1
    kind = "SSL_GET" if args.use_ssl else "HTTP_GET"
    url = UrlSpec(path=args.url, virtualhost=args.use_virtualhost)
    spec = CheckSpec(
        kind=kind,
        address=address,
        port=args.port or (443 if args.use_ssl else 80),
        connect_timeout=args.timeout,
        options=HttpOptions((url,), args.protocol and protocol_version(args.protocol)),
    )
    started = time.monotonic()
    try:
        status, headers, digest = asyncio.run(
            asyncio.wait_for(fetch(spec, url, with_digest=True), args.timeout)
        )
    except (OSError, EOFError, ValueError, asyncio.TimeoutError, asyncio.LimitOverrunError) as exc:
        say(f"Connection failed: {describe(exc, args.timeout)}", sys.stderr)
        return 1
    if args.verbose:
        say("-----------------------[ HTTP Header Ascii Buffer ]-----------------------")
        say(f"status {status}")
        for name, value in headers.items():
            say(f"{name}: {value}")
        say("-----------------------[ HTML hash final resulting ]-----------------------")
    say(digest)
    if args.verbose:
        elapsed = int((time.monotonic() - started) * 1e6)
        say(f"\nGlobal response time for [{args.url}] = {elapsed} usecs")
    return 0
