"""Helpers of the VRRP namespace tests: configurations, lvs-agent processes, who holds the VIP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from testbed import keepalived

REPO = Path(__file__).resolve().parents[3]
MODULE_UTILS = REPO / "plugins" / "module_utils"
PYTHON = os.environ.get("LVS_AGENT_PYTHON") or str(REPO / ".venv" / "bin" / "python")
VIP4 = "192.168.77.100"
VIP4_2 = "192.168.77.101"  # a second instance's
VIP6 = "fd00:77::100"


def instance_block(
    priority: int,
    *,
    name: str = "VI_1",
    vrid: int = 51,
    vip: str = f"{VIP4}/24",
    version: int = 2,
    advert_int: float = 1,
    auth_pass: str | None = None,
    extra: str = "",
) -> str:
    auth = (
        f"  authentication {{\n    auth_type PASS\n    auth_pass {auth_pass}\n  }}\n"
        if auth_pass
        else ""
    )
    return (
        f"vrrp_instance {name} {{\n  state BACKUP\n  interface eth0\n"
        f"  virtual_router_id {vrid}\n  priority {priority}\n  advert_int {advert_int:g}\n"
        f"  version {version}\n{auth}{extra}"
        f"  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
    )


def sync_group_blocks(priority: int, group_extra: str = "", member_extra: str = "") -> str:
    """vrrp_sync_group G1 of VI_1 (VIP4) and VI_2 (vrid 52, VIP4_2); `member_extra` in VI_1."""
    group = f"vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_2\n  }}\n{group_extra}}}\n"
    return (
        group
        + instance_block(priority, extra=member_extra)
        + instance_block(priority, name="VI_2", vrid=52, vip=f"{VIP4_2}/24")
    )


QUICK_CHECKS = {
    "TCP_CHECK": (
        "TCP_CHECK {\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }"
    ),
    "HTTP_GET": (
        "HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n"
        "      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }"
    ),
}


def virtual_server_block(
    vip: str,
    real_servers,
    *,
    rs_port: int = 80,
    check: str = "TCP_CHECK",
    method: str = "NAT",
    scheduler: str = "rr",
    extra: str = "",
) -> str:
    """A virtual_server on `vip` port 80 over `real_servers`, each checked every second by
    `check` (a key of QUICK_CHECKS) so that a failure shows within seconds; `extra`: more of
    its lines (quorum, sorry_server...)."""
    check_block = QUICK_CHECKS[check]
    servers = "".join(
        f"\n  real_server {address} {rs_port} {{\n    {check_block}\n  }}"
        for address in real_servers
    )
    return (
        f"virtual_server {vip} 80 {{\n  delay_loop 1\n  lvs_sched {scheduler}\n"
        f"  lvs_method {method}\n{extra}"
        f"  protocol TCP{servers}\n}}\n"
    )


def config(*blocks: str, global_extra: str = "") -> str:
    return (
        "global_defs {\n  router_id lab\n  script_user root\n"
        f"  vrrp_garp_master_delay 1\n{global_extra}}}\n" + "".join(blocks)
    )


class Agent:
    """lvs-agent running in a lab host, its configuration, log and control socket in tmp_path."""

    def __init__(self, host, tmp_path: Path, conf_text: str) -> None:
        self.host = host
        self.base = Path(tmp_path) / f"agent-{host.short_name}"
        self.conf = self.base.with_suffix(".conf")
        self.socket = self.base.with_suffix(".sock")
        self.log = self.base.with_suffix(".log")
        self.conf.write_text(conf_text)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Agent:
        with open(self.log, "ab") as log:
            self.proc = self.host.popen(
                [
                    "env",
                    f"PYTHONPATH={MODULE_UTILS}",
                    PYTHON,
                    "-m",
                    "lvsagent",
                    "run",
                    "-f",
                    self.conf,
                    "--control-socket",
                    self.socket,
                    "--state-dir",
                    self.base,
                    "--log-level",
                    "DEBUG",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def signal(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def stop(self, timeout: float = 10) -> int:
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def command(self, command: str) -> subprocess.CompletedProcess:
        return self.host.run(
            [
                "env",
                f"PYTHONPATH={MODULE_UTILS}",
                PYTHON,
                "-m",
                "lvsagent",
                command,
                "--control-socket",
                self.socket,
            ],  # fmt: skip
            check=False,
        )


class Keepalived:
    """Real keepalived in a lab host (testbed.keepalived), with the same small interface."""

    def __init__(self, host, tmp_path: Path, conf_text: str) -> None:
        self.host = host
        self.tmp_path = tmp_path
        self.conf_text = conf_text
        self.proc: subprocess.Popen | None = None

    def start(self) -> Keepalived:
        self.proc = keepalived.start(self.host, self.conf_text, self.tmp_path)
        return self

    def stop(self, timeout: float = 10) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        path = keepalived.log_path(self.host, self.tmp_path)
        return path.read_text(errors="replace") if path.exists() else ""


def holds(host, vip: str = VIP4) -> bool:
    return any(address.split("/")[0] == vip for address in host.addresses())


def holders(hosts, vip: str = VIP4) -> list:
    return [host for host in hosts if holds(host, vip)]


def wait_single_holder(hosts, expected, vip: str = VIP4, timeout: float = 15) -> float:
    """Wait until `expected` alone holds the VIP; returns the seconds it took."""
    start = time.monotonic()
    expected.wait_for(lambda: holders(hosts, vip) == [expected], timeout)
    return time.monotonic() - start


def stays(predicate, seconds: float, interval: float = 0.1) -> bool:
    """True when `predicate()` holds at every check during `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(interval)
    return True


def unused_scripts(megabytes: float) -> str:
    """vrrp_script blocks no instance tracks (so never run), `megabytes` of them: a large
    configuration that is slow to parse and that lvs-agent and keepalived both accept."""
    block = (
        'vrrp_script chk_{0} {{\n  script "/bin/true {0}"\n  interval 2\n  fall 2\n  rise 2\n}}\n'
    )
    count = int(megabytes * 1_000_000 / len(block.format(50000)))
    return "".join(block.format(index) for index in range(count))


def advert_times(capture, source: str) -> list[float]:
    """Capture times (seconds since the epoch) of the VRRP adverts `source` sent."""
    return [
        float(line.split()[0])
        for line in capture.read("-tt")
        if f" {source} > " in line and "VRRP" in line
    ]


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time without an advert between `start` and `end` (epoch seconds)."""
    inside = [start] + [t for t in times if start < t < end] + [end]
    return max(later - earlier for earlier, later in zip(inside, inside[1:]))
