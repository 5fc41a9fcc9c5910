"""The firewall keywords of global_defs and accept/no_accept as Debian's keepalived 2.2.7 reads
them (built with nftables, without iptables): `nftables [TABLE]`, nftables_priority,
nftables_counters, nftables_ifindex; vrrp_iptables mapped onto nftables with keepalived's
warning; vrrp_ipsets an unknown keyword; nftables_ipvs* refused by name."""

from __future__ import annotations

import pytest
from config_helpers import errors_of, parse, warnings_of

from lvsagent.vrrp.firewall import drops_vip_traffic


def instance(extra: str = "", priority: int = 100, version: str = "") -> str:
    return (
        f"vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n priority {priority}\n"
        f"{version}{extra} virtual_ipaddress {{\n  10.0.0.100\n }}\n}}\n"
    )


def test_firewall_defaults_are_keepalived_defaults():
    defs = parse(instance()).global_defs
    assert (defs.nftables, defs.nftables_priority) == (None, -1)
    assert (defs.nftables_counters, defs.nftables_ifindex) == (False, False)


def test_nftables_keywords():
    config = parse(
        "global_defs {\n nftables mytab\n nftables_priority -5\n nftables_counters\n"
        " nftables_ifindex\n}\n" + instance()
    )
    defs = config.global_defs
    assert (defs.nftables, defs.nftables_priority) == ("mytab", -5)
    assert (defs.nftables_counters, defs.nftables_ifindex) == (True, True)
    assert warnings_of(config) == []


def test_bare_nftables_is_the_keepalived_table():
    assert parse("global_defs {\n nftables\n}\n" + instance()).global_defs.nftables == "keepalived"


def test_a_table_name_nft_cannot_read_is_refused_at_its_line():
    errors = errors_of("global_defs {\n nftables 9tab\n}\n" + instance())
    assert errors == ["2: nftables: table name '9tab' not supported by lvs-agent"]


def test_vrrp_iptables_uses_nftables_with_keepalived_warning():
    config = parse("global_defs {\n vrrp_iptables IN OUT\n}\n" + instance())
    assert config.global_defs.nftables == "keepalived"
    assert warnings_of(config) == [
        "2: iptables not supported, using nftables instead. Please replace 'vrrp_iptables "
        "and 'vrrp_ipsets' with 'nftables' config option"
    ]


def test_vrrp_iptables_keeps_a_named_nftables_table():
    config = parse("global_defs {\n nftables mine\n vrrp_iptables\n}\n" + instance())
    assert config.global_defs.nftables == "mine"


def test_vrrp_ipsets_is_unknown_to_debians_keepalived():
    config = parse("global_defs {\n vrrp_ipsets a b\n}\n" + instance())
    assert [w.split(" - ")[0] for w in warnings_of(config)] == ["2: Unknown keyword 'vrrp_ipsets'"]


@pytest.mark.parametrize(
    "keyword", ["nftables_ipvs", "nftables_ipvs_priority 3", "nftables_ipvs_start_fwmark 9"]
)
def test_nftables_ipvs_is_refused_by_name(keyword):
    errors = errors_of(f"global_defs {{\n {keyword}\n}}\n" + instance())
    assert errors == [f"2: {keyword.split()[0]}: not supported by lvs-agent"]


@pytest.mark.parametrize(
    ("strict", "extra", "priority", "drops"),
    [
        ("", "", 100, False),  # keepalived's default: accept
        ("", " accept\n", 100, False),
        ("", " no_accept\n", 100, True),
        ("", " no_accept\n", 255, False),  # the address owner always accepts
        ("vrrp_strict", "", 100, True),  # strict means no_accept
        ("vrrp_strict", "", 255, False),
    ],
)
def test_which_instances_drop_traffic_to_their_vips(strict, extra, priority, drops):
    config = parse(f"global_defs {{\n {strict}\n}}\n" + instance(extra, priority))
    assert drops_vip_traffic(config.vrrp_instances[0], config.global_defs) is drops


def test_accept_without_strict_needs_no_firewall_and_draws_no_warning():
    config = parse(instance(" accept\n"))
    assert warnings_of(config) == []
    assert not drops_vip_traffic(config.vrrp_instances[0], config.global_defs)


def test_strict_resets_accept_for_version_2_with_keepalived_warning():
    config = parse("global_defs {\n vrrp_strict\n}\n" + instance(" accept\n"))
    assert (
        "8: (VI_1) warning - accept mode for VRRP version 2 does not comply with RFC3768 - "
        "resetting" in warnings_of(config)
    )
    assert drops_vip_traffic(config.vrrp_instances[0], config.global_defs)


def test_strict_keeps_accept_for_version_3():
    config = parse(
        "global_defs {\n vrrp_strict\n}\n" + instance(" accept\n", version=" version 3\n")
    )
    assert not any("accept mode" in w for w in warnings_of(config))
    assert not drops_vip_traffic(config.vrrp_instances[0], config.global_defs)
