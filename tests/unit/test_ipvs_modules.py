"""The IPVS modules run in-process against a fake netlink family: arguments, idempotency,
check mode, diff. The real kernel is exercised in tests/integration/ipvs."""

from __future__ import annotations

import errno
import importlib
import json
import os
import socket
import subprocess
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from ipvs_fake import FakeIpvsNetlink
from pyroute2.netlink.exceptions import NetlinkError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = subprocess.check_output([os.path.join(REPO, "tools", "collection-path")], text=True)
if COLLECTIONS.strip() not in sys.path:
    sys.path.insert(0, COLLECTIONS.strip())

PREFIX = "ansible_collections.lvs.ha.plugins"
ipvs = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.ipvs")
ipvs_module = importlib.import_module(f"{PREFIX}.module_utils.ipvs_module")

WEB = {"address": "10.0.0.100", "port": 80}
WEB_KEY = ipvs.ServiceKey.for_address("10.0.0.100", 80)


@pytest.fixture
def kernel():
    return FakeIpvsNetlink()


@pytest.fixture
def run(kernel, capsys, monkeypatch):
    """run(module_name, args, check=False) -> the module's JSON result."""

    def run_module(name, args, check=False):
        module = importlib.import_module(f"{PREFIX}.modules.{name}")
        monkeypatch.setattr(ipvs_module, "IpvsClient", lambda: ipvs.IpvsClient(kernel))
        args = dict(args, _ansible_check_mode=check, _ansible_diff=True)
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)

    return run_module


@pytest.fixture
def client(kernel):
    return ipvs.IpvsClient(kernel)


# -- ipvs_service ---------------------------------------------------------------------------


def test_service_create_is_idempotent(run, client):
    result = run("ipvs_service", WEB)
    assert result["changed"] is True
    assert result["service"]["scheduler"] == "wlc"
    assert result["diff"]["before"] == {}
    assert client.service(WEB_KEY) == ipvs.Service(WEB_KEY, "wlc")
    again = run("ipvs_service", WEB)
    assert again["changed"] is False
    assert again["service"] == result["service"]


def test_service_check_mode_changes_nothing(run, kernel, client):
    result = run("ipvs_service", {**WEB, "scheduler": "rr"}, check=True)
    assert result["changed"] is True
    assert result["service"]["scheduler"] == "rr"
    assert kernel.services == {}
    client.add_service(ipvs.Service(WEB_KEY, "wlc"))
    kernel.commands.clear()
    result = run("ipvs_service", {**WEB, "state": "absent"}, check=True)
    assert result["changed"] is True and result["service"] == {}
    assert client.service(WEB_KEY) is not None
    assert all(command in ("get", "dump") for _request, command in kernel.commands)


@pytest.mark.parametrize(
    "change, field, value",
    [
        ({"scheduler": "rr"}, "scheduler", "rr"),
        ({"persistence_timeout": 300}, "persistence_timeout", 300),
        ({"persistence_netmask": "24"}, "persistence_netmask", "255.255.255.0"),
        ({"scheduler_flags": ["flag-1"]}, "flags", ["flag-1"]),
        ({"one_packet_scheduling": True}, "flags", ["ops"]),
    ],
)
def test_service_changes_each_field_in_place(run, kernel, change, field, value):
    run("ipvs_service", WEB)
    result = run("ipvs_service", {**WEB, **change})
    assert result["changed"] is True
    assert result["service"][field] == value
    assert result["diff"]["before"][field] != value
    assert ("service", "set") in kernel.commands  # edited, never deleted and re-created
    assert ("service", "del") not in kernel.commands
    assert run("ipvs_service", {**WEB, **change})["changed"] is False


