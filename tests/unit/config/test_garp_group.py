"""garp_group blocks, read as keepalived 2.2.7 reads them (vrrp_parser.c garp_group_*):
the model holds what the Announcer paces by (tests/unit/vrrp/test_vrrp_addresses.py)."""

from __future__ import annotations

from config_helpers import MINIMAL_INSTANCE, parse, warnings_of

from lvsagent.config import loads


def test_a_group_holds_its_intervals_and_its_interfaces_with_their_lines():
    config = parse(
        "garp_group {\n  garp_interval 0.01\n  gna_interval 0.5\n"
        "  interfaces {\n    eth0\n    eth1 eth2\n  }\n}\n"
        "garp_group {\n  gna_interval 0.02\n  interface eth3\n}\n" + MINIMAL_INSTANCE
    )
    switch, single = config.garp_groups
    assert (switch.garp_interval, switch.gna_interval) == (0.01, 0.5)
    assert {name: where.line for name, where in switch.interfaces.items()} == {
        "eth0": 5,
        "eth1": 6,
        "eth2": 6,
    }
    assert (single.garp_interval, single.gna_interval, list(single.interfaces)) == (
        None,
        0.02,
        ["eth3"],
    )
    assert warnings_of(config) == []


def test_an_interface_stays_in_the_first_group_that_names_it():
    config = parse(
        "garp_group {\n  garp_interval 0.01\n  interface eth0\n  interface eth0\n}\n"
        "garp_group {\n  garp_interval 0.2\n  interfaces {\n    eth1\n    eth0\n  }\n}\n"
        + MINIMAL_INSTANCE
    )
    first, second = config.garp_groups
    assert (list(first.interfaces), list(second.interfaces)) == (["eth0"], ["eth1"])
    assert warnings_of(config) == [
        "4: garp_group already specified for eth0 - ignoring",
        "10: garp_group already specified for eth0 - ignoring",
    ]


def test_a_group_without_an_interval_is_dropped_and_a_bad_interval_is_ignored():
    config = parse(
        "garp_group {\n  interface eth0\n}\n"
        "garp_group {\n  garp_interval soon\n  gna_interval -1\n  interface eth1\n}\n"
        "garp_group {\n  gna_interval 0.1\n  interfaces {\n  }\n}\n" + MINIMAL_INSTANCE
    )
    (only,) = config.garp_groups
    assert (only.garp_interval, only.gna_interval, only.interfaces) == (None, 0.1, {})
    assert warnings_of(config) == [
        "1: garp_group does not have any delay set - removing",
        "4: garp_group does not have any delay set - removing",
        "5: garp_group garp_interval 'soon' invalid",
        "6: garp_group gna_interval '-1' invalid",
        "11: Warning - empty garp_group interfaces block",
    ]


def test_the_host_check_names_an_interface_of_a_group_this_host_lacks():
    text = "garp_group {\n  garp_interval 0.01\n  interfaces {\n    lo\n    lvsnosuch0\n  }\n}\n"
    text += MINIMAL_INSTANCE.replace("eth0", "lo")
    config = loads(text, "test.conf", host_checks=True)
    assert [w for w in warnings_of(config) if "garp_group" in w] == [
        "5: WARNING - interface lvsnosuch0 specified for garp_group doesn't exist"
    ]
