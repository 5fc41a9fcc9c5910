"""The pieces of the HTTP and MISC checkers that need no server."""

from __future__ import annotations

import pytest

from lvsagent.lvs.checkers import CheckSpec
from lvsagent.lvs.checkers.http import HttpOptions, UrlSpec, build_request, parse_head
from lvsagent.lvs.checkers.misc import dynamic_weight


def http(port=80, kind="HTTP_GET", address="10.0.0.2", protocol=None):
    options = HttpOptions(http_protocol=protocol)
    return CheckSpec(kind=kind, address=address, port=port, options=options)


def test_request_is_keepalived_http_1_0_with_host_port_only_when_not_default():
    assert build_request(http(), UrlSpec("/index.html")) == (
        b"GET /index.html HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.2\r\n\r\n"
    )
    assert b"Host: 10.0.0.2:8080\r\n" in build_request(http(8080), UrlSpec())
    assert b"Host: 10.0.0.2\r\n" in build_request(http(443, "SSL_GET"), UrlSpec())
    ipv6 = build_request(http(81, address="2001:db8::2"), UrlSpec())
    assert b"Host: [2001:db8::2]:81\r\n" in ipv6


def test_virtualhost_and_http_1_1_close_the_connection():
    request = build_request(http(protocol="1.1"), UrlSpec("/", virtualhost="www.example.org"))
    assert request.startswith(b"GET / HTTP/1.1\r\n")
    assert b"Host: www.example.org\r\n" in request and b"Connection: close\r\n" in request


def test_parse_head():
    status, headers = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12")
    assert status == 503 and headers == {"content-length": "12"}
    for bad in (b"", b"SSH-2.0-OpenSSH", b"HTTP/1.1 abc", "HTTP/1.1 \xff".encode("latin-1")):
        with pytest.raises(ValueError):
            parse_head(bad)


def test_misc_dynamic_weight_is_exit_status_minus_two():
    assert [dynamic_weight(c) for c in (0, 1, 2, 12, 255, 256)] == [None, None, 0, 10, 253, None]
