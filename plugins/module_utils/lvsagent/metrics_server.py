"""/metrics over HTTP on the agent's own event loop (global_defs' metrics_listen).

Minimal HTTP/1.1: one GET (or HEAD) of /metrics per connection, answered and closed. Whatever
a client sends, it costs the loop little and never stalls it: the request head is at most
MAX_REQUEST bytes and must arrive within REQUEST_TIMEOUT (a slowloris is cut off), a client
that does not read its reply is dropped after REPLY_TIMEOUT, and beyond MAX_CONNECTIONS open
connections a new one is closed at once. No thread per scrape: the text is written on the
loop a slice of samples at a time (metrics.SLICE), with the loop's other work in between, and
gzipped slice by slice when the client accepts it (Prometheus does: a scrape of a large table
shrinks some thirtyfold).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable
from typing import Callable, Optional

from . import metrics
from .config.model import MetricsListen

log = logging.getLogger("lvsagent.metrics")

MAX_REQUEST = 8192  # bytes of request line and headers
REQUEST_TIMEOUT = 5.0  # seconds for the whole request head
REPLY_TIMEOUT = 10.0  # seconds for the client to take the reply
MAX_CONNECTIONS = 16
PATH = "/metrics"
GZIP_LEVEL = 1  # the repetitive text compresses well even at the cheapest level


def _response(
    status: str, body: bytes, content_type: str, head_only: bool = False, gzipped: bool = False
) -> bytes:
    encoding = "Content-Encoding: gzip\r\n" if gzipped else ""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{encoding}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + (b"" if head_only else body)


def accepts_gzip(head: bytes) -> bool:
    """Whether the request's Accept-Encoding names gzip with a quality above 0."""
    for line in head.split(b"\r\n")[1:]:
        name, _colon, value = line.partition(b":")
        if name.strip().lower() != b"accept-encoding":
            continue
        for coding in value.split(b","):
            word, _semicolon, parameter = coding.partition(b";")
            key, _equals, quality = parameter.partition(b"=")
            if word.strip().lower() == b"gzip":
                if key.strip().lower() != b"q":
                    return True
                with contextlib.suppress(ValueError):
                    return float(quality) > 0
    return False


def _error(status: str) -> bytes:
    return _response(status, f"{status}\n".encode(), "text/plain; charset=utf-8")


class MetricsServer:
    """Serves `metrics.render(await snapshot())`; `listen()` (re)binds or stops it."""

    def __init__(self, snapshot: Callable[[], Awaitable[dict]]) -> None:
        self.snapshot = snapshot
        self.listening: Optional[MetricsListen] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._connections = 0

    async def listen(self, where: Optional[MetricsListen]) -> None:
        """Serve on `where` (None: stop). The new socket is bound before the old one closes,
        so a failing bind (logged, OSError raised) leaves the running listener as it was."""
        if where == self.listening:
            return
        server = None
        if where is not None:
            server = await asyncio.start_server(
                self._serve, where.address, where.port, limit=MAX_REQUEST, reuse_address=True
            )
            log.info("Serving metrics on http://%s%s", where, PATH)
        await self.close()
        self._server, self.listening = server, where

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._server, self.listening = None, None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._connections += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            except asyncio.LimitOverrunError:
                reply = _error("431 Request Header Fields Too Large")
            except asyncio.TimeoutError:
                reply = _error("408 Request Timeout")
            else:
                reply = await self._answer(head)
            writer.write(reply)
            await asyncio.wait_for(writer.drain(), REPLY_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            writer.transport.abort()  # gone, cut short, or not reading: nothing more to say
        except Exception:  # a bug here must not take the listener down
            log.exception("metrics request failed")
            writer.transport.abort()
        finally:
            self._connections -= 1
            with contextlib.suppress(OSError):
                writer.close()

    async def _answer(self, head: bytes) -> bytes:
        words = head.split(b"\r\n", 1)[0].split(b" ")
        if len(words) != 3 or not words[2].startswith(b"HTTP/1."):
            return _error("400 Bad Request")
        method, target = words[0], words[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _error("405 Method Not Allowed")
        if target != PATH.encode():
            return _error("404 Not Found")
        gzipped = accepts_gzip(head)
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzipped else None
        pieces = []
        for piece in metrics.exposition(metrics.families(await self.snapshot())):
            data = piece.encode()
            pieces.append(compressor.compress(data) if compressor else data)
            await asyncio.sleep(0)  # VRRP timers and packets go first
        if compressor:
            pieces.append(compressor.flush())
        body = b"".join(pieces)
        return _response("200 OK", body, metrics.CONTENT_TYPE, method == b"HEAD", gzipped)
