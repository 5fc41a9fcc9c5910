"""TCP_CHECK at scale on this host: CPU use and detection latency of the LVS engine.

2,000 real servers (127.1.x.y on loopback, accepted by a listener in a child process) are
checked once a second each, i.e. 2,000 TCP checks per second on the agent's one event loop.
Then 20 of them (their own listeners, 127.2.0.y) are closed, and the time until the engine
logs "Removing service" is measured against keepalived's bound
delay_loop + retry x delay_before_retry (a refused connection costs no connect_timeout).

The host has no IPVS, so the table is kept in memory: what is measured is the checking.
keepalived cannot run here for comparison (it exits when a virtual server has no IPVS).

    .venv/bin/python benchmarks/tcp_checks.py [--servers 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from lvsagent.config import loads  # noqa: E402
from lvsagent.lvs.checkers import probe  # noqa: E402
from lvsagent.lvs.engine import LvsEngine  # noqa: E402
from lvsagent.vrrp.machine import LoopClock  # noqa: E402

PORT = 18080
VICTIMS = 20
DELAY_LOOP, RETRY, DELAY_BEFORE_RETRY, CONNECT_TIMEOUT = 1, 1, 1, 2


def bulk_address(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


def victim_address(index: int) -> str:
    return f"127.2.0.{index + 1}"


async def serve() -> None:
    """Child process: accept and close on every address; 'kill' closes the victims."""

    def accept(reader, writer):
        writer.transport.abort()

    await asyncio.start_server(accept, "0.0.0.0", PORT, backlog=4096)
    victims = [
        await asyncio.start_server(accept, victim_address(i), PORT + 1, backlog=256)
        for i in range(VICTIMS)
    ]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := await reader.readline():
        if line.strip() == b"kill":
            for server in victims:
                server.close()
                await server.wait_closed()
            print("killed", flush=True)


def config_text(servers: int) -> str:
    per_vs = 100
    endpoints = [(bulk_address(i), PORT) for i in range(servers - VICTIMS)]
    endpoints += [(victim_address(i), PORT + 1) for i in range(VICTIMS)]
    blocks = []
    for vs in range(0, len(endpoints), per_vs):
        real_servers = "".join(
            f"  real_server {address} {port} {{\n    weight 1\n    TCP_CHECK {{\n"
            f"      connect_timeout {CONNECT_TIMEOUT}\n      retry {RETRY}\n"
            f"      delay_before_retry {DELAY_BEFORE_RETRY}\n    }}\n  }}\n"
            for address, port in endpoints[vs : vs + per_vs]
        )
        blocks.append(
            f"virtual_server 10.0.{vs // per_vs // 250}.{vs // per_vs % 250 + 1} 80 {{\n"
            f"  delay_loop {DELAY_LOOP}\n  lvs_sched rr\n  lvs_method DR\n{real_servers}}}\n"
        )
    return "".join(blocks)


class MemoryIpvs:
    """The IpvsClient interface over a dict: this host has no IPVS."""

    def __init__(self):
        self.kernel = {}

    async def run(self, job, *args):
        return job(self, *args)

    def table(self):
        return {k: (s, list(d.values())) for k, (s, d) in self.kernel.items()}

    def service(self, key):
        return self.kernel[key][0] if key in self.kernel else None

    def destinations(self, key):
        return list(self.kernel[key][1].values())

    def add_service(self, service):
        self.kernel[service.key] = (service, {})

    def edit_service(self, service):
        self.kernel[service.key] = (service, self.kernel[service.key][1])

    def delete_service(self, key):
        del self.kernel[key]

    def add_destination(self, key, dest):
        self.kernel[key][1][(dest.address, dest.port)] = dest

    edit_destination = add_destination

    def delete_destination(self, key, address, port):
        del self.kernel[key][1][(address, port)]


class Removals(logging.Handler):
    def __init__(self):
        super().__init__()
        self.times = {}

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Removing service [127.2."):
            self.times[message.split()[2]] = time.monotonic()


async def lag_monitor(samples: list, interval: float = 0.05) -> None:
    """How late the loop wakes a timer: the engine's scheduling headroom."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(interval)
        samples.append(time.monotonic() - start - interval)


async def bench(servers: int, seconds: float) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    await child.stdout.readline()
    probes = 0

    async def counting_probe(spec):
        nonlocal probes
        probes += 1
        return await probe(spec)

    removals = Removals()
    logging.getLogger("lvsagent").addHandler(removals)
    logging.getLogger("lvsagent").setLevel(logging.INFO)
    config = loads(config_text(servers))
    loop = asyncio.get_running_loop()
    engine = LvsEngine(config, MemoryIpvs(), LoopClock(loop), prober=counting_probe)
    lags: list = []
    monitor = asyncio.ensure_future(lag_monitor(lags))
    await engine.start()
    await asyncio.sleep(DELAY_LOOP * 2)  # past the warmup spread
    probes, lags[:] = 0, []
    cpu0, wall0, waited0 = time.process_time(), time.monotonic(), runqueue_wait()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    waited = runqueue_wait() - waited0
    rate = probes / wall

    child.stdin.write(b"kill\n")
    await child.stdin.drain()
    await child.stdout.readline()
    killed_at = time.monotonic()
    bound = DELAY_LOOP + RETRY * DELAY_BEFORE_RETRY
    deadline = killed_at + bound * 3
    while len(removals.times) < VICTIMS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    latencies = sorted(t - killed_at for t in removals.times.values())
    monitor.cancel()
    await engine.stop()
    child.stdin.close()
    await child.wait()
    server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server_cpu.ru_utime + server_cpu.ru_stime

    print(f"real servers checked          {servers} (delay_loop {DELAY_LOOP}s, TCP_CHECK)")
    print(f"checks per second             {rate:,.0f}")
    print(f"agent CPU                     {100 * cpu / wall:.1f}% of one core")
    print(f"CPU per check                 {1e6 * cpu / max(probes, 1):.0f} us")
    print(f"listener process CPU (total)  {server_cpu:.1f}s")
    print(f"loop lag p50 / p99 / max      {pct(lags, 50)} / {pct(lags, 99)} / {pct(lags, 100)}")
    print(f"runnable, waiting for a CPU   {100 * waited / wall:.1f}% of the time (host load)")
    print(f"detected {len(latencies)}/{VICTIMS} dead servers; bound {bound}s")
    if latencies:
        median = statistics.median(latencies)
        print(
            f"detection latency min/median/max  "
            f"{latencies[0]:.2f}s / {median:.2f}s / {latencies[-1]:.2f}s"
        )


def runqueue_wait() -> float:
    """Seconds this process was runnable but not running (the host's other load)."""
    with open("/proc/self/schedstat") as stats:
        return int(stats.read().split()[1]) / 1e9


def pct(samples: list, percentile: int) -> str:
    if not samples:
        return "-"
    ordered = sorted(samples)
    value = ordered[min(len(ordered) - 1, len(ordered) * percentile // 100)]
    return f"{value * 1000:.1f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
    else:
        asyncio.run(bench(args.servers, args.seconds))


if __name__ == "__main__":
    main()