def test_service_made_by_ipvsadm_is_left_alone_unless_it_conflicts(run, client):
    made = ipvs.Service(WEB_KEY, "sh", 600, "255.255.255.0", {"sh-port", "ops"})
    client.add_service(made)
    client.add_destination(WEB_KEY, ipvs.Destination("10.0.0.2", 80, "nat", 3))
    assert run("ipvs_service", WEB)["changed"] is False
    assert run("ipvs_service", {**WEB, "scheduler_flags": ["sh-port"]})["changed"] is False
    # dropping ops keeps the scheduler flag; the real server made by hand stays
    result = run("ipvs_service", {**WEB, "one_packet_scheduling": False})
    assert result["changed"] is True
    assert client.service(WEB_KEY) == ipvs.Service(WEB_KEY, "sh", 600, "255.255.255.0", {"sh-port"})
    assert len(client.destinations(WEB_KEY)) == 1


def test_service_flags_follow_the_scheduler_names(run, client):
    run("ipvs_service", {**WEB, "scheduler": "sh", "scheduler_flags": ["flag-2"]})
    assert client.service(WEB_KEY).flags == {"sh-port"}
    assert run("ipvs_service", {**WEB, "scheduler_flags": ["sh-port"]})["changed"] is False
    result = run("ipvs_service", {**WEB, "scheduler_flags": []})
    assert result["changed"] is True and result["service"]["flags"] == []


def test_service_realservers_and_purge(run, client):
    client.add_service(ipvs.Service(WEB_KEY))
    client.add_destination(WEB_KEY, ipvs.Destination("10.0.0.9", 80))
    declared = [{"address": "10.0.0.2"}, {"address": "10.0.0.3", "weight": 5, "forwarding": "nat"}]
    result = run("ipvs_service", {**WEB, "realservers": declared})
    assert result["changed"] is True
    assert sorted(d["address"] for d in result["service"]["realservers"]) == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.9",
    ]
    assert run("ipvs_service", {**WEB, "realservers": declared})["changed"] is False
    check = run("ipvs_service", {**WEB, "realservers": declared, "purge_realservers": True}, True)
    assert {d["address"] for d in check["service"]["realservers"]} == {"10.0.0.2", "10.0.0.3"}
    assert len(client.destinations(WEB_KEY)) == 3
    run("ipvs_service", {**WEB, "realservers": declared, "purge_realservers": True})
    assert {(d.address, d.port, d.weight) for d in client.destinations(WEB_KEY)} == {
        ("10.0.0.2", 80, 1),
        ("10.0.0.3", 80, 5),
    }


def test_service_purge_adds_the_new_real_server_before_deleting_the_old(run, kernel, client):
    """Swapping the only member never leaves the service empty (the agent plans the same way)."""
    client.add_service(ipvs.Service(WEB_KEY))
    client.add_destination(WEB_KEY, ipvs.Destination("10.0.0.9", 80))
    kernel.commands.clear()
    swap = {**WEB, "realservers": [{"address": "10.0.0.2"}], "purge_realservers": True}
    assert run("ipvs_service", swap)["changed"] is True
    changes = [c for c in kernel.commands if c[0] == "dest" and c[1] != "dump"]
    assert changes == [("dest", "add"), ("dest", "del")]
    assert [d.address for d in client.destinations(WEB_KEY)] == ["10.0.0.2"]


def test_service_absent(run, client):
    client.add_service(ipvs.Service(WEB_KEY))
    result = run("ipvs_service", {**WEB, "state": "absent"})
    assert result["changed"] is True and result["diff"]["after"] == {}
    assert client.service(WEB_KEY) is None
    assert run("ipvs_service", {**WEB, "state": "absent"})["changed"] is False


