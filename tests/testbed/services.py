"""Services for data-path tests: a responder that names its host, a one-shot client, and a
real nginx."""

from __future__ import annotations

import subprocess
import sys
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
