"""Kernel IPVS and the nftables data plane side by side, in one run, on one kernel (the guest's:
it has both): requests per second and latency through the VIP for short HTTP requests, NAT and
DR, the rows interleaved and each run `--rounds` times (compare within a run); and how soon
after a real server leaves no new connection reaches it.

Lab (network namespaces on one bridge): a client 10.0.0.10, a director 10.0.0.1 holding the VIP
10.0.0.100 and 10.1.0.1 towards two nginx real servers 10.1.0.2 and 10.1.0.3 (NAT: their
default route is the director; DR: the VIP on their lo, ARP suppressed, the client's subnet on
their link, so replies go straight back). The director's data plane is driven by the agent's
own IpvsPlane / NftPlane with one service (NAT: rr; DR: sh, the only DR scheduler the nftables
plane takes). A reference row sends the same requests to a real server routed through the
director without any balancer: the ceiling this machine's client and servers allow.

For each row: PROCESSES client processes each open a connection, send `GET /`, read the reply
to its end, close, for SECONDS; then a real server leaves the service while one client asks in
a loop: "apply" is the data plane's sync call, "last hit" how long after the change began a new
connection still reached the server that left (0: none did).

    tools/guest/run-cmd 'python3 benchmarks/data_plane_throughput.py [--seconds 10] [--processes 4]'

(`--planes nftables` runs on a kernel without IPVS, e.g. this project's machines.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "plugins" / "module_utils")]

from lvsagent.ipvs import Destination, Service, ServiceKey  # noqa: E402
from testbed.netns import Lab  # noqa: E402

VIP = "10.0.0.100"
CLIENT_SUBNET = "10.0.0.0/24"
REAL_SERVERS = {"rs1": "10.1.0.2", "rs2": "10.1.0.3"}
GATEWAY = "10.1.0.1"
SCHEDULERS = {"nat": "rr", "dr": "sh"}
ROWS = (("IPVS", "nat"), ("nftables", "nat"), ("IPVS", "dr"), ("nftables", "dr"))
PLANES = ("IPVS", "nftables")

NGINX = """worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 80;
        root {root}/www;
    }}
}}
"""

# Runs in the client's namespace. "load SOURCE TARGET SECONDS PROCESSES": requests from
# PROCESSES processes; prints {"latencies": [...], "errors": N}. "trace SOURCE TARGET SECONDS":
# one process, prints [[monotonic start, server name or "-"], ...]. SOURCE: the client's
# address to use ("-": any).
CLIENT = r"""
import json, multiprocessing, socket, sys, time
REQUEST = b"GET / HTTP/1.0\r\n\r\n"

def ask(target):
    with socket.create_connection((target, 80), 2, SOURCE) as conn:
        conn.sendall(REQUEST)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).rsplit(b"\r\n\r\n", 1)[-1].decode().strip()

def load(target, seconds):
    latencies, errors = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        try:
            ask(target)
            latencies.append(time.perf_counter() - start)
        except OSError:
            errors += 1
    return latencies, errors

mode, source, target, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
SOURCE = None if source == "-" else (source, 0)
if mode == "load":
    with multiprocessing.Pool(int(sys.argv[5])) as pool:
        results = pool.starmap(load, [(target, seconds)] * int(sys.argv[5]))
    print(json.dumps({"latencies": [l for lats, _e in results for l in lats],
                      "errors": sum(e for _l, e in results)}))
else:
    rows, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            rows.append([start, ask(target)])
        except OSError:
            rows.append([start, "-"])
    print(json.dumps(rows))
