"""Kernel IPVS and the nftables data plane side by side, in one run, on one kernel (the guest's:
it has both): requests per second and latency through the VIP for short HTTP requests, NAT and
DR, the rows interleaved and each run `--rounds` times (compare within a run); and how soon
after a real server leaves no new connection reaches it.

Lab (network namespaces on one bridge): a client 10.0.0.10, a director 10.0.0.1 holding the VIP
10.0.0.100 and 10.1.0.1 towards two nginx real servers 10.1.0.2 and 10.1.0.3 (NAT: their
default route is the director; DR: the VIP on their lo, ARP suppressed, the client's subnet on
their link, so replies go straight back). The director's data plane is driven by the agent's
own IpvsPlane / NftPlane with one service (NAT: rr; DR: sh, the only DR scheduler the nftables
plane takes). A routed row sends the same requests to a real server routed through the
director without any balancer: the ceiling this machine's client and servers allow for NAT (DR's
replies bypass the director, so DR may pass it).

Load: ApacheBench (`ab`, Debian's apache2-utils, in the guest's package list) in the client's
namespace: `--processes` ab side by side, each `--concurrency` requests in flight, a new
connection each (`GET /`, HTTP/1.0), for `--seconds`, from an address of the row's own (no
connection tracked in an earlier row can meet this row's). Beside its figures: ab's user CPU
(ab itself: near 100% of a CPU per process, the client limits), its system CPU (mostly the
network stack's work done in its context, the data plane's included) and how idle the
machine's CPUs were (near 0: the CPUs limit, and a row's rate falls with what its data plane
costs per request). Then a real server leaves the service while one client asks in a loop
(testbed.services.HttpGet): "apply" is the data plane's sync call, "last hit" how long after
the change began a new connection still reached the server that left (0: none did).

    tools/guest/run-cmd 'python3 benchmarks/data_plane_throughput.py [--concurrency 16]'

(`--planes nftables` runs on a kernel without IPVS, e.g. this project's machines.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "plugins" / "module_utils")]

from lvsagent.ipvs import Destination, Service, ServiceKey  # noqa: E402
from testbed.netns import Lab  # noqa: E402
from testbed.services import HttpGet  # noqa: E402

VIP = "10.0.0.100"
CLIENT_SUBNET = "10.0.0.0/24"
REAL_SERVERS = {"rs1": "10.1.0.2", "rs2": "10.1.0.3"}
AB_MAX_RATE = 50_000  # requests per second: ab sizes its table of results by -n, -t ends first
GATEWAY = "10.1.0.1"
SCHEDULERS = {"nat": "rr", "dr": "sh"}
ROUTED = "routed, no balancer"
ROWS = ((ROUTED, ""), ("IPVS", "nat"), ("nftables", "nat"), ("IPVS", "dr"), ("nftables", "dr"))
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
    page = HttpGet(target, (source,)).pages(host)[source][0]
    return page if page in REAL_SERVERS else ""


def cpu_times() -> tuple:
    """(idle, total) jiffies of all the machine's CPUs."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def children_cpu() -> tuple:
    """(user, system) CPU seconds of the children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def ab_figure(output: str, name: str, default: Optional[float] = None) -> float:
    found = re.search(rf"^{name}:\s+([0-9.]+)", output, re.MULTILINE)
    if found:
        return float(found.group(1))
    if default is None:
        raise SystemExit(f"ab printed no {name!r}:\n{output}")
    return default


def merged_percentile(tables: list, fraction: float) -> float:
    """The `fraction` percentile of all requests of several ab processes, from each one's
    table of percentiles (`-e`: {percent: ms}) weighted by its count of requests: the least
    time that at least `fraction` of them took no longer than (exact for one process)."""
    total = sum(count for count, _table in tables)
    for time_ms in sorted({time_ms for _count, table in tables for time_ms in table.values()}):
        within = sum(
            count * max((percent for percent, ms in table.items() if ms <= time_ms), default=0)
            for count, table in tables
        )
        if within >= fraction * 100 * total:
            return time_ms / 1000
    return 0.0


def run_ab(client, source: str, target: str, args, percentiles: Path) -> subprocess.Popen:
    argv = ["ab", "-q", "-l", "-r", "-c", args.concurrency, "-t", args.seconds]
    argv += ["-n", args.seconds * AB_MAX_RATE, "-B", source, "-e", percentiles]
    return client.popen(
        [*argv, f"http://{target}/"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def load_figures(client, source: str, target: str, args) -> dict:
    """The figures of `--processes` ab processes for one row, with the CPU they used (user:
    ab itself; system: mostly the network stack's work done in their context, the data
    plane's included) and the share the machine's CPUs were idle."""
    with tempfile.TemporaryDirectory(prefix="dpbench-ab-") as folder:
        files = [Path(folder) / f"{number}.csv" for number in range(args.processes)]
        idle_before, total_before = cpu_times()
        (user_before, system_before), started = children_cpu(), time.monotonic()
        runs = [run_ab(client, source, target, args, path) for path in files]
        outputs = [run.communicate(timeout=args.seconds + 120) for run in runs]
        wall = time.monotonic() - started
        (user, system), (idle, total) = children_cpu(), cpu_times()
        tables = []
        for run, (output, errors), path in zip(runs, outputs, files):
            if run.returncode != 0:
                raise SystemExit(f"ab failed (exit {run.returncode}): {errors.strip()}")
            lines = path.read_text().splitlines()[1:]  # after "Percentage served,Time in ms"
            pairs = (line.split(",") for line in lines)
            table = {int(percent): float(ms) for percent, ms in pairs}
            tables.append((ab_figure(output, "Complete requests"), table))
    texts = [output for output, _errors in outputs]
    return {
        "rate": sum(ab_figure(output, "Requests per second") for output in texts),
        "p50": merged_percentile(tables, 0.5),
        "p99": merged_percentile(tables, 0.99),
        "max": merged_percentile(tables, 1.0),
        "errors": int(
            sum(
                ab_figure(output, "Failed requests") + ab_figure(output, "Non-2xx responses", 0)
                for output in texts
            )
        ),
        "user": (user - user_before) / wall,
        "system": (system - system_before) / wall,
        "idle": (idle - idle_before) / (total - total_before),
    }


HEADER = (
    f"{'data plane':<18} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}"
    f" {'ab usr':>6} {'ab sys':>6} {'idle':>5} {'apply ms':>8} {'last hit ms':>11}"
)


def print_row(label: str, row: dict) -> None:
    apply = f"{row['apply'] * 1000:.2f}" if "apply" in row else "-"
    last_hit = f"{row['last_hit'] * 1000:.1f}" if "last_hit" in row else "-"
    refused = " (change refused)" if row.get("refused") else ""
    print(
        f"{label:<18} {row['rate']:>7.0f} {row['p50'] * 1000:>7.2f} {row['p99'] * 1000:>7.2f}"
        f" {row['max'] * 1000:>7.1f} {row['errors']:>6.0f} {row['user']:>6.0%}"
        f" {row['system']:>6.0%} {row['idle']:>5.0%} {apply:>8} {last_hit:>11}{refused}",
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


def route_replies(lab: Lab, forwarding: str) -> None:
    """DR: the real servers reach the client's subnet on their link; else through the director."""
    verb = "replace" if forwarding == "dr" else "del"
    for server in servers_of(lab):
        server.run(["ip", "route", verb, CLIENT_SUBNET, "dev", "eth0"], check=forwarding == "dr")


def measure_routed(client, source: str, args) -> dict:
    route_replies(client.lab, "nat")
    route = ["10.1.0.0/24", "via", "10.0.0.1"]
    client.run(["ip", "route", "add", *route])
    try:
        return load_figures(client, source, REAL_SERVERS["rs1"], args)
    finally:
        client.run(["ip", "route", "del", *route])


def measure_row(director, client, source: str, plane_name: str, forwarding: str, args) -> dict:
    route_replies(director.lab, forwarding)
    argv = [sys.executable, __file__, "--drive", plane_name, forwarding]
    driver = director.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if driver.stdout.readline().strip() != "ready":
            raise SystemExit(f"{plane_name} {forwarding}: the data plane did not come up")
        figures = load_figures(client, source, VIP, args)
        leaving_name = ask_once(client, VIP, source)  # under sh, the server this client hashes to
        if not leaving_name:
            raise SystemExit(f"{plane_name} {forwarding}: no real server answers through the VIP")
        trace = HttpGet(VIP, (source,), count=0, seconds=3).start(client)
        time.sleep(1)
        driver.stdin.write(REAL_SERVERS[leaving_name] + "\n")
        driver.stdin.flush()
        change = json.loads(driver.stdout.readline())
        rows = HttpGet.answers(trace.communicate(timeout=60)[0])[source]
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


def label(row: tuple) -> str:
    plane_name, forwarding = row
    return f"{plane_name} {forwarding.upper()} {SCHEDULERS[forwarding]}" if forwarding else ROUTED


def print_summary(results: dict) -> None:
    """Each row's medians over the rounds (column by column; errors: their sum), and nftables'
    rate over IPVS's per round (neighbours in time) and their median (the issue's target: 0.9
    or more)."""
    print(f"medians of {len(next(iter(results.values())))} rounds, column by column (errors: sum):")
    for row, figures in results.items():
        medians = {key: statistics.median(f[key] for f in figures) for key in figures[0]}
        medians["errors"] = sum(f["errors"] for f in figures)
        print_row(label(row), {**medians, "refused": any(f.get("refused") for f in figures)})
    for forwarding in SCHEDULERS:
        nft, ipvs = results.get(("nftables", forwarding)), results.get(("IPVS", forwarding))
        if nft and ipvs:
            ratios = [ours["rate"] / theirs["rate"] for ours, theirs in zip(nft, ipvs)]
            print(
                f"nftables/IPVS req/s, {forwarding.upper()}: by round"
                f" {' '.join(f'{ratio:.2f}' for ratio in ratios)}, median"
                f" {statistics.median(ratios):.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=int, default=10, help="ab's time limit per row")
    parser.add_argument("--concurrency", type=int, default=16, help="each ab's requests in flight")
    parser.add_argument("--processes", type=int, default=1, help="ab processes side by side")
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
    if shutil.which("ab") is None:
        raise SystemExit("needs ab: apt-get install apache2-utils")
    with (
        tempfile.TemporaryDirectory(prefix="dpbench-") as workdir,
        Lab(prefix="dpbench", workdir=Path(workdir) / "lab") as lab,
    ):
        Path(workdir).chmod(0o755)  # nginx's workers read the pages as nobody
        client, director, _servers = build_lab(lab, Path(workdir))
        sysctl(client, "net.ipv4.ip_local_port_range", "1024 65535")
        kernel = os.uname().release
        print(
            f"{args.processes} x ab -c {args.concurrency}, {args.seconds} s per row,"
            f" {os.cpu_count()} CPUs,"
            f" kernel {kernel}"
        )
        print(HEADER, flush=True)
        chosen = [row for row in ROWS if row[0] in (ROUTED, *args.planes)]
        results, number = {row: [] for row in chosen}, 0
        for round_ in range(args.rounds):
            for row in chosen if round_ % 2 == 0 else chosen[::-1]:  # drift falls on both sides
                source = f"10.0.0.{20 + number}"
                number += 1
                client.add_address(f"{source}/24")
                if row[0] == ROUTED:
                    figures = measure_routed(client, source, args)
                else:
                    figures = measure_row(director, client, source, *row, args)
                print_row(label(row), figures)
                results[row].append(figures)
        print_summary(results)


if __name__ == "__main__":
    main()
