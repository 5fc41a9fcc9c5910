"""Services for data-path tests: a responder that names its host, a one-shot client, an HTTP
client that says which real server answered, and a real nginx."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .netns import Host

RESPONDER = """
import socket, sys
server = socket.socket(socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[2], int(sys.argv[3])))
server.listen()
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(sys.argv[1].encode())
    conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as conn:
    print(conn.recv(100).decode())
"""


def start_responder(
    host: Host, port: int, bind: str = "0.0.0.0", answer: Optional[str] = None
) -> subprocess.Popen:
    """Listen on `bind`:`port` in `host` and answer every connection with `answer` (default:
    the host's short name, so a client can tell which host it reached). Returns once it
    listens."""
    proc = host.popen(
        [sys.executable, "-c", RESPONDER, answer or host.short_name, bind, port],
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the responder in {host.name} did not start (exit {proc.wait()})")
    return proc


def tcp_answer(client: Host, address: str, port: int, timeout: float = 1.0) -> str:
    """What the service at `address`:`port` sends, seen from `client`; "" when it fails."""
    argv = [sys.executable, "-c", CLIENT, address, port, timeout]
    result = client.run(argv, check=False, timeout=timeout + 10)
    return result.stdout.strip() if result.returncode == 0 else ""


# Runs in a client's namespace: argv TARGET PORT COUNT SECONDS TIMEOUT SOURCE...; from each
# source address in turn ("-": any) `GET /` at least COUNT times and for at least SECONDS, one
# connection per request, read to its end. Prints {source: [[monotonic start, page], ...]}.
HTTP_GET = r"""
import json, socket, sys, time
target, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seconds, timeout = float(sys.argv[4]), float(sys.argv[5])

def page(source):
    with socket.create_connection((target, port), timeout, source) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return body.decode().strip() if head.split(b" ", 2)[1:2] == [b"200"] else "-"

answers = {}
for source in sys.argv[6:]:
    bind = None if source == "-" else (source, 0)
    rows, end = answers.setdefault(source, []), time.monotonic() + seconds
    while len(rows) < count or time.monotonic() < end:
        start = time.monotonic()
        try:
            rows.append([start, page(bind)])
        except OSError:
            rows.append([start, "-"])
print(json.dumps(answers))
"""


@dataclass(frozen=True)
class HttpGet:
    """From each of `sources` ("-": the host's own choice) in turn, `GET /` from
    `target`:`port` at least `count` times and for at least `seconds`, a new connection each.
    A page is what answered (in these labs a real server's name) or "-": no connection, no
    reply, not 200."""

    target: str
    sources: tuple = ("-",)
    port: int = 80
    count: int = 1
    seconds: float = 0.0
    timeout: float = 2.0

    def argv(self) -> list:
        numbers = (self.port, self.count, self.seconds, self.timeout)
        return [sys.executable, "-c", HTTP_GET, self.target, *numbers, *self.sources]

    def pages(self, client: Host) -> dict:
        """source -> the pages `client` got, in order."""
        attempts = len(self.sources) * max(self.count, 1)
        limit = attempts * (self.timeout + 1) + self.seconds + 30
        answers = self.answers(client.run(self.argv(), timeout=limit).stdout)
        return {source: [page for _start, page in rows] for source, rows in answers.items()}

    def start(self, client: Host) -> subprocess.Popen:
        """The client running in the background; `answers(proc.communicate()[0])` reads it."""
        return client.popen(self.argv(), stdout=subprocess.PIPE, text=True)

    @staticmethod
    def answers(output: str) -> dict:
        """source -> [(monotonic start, page)]: the kernel's clock, comparable with
        `time.monotonic()` in any namespace."""
        return {source: [tuple(row) for row in rows] for source, rows in json.loads(output).items()}


NGINX = """
daemon off; master_process off; pid {prefix}/nginx.pid; error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off; {temp}
  server {{ listen 0.0.0.0:{port}; root {prefix}/www; }}
}}
"""


class Nginx:
    """nginx-light in `host`, serving /index.html (`body`, default the host's short name) on
    every address's `port`; its files under `workdir`/the host's short name."""

    def __init__(self, host: Host, workdir: Path, port: int = 80, body: Optional[str] = None):
        self.host = host
        self.port = port
        self.prefix = Path(workdir) / host.short_name
        (self.prefix / "www").mkdir(parents=True)
        (self.prefix / "www" / "index.html").write_text(f"{body or host.short_name}\n")
        temp = " ".join(
            f"{kind}_temp_path {self.prefix}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = NGINX.format(prefix=self.prefix, temp=temp, port=port)
        (self.prefix / "nginx.conf").write_text(conf)
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> Nginx:
        conf = self.prefix / "nginx.conf"
        self.process = self.host.popen(["nginx", "-p", self.prefix, "-c", conf, "-e", "stderr"])
        self.host.wait_for(self._listening, timeout=30)
        return self

    def _listening(self) -> bool:
        sockets = self.host.run(["ss", "-Htln", f"sport = :{self.port}"], check=False).stdout
        return bool(sockets.strip())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
