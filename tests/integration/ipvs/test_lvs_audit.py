"""The audit puts back exactly what was changed by hand in a large table (in the guest).

The engine builds 100 virtual servers x 9 real servers (1,000 kernel objects); ten entries are
then changed with ipvsadm behind its back: weights, a removed real server, a stray one, a
scheduler. The next audits revert exactly those ten, each logged once, and the table is again
what it built, as `ipvsadm -Ln` shows it.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess

import pytest

from lvsagent.config import loads
from lvsagent.lvs.engine import LvsEngine
from lvsagent.lvs.netlink_thread import IpvsThread
from lvsagent.vrrp.machine import LoopClock

pytestmark = pytest.mark.ipvs

SERVICES, PER_SERVICE = 100, 9


def vip(index: int) -> str:
    return f"10.80.{index // 250}.{index % 250 + 1}"


def config_text() -> str:
    blocks = []
    for vs in range(SERVICES):
        members = "".join(
            f"  real_server 10.81.{vs}.{i + 1} 80 {{\n    weight 5\n  }}\n"
            for i in range(PER_SERVICE)
        )
        head = f"virtual_server {vip(vs)} 80 {{\n  protocol TCP\n  lvs_sched wrr\n  lvs_method DR\n"
        blocks.append(f"{head}{members}}}\n")
    return "".join(blocks)


HAND_EDITS = [  # ten changes, each undone by one change of the audit
    *(
        ["-e", "-t", f"{vip(vs)}:80", "-r", f"10.81.{vs}.1:80", "-g", "-w", "1"]
        for vs in (3, 40, 77)
    ),
    ["-e", "-t", f"{vip(5)}:80", "-r", "10.81.5.9:80", "-m", "-w", "5"],  # forwarding
    *(["-d", "-t", f"{vip(vs)}:80", "-r", f"10.81.{vs}.2:80"] for vs in (10, 60)),
    *(["-a", "-t", f"{vip(vs)}:80", "-r", "10.99.0.1:80", "-g", "-w", "1"] for vs in (20, 90)),
    ["-E", "-t", f"{vip(50)}:80", "-s", "rr"],
    ["-E", "-t", f"{vip(99)}:80", "-s", "wlc"],
]


def ipvsadm(*args: str) -> str:
    done = subprocess.run(["ipvsadm", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"ipvsadm {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_the_audit_reverts_exactly_the_hand_edits(caplog):
    caplog.set_level(logging.WARNING, logger="lvsagent.lvs")

    async def scenario():
        engine = LvsEngine(
            loads(config_text()),
            IpvsThread(),
            LoopClock(asyncio.get_running_loop()),
            resync_interval=0.5,
            audit_share=1.0,  # what the audits revert, not their pace (AUDIT_SHARE's is slow)
        )
        await engine.start()
        built = ipvsadm("-Ln")
        assert built.count(" Route ") == SERVICES * PER_SERVICE
        caplog.clear()
        for edit in HAND_EDITS:
            ipvsadm(*edit)
        assert ipvsadm("-Ln") != built
        for _tick in range(100):  # 10 s at most (two full audits take about 1 s)
            await asyncio.sleep(0.1)
            if ipvsadm("-Ln") == built:
                break
        await asyncio.sleep(1.5)  # further audits: nothing more to revert
        await engine.stop()
        return built

    ipvsadm("-C")
    try:
        built = asyncio.run(scenario())
    finally:
        ipvsadm("-C")
    reverted = [r.getMessage() for r in caplog.records if "changed outside" in r.getMessage()]
    assert len(reverted) == len(HAND_EDITS), reverted
    actions = sorted(message.split(": ", 1)[1].split()[0] for message in reverted)
    assert actions == sorted(
        ["edit_destination"] * 4
        + ["add_destination"] * 2
        + ["delete_destination"] * 2
        + ["edit_service"] * 2
    )
    assert "10.99.0.1" not in built
