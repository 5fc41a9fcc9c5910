"""The data-plane seam: the engine drives any DataPlane (here a recording one) the same way
it drives IPVS; the agent's choice of plane, its hint when IPVS is missing, the reload that
would switch planes, and the libnftables client's calls and failures."""

from __future__ import annotations

import asyncio
import json
import logging
import random

import pytest
from fakeclock import FakeClock
from fakes import FakeProber

from lvsagent import agent
from lvsagent.config import loads
from lvsagent.config.model import Config, RealServer, VirtualServer
from lvsagent.ipvs import IpvsError, ServiceKey
from lvsagent.lvs import netlink_thread
from lvsagent.lvs.checkers.tcp import TcpCheck
from lvsagent.lvs.dataplane import DataPlane
from lvsagent.lvs.engine import LvsEngine
from lvsagent.nft import client as nft_client
from lvsagent.nft.client import NftClient, NftError
from lvsagent.nft.plane import NftPlane

VIP, RS1, RS2 = "10.0.0.100", "10.1.0.2", "10.1.0.3"
KEY = ServiceKey.for_address(VIP, 80)


class RecordingPlane(DataPlane):
    """Remembers each pass it is asked for and the live table it would then hold."""

    name = "recording"

    def __init__(self):
        self.passes: list = []  # (keys asked for, retired, whole_table)
        self.held: dict = {}
        self.closed = False

    async def sync(self, desired, retired, whole_table):
        self.passes.append((set(desired), set(retired), whole_table))
        self.held.update(desired)
        for key in retired:
            self.held.pop(key, None)
        return [], []

    async def table(self, keys):
        return {key: entry for key, entry in self.held.items() if key in keys}

    async def close(self):
        self.closed = True


def nat_server() -> VirtualServer:
    check = TcpCheck(
        connect_timeout=1, retry=0, delay_before_retry=1, connect_port=80, delay_loop=1
    )
    servers = [RealServer(address, 80, weight=1, checkers=[check]) for address in (RS1, RS2)]
    return VirtualServer(address=VIP, port=80, lvs_sched="rr", real_servers=servers)


def test_the_engine_drives_a_data_plane_through_the_seam(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")
    plane, clock, prober = RecordingPlane(), FakeClock(), FakeProber()

    async def test():
        config = Config(virtual_servers=[nat_server()])
        engine = LvsEngine(config, plane, clock, rng=random.Random(1), prober=prober)
        await engine.start()
        assert plane.passes == [({KEY}, set(), True)]
        await clock.advance_with_tasks(0)
        prober.fail(RS2, 80)
        await clock.advance_with_tasks(3)
        assert len(plane.passes) == 2 and plane.passes[1][:2] == ({KEY}, set())  # the change
        assert [d.address for d in plane.held[KEY][1]] == [RS1]
        status = await engine.status()
        assert [(row["address"], row["health"]) for row in status[0]["realservers"]] == [
            (RS1, "up"),
            (RS2, "down"),
        ]
        await engine.stop()
        assert plane.passes[-1][1] == {KEY} and plane.held == {} and plane.closed

    asyncio.run(test())
    assert "recording: 1 services declared, 0 changes applied" in caplog.text


def test_ipvs_missing_says_how_to_choose_nftables(monkeypatch):
    def no_ipvs():
        raise IpvsError("IPVS is not available in this kernel: load the ip_vs module", 2)

    monkeypatch.setattr(netlink_thread, "IpvsThread", no_ipvs)
    with pytest.raises(IpvsError) as raised:
        agent.data_plane("ipvs")
    assert "global_defs { lvs_data_plane nftables }" in str(raised.value)
    assert raised.value.errno == 2


def test_nftables_is_chosen_by_name(monkeypatch):
    monkeypatch.setattr(netlink_thread, "IpvsThread", pytest.fail)
    monkeypatch.setattr(nft_client, "load_library", FakeLibnftables)
    assert isinstance(agent.data_plane("nftables"), NftPlane)


def test_a_reload_may_not_switch_data_planes():
    ipvs = loads("global_defs {\n}\n", "a.conf")
    nft = loads("global_defs {\n lvs_data_plane nftables\n}\n", "b.conf")
    assert agent.changes_data_plane(ipvs, nft, engine_running=True) == (
        "lvs_data_plane cannot change from ipvs to nftables on reload: restart the agent"
    )
    assert agent.changes_data_plane(ipvs, nft, engine_running=False) == ""
    assert agent.changes_data_plane(nft, nft, engine_running=True) == ""


class FakeLibnftables:
    """libnftables' calls the client makes, answering each document with `replies`."""

    def __init__(self, *replies):
        self.replies = list(replies)  # (status, output, error)
        self.documents = []
        self.output = self.error = b""

    def nft_ctx_new(self, flags):
        return 1

    def nft_ctx_output_set_flags(self, ctx, flags):
        assert flags == 1 << 4  # JSON

    def nft_ctx_buffer_output(self, ctx):
        pass

    nft_ctx_buffer_error = nft_ctx_buffer_output

    def nft_run_cmd_from_buffer(self, ctx, document):
        self.documents.append(json.loads(document))
        status, self.output, self.error = self.replies.pop(0)
        return status

    def nft_ctx_get_output_buffer(self, ctx):
        return self.output

    def nft_ctx_get_error_buffer(self, ctx):
        return self.error


def test_nftables_failures_are_errors_and_an_absent_table_is_none():
    absent = b"Error: No such file or directory\nlist table ip lvs_ha\n              ^^^^^^\n"
    listing = {"nftables": [{"table": {"family": "ip", "name": "lvs_ha"}}]}
    library = FakeLibnftables(
        (-1, b"", absent),
        (0, json.dumps(listing).encode(), b""),
        (-1, b"", b"Error: Could not process rule: No such file or directory\n"),
    )
    client = NftClient(library)
    assert asyncio.run(client.list_table("ip", "lvs_ha")) is None
    assert asyncio.run(client.list_table("ip", "lvs_ha")) == listing
    table = {"table": {"family": "ip", "name": "lvs_ha"}}
    assert library.documents[0] == {"nftables": [{"list": table}]}
    with pytest.raises(NftError, match="nftables: Error: Could not process rule"):
        asyncio.run(client.apply([{"add": table}]))
    assert library.documents[2] == {"nftables": [{"add": table}]}
    asyncio.run(client.apply([]))  # nothing to do: no call
    assert len(library.documents) == 3


def test_without_libnftables_the_error_names_the_package(monkeypatch):
    monkeypatch.setattr(nft_client, "LIBRARY", "libnftables-absent.so.0")
    with pytest.raises(NftError, match="apt-get install nftables"):
        NftClient()
