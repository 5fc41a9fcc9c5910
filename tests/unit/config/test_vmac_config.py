"""use_vmac, vmac_xmit_base and vmac_prefix read as keepalived 2.2.7 reads them (its
vrrp_vmac_handler, vrrp_end_handler, vrrp_complete_instance and create_vmac_name), and the
VMAC keywords lvs-agent does not build refused at their line."""

from __future__ import annotations

import pytest
from config_helpers import errors_of, parse, warnings_of


def instance(name: str, vrid: int, extra: str = "", vip: str = "10.0.0.100") -> str:
    return (
        f"vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n{extra}"
        f" virtual_ipaddress {{\n  {vip}\n }}\n}}\n"
    )


def test_use_vmac_alone_names_the_macvlan_vrrp_dot_vrid():
    (vi,) = parse(instance("VI_1", 51, " use_vmac\n")).vrrp_instances
    assert (vi.use_vmac, vi.vmac_name, vi.vmac_xmit_base) == (True, "vrrp.51", False)


def test_without_use_vmac_there_is_no_macvlan():
    (vi,) = parse(instance("VI_1", 51)).vrrp_instances
    assert (vi.use_vmac, vi.vmac_name, vi.vmac_xmit_base) == (False, None, False)


def test_use_vmac_name_and_vmac_xmit_base():
    (vi,) = parse(instance("VI_1", 51, " use_vmac vrrp-web\n vmac_xmit_base\n")).vrrp_instances
    assert (vi.use_vmac, vi.vmac_name, vi.vmac_xmit_base) == (True, "vrrp-web", True)


def test_vmac_prefix_gives_the_default_name_and_keepalived_keeps_the_first():
    config = parse(
        "global_defs {\n vmac_prefix vm\n vmac_prefix other\n}\n" + instance("A", 7, " use_vmac\n")
    )
    assert config.vrrp_instances[0].vmac_name == "vm.7"
    assert warnings_of(config) == ["3: vmac prefix has already been specified - ignoring other"]


def test_default_names_never_clash_ipv6_tries_prefix6_first():
    config = parse(
        instance("A", 7, " use_vmac vrrp.8\n")
        + instance("B", 8, " use_vmac\n")
        + instance("C", 8, " use_vmac\n", vip="fe80::1")
        + instance("D", 9, " use_vmac\n")
    )
    names = [vi.vmac_name for vi in config.vrrp_instances]
    assert names == ["vrrp.8", "vrrp1.8", "vrrp6.8", "vrrp.9"]


def test_a_long_prefix_is_cut_to_an_interface_name():
    config = parse(
        "global_defs {\n vmac_prefix abcdefghijklmnop\n}\n" + instance("A", 200, " use_vmac\n")
    )
    assert config.vrrp_instances[0].vmac_name == "abcdefghijk.200"


@pytest.mark.parametrize(
    ("extra", "warning"),
    [
        (
            " use_vmac averyveryverylongname\n",
            "4: VMAC interface name 'averyveryverylongname' too long or invalid characters - "
            "ignoring",
        ),
        (
            " use_vmac a/b\n",
            "4: VMAC interface name 'a/b' too long or invalid characters - ignoring",
        ),
    ],
)
def test_a_bad_name_is_ignored_and_the_default_taken(extra, warning):
    config = parse(instance("VI_1", 51, extra))
    assert config.vrrp_instances[0].vmac_name == "vrrp.51"
    assert warnings_of(config) == [warning]


def test_a_name_another_instance_uses_is_ignored():
    config = parse(instance("A", 1, " use_vmac shared\n") + instance("B", 2, " use_vmac shared\n"))
    assert [vi.vmac_name for vi in config.vrrp_instances] == ["shared", "vrrp.2"]
    assert warnings_of(config) == [
        "12: (B) VRRP instance A is already using shared - ignoring name"
    ]


