"""The checkers against real servers on loopback: nginx (plain and TLS), a closed port, a
listener that never completes a handshake, servers that stall, trickle bytes or answer 500,
and real MISC_CHECK scripts. keepalived's own `genhash` is the reference for digests."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lvsagent.lvs.checkers import CheckSpec, probe
from lvsagent.lvs.checkers.http import HttpOptions, UrlSpec
from lvsagent.lvs.checkers.misc import MiscOptions

pytestmark = pytest.mark.netns

LOOPBACK = "127.0.0.1"
MODULE_UTILS = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
INDEX = "<html><body>lvs.ha real server</body></html>\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def check(kind="TCP_CHECK", port=80, **fields):
    return asyncio.run(probe(CheckSpec(kind=kind, address=LOOPBACK, port=port, **fields)))


def timed_check(**fields):
    start = time.monotonic()
    result = check(**fields)
    return result, time.monotonic() - start


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    """nginx-light with its own prefix: a plain port with a virtual host, and a TLS port."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (tools/setup.sh installs nginx-light)")
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "www").mkdir()
    (prefix / "www" / "index.html").write_text(INDEX)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=rs.test", "-keyout", prefix / "key.pem", "-out", prefix / "cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    plain, tls = free_port(), free_port()
    temp = " ".join(
        f"{name}_temp_path {prefix}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"""
daemon off; master_process off; pid {prefix}/nginx.pid; error_log {prefix}/error.log;
events {{ worker_connections 128; }}
http {{
  access_log off; {temp}
  server {{
    listen {LOOPBACK}:{plain} default_server; root {prefix}/www;
    location = /error {{ return 500; }}
    location = /vhost {{ return 404; }}
  }}
  server {{
    listen {LOOPBACK}:{plain}; server_name www.example.test;
    location = /vhost {{ return 200 "virtual host\\n"; }}
  }}
  server {{
    listen {LOOPBACK}:{tls} ssl; root {prefix}/www;
    ssl_certificate {prefix}/cert.pem; ssl_certificate_key {prefix}/key.pem;
  }}
}}
"""
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(plain)
        wait_listening(tls)
        yield {"plain": plain, "tls": tls}
    finally:
        process.terminate()
        process.wait(timeout=10)


class Server:
    """A real TCP server in a thread-free subprocess: `behaviour` is python code per client."""

    def __init__(self, behaviour: str):
        self.port = free_port()
        code = (
            "import socket, sys, time, threading\n"
            f"srv = socket.create_server(('{LOOPBACK}', {self.port}), backlog=64)\n"
            "def serve(conn):\n"
            + "".join(f"    {line}\n" for line in behaviour.strip().splitlines())
            + "while True:\n"
            "    conn, _ = srv.accept()\n"
            "    threading.Thread(target=serve, args=(conn,), daemon=True).start()\n"
        )
        self.process = subprocess.Popen(["python3", "-c", code])
        wait_listening(self.port)

    def close(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def server():
    started = []

    def start(behaviour: str) -> Server:
        started.append(Server(behaviour))
        return started[-1]

    yield start
    for srv in started:
        srv.close()


def genhash(port: int, path: str, *, tls: bool = False) -> str:
    argv = ["genhash", "-s", LOOPBACK, "-p", str(port), "-u", path] + (["-S"] if tls else [])
    output = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
    return re.findall(r"\b[0-9a-f]{32}\b", output)[-1]


# -- TCP_CHECK ------------------------------------------------------------------------------


def test_tcp_check_passes_on_a_listening_port(nginx):
    assert check(port=nginx["plain"], connect_timeout=2).ok


def test_tcp_check_fails_fast_on_a_closed_port():
    result, elapsed = timed_check(port=free_port(), connect_timeout=5)
    assert not result.ok and result.error == "connection refused" and elapsed < 1
    assert result.reason == "refused"


def test_tcp_check_times_out_when_the_handshake_never_completes():
    # A full accept queue makes the kernel drop further SYNs: connect() hangs.
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _filler in range(4)]
        for sock in fillers:
            sock.setblocking(False)
            sock.connect_ex((LOOPBACK, port))
        time.sleep(0.2)
        result, elapsed = timed_check(port=port, connect_timeout=1)
        for sock in fillers:
            sock.close()
    assert not result.ok and result.error == "timeout after 1s"
    assert result.reason == "timeout"
    assert 0.9 < elapsed < 2


def test_tcp_check_binds_to_the_requested_source(server):
    srv = server("conn.send(str(conn.getpeername()[1]).encode()); conn.close()")
    source_port = free_port()
    assert check(port=srv.port, connect_timeout=2, bindto=LOOPBACK, bind_port=source_port).ok


# -- HTTP_GET / SSL_GET ---------------------------------------------------------------------


def test_http_get_status_and_genhash_digest(nginx):
    digest = genhash(nginx["plain"], "/index.html")
    url = UrlSpec("/index.html", digest=digest)
    assert check("HTTP_GET", nginx["plain"], options=HttpOptions((url,)), connect_timeout=3).ok
    wrong = UrlSpec("/index.html", digest="0" * 32)
    result = check("HTTP_GET", nginx["plain"], options=HttpOptions((wrong,)), connect_timeout=3)
    assert not result.ok and digest in result.error and result.reason == "http_digest"


def test_http_get_status_codes_and_ranges(nginx):
    port = nginx["plain"]
    result = check("HTTP_GET", port, options=HttpOptions((UrlSpec("/error"),)), connect_timeout=3)
    assert not result.ok and "status code 500" in result.error
    assert result.reason == "http_status"
    server_errors = UrlSpec("/error", status_ranges=((200, 299), (500, 599)))
    assert check("HTTP_GET", port, options=HttpOptions((server_errors,)), connect_timeout=3).ok
    missing = check(
        "HTTP_GET", port, options=HttpOptions((UrlSpec("/nothing-here"),)), connect_timeout=3
    )
    assert not missing.ok and "status code 404" in missing.error


def test_http_get_every_url_must_pass(nginx):
    urls = (UrlSpec("/index.html"), UrlSpec("/error"))
    result = check("HTTP_GET", nginx["plain"], options=HttpOptions(urls), connect_timeout=3)
    assert not result.ok and result.error.startswith("url(2) /error")


def test_http_get_virtualhost_selects_the_server(nginx):
    port = nginx["plain"]
    assert not check(
        "HTTP_GET", port, options=HttpOptions((UrlSpec("/vhost"),)), connect_timeout=3
    ).ok
    named = UrlSpec("/vhost", virtualhost="www.example.test")
    assert check("HTTP_GET", port, options=HttpOptions((named,)), connect_timeout=3).ok


def test_http_1_1_request_is_answered(nginx):
    url = UrlSpec("/index.html", digest=genhash(nginx["plain"], "/index.html"))
    assert check("HTTP_GET", nginx["plain"], options=HttpOptions((url,), "1.1")).ok


def test_ssl_get_with_digest(nginx):
    digest = genhash(nginx["tls"], "/index.html", tls=True)
    url = UrlSpec("/index.html", digest=digest)
    assert check("SSL_GET", nginx["tls"], options=HttpOptions((url,)), connect_timeout=3).ok
    plain = check("SSL_GET", nginx["plain"], options=HttpOptions((url,)), connect_timeout=3)
    assert not plain.ok and "tls" in plain.error  # plain HTTP is not TLS
    assert plain.reason == "tls"


def agent_genhash(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lvsagent", "genhash", *args],
        cwd=MODULE_UTILS,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("path", "options"),
    [
        ("/index.html", ()),
        ("/index.html", ("-P", "1.1")),
        ("/vhost", ("-V", "www.example.test")),
        ("/vhost", ()),  # the default server's 404 page has a digest too
        ("/index.html", ("-S",)),
    ],
)
def test_lvs_agent_genhash_prints_what_keepalived_genhash_prints(nginx, path, options):
    """keepalived's genhash is the reference, run beside it with the same options."""
    port = str(nginx["tls"] if "-S" in options else nginx["plain"])
    argv = ["-s", LOOPBACK, "-p", port, "-u", path, *options]
    keepalived = subprocess.run(
        ["genhash", *argv], capture_output=True, text=True, timeout=20, check=False
    )
    ours = agent_genhash(*argv)
    assert ours.returncode == 0, ours.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", ours.stdout)
    assert ours.stdout == keepalived.stdout
    digest = ours.stdout.strip()
    kind = "SSL_GET" if "-S" in options else "HTTP_GET"
    vhost = options[1] if "-V" in options else None
    url = UrlSpec(path, digest=digest, status_ranges=((200, 599),), virtualhost=vhost)
    assert check(kind, int(port), options=HttpOptions((url,)), connect_timeout=3).ok


def test_lvs_agent_genhash_verbose_and_failure(nginx):
    verbose = agent_genhash("-s", LOOPBACK, "-p", str(nginx["plain"]), "-u", "/index.html", "-v")
    assert verbose.returncode == 0 and "content-length: " in verbose.stdout
    assert "Global response time for [/index.html]" in verbose.stdout
    closed = agent_genhash("-s", LOOPBACK, "-p", str(free_port()), "-u", "/", "-t", "2")
    assert closed.returncode == 1 and closed.stdout == ""
    assert "Connection failed: connection refused" in closed.stderr


def test_http_get_server_answering_500(server):
    srv = server(
        "conn.recv(4096)\n"
        "conn.sendall(b'HTTP/1.0 500 Internal Server Error\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
        "conn.close()"
    )
    result = check("HTTP_GET", srv.port, options=HttpOptions((UrlSpec("/"),)), connect_timeout=2)
    assert not result.ok and "status code 500" in result.error
    assert result.reason == "http_status"


def test_http_get_server_that_accepts_and_never_answers(server):
    srv = server("time.sleep(600)")
    result, elapsed = timed_check(kind="HTTP_GET", port=srv.port, connect_timeout=1.5)
    assert not result.ok and "timeout after 1.5s" in result.error and elapsed < 2.5
    assert result.reason == "timeout"


def test_http_get_trickling_server_cannot_outlast_the_deadline(server):
    srv = server(
        "conn.recv(4096)\n"
        "for byte in b'HTTP/1.0 200 OK\\r\\nX-Slow: ' + b'a' * 10000:\n"
        "    conn.send(bytes([byte]))\n"
        "    time.sleep(0.1)"
    )
    result, elapsed = timed_check(kind="HTTP_GET", port=srv.port, connect_timeout=1.5)
    assert not result.ok and "timeout" in result.error and elapsed < 2.5
    url = UrlSpec("/", digest="0" * 32)
    result, elapsed = timed_check(
        kind="HTTP_GET", port=srv.port, connect_timeout=1, options=HttpOptions((url,))
    )
    assert not result.ok and elapsed < 2


def test_http_get_garbage_and_early_close_are_failures(server):
    garbage = server("conn.recv(4096); conn.sendall(b'SSH-2.0-OpenSSH\\r\\n\\r\\n'); conn.close()")
    result = check("HTTP_GET", garbage.port, connect_timeout=2)
    assert not result.ok and "malformed status line" in result.error
    assert result.reason == "bad_reply"
    early = server("conn.recv(4096); conn.sendall(b'HTTP/1.0 200'); conn.close()")
    result = check("HTTP_GET", early.port, connect_timeout=2)
    assert not result.ok and "closed early" in result.error and result.reason == "bad_reply"


def test_http_get_oversized_head_is_a_failure(server):
    srv = server("conn.recv(4096); conn.sendall(b'HTTP/1.0 200 OK\\r\\nX: ' + b'a' * 200000)")
    result = check("HTTP_GET", srv.port, connect_timeout=3)
    assert not result.ok and "too large" in result.error and result.reason == "bad_reply"


# -- MISC_CHECK -----------------------------------------------------------------------------


def test_misc_check_exit_status(tmp_path):
    script = tmp_path / "check.sh"
    script.write_text('#!/bin/sh\nexit "$1"\n')
    script.chmod(0o755)
    assert check("MISC_CHECK", options=MiscOptions(f"{script} 0")).ok
    failed = check("MISC_CHECK", options=MiscOptions(f"{script} 1"))
    assert not failed.ok and failed.error == "exit status 1" and failed.reason == "exit_status"
    assert not check("MISC_CHECK", options=MiscOptions(f"{script} 12")).ok  # not dynamic: a failure
    dynamic = check("MISC_CHECK", options=MiscOptions(f"{script} 12", dynamic=True))
    assert dynamic.ok and dynamic.weight == 10
    missing = check("MISC_CHECK", options=MiscOptions(f"{tmp_path}/absent"))
    assert not missing.ok and "cannot run" in missing.error


def test_misc_check_timeout_kills_the_script_and_its_children(tmp_path):
    marker = tmp_path / "survived"
    misc_path = f"/bin/sh -c 'sleep 1; touch {marker}'"
    result, elapsed = timed_check(kind="MISC_CHECK", options=MiscOptions(misc_path, 0.5))
    assert not result.ok and result.error == "timed out after 0.5s" and elapsed < 1.5
    assert result.reason == "timeout"
    time.sleep(1.5)
    assert not marker.exists()