"""


def sysctl(host, key: str, value: str) -> None:
    host.run(["sysctl", "-q", "-w", f"{key}={value}"])


def build_lab(lab: Lab, workdir: Path) -> tuple:
    client = lab.host("client", "10.0.0.10/24")
    director = lab.host("director", "10.0.0.1/24")
    director.add_address(f"{GATEWAY}/24")
    director.add_address(f"{VIP}/24")
    sysctl(director, "net.ipv4.ip_forward", "1")
    for scope in ("all", "default", "eth0"):  # replies of NAT pass it on the same link
        sysctl(director, f"net.ipv4.conf.{scope}.send_redirects", "0")
    servers = []
    for name, address in REAL_SERVERS.items():
        server = lab.host(name, f"{address}/24")
        server.run(["ip", "route", "add", "default", "via", GATEWAY])
        server.add_address(f"{VIP}/32", dev="lo")
        for scope in ("all", "eth0"):  # as lvs.ha.arp_suppress sets them
            sysctl(server, f"net.ipv4.conf.{scope}.arp_ignore", "1")
            sysctl(server, f"net.ipv4.conf.{scope}.arp_announce", "2")
        root = workdir / name
        for folder in ("www", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / folder).mkdir(parents=True)
        (root / "www" / "index.html").write_text(name + "\n")
        root.chmod(0o755)
        (root / "nginx.conf").write_text(NGINX.format(root=root))
        server.popen(["nginx", "-c", root / "nginx.conf"], stderr=subprocess.DEVNULL)
        servers.append(server)
    for server in servers:  # nginx answers on its own namespace's loopback
        server.wait_for(lambda s=server: ask_once(s, "127.0.0.1"), timeout=20)
    return client, director, servers


def ask_once(host, target: str, source: str = "-") -> str:
    """The name of the real server that answered one request from `host`, or "" if none did
    (no answer, or not a page of the lab's)."""
    argv = [sys.executable, "-c", CLIENT, "trace", source, target, "0.001"]
    result = host.run(argv, check=False)
    rows = json.loads(result.stdout or "[]")
    return rows[0][1] if rows and rows[0][1] in REAL_SERVERS else ""


def client_json(client, *args) -> object:
    result = client.run([sys.executable, "-c", CLIENT, *map(str, args)], timeout=300)
    return json.loads(result.stdout)


def percentile(values: list, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def load_figures(client, source: str, target: str, seconds: float, processes: int) -> dict:
    figures = client_json(client, "load", source, target, seconds, processes)
    latencies = figures["latencies"]
    return {
        "rate": len(latencies) / seconds,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "slow": sum(latency > 0.1 for latency in latencies),
        "errors": figures["errors"],
    }


HEADER = (
    f"{'data plane':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'>100ms':>7} {'errors':>7}"
    f" {'apply ms':>9} {'last hit ms':>12}"
)


def print_row(label: str, row: dict) -> None:
    apply = f"{row['apply'] * 1000:.2f}" if "apply" in row else "-"
    last_hit = f"{row['last_hit'] * 1000:.1f}" if "last_hit" in row else "-"
    refused = " (change refused)" if row.get("refused") else ""
    print(
        f"{label:<22} {row['rate']:>8.0f} {row['p50'] * 1000:>8.2f} {row['p99'] * 1000:>8.2f}"
        f" {row['slow']:>7} {row['errors']:>7} {apply:>9} {last_hit:>12}{refused}",
        flush=True,
    )


async def drive_plane(plane_name: str, forwarding: str) -> None:
    """In the director's namespace: the service up, then on each line of stdin one step."""
    if plane_name == "IPVS":
        from lvsagent.lvs.dataplane import IpvsPlane
        from lvsagent.lvs.netlink_thread import IpvsThread

        plane = IpvsPlane(IpvsThread())
    else:
        from lvsagent.nft.client import NftClient
        from lvsagent.nft.plane import NftPlane

        plane = NftPlane(NftClient())
    key = ServiceKey.for_address(VIP, 80)
    service = Service(key, SCHEDULERS[forwarding])
    dests = [Destination(address, 80, forwarding, 1) for address in REAL_SERVERS.values()]
    desired = {key: (service, dests)}
    _changes, failed = await plane.sync(desired, (), True)
    if failed:
        raise SystemExit(f"{plane_name} {forwarding}: the service was refused: {failed}")
    print("ready", flush=True)
    leaving = sys.stdin.readline().strip()
    kept = [dest for dest in dests if dest.address != leaving]
    started = time.monotonic()
    _changes, failed = await plane.sync({key: (service, kept)}, (), False)
    ended = time.monotonic()
    print(json.dumps({"started": started, "ended": ended, "failed": bool(failed)}), flush=True)
    sys.stdin.readline()
    await plane.sync({}, desired, True)
    await plane.close()


def measure_row(director, client, source: str, plane_name: str, forwarding: str, args) -> dict:
    on_link = [
        "ip",
        "route",
        "replace" if forwarding == "dr" else "del",
        CLIENT_SUBNET,
        "dev",
        "eth0",
    ]
    for server in servers_of(director.lab):
        server.run(on_link, check=forwarding == "dr")
    argv = [sys.executable, __file__, "--drive", plane_name, forwarding]
    driver = director.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if driver.stdout.readline().strip() != "ready":
            raise SystemExit(f"{plane_name} {forwarding}: the data plane did not come up")
        figures = load_figures(client, source, VIP, args.seconds, args.processes)
        leaving_name = ask_once(client, VIP, source)  # under sh, the server this client hashes to
        if not leaving_name:
            raise SystemExit(f"{plane_name} {forwarding}: no real server answers through the VIP")
        trace = client.popen(
            [sys.executable, "-c", CLIENT, "trace", source, VIP, "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        driver.stdin.write(REAL_SERVERS[leaving_name] + "\n")
        driver.stdin.flush()
        change = json.loads(driver.stdout.readline())
        rows = json.loads(trace.communicate(timeout=60)[0])
        driver.stdin.write("done\n")
        driver.stdin.flush()
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    hits = [start for start, name in rows if name == leaving_name and start >= change["started"]]
    return {
        **figures,
        "apply": change["ended"] - change["started"],
        "last_hit": max(hits) - change["started"] if hits else 0.0,
        "refused": change["failed"],
    }


def servers_of(lab: Lab) -> list:
    return [lab.hosts[name] for name in REAL_SERVERS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="every row this many times")
    parser.add_argument(
        "--planes", nargs="+", choices=PLANES, default=PLANES, help="only these data planes"
    )
    parser.add_argument("--drive", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        asyncio.run(drive_plane(*args.drive))
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    with (
        tempfile.TemporaryDirectory(prefix="dpbench-") as workdir,
        Lab(prefix="dpbench", workdir=Path(workdir) / "lab") as lab,
    ):
        Path(workdir).chmod(0o755)  # nginx's workers read the pages as nobody
        client, director, _servers = build_lab(lab, Path(workdir))
        kernel = os.uname().release
        print(f"{args.processes} client processes, {args.seconds:g} s per row, kernel {kernel}")
        print(HEADER, flush=True)
        client.run(["ip", "route", "add", "10.1.0.0/24", "via", "10.0.0.1"])
        reference = load_figures(client, "-", REAL_SERVERS["rs1"], args.seconds, args.processes)
        print_row("routed, no balancer", reference)
        client.run(["ip", "route", "del", "10.1.0.0/24", "via", "10.0.0.1"])
        chosen = [row for row in ROWS if row[0] in args.planes] * args.rounds
        for number, (plane_name, forwarding) in enumerate(chosen):
            # A client address of its own: no connection tracked in an earlier row (a
            # TIME_WAIT entry of the same ports) can meet this row's.
            source = f"10.0.0.{20 + number}"
            client.add_address(f"{source}/24")
            row = measure_row(director, client, source, plane_name, forwarding, args)
            print_row(f"{plane_name} {forwarding.upper()} {SCHEDULERS[forwarding]}", row)


if __name__ == "__main__":
    main()
