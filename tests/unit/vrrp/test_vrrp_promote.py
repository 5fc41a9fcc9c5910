"""promote_secondaries: set at start when not set, put back at stop only where the agent set it."""

from __future__ import annotations

import asyncio

import pytest

from lvsagent.arpsuppress import ProcSys
from lvsagent.vrrp.promote import PromoteSecondaries


def proc_sys(tmp_path, **flags):
    for ifname, value in flags.items():
        conf = tmp_path / "net" / "ipv4" / "conf" / ifname
        conf.mkdir(parents=True)
        (conf / "promote_secondaries").write_text(f"{value}\n")
    return ProcSys(str(tmp_path))


def flag(tmp_path, ifname):
    return (tmp_path / "net" / "ipv4" / "conf" / ifname / "promote_secondaries").read_text()


@pytest.mark.parametrize(("before", "after"), [(0, "0\n"), (1, "1\n")])
def test_set_while_instances_ask_and_put_back_only_if_the_agent_set_it(tmp_path, before, after):
    promotion = PromoteSecondaries(proc_sys(tmp_path, eth0=before))

    async def scenario():
        await promotion.acquire("eth0")
        await promotion.acquire("eth0")
        assert flag(tmp_path, "eth0") == "1\n"
        await promotion.release("eth0")
        assert flag(tmp_path, "eth0") == "1\n"  # one instance still asks for it
        await promotion.release("eth0")
        assert flag(tmp_path, "eth0") == after

    asyncio.run(scenario())


def test_a_missing_interface_is_left_alone(tmp_path, caplog):
    promotion = PromoteSecondaries(proc_sys(tmp_path))

    async def scenario():
        await promotion.acquire("eth9")
        await promotion.release("eth9")

    asyncio.run(scenario())
    assert "Unable to set promote_secondaries on eth9" in caplog.text
