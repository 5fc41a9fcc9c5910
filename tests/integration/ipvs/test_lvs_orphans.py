"""A killed lvs-agent's services are cleaned by the next run, and nothing else is touched.

The agent declares two virtual servers beside a service made by hand with ipvsadm; it is
killed with SIGKILL (so it removes nothing) and started again with one virtual server less.
The orphan goes; the remaining virtual server and the hand-made service are exactly as they
were, as `ipvsadm -S -n` shows them. Killed again and started without virtual servers, it
removes the last one it owned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ipvs

AGENT_PATH = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"

KEPT, ORPHAN = "10.79.0.100:80", "10.79.0.101:443"

VIRTUAL_SERVER = """\
virtual_server {address} {port} {{
    lvs_sched rr
    lvs_method DR
    persistence_timeout 60
    protocol TCP
    real_server {real_server} {port} {{
        weight {weight}
    }}
}}
"""

BOTH = VIRTUAL_SERVER.format(
    address="10.79.0.100", port=80, real_server="10.79.0.11", weight=100
) + VIRTUAL_SERVER.format(address="10.79.0.101", port=443, real_server="10.79.0.12", weight=7)
ONE = BOTH[: BOTH.index("virtual_server", 1)]


class Agent:
    """lvs-agent in the director's namespace; its state folder is the control socket's."""

    def __init__(self, host, workdir: Path):
        self.host = host
        self.config = workdir / "lvs-agent.conf"
        self.socket = workdir / "control.sock"
        self.record = workdir / "ipvs-services.json"
        self.log = workdir / "agent.log"
        self.process = None
        self.starts = 0

    def start(self, config_text: str) -> None:
        self.config.write_text(config_text)
        self.starts += 1
        with open(self.log, "ab") as log:
            self.process = self.host.popen(
                [sys.executable, "-m", "lvsagent", "run", "-f", self.config,
                 "--control-socket", self.socket, "--log-level", "DEBUG"],
                stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(AGENT_PATH)},
            )  # fmt: skip
        self.host.wait_for(lambda: self.started() or self.process.poll() is not None, timeout=60)
        assert self.started(), self.logs()

    def started(self) -> bool:
        return self.logs().count("services declared") == self.starts

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def recorded(self) -> list:
        services = json.loads(self.record.read_text())["services"]
        return [f"{service['address']}:{service['port']}" for service in services]

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def saved_table(host) -> list:
    """`ipvsadm -S -n`: every service and real server as the command that would recreate it."""
    return sorted(host.run(["ipvsadm", "-S", "-n"]).stdout.splitlines())


def test_a_killed_agents_orphans_are_removed_and_nothing_else(lab):
    director = lab.host("director", "10.79.0.2/24")
    director.run(["ipvsadm", "-A", "-t", "10.79.0.200:8080", "-s", "wlc"])
    director.run(["ipvsadm", "-a", "-t", "10.79.0.200:8080", "-r", "10.79.0.50:8080", "-g"])
    hand_made = saved_table(director)
    agent = Agent(director, lab.workdir)
    agent.start(BOTH)
    before = saved_table(director)
    assert [line for line in before if line.startswith("-A")] == [
        f"-A -t {KEPT} -s rr -p 60",
        f"-A -t {ORPHAN} -s rr -p 60",
        "-A -t 10.79.0.200:8080 -s wlc",
    ], before
    agent.kill()
    assert saved_table(director) == before  # killed: nothing was cleaned up
    assert agent.recorded() == [KEPT, ORPHAN]

    agent.start(ONE)
    after = saved_table(director)
    assert after == [line for line in before if f"-t {ORPHAN} " not in line], agent.logs()
    assert "Removing Virtual Server [10.79.0.101]:443 left by a previous run" in agent.logs()
    assert "IPVS: 1 services declared, 1 changes applied" in agent.logs()
    assert agent.recorded() == [KEPT]

    # Killed again, then started with no virtual server at all: IPVS is opened to clean up.
    agent.kill()
    agent.start("! VRRP only\n")
    assert saved_table(director) == hand_made, agent.logs()
    assert "Removing Virtual Server [10.79.0.100]:80 left by a previous run" in agent.logs()
    assert "IPVS: 0 services declared, 1 changes applied" in agent.logs()
    assert agent.recorded() == []

    agent.process.terminate()
    assert agent.process.wait(timeout=30) == 0, agent.logs()[-4000:]
    assert saved_table(director) == hand_made
