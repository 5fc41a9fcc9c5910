"""The reconciler against `ipvsadm -R` on a real IPVS table (run it in the guest, as root).

100 virtual servers x 100 real servers (10,100 kernel objects), side by side:
  1. empty table -> full table: `ipvsadm -R` vs the LVS engine's first pass (adoption pass
     with nothing to adopt);
  2. the same table again: `ipvsadm -C; ipvsadm -R` (the only way to re-apply a rules file,
     and it drops every connection) vs a reload with no change (reads the table, 0 changes);
  3. one weight changed: the same two ways.

    tools/guest/run-cmd 'python3 benchmarks/ipvs_reconcile.py'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from lvsagent.config import loads  # noqa: E402
from lvsagent.lvs.engine import LvsEngine  # noqa: E402
from lvsagent.lvs.netlink_thread import IpvsThread  # noqa: E402
from lvsagent.vrrp.machine import LoopClock  # noqa: E402


def vip(index: int) -> str:
    return f"10.100.{index // 250}.{index % 250 + 1}"


def real_server(vs: int, index: int) -> str:
    return f"10.{101 + vs // 100}.{vs % 100}.{index + 1}"


def weight(vs: int, index: int, bumped: bool) -> int:
    return 7 if bumped and (vs, index) == (0, 0) else 1


def config_text(services: int, per_service: int, bumped: bool = False) -> str:
    """Real servers without checkers: always up, so the table is exactly the configuration."""
    blocks = []
    for vs in range(services):
        members = "".join(
            f"  real_server {real_server(vs, i)} 80 {{\n    weight {weight(vs, i, bumped)}\n  }}\n"
            for i in range(per_service)
        )
        blocks.append(
            f"virtual_server {vip(vs)} 80 {{\n  lvs_sched wrr\n  lvs_method DR\n{members}}}\n"
        )
    return "".join(blocks)


def rules_text(services: int, per_service: int, bumped: bool = False) -> str:
    lines = []
    for vs in range(services):
        lines.append(f"-A -t {vip(vs)}:80 -s wrr")
        lines.extend(
            f"-a -t {vip(vs)}:80 -r {real_server(vs, i)}:80 -g -w {weight(vs, i, bumped)}"
            for i in range(per_service)
        )
    return "\n".join(lines) + "\n"


def ipvsadm(*args: str, stdin: str = "") -> float:
    start = time.monotonic()
    subprocess.run(["ipvsadm", *args], input=stdin, text=True, check=True)
    return time.monotonic() - start


def listing() -> str:
    return subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True).stdout


async def worst_loop_lag(worst: list, interval: float = 0.05) -> None:
    """The longest the loop (where the checks run) was kept from waking a timer."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(interval)
        worst[0] = max(worst[0], time.monotonic() - start - interval)


async def timed(coroutine) -> float:
    start = time.monotonic()
    await coroutine
    return time.monotonic() - start


async def bench(services: int, per_service: int) -> None:
    rules, bumped_rules = rules_text(services, per_service), rules_text(services, per_service, True)
    config = loads(config_text(services, per_service))
    bumped = loads(config_text(services, per_service, True))

    ipvsadm("-C")
    restore = ipvsadm("-R", stdin=rules)
    reference = listing()
    clear_restore = ipvsadm("-C") + ipvsadm("-R", stdin=rules)
    clear_restore_bumped = ipvsadm("-C") + ipvsadm("-R", stdin=bumped_rules)
    ipvsadm("-C")

    client = IpvsThread()  # as the agent does: netlink off the event loop
    engine = LvsEngine(config, client, LoopClock(asyncio.get_running_loop()))
    lag = [0.0]
    watcher = asyncio.ensure_future(worst_loop_lag(lag))
    first = await timed(engine.start())
    watcher.cancel()
    assert sorted(listing().splitlines()) == sorted(reference.splitlines()), "tables differ"
    unchanged = await timed(engine.apply_config(config))
    one_weight = await timed(engine.apply_config(bumped))
    start = time.monotonic()
    client.table()
    dump = time.monotonic() - start
    await engine.stop()

    objects = services * (per_service + 1)
    print(f"table: {services} virtual servers x {per_service} real servers ({objects:,} objects)")
    print(f"{'':34}{'ipvsadm':>12}{'lvs-agent':>12}")
    print(f"{'empty -> full table':34}{restore:>11.2f}s{first:>11.2f}s")
    print(f"{'re-apply, no change':34}{clear_restore:>11.2f}s{unchanged:>11.2f}s")
    print(f"{'one weight changed':34}{clear_restore_bumped:>11.2f}s{one_weight:>11.2f}s")
    print(f"{'kernel objects changed on re-apply':34}{objects:>12,}{0:>12}")
    print(f"netlink dump of the whole table: {dump:.2f}s")
    print(f"event loop's worst timer delay while the table was built: {lag[0] * 1000:.0f}ms")
    print("(ipvsadm re-applies with -C then -R: every connection is dropped)")
    print(f"Python speed here: {python_speed():.2f}s for a fixed loop (compare across machines)")


def python_speed() -> float:
    """The agent and pyroute2 are pure Python: this scales every figure above by machine."""
    start = time.process_time()
    sum(i * i for i in range(3_000_000))
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--real-servers", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(bench(args.services, args.real_servers))


if __name__ == "__main__":
    main()