def test_unicast_with_use_vmac_sends_from_the_base_interface():
    peers = " unicast_peer {\n  10.0.0.2\n }\n"
    config = parse(instance("VI_1", 51, " use_vmac\n" + peers))
    assert config.vrrp_instances[0].vmac_xmit_base is True
    assert warnings_of(config) == [
        "4: (VI_1) unicast with use_vmac requires vmac_xmit_base - setting"
    ]


def test_unicast_without_an_interface_drops_use_vmac():
    text = (
        "vrrp_instance VI_1 {\n virtual_router_id 51\n use_vmac\n unicast_peer {\n  10.0.0.2\n"
        " }\n virtual_ipaddress {\n  10.0.0.100\n }\n}\n"
    )
    config = parse(text)
    vi = config.vrrp_instances[0]
    assert (vi.use_vmac, vi.vmac_name) == (False, None)
    assert warnings_of(config) == [
        "3: (VI_1): Cannot use VMAC/ipvlan with unicast and no interface - clearing use_vmac"
    ]


def test_vmac_xmit_base_without_use_vmac_is_dropped():
    config = parse(instance("VI_1", 51, " vmac_xmit_base\n"))
    assert config.vrrp_instances[0].vmac_xmit_base is False
    assert warnings_of(config) == ["4: (VI_1) vmac_xmit_base is only valid with a vmac"]


def test_vmac_xmit_base_is_reset_by_vrrp_strict():
    config = parse(
        "global_defs {\n vrrp_strict\n}\n" + instance("VI_1", 51, " use_vmac\n vmac_xmit_base\n")
    )
    assert config.vrrp_instances[0].vmac_xmit_base is False
    assert "8: (VI_1) xmit_base is incompatible with strict mode - resetting" in warnings_of(config)


def test_vip_use_vmac_on_the_instances_vmac_is_what_keepalived_warns_of():
    config = parse(instance("VI_1", 51, " use_vmac\n", vip="10.0.0.100/24 use_vmac"))
    assert config.vrrp_instances[0].virtual_ipaddresses[0].use_vmac is True
    assert warnings_of(config) == [
        "6: (VI_1) use_vmac specified for VIP/eVIP 10.0.0.100/24 and vrrp instance"
    ]


@pytest.mark.parametrize(
    ("extra", "vip"),
    [("", "10.0.0.100 use_vmac"), (" use_vmac\n", "10.0.0.100 dev eth1 use_vmac")],
    ids=["instance-without-vmac", "other-interface"],
)
def test_vip_use_vmac_needing_a_vmac_of_its_own_is_refused(extra, vip):
    line = 5 + extra.count("\n")
    assert errors_of(instance("VI_1", 51, extra, vip=vip)) == [
        f"{line}: (VI_1) 10.0.0.100 use_vmac: a VMAC of an address's own (outside the "
        "instance's use_vmac) is not supported by lvs-agent"
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            " use_vmac vrrp.1 00:00:5e:00:01\n",
            "4: use_vmac with a MAC address: not supported by lvs-agent",
        ),
        (
            " use_vmac 02:00:00:00:00:01\n",
            "4: use_vmac with a MAC address: not supported by lvs-agent",
        ),
        (" use_vmac_addr\n", "4: use_vmac_addr: not supported by lvs-agent"),
        (" use_ipvlan\n", "4: use_ipvlan: not supported by lvs-agent"),
        (" vmac_garp_intvl 5\n", "4: vmac_garp_intvl: not supported by lvs-agent"),
    ],
)
def test_vmac_variants_lvs_agent_does_not_build_are_refused_at_their_line(extra, expected):
    assert errors_of(instance("VI_1", 51, extra)) == [expected]


def test_vmac_addr_prefix_is_refused_at_its_line():
    text = "global_defs {\n vmac_addr_prefix va\n}\n" + instance("VI_1", 51)
    assert errors_of(text) == ["2: vmac_addr_prefix: not supported by lvs-agent"]
