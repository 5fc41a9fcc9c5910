"""Records of what the agent owns: round trip, atomic replacement, unreadable files, and the
removal of a killed run's VIPs that the configuration no longer names."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from pathlib import Path

import pytest

from lvsagent.config.model import Config, VirtualAddress, VrrpInstance
from lvsagent.ipvs import ServiceKey
from lvsagent.owned import owned_services, owned_vips, remove_orphan_vips

KEYS = {
    ServiceKey.for_address("10.0.0.1", 80),
    ServiceKey.for_address("2001:db8::1", 53, "udp"),
    ServiceKey.for_fwmark(7, 6),
}


def test_keys_survive_a_round_trip_in_a_file_only_the_agent_reads(tmp_path):
    state_dir = tmp_path / "state"
    owned_services(str(state_dir)).save(KEYS)
    assert owned_services(str(state_dir)).load() == KEYS
    assert os.stat(state_dir / "ipvs-services.json").st_mode & 0o777 == 0o600
    assert os.listdir(state_dir) == ["ipvs-services.json"]  # no temporary left behind


def test_a_missing_file_is_an_empty_record_without_warning(tmp_path, caplog):
    assert owned_services(str(tmp_path)).load() == set()
    assert caplog.records == []


def test_an_unchanged_record_is_not_written_again(tmp_path):
    owned = owned_services(str(tmp_path))
    owned.save(KEYS)
    os.utime(owned.path, (0, 0))
    owned.save(set(KEYS))
    assert os.stat(owned.path).st_mtime == 0


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"services": 5}',
        '{"services": ["10.0.0.1:80"]}',
        '{"services": [{"family": 4, "address": "10.0.0.1", "port": 80}]}',
        '{"services": [{"family": 5, "fwmark": 1}]}',
        '{"services": [{"family": 4, "fwmark": 1, "colour": "red"}]}',
        "\udcff",
    ],
)
def test_a_corrupt_record_is_a_warning_and_an_empty_record(tmp_path, caplog, text):
    owned = owned_services(str(tmp_path))
    with open(owned.path, "wb") as handle:
        handle.write(text.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        assert owned.load() == set()
    assert f"Cannot read {owned.path}" in caplog.text


def test_an_unreadable_record_is_a_warning(tmp_path, caplog):
    owned = owned_services(str(tmp_path))
    os.mkdir(owned.path)
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        assert owned.load() == set()
    assert "Cannot read" in caplog.text


def test_a_record_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        owned_services(str(blocker)).save(KEYS)
    assert "Cannot record the services lvs-agent owns" in caplog.text


def test_the_file_lists_entries_in_a_stable_order(tmp_path):
    owned = owned_services(str(tmp_path))
    owned.save(KEYS)
    first = Path(owned.path).read_text()
    os.unlink(owned.path)
    owned_services(str(tmp_path)).save(set(reversed(sorted(KEYS, key=str))))
    assert Path(owned.path).read_text() == first
    assert {entry["family"] for entry in json.loads(first)["services"]} == {4, 6}


# -- VIPs ------------------------------------------------------------------------------------


def vip(text: str, dev: str = "eth0") -> tuple:
    return ipaddress.ip_interface(text), dev


def instance(name: str, *vips: str, excluded=(), interface="eth0") -> VrrpInstance:
    return VrrpInstance(
        name,
        interface=interface,
        virtual_ipaddresses=[VirtualAddress(ipaddress.ip_interface(v)) for v in vips],
        virtual_ipaddresses_excluded=[
            VirtualAddress(ipaddress.ip_interface(v), dev="eth1") for v in excluded
        ],
    )


class FakeAddresses:
    """AddressManager's present/remove over a set of (address, dev); `broken` devices fail."""

    def __init__(self, *held):
        self.held = set(held)
        self.broken: set = set()

    async def present(self, vip, dev):
        if dev in self.broken:
            raise OSError(19, "No such device")
        return (vip.address, dev) in self.held

    async def remove(self, vip, dev):
        self.held.discard((vip.address, dev))


def test_vips_the_configuration_dropped_are_removed_and_nothing_else(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")
    record = owned_vips(str(tmp_path))
    dropped, kept, by_hand = vip("10.0.0.2/24"), vip("10.0.0.1/24"), vip("10.0.0.9/24")
    record.save({kept, dropped, vip("10.0.0.3/32", "eth1")})
    addresses = FakeAddresses(kept, dropped, by_hand)
    unicast_only = instance("VI_2", "10.0.0.4/24", interface=None)  # records nothing
    config = Config(
        vrrp_instances=[instance("VI_1", "10.0.0.1/24", excluded=["10.0.0.3"]), unicast_only]
    )
    asyncio.run(remove_orphan_vips(record, config, addresses))
    assert addresses.held == {kept, by_hand}
    assert owned_vips(str(tmp_path)).load() == {kept, vip("10.0.0.3/32", "eth1")}
    assert "Removing VIP 10.0.0.2/24 from eth0 left by a previous run" in caplog.text


def test_a_vip_that_cannot_be_removed_stays_recorded(tmp_path, caplog):
    record = owned_vips(str(tmp_path))
    gone = vip("10.0.0.2/24", "eth9")
    record.save({gone})
    addresses = FakeAddresses(gone)
    addresses.broken.add("eth9")
    asyncio.run(remove_orphan_vips(record, Config(), addresses))
    assert owned_vips(str(tmp_path)).load() == {gone}
    assert "Cannot remove VIP 10.0.0.2/24 from eth9" in caplog.text


@pytest.mark.parametrize(
    "entry",
    [
        {"address": "10.0.0.2/24"},
        {"address": "10.0.0.2/24", "dev": ""},
        {"address": "x", "dev": "a"},
    ],
)
def test_a_corrupt_vip_record_removes_nothing(tmp_path, caplog, entry):
    record = owned_vips(str(tmp_path))
    with open(record.path, "w") as handle:
        json.dump({"vips": [entry]}, handle)
    addresses = FakeAddresses(vip("10.0.0.2/24"))
    asyncio.run(remove_orphan_vips(record, Config(), addresses))
    assert addresses.held == {vip("10.0.0.2/24")}
    assert "Cannot read" in caplog.text
