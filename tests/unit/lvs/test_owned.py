"""The record of owned IPVS services: round trip, atomic replacement, unreadable files."""

from __future__ import annotations

import json
import logging
import os

import pytest

from lvsagent.ipvs import ServiceKey
from lvsagent.lvs.owned import OwnedServices

KEYS = {
    ServiceKey.for_address("10.0.0.1", 80),
    ServiceKey.for_address("2001:db8::1", 53, "udp"),
    ServiceKey.for_fwmark(7, 6),
}


def test_keys_survive_a_round_trip_in_a_file_only_the_agent_reads(tmp_path):
    path = tmp_path / "state" / "ipvs-services.json"
    OwnedServices(str(path)).save(KEYS)
    assert OwnedServices(str(path)).load() == KEYS
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(path.parent) == ["ipvs-services.json"]  # no temporary left behind


def test_a_missing_file_is_an_empty_record_without_warning(tmp_path, caplog):
    assert OwnedServices(str(tmp_path / "absent.json")).load() == set()
    assert caplog.records == []


def test_an_unchanged_record_is_not_written_again(tmp_path):
    path = tmp_path / "ipvs-services.json"
    owned = OwnedServices(str(path))
    owned.save(KEYS)
    os.utime(path, (0, 0))
    owned.save(set(KEYS))
    assert os.stat(path).st_mtime == 0


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
    path = tmp_path / "ipvs-services.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        assert OwnedServices(str(path)).load() == set()
    assert f"Cannot read {path}" in caplog.text


def test_an_unreadable_record_is_a_warning(tmp_path, caplog):
    path = tmp_path / "ipvs-services.json"
    path.mkdir()
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        assert OwnedServices(str(path)).load() == set()
    assert "Cannot read" in caplog.text


def test_a_record_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    owned = OwnedServices(str(blocker / "ipvs-services.json"))
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        owned.save(KEYS)
    assert "Cannot record the IPVS services" in caplog.text


def test_the_file_lists_services_in_a_stable_order(tmp_path):
    path = tmp_path / "ipvs-services.json"
    OwnedServices(str(path)).save(KEYS)
    first = path.read_text()
    path.unlink()
    OwnedServices(str(path)).save(set(reversed(sorted(KEYS, key=str))))
    assert path.read_text() == first
    assert {entry["family"] for entry in json.loads(first)["services"]} == {4, 6}
