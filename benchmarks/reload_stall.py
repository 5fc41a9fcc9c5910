"""Does a reload stall VRRP? lvs-agent side by side with keepalived, same lab, same files.

Two directors (priorities 150 and 100, advert_int 1) on a namespace LAN. The master is given a
new configuration and SIGHUP: the same instance plus 10 MB of vrrp_script blocks no instance
tracks (slow to parse, accepted by both), or plus an `include` of a FIFO nobody writes. Printed
per scenario and implementation: the longest time without an advert from the master on the
wire from the SIGHUP until the reload ended (+1 s), how long the reload took, and whether the
backup took the VIP meanwhile.

Run as root: `.venv/bin/python benchmarks/reload_stall.py [--trials 3] [--megabytes 10]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration" / "netns")]

from vrrp_support import (  # noqa: E402
    Agent,
    Keepalived,
    advert_times,
    config,
    holds,
    instance_block,
    longest_gap,
    unused_scripts,
)

from testbed.netns import Lab  # noqa: E402

ADVERT_INT = 1.0
RELOAD_TIMEOUT = 120.0
# log lines that end a reload, taken or refused (lvs-agent's, then keepalived's)
ENDS = ("Reload finished in", "keeping the running configuration", "Reload refused")
ENDS += ("Reload complete",)


class LvsAgentNode(Agent):
    def conf_path(self) -> Path:
        return self.conf

    def hup(self) -> None:
        self.signal(signal.SIGHUP)


class KeepalivedNode(Keepalived):
    def conf_path(self) -> Path:
        return Path(self.tmp_path) / f"keepalived-{self.host.short_name}.conf"

    def hup(self) -> None:
        os.kill(self.proc.pid, signal.SIGHUP)  # the parent; it tells its children


IMPLEMENTATIONS = {"lvs-agent": LvsAgentNode, "keepalived": KeepalivedNode}


class LogWatch:
    """Reads only what a node's log gained since the last look (the logs grow large)."""

    def __init__(self, node) -> None:
        self.node = node
        self.offset = len(node.log_text().encode())

    def reload_ended(self) -> bool:
        path = self.node.log if isinstance(self.node, Agent) else keepalived_log(self.node)
        with open(path, "rb") as log:
            log.seek(self.offset)
            new = log.read().decode(errors="replace")
        self.offset += len(new.encode())
        return any(end in new for end in ENDS)


def keepalived_log(node) -> Path:
    return Path(node.tmp_path) / f"keepalived-{node.host.short_name}.log"


def one_reload(lab, kind, workdir: Path, extra: str, fifo: Path | None) -> dict:
    d1, d2 = lab.hosts["d1"], lab.hosts["d2"]
    base = config(instance_block(150))
    master = kind(d1, workdir, base).start()
    backup = kind(d2, workdir, config(instance_block(100))).start()
    adverts = lab.capture("proto 112")
    try:
        d1.wait_for(lambda: holds(d1) and not holds(d2), 30)
        time.sleep(2 * ADVERT_INT)
        master.conf_path().write_text(base + extra)
        watch = LogWatch(master)
        start = time.time()
        master.hup()
        took, backup_took_over = None, False
        while time.time() - start < RELOAD_TIMEOUT:
            backup_took_over |= backup_holds(d2)
            if watch.reload_ended():
                took = time.time() - start
                break
            time.sleep(0.2)
        end = time.time()
        if fifo is not None:  # a writer that closes at once: a blocked reader sees EOF
            with contextlib.suppress(OSError):  # ENXIO: no reader is waiting
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        time.sleep(ADVERT_INT)
        backup_took_over |= backup_holds(d2)
        adverts.stop()
        gap = longest_gap(advert_times(adverts, d1.ip), start, end + ADVERT_INT)
        return {"gap": gap, "took": took, "takeover": backup_took_over}
    finally:
        adverts.stop()
        for node in (master, backup):
            with_timeout_stop(node)


def backup_holds(host) -> bool:
    """Whether `host` holds the VIP; False when `ip` itself is too slow to say (a loaded host)."""
    try:
        return holds(host)
    except subprocess.TimeoutExpired:
        return False


def with_timeout_stop(node) -> None:
    try:
        node.stop(10)
    except Exception:  # noqa: BLE001 - a stuck node is killed with the lab
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)


def cell(result: dict) -> str:
    took = f"{result['took']:.1f} s" if result["took"] is not None else "never"
    takeover = ", BACKUP TOOK OVER" if result["takeover"] else ""
    return f"gap {result['gap']:.2f} s, reload {took}{takeover}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--megabytes", type=float, default=10.0)
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="reload-bench-") as scratch:
        workdir = Path(scratch)
        fifo = workdir / "pipe.conf"
        os.mkfifo(fifo)
        scenarios = {
            f"{options.megabytes:g} MB configuration": (unused_scripts(options.megabytes), None),
            "include of a FIFO": (f"include {fifo}\n", fifo),
        }
        print(f"advert_int {ADVERT_INT:g} s; longest advert gap of the master during a reload")
        with Lab(workdir=workdir / "lab") as lab:
            lab.host("d1", "192.168.77.11/24")
            lab.host("d2", "192.168.77.12/24")
            for title, (extra, scenario_fifo) in scenarios.items():
                for trial in range(options.trials):
                    for name, kind in IMPLEMENTATIONS.items():
                        run_dir = workdir / f"{name}-{len(title)}-{trial}"
                        run_dir.mkdir()
                        result = one_reload(lab, kind, run_dir, extra, scenario_fifo)
                        print(f"  {title:28} {name:11} {cell(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
