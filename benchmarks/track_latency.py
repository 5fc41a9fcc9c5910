"""How late track_file and vrrp_track_process see a change, and what a /proc scan costs.

keepalived is told at once (inotify, the proc connector); lvs-agent polls: a file's identity
every second, /proc every second. This prints, over a few trials, the delay from writing the
file / killing the process to the tracker telling its instances, and the time one /proc scan
takes on this machine (it runs in a worker thread, not on the loop).

    python3 benchmarks/track_latency.py [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from lvsagent.config.model import TrackFile, TrackProcess  # noqa: E402
from lvsagent.vrrp.track_file import FileTracker  # noqa: E402
from lvsagent.vrrp.track_process import ProcessWatch, read_processes  # noqa: E402


async def file_delays(directory: str, trials: int) -> list[float]:
    path = os.path.join(directory, "value")
    tracker = FileTracker(TrackFile("tf", path), asyncio.get_running_loop())
    await tracker.start()
    seen = asyncio.Event()
    tracker.subscribe(lambda _name, _value: seen.set())
    delays = []
    for trial in range(1, trials + 1):
        await asyncio.sleep(0.37 * trial % 1)  # not in step with the poll
        seen.clear()
        started = time.monotonic()
        with open(path, "w") as out:
            out.write(f"{trial}\n")
        await seen.wait()
        delays.append(time.monotonic() - started)
    await tracker.stop()
    return delays


async def process_delays(directory: str, trials: int) -> list[float]:
    name = f"bench{os.getpid() % 100000}"
    program = os.path.join(directory, name)
    shutil.copy("/bin/sleep", program)
    worker = subprocess.Popen([program, "1000"])
    watch = ProcessWatch(asyncio.get_running_loop())
    tracker = await watch.add(TrackProcess("tp", name))
    changed = asyncio.Event()
    tracker.subscribe(lambda _name, _ok: changed.set())
    delays = []
    for trial in range(trials):
        await asyncio.sleep(0.37 * (trial + 1) % 1)
        changed.clear()
        started = time.monotonic()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        else:
            worker = subprocess.Popen([program, "1000"])
        await changed.wait()
        delays.append(time.monotonic() - started)
    if worker.poll() is None:
        worker.kill()
        worker.wait()
    await watch.remove("tp")
    return delays


def scan_cost(with_cmdline: bool, rounds: int = 20) -> tuple[float, int]:
    started = time.perf_counter()
    for _round in range(rounds):
        count = len(read_processes("/proc", with_cmdline))
    return (time.perf_counter() - started) / rounds, count


def summary(delays: list[float]) -> str:
    return (
        f"median {statistics.median(delays) * 1000:.0f} ms, "
        f"max {max(delays) * 1000:.0f} ms over {len(delays)} changes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        print(
            "track_file, write -> instances told:",
            summary(asyncio.run(file_delays(directory, args.trials))),
        )
        print(
            "vrrp_track_process, kill/start -> told:",
            summary(asyncio.run(process_delays(directory, args.trials))),
        )
    for with_cmdline in (False, True):
        seconds, count = scan_cost(with_cmdline)
        kind = "names and command lines" if with_cmdline else "names"
        print(f"/proc scan of {count} processes ({kind}): {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
