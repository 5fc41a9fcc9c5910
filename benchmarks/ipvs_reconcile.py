"""The LVS engine against ipvsadm on a real IPVS table (run it in the guest, as root).

For each table size (default 100 x 100 and 1,000 x 10), side by side, each size in a fresh
process so that its memory is its own:
  - empty -> full table: `ipvsadm -R` vs the engine's first pass;
  - full read: `ipvsadm -Ln` vs the client's read of the whole table (every object decoded),
    and the audit's read of it (fingerprints: no object built unless it moved; then again,
    with each service's settings digest known: no attribute split unless it moved);
  - no-change re-apply: a reload with the same configuration (the table is read and compared,
    0 changes) vs `ipvsadm -Ln` (which only reads it);
  - one weight changed: a reload with one weight moved vs `ipvsadm -R` of the whole table;
  - `lvs-agent status` (the engine's status(), read on the netlink thread);
  - the engine's CPU time while idle with the table (audits every RESYNC_INTERVAL), its
    resident memory, and the event loop's worst timer delay throughout (its watcher wakes
    every 10 ms; its own CPU, measured alone first, is printed beside the idle figure).

    tools/guest/run-cmd 'python3 benchmarks/ipvs_reconcile.py'
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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

SIZES = ((100, 100), (1000, 10))
WATCHER_CALIBRATION = 10.0  # seconds the loop-delay watcher runs alone, to measure its CPU
ROWS = (  # label (ipvsadm's command), ipvsadm's figure, the agent's
    ("empty -> full (ipvsadm -R)", "ipvsadm_restore", "agent_build"),
    ("full read, decoded (ipvsadm -Ln)", "ipvsadm_list", "agent_read"),
    ("first full audit, fingerprints (ipvsadm -Ln)", "ipvsadm_list", "agent_first_audit"),
    ("next full audit, digests (ipvsadm -Ln)", "ipvsadm_list", "agent_audit"),
    ("no-change re-apply (ipvsadm -Ln)", "ipvsadm_list", "agent_reapply"),
    ("one weight changed (ipvsadm -e)", "ipvsadm_edit", "agent_weight"),
    ("status (ipvsadm -Ln)", "ipvsadm_list", "agent_status"),
)


def vip(index: int) -> str:
    return f"10.100.{index // 250}.{index % 250 + 1}"


def real_server(vs: int, index: int) -> str:
    return f"10.{101 + vs // 250}.{vs % 250}.{index + 1}"


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
        head = f"virtual_server {vip(vs)} 80 {{\n  protocol TCP\n  lvs_sched wrr\n  lvs_method DR\n"
        blocks.append(f"{head}{members}}}\n")
    return "".join(blocks)


def rules_text(services: int, per_service: int) -> str:
    lines = []
    for vs in range(services):
        lines.append(f"-A -t {vip(vs)}:80 -s wrr")
        lines.extend(
            f"-a -t {vip(vs)}:80 -r {real_server(vs, i)}:80 -g -w {weight(vs, i, False)}"
            for i in range(per_service)
        )
    return "\n".join(lines) + "\n"


def ipvsadm(*args: str, stdin: str = "") -> float:
    start = time.monotonic()
    subprocess.run(["ipvsadm", *args], input=stdin, text=True, check=True, capture_output=True)
    return time.monotonic() - start


def listing() -> str:
    return subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True).stdout


class LoopDelay:
    """The longest the loop (where the checks and VRRP run) was kept from running a timer:
    a bare callback every `interval` (no task, no future: the watcher costs little)."""

    def __init__(self, interval: float = 0.01):
        self.worst = 0.0
        self.phases: dict = {}  # phase (mark) -> its worst delay in ms, the RSS after it
        self._phase_worst = 0.0
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(interval, self._tick, self._loop.time() + interval)

    def _tick(self, due: float) -> None:
        now = self._loop.time()
        self.worst = max(self.worst, now - due)
        self._phase_worst = max(self._phase_worst, now - due)
        self._handle = self._loop.call_at(now + self._interval, self._tick, now + self._interval)

    async def mark(self, phase: str) -> None:
        """Ends a phase: its worst delay, once a timer held back by its last step ran."""
        for _turn in range(2):  # the task resumes first, the overdue timer right after
            await asyncio.sleep(0)
        worst = max(self.phases.get(phase, (0,))[0], round(self._phase_worst * 1000))
        self.phases[phase] = (worst, round(resident_mb(), 1))
        self._phase_worst = 0.0

    def cancel(self) -> None:
        self._handle.cancel()


async def timed(coroutine) -> float:
    start = time.monotonic()
    await coroutine
    return time.monotonic() - start


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def reload_parse(text: str):
    """A reload's parse as the agent runs it (agent.collection_deferred, whose module would
    bring the whole agent's imports in): on a thread, no cyclic collection meanwhile, the
    result frozen out of later ones."""
    gc.disable()
    try:
        return await asyncio.to_thread(loads, text)
    finally:
        gc.freeze()
        gc.enable()


def audit_all(client, desired: dict) -> int:
    """What an audit of the whole table does: services read, real servers by fingerprint."""
    from lvsagent.lvs import reconciler

    changes, _failed = reconciler.sync(client, desired, (), True)
    return len(changes)


async def bench(services: int, per_service: int, idle: float) -> dict:
    rules = rules_text(services, per_service)
    config = loads(config_text(services, per_service))
    figures = {"services": services, "per_service": per_service, "idle": idle}

    ipvsadm("-C")
    figures["ipvsadm_restore"] = ipvsadm("-R", stdin=rules)
    reference = listing()
    figures["ipvsadm_list"] = ipvsadm("-Ln")
    figures["ipvsadm_edit"] = ipvsadm("-e", "-t", f"{vip(0)}:80", "-r", f"{real_server(0, 0)}:80",
                                      "-g", "-w", "7")  # fmt: skip
    ipvsadm("-C")

    client = IpvsThread()  # as the agent does: netlink off the event loop
    engine = LvsEngine(config, client, LoopClock(asyncio.get_running_loop()))
    watcher = LoopDelay()
    cpu = time.process_time()  # the watcher's own cost (100 wake-ups a second), alone
    await asyncio.sleep(WATCHER_CALIBRATION)
    figures["watcher_cpu"] = (time.process_time() - cpu) / WATCHER_CALIBRATION
    await watcher.mark("calibration")
    figures["agent_build"] = await timed(engine.start())
    await watcher.mark("build")
    built = await asyncio.to_thread(listing)  # ipvsadm -Ln: not on the loop being watched
    if sorted(built.splitlines()) != sorted(reference.splitlines()):
        raise SystemExit("the engine's table differs from ipvsadm -R's")
    start = time.monotonic()
    await client.run(lambda c: c.table(stats=False))
    figures["agent_read"] = time.monotonic() - start
    await watcher.mark("read")
    desired = {}
    for vse in engine._servers:
        desired.update(vse.desired())
    for name in ("agent_first_audit", "agent_audit"):  # the second one: settings digests known
        start = time.monotonic()
        if await client.run(audit_all, desired) != 0:
            raise SystemExit("the audit found changes in an unchanged table")
        figures[name] = time.monotonic() - start
    await watcher.mark("audits")
    del config, desired  # the engine keeps what it needs; an agent, no copies
    # A reload parses the file again, on a thread as the agent does (the loop is watched
    # meanwhile), so that at most two configurations are alive at once, as in the agent.
    same = await reload_parse(config_text(services, per_service))
    await watcher.mark("parse")
    figures["agent_reapply"] = await timed(engine.apply_config(same))
    del same
    await watcher.mark("reapply")
    bumped = await reload_parse(config_text(services, per_service, True))
    await watcher.mark("parse")
    figures["agent_weight"] = await timed(engine.apply_config(bumped))
    del bumped
    await watcher.mark("weight")
    figures["agent_status"] = await timed(engine.status())
    await watcher.mark("status")
    cpu = time.process_time()
    await asyncio.sleep(idle)
    figures["agent_idle_cpu"] = time.process_time() - cpu
    await watcher.mark("idle")
    figures["agent_rss"] = resident_mb()
    figures["loop_lag"] = watcher.worst
    figures["loop_lags"] = watcher.phases
    watcher.cancel()
    await engine.stop()
    return figures


def python_speed() -> float:
    """The agent is pure Python: this scales every figure above by machine."""
    start = time.process_time()
    sum(i * i for i in range(3_000_000))
    return time.process_time() - start


def report(results: list) -> None:
    width = 20
    names = [f"{r['services']} x {r['per_service']}" for r in results]
    print(f"{'':48}" + "".join(f"{name:>{width * 2}}" for name in names))
    print(f"{'':48}" + f"{'ipvsadm':>{width}}{'lvs-agent':>{width}}" * len(results))

    for label, reference, agent in ROWS:
        cells = "".join(
            f"{r[reference]:>{width - 1}.3f}s{r[agent]:>{width - 1}.3f}s" for r in results
        )
        print(f"{label:48}{cells}")
    for r in results:
        share = r["agent_weight"] / r["ipvsadm_restore"] * 100
        idle = r["agent_idle_cpu"] / r["idle"] * 100
        watcher = r["watcher_cpu"] * 100
        print(
            f"{r['services']} x {r['per_service']}: one weight change = {share:.1f}% of ipvsadm -R;"
            f" idle {r['idle']:.0f}s: {r['agent_idle_cpu']:.2f} CPU s ({idle:.2f}% of a core,"
            f" of which the delay watcher alone {watcher:.2f}%: {idle - watcher:.2f}% net);"
            f" RSS {r['agent_rss']:.1f} MB; worst event-loop delay {r['loop_lag'] * 1000:.0f} ms"
        )
    for r in results:
        lags = ", ".join(f"{phase} {ms} ms/{mb} MB" for phase, (ms, mb) in r["loop_lags"].items())
        name = f"{r['services']} x {r['per_service']}"
        print(f"{name}: worst event-loop delay by phase, and RSS after it: {lags}")
    print(f"Python speed here: {python_speed():.2f}s for a fixed loop (compare across machines)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", help="SERVICESxREAL_SERVERS (repeatable)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle with the table")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = parser.parse_args()
    if args.one:
        services, per_service = (int(n) for n in args.one.split("x"))
        print(json.dumps(asyncio.run(bench(services, per_service, args.idle))))
        return
    sizes = args.size or [f"{a}x{b}" for a, b in SIZES]
    results = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", size, "--idle", str(args.idle)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results.append(json.loads(out.stdout.splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
