"""The nftables data plane's apply times on the host's kernel, in a network namespace of its
own (re-executed under `unshare --net`, as root; nothing outside it is touched).

For NAT with wrr, NAT with sh, NAT with rr and persistence_timeout 60, and DR with sh (sh: the
consistent slot table of nft.slots):
  - the first pass building 100 services of 10 real servers (and 1 service of 1,000);
  - a health change: one real server leaving one service and coming back, 20 times, the
    median and the worst (the plane's sync of that one service: plan, one transaction, the
    generation read after it), and the median CPU time this process spent on one (its
    threads' and the kernel's on their behalf: what the other work on a shared machine does
    not stretch).

    sudo python3 benchmarks/nft_apply.py ["NAT sh" ...]   (only those kinds)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from lvsagent.ipvs import Destination, Service, ServiceKey  # noqa: E402
from lvsagent.nft import ruleset  # noqa: E402
from lvsagent.nft.client import NftClient  # noqa: E402
from lvsagent.nft.plane import NftPlane  # noqa: E402

SIZES = ((100, 10), (1, 1000))
KINDS = (  # label, forwarding, scheduler, persistence_timeout
    ("NAT wrr", "nat", "wrr", 0),
    ("NAT sh", "nat", "sh", 0),
    ("NAT rr p60", "nat", "rr", 60),
    ("DR sh", "dr", "sh", 0),
)
HEALTH_CHANGES = 20


def table(services: int, servers: int, forwarding: str, scheduler: str, timeout: int) -> dict:
    desired = {}
    for vs in range(services):
        key = ServiceKey.for_address(f"10.100.{vs // 250}.{vs % 250 + 1}", 80)
        port = 80 if forwarding == "dr" else 8080
        dests = [
            Destination(f"10.{101 + n // 250}.0.{n % 250 + 1}", port, forwarding, 1)
            for n in range(servers)
        ]
        desired[key] = (Service(key, scheduler, persistence_timeout=timeout), dests)
    return desired


def plane_owner(entry) -> Destination:
    """A real server the service's rule sends to (with sh, beyond 256 some own no slot)."""
    address, port, _first, _last = ruleset.slots(*entry)[0]
    return next(d for d in entry[1] if (d.address, d.port) == (address, port))


async def measure(services: int, servers: int, *kind) -> tuple:
    plane = NftPlane(NftClient())
    desired = table(services, servers, *kind)
    start = time.perf_counter()
    await plane.sync(desired, (), True)
    build = time.perf_counter() - start
    key = next(iter(desired))
    service, dests = desired[key]
    owner = plane_owner(desired[key])
    dests = [owner] + [d for d in dests if d != owner]  # one that owns slots leaves
    times, cpu = [], []
    for change in range(HEALTH_CHANGES):
        slice_ = {key: (service, dests[1:] if change % 2 == 0 else dests)}
        start, start_cpu = time.perf_counter(), time.process_time()
        changes, failed = await plane.sync(slice_, (), False)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert changes and not failed
    await plane.sync({}, desired, True)
    await plane.close()
    return build, statistics.median(times), max(times), statistics.median(cpu)


def main() -> None:
    if os.environ.get("NFT_APPLY_NETNS") != "1":
        env = {**os.environ, "NFT_APPLY_NETNS": "1"}
        sys.exit(subprocess.call(["unshare", "--net", sys.executable, *sys.argv], env=env))
    subprocess.run(
        ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"], check=True
    )
    subprocess.run(["ip", "link", "set", "eth0", "up"], check=True)
    for net in ("10.101.0.0/24", "10.102.0.0/24", "10.103.0.0/24", "10.104.0.0/24"):
        subprocess.run(["ip", "route", "add", net, "dev", "eth0"], check=True)
    change = "health change: median"
    print(
        f"{'data plane':<10} {'size':>12} {'first pass':>12} {change:>22} {'worst':>9}"
        f" {'CPU (median)':>13}"
    )
    chosen = sys.argv[1:] or [label for label, *_kind in KINDS]
    for label, *kind in (entry for entry in KINDS if entry[0] in chosen):
        for services, servers in SIZES:
            build, median, worst, cpu = asyncio.run(measure(services, servers, *kind))
            size = f"{services}x{servers}"
            print(
                f"{label:<10} {size:>12} {build * 1000:>9.1f} ms"
                f" {median * 1000:>19.2f} ms {worst * 1000:>6.2f} ms {cpu * 1000:>10.2f} ms"
            )


if __name__ == "__main__":
    main()
