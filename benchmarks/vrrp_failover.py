"""VRRP failover figures of lvs-agent side by side with keepalived, in the same lab topology.

Two directors (priorities 150 and 100) on a namespace LAN, for VRRPv2 advert_int 1 and VRRPv3
advert_int 0.1: time to first master (both started as BACKUP), SIGTERM handover (priority-0
advert), link-cut takeover (Master_Down_Interval), N trials each, median and worst against the
RFC bound. Then, with every CPU saturated by busy loops, how often the backup wrongly took
over while the master was alive (keepalived's "timer expired" problem).

Run as root: `.venv/bin/python benchmarks/vrrp_failover.py [--trials 20] [--hog-seconds 30]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration" / "netns")]

from vrrp_support import VIP4, Agent, Keepalived, config, instance_block  # noqa: E402

from testbed.netns import Lab  # noqa: E402

SETTINGS = {
    "VRRPv2 advert_int 1": {"version": 2, "advert_int": 1.0},
    "VRRPv3 advert_int 0.1": {"version": 3, "advert_int": 0.1},
}
IMPLEMENTATIONS = {"lvs-agent": Agent, "keepalived": Keepalived}
HIGH, LOW = 150, 100


def skew(priority: int, interval: float, version: int) -> float:
    return (256 - priority) / 256 * (interval if version == 3 else 1.0)


def rfc_bounds(version: int, interval: float) -> dict[str, float]:
    return {
        "time to first master": 3 * interval + skew(HIGH, interval, version),
        "SIGTERM handover": skew(LOW, interval, version),
        "link-cut takeover": 3 * interval + skew(LOW, interval, version),
    }


def has_vip(host) -> bool:
    out = subprocess.run(
        ["ip", "-n", host.name, "-o", "addr", "show", "dev", host.ifname],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return f" {VIP4}/" in out


def wait_until(predicate, timeout: float) -> float:
    """Seconds until `predicate()` held (polled every 5 ms); raises on timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("no failover within the timeout")
        time.sleep(0.005)
    return time.monotonic() - start


def signal_group(node, signum: int) -> None:
    os.killpg(node.proc.pid, signum)


def one_trial(lab, kind, settings: dict, workdir: Path) -> dict[str, float]:
    """Start, SIGTERM handover, restart (preempt), link cut; the figures of one run."""
    d1, d2 = lab.hosts["d1"], lab.hosts["d2"]
    interval = settings["advert_int"]
    generous = 10 * interval + 5
    high = kind(d1, workdir, config(instance_block(HIGH, **settings)))
    low = kind(d2, workdir, config(instance_block(LOW, **settings)))
    figures = {}
    started = time.monotonic()
    high.start()
    low.start()
    wait_until(lambda: has_vip(d1), generous)
    figures["time to first master"] = time.monotonic() - started
    time.sleep(3 * interval)
    signal_group(high, signal.SIGTERM)
    figures["SIGTERM handover"] = wait_until(lambda: has_vip(d2), generous)
    high.proc.wait(10)
    high.start()
    wait_until(lambda: has_vip(d1) and not has_vip(d2), generous)
    time.sleep(3 * interval)
    d1.link_down()
    figures["link-cut takeover"] = wait_until(lambda: has_vip(d2), generous)
    d1.link_up()
    for node in (high, low):
        signal_group(node, signal.SIGTERM)
        node.proc.wait(10)
    return figures


def busy_loops() -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _cpu in range(os.cpu_count() or 2)
    ]


def false_takeovers(lab, kind, settings: dict, workdir: Path, seconds: float) -> int:
    """How many times the backup held the VIP while the master was alive, under a CPU hog."""
    d1, d2 = lab.hosts["d1"], lab.hosts["d2"]
    high = kind(d1, workdir, config(instance_block(HIGH, **settings))).start()
    low = kind(d2, workdir, config(instance_block(LOW, **settings))).start()
    wait_until(lambda: has_vip(d1), 30)
    time.sleep(2)
    hogs = busy_loops()
    takeovers, holding = 0, False
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now_holding = has_vip(d2)
            takeovers += now_holding and not holding
            holding = now_holding
            time.sleep(0.01)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for node in (high, low):
            signal_group(node, signal.SIGTERM)
            node.proc.wait(10)
    return takeovers


def print_table(title: str, bounds: dict, results: dict) -> None:
    print(f"\n{title}: median / worst of {len(next(iter(results.values())))} trials (seconds)")
    names = list(results)
    print(f"  {'':24}" + "".join(f"{name:>22}" for name in names) + f"{'RFC bound':>12}")
    for metric, bound in bounds.items():
        cells = ""
        for name in names:
            values = [trial[metric] for trial in results[name]]
            cells += f"{statistics.median(values):>12.3f} /{max(values):>7.3f}"
        print(f"  {metric:24}{cells}{bound:>12.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--hog-seconds", type=float, default=30.0)
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vrrp-bench-") as scratch:
        workdir = Path(scratch)
        with Lab(workdir=workdir / "lab") as lab:
            lab.host("d1", "192.168.77.11/24")
            lab.host("d2", "192.168.77.12/24")
            for title, settings in SETTINGS.items():
                results = {name: [] for name in IMPLEMENTATIONS}
                for trial in range(options.trials):
                    for name, kind in IMPLEMENTATIONS.items():
                        run_dir = workdir / f"{name}-{trial}-{settings['version']}"
                        run_dir.mkdir()
                        results[name].append(one_trial(lab, kind, settings, run_dir))
                    print(f"  {title}: trial {trial + 1}/{options.trials} done", file=sys.stderr)
                print_table(title, rfc_bounds(settings["version"], settings["advert_int"]), results)
            print(f"\nCPU saturated by {os.cpu_count()} busy loops for {options.hog_seconds:g} s:")
            for title, settings in SETTINGS.items():
                cells = []
                for name, kind in IMPLEMENTATIONS.items():
                    run_dir = workdir / f"{name}-hog-{settings['version']}"
                    run_dir.mkdir()
                    count = false_takeovers(lab, kind, settings, run_dir, options.hog_seconds)
                    cells.append(f"{name} {count}")
                print(f"  {title}: backup took over while the master was alive: {', '.join(cells)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