def test_fwmark_ipv6_service(run, client):
    args = {"fwmark": 7, "family": "ipv6", "persistence_timeout": 60, "persistence_netmask": "64"}
    result = run("ipvs_service", args)
    assert result["service"]["family"] == 6 and result["service"]["persistence_netmask"] == 64
    assert client.service(ipvs.ServiceKey.for_fwmark(7, 6)).persistence_timeout == 60
    assert run("ipvs_service", args)["changed"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        ({"fwmark": 1, "address": "10.0.0.1", "port": 80}, "mutually exclusive"),
        ({"address": "10.0.0.1"}, "parameters are required together"),
        ({"protocol": "udp"}, "one of the following is required"),
        ({**WEB, "scheduler": "bogus"}, "value of scheduler must be one of"),
        ({"address": "www.example.com", "port": 80}, "is not an IP address"),
        ({**WEB, "persistence_netmask": "255.0.255.0"}, "is not an IPv4 netmask"),
    ],
)
def test_service_rejects_bad_arguments(run, args, message):
    result = run("ipvs_service", args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_kernel_errors_fail_the_module(run, kernel, monkeypatch):
    monkeypatch.setattr("ipvs_fake.KNOWN_SCHEDULERS", {"wlc"})
    result = run("ipvs_service", {**WEB, "scheduler": "mh"})
    assert result["failed"] is True
    assert result["msg"].endswith("scheduler 'mh' is not available (no ip_vs_mh module)")


# -- ipvs_realserver ------------------------------------------------------------------------

SERVER = {"virtual_address": "10.0.0.100", "virtual_port": 80, "address": "10.0.0.2"}


def test_realserver_needs_the_service(run):
    result = run("ipvs_realserver", SERVER)
    assert result["failed"] is True
    assert result["msg"] == (
        "virtual service [10.0.0.100]:80 does not exist: create it with lvs.ha.ipvs_service"
    )


def test_realserver_lifecycle(run, kernel, client):
    client.add_service(ipvs.Service(WEB_KEY))
    check = run("ipvs_realserver", SERVER, check=True)
    assert check["changed"] is True and client.destinations(WEB_KEY) == []
    result = run("ipvs_realserver", SERVER)
    assert result["changed"] is True
    assert result["realserver"]["port"] == 80  # the service's port
    assert result["realserver"]["forwarding"] == "dr"
    assert run("ipvs_realserver", SERVER)["changed"] is False
    for change in ({"weight": 0}, {"forwarding": "tun"}, {"upper_threshold": 50}):
        changed = run("ipvs_realserver", {**SERVER, **change})
        assert changed["changed"] is True
        assert changed["diff"]["before"] != changed["diff"]["after"]
        assert run("ipvs_realserver", {**SERVER, **change})["changed"] is False
    assert client.destinations(WEB_KEY) == [
        ipvs.Destination("10.0.0.2", 80, "tun", 0, upper_threshold=50)
    ]
    assert ("dest", "del") not in kernel.commands  # changes happen in place
    assert run("ipvs_realserver", {**SERVER, "state": "absent"}, check=True)["changed"] is True
    assert len(client.destinations(WEB_KEY)) == 1
    gone = run("ipvs_realserver", {**SERVER, "state": "absent"})
    assert gone["changed"] is True and gone["realserver"] == {}
    assert client.destinations(WEB_KEY) == []
    assert run("ipvs_realserver", {**SERVER, "state": "absent"})["changed"] is False


def test_realserver_of_a_fwmark_service_on_its_own_port(run, client):
    key = ipvs.ServiceKey.for_fwmark(3)
    client.add_service(ipvs.Service(key))
    client.add_destination(key, ipvs.Destination("10.0.0.2", 0, "dr", 4))
    args = {"fwmark": 3, "address": "10.0.0.3", "port": 8080, "forwarding": "nat"}
    assert run("ipvs_realserver", args)["realserver"]["port"] == 8080
    assert run("ipvs_realserver", {"fwmark": 3, "address": "10.0.0.2"})["changed"] is False
    assert {(d.address, d.port) for d in client.destinations(key)} == {
        ("10.0.0.2", 0),
        ("10.0.0.3", 8080),
    }


# -- ipvs_info ------------------------------------------------------------------------------


def test_info_returns_the_table_as_data(run, client):
    client.add_service(ipvs.Service(WEB_KEY, "rr"))
    client.add_service(ipvs.Service(ipvs.ServiceKey.for_fwmark(2)))
    client.add_destination(WEB_KEY, ipvs.Destination("10.0.0.3", 80, weight=2))
    client.add_destination(WEB_KEY, ipvs.Destination("10.0.0.2", 80))
    result = run("ipvs_info", {})
    assert result["changed"] is False
    web, fwmark = result["services"]
    assert fwmark["fwmark"] == 2 and fwmark["realservers"] == []
    assert web["scheduler"] == "rr" and web["stats"]["connections"] == 0
    assert [(d["address"], d["weight"]) for d in web["realservers"]] == [
        ("10.0.0.2", 1),
        ("10.0.0.3", 2),
    ]
    assert set(web["realservers"][0]) >= {"active_connections", "inactive_connections", "stats"}


# -- found in review ------------------------------------------------------------------------


def test_realserver_absent_without_its_service_is_ok(run, client):
    gone = run("ipvs_realserver", {**SERVER, "state": "absent"})
    assert gone.get("failed") is None and gone["changed"] is False
    assert gone["realserver"] == {}
    run("ipvs_service", WEB, check=True)  # "would create": nothing in the kernel
    predicted = run("ipvs_realserver", {**SERVER, "state": "absent"}, check=True)
    assert predicted.get("failed") is None and predicted["changed"] is False
    assert client.service(WEB_KEY) is None


def test_service_keeps_a_persistence_engine_set_by_others(run, kernel, client):
    kernel.put_service(
        {
            "IPVS_SVC_ATTR_PROTOCOL": socket.IPPROTO_UDP,
            "IPVS_SVC_ATTR_ADDR": "10.0.0.100",
            "IPVS_SVC_ATTR_PORT": 5060,
            "IPVS_SVC_ATTR_SCHED_NAME": "rr",
            "IPVS_SVC_ATTR_FLAGS": {"flags": 0x1, "mask": 0xFFFFFFFF},
            "IPVS_SVC_ATTR_TIMEOUT": 300,
            "IPVS_SVC_ATTR_NETMASK": "255.255.255.255",
            "IPVS_SVC_ATTR_PE_NAME": "sip",
        }
    )
    key = ipvs.ServiceKey.for_address("10.0.0.100", 5060, "udp")
    args = {"address": "10.0.0.100", "port": 5060, "protocol": "udp", "scheduler": "wlc"}
    assert run("ipvs_service", args)["changed"] is True
    assert ("service", "set") in kernel.commands
    service = client.service(key)
    assert service.scheduler == "wlc" and service.persistence_engine == "sip"


@pytest.mark.parametrize(
    "servers, message",
    [
        (
            [{"address": "10.0.0.2"}, {"address": "10.0.0.3"}, {"address": "10.0.0.2"}],
            "realservers[2]: [10.0.0.2]:80 is already realservers[0]",
        ),
        (  # port left out is the service's port
            [{"address": "10.0.0.2", "port": 80, "weight": 3}, {"address": "10.0.0.2"}],
            "realservers[1]: [10.0.0.2]:80 is already realservers[0]",
        ),
    ],
)
def test_service_refuses_duplicate_realservers_before_any_change(run, kernel, servers, message):
    result = run("ipvs_service", {**WEB, "realservers": servers})
    assert result["failed"] is True and result["msg"] == message
    assert kernel.services == {} and not any(command[1] != "get" for command in kernel.commands)


def test_service_failing_part_way_reports_what_it_changed(run, kernel, client, monkeypatch):
    real_dest = kernel.dest

    def refuse_the_second_add(command, service, dest=None):
        if command == "add" and kernel.destinations[(2, 6, "10.0.0.100", 80)]:
            raise NetlinkError(errno.ENOMEM)
        return real_dest(command, service, dest)

    monkeypatch.setattr(kernel, "dest", refuse_the_second_add)
    servers = [{"address": "10.0.0.2"}, {"address": "10.0.0.3"}]
    result = run("ipvs_service", {**WEB, "realservers": servers})
    assert result["failed"] is True and result["changed"] is True
    assert result["done"] == ["created service [10.0.0.100]:80", "added real server [10.0.0.2]:80"]
    assert "already done: created service" in result["msg"]
    assert [d["address"] for d in result["service"]["realservers"]] == ["10.0.0.2"]
    assert client.service(WEB_KEY) is not None
