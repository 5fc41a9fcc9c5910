"""static_ipaddress / static_routes / static_rules and virtual_routes / virtual_rules, read as
keepalived 2.2.7's alloc_route and alloc_rule read them."""

from __future__ import annotations

import ipaddress
import os

import pytest
from config_helpers import MINIMAL_INSTANCE, errors_of, parse, warnings_of
from hypothesis import given, settings
from hypothesis import strategies as st

from lvsagent.config import ConfigError, load, loads, routing
from lvsagent.config.model import NextHop, Route, Rule
from lvsagent.config.render import render_instance, render_route, render_rule

SAMPLES = os.path.join(
    os.environ.get("LVS_HA_SHARED", "/work/shared"), "reference", "keepalived-samples"
)


def instance_with(block: str) -> str:
    return MINIMAL_INSTANCE.replace("    virtual_ipaddress {", block + "\n    virtual_ipaddress {")


def static(block: str, lines: str) -> str:
    return f"{block} {{\n{lines}\n}}\n{MINIMAL_INSTANCE}"


def test_virtual_routes_read_every_common_option():
    config = parse(
        instance_with(
            """
    virtual_routes {
        src 10.0.0.100 10.1.0.0/24 via 10.0.0.254 dev eth1 table 100 metric 7
        to 10.2.0.0/16 dev eth0 scope link protocol 18 tos 0x10 onlink append
        unreachable 10.3.0.0/24 table main no_track protocol bird
        10.4.0.0/24 nexthop via 10.0.0.1 dev eth0 weight 2 nexthop via 10.0.0.2 dev eth1
        inet6 default via fe80::1 dev eth0 add
    }"""
        )
    )
    first, second, third, fourth, fifth = config.vrrp_instances[0].virtual_routes
    assert first == Route(
        "10.1.0.0/24", source="10.0.0.100", via="10.0.0.254", dev="eth1", table=100, metric=7
    )
    assert first.location.line == 7
    assert (second.scope, second.tos, second.onlink, second.mode) == (253, 0x10, True, "append")
    assert (third.type, third.table, third.protocol, third.no_track) == (
        "unreachable",
        254,
        12,
        True,
    )
    assert fourth.nexthops == (
        NextHop(via="10.0.0.1", dev="eth0", weight=2),
        NextHop(via="10.0.0.2", dev="eth1"),
    )
    assert (fifth.family, fifth.destination, fifth.via, fifth.mode) == (6, "::/0", "fe80::1", "add")


def test_table_protocol_and_tos_names_come_from_etc_iproute2_as_keepalived(tmp_path, monkeypatch):
    monkeypatch.setattr(routing, "IPROUTE2_DIR", str(tmp_path))
    (tmp_path / "rt_tables").write_text(
        "# reserved\n255\tlocal\n254\tmain\n200\tisp1\nbad line x\n"
    )
    (tmp_path / "rt_protos").write_text("12 routerd\n")
    (tmp_path / "rt_dsfield").write_text("0x10 lowdelay\n")
    config = parse(
        static(
            "static_routes",
            "  10.1.0.0/24 dev eth0 table isp1 protocol routerd tos lowdelay no_track\n"
            "  10.2.0.0/24 dev eth0 table default\n"
            "  10.3.0.0/24 dev eth0 protocol bird no_track\n"
            "  10.4.0.0/24 dev eth0 table isp2",
        )
    )
    first, second = config.static_routes
    assert (first.table, first.protocol, first.tos) == (200, 12, 0x10)
    assert second.table == 253  # keepalived's default name: the file does not name 253
    assert "4: Protocol bird not found or invalid for route" in warnings_of(config)  # 12 renamed
    assert "5: Routing table isp2 not found for route" in warnings_of(config)


def test_routes_without_an_interface_are_not_tracked_and_take_the_keepalived_protocol():
    config = parse(static("static_routes", "  10.1.0.0/24 via 10.0.0.254 protocol static"))
    assert config.static_routes[0].protocol == 18
    assert config.static_routes[0].no_track
    assert warnings_of(config) == [
        "2: Route cannot be tracked if protocol is not RTPROT_KEEPALIVED(18), resetting protocol",
        "2: Warning - cannot track route 10.1.0.0/24 with no interface specified, not tracking",
    ]


def test_deprecated_or_and_gw_are_read_with_keepalived_warnings():
    config = parse(static("static_routes", "  10.1.0.0/24 gw 10.0.0.1 or 10.0.0.2 dev eth0"))
    route = config.static_routes[0]
    assert route.via is None
    assert route.nexthops == (NextHop(via="10.0.0.1"), NextHop(via="10.0.0.2"))
    assert warnings_of(config) == [
        '2: "gw" for routes is deprecated. Please use "via"',
        '2: "or" for routes is deprecated. Please use "nexthop"',
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("10.1.0.0/24 via 10.0.0.300 dev eth0", "invalid route via address 10.0.0.300"),
        ("10.1.0.0/24 via 2001:db8::1 dev eth0", "Cannot mix IPv4 and IPv6 addresses for route"),
        ("via 10.0.0.1 dev eth0", "Route must have a destination"),
        ("10.1.0.0/24 dev eth0 table nosuch", "Routing table nosuch not found for route"),
        ("10.1.0.0/24 dev eth0 scope galaxy", "Scope galaxy not found or invalid for route"),
        ("10.1.0.0/24 dev eth0 bogus", "unknown route keyword bogus"),
        ("10.1.0.0/24 dev", "missing value after 'dev'"),
    ],
)
def test_a_route_keepalived_drops_is_dropped_with_its_warning(line, message):
    config = parse(static("static_routes", f"  {line}"))
    assert config.static_routes == []
    assert f"2: {message}" in warnings_of(config)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("10.1.0.0/24 dev eth0 mtu 1400", "route option 'mtu': not supported by lvs-agent"),
        ("local 10.1.0.1/32 dev eth0", "route type 'local': not supported by lvs-agent"),
        ("10.1.0.0/24 encap mpls 200 dev eth0", "route option 'encap': not supported by lvs-agent"),
        (
            "10.1.0.0/24 nexthop via 10.0.0.1 realms 3",
            "nexthop option 'realms': not supported by lvs-agent",
        ),
    ],
)
def test_a_route_option_lvs_agent_does_not_apply_is_refused_at_its_line(line, message):
    assert errors_of(instance_with(f"    virtual_routes {{\n        {line}\n    }}")) == [
        f"6: {message}"
    ]


def test_virtual_rules_read_every_common_option_and_number_the_ones_without_preference():
    config = parse(
        "static_rules {\n  from 10.9.0.0/24 table 100\n}\n"
        + instance_with(
            """
    virtual_rules {
        from 10.0.0.0/24 to 10.1.0.0/16 lookup 100 preference 50 fwmark 0x10/0xff iif eth0
        not to 10.2.0.0/24 oif eth1 prohibit priority 51 tos 8
        inet6 from 2001:db8::/64 table 7 suppress_prefixlength 0
        priority 60 goto 70 no_track
        to 10.3.0.0/24 table 9
    }"""
        )
    )
    assert config.static_rules == [Rule(16384, source="10.9.0.0/24", table=100)]
    first, second, third, fourth, fifth = config.vrrp_instances[0].virtual_rules
    assert first == Rule(
        50,
        source="10.0.0.0/24",
        destination="10.1.0.0/16",
        table=100,
        fwmark=16,
        fwmask=255,
        iif="eth0",
    )
    assert (second.invert, second.action, second.oif, second.tos) == (True, "prohibit", "eth1", 8)
    assert (third.family, third.priority, third.suppress_prefixlength) == (6, 16384, 0)
    assert (fourth.action, fourth.goto, fourth.protocol) == ("goto", 70, None)
    assert fifth.priority == 16383  # keepalived counts down per family over the whole file
    assert (
        "12: Rule has no preference specified - setting to 16384. This is probably not what "
        "you want." in warnings_of(config)
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("from 10.0.0.0/24 priority 5", "No action specified for rule - ignoring"),
        ("from 10.0.0.0/24 table 0 priority 5", "Table 0 is not valid"),
        (
            "from 10.0.0.0/24 table 1 blackhole priority 5",
            "Cannot specify more than one of "
            "table/nop/goto/blackhole/prohibit/unreachable for rule",
        ),
        ("goto 10", "Invalid rule - goto target 10 specified without preference"),
        ("priority 10 goto 5", "Invalid rule - preference 10 >= goto target 5"),
        ("from 10.0.0./24 table 1 priority 5", "Invalid rule from address 10.0.0./24"),
        ("from 10.0.0.0/24 to 2001:db8::/64 table 1", "rule specification has mixed IPv4 and IPv6"),
        ("priority 5 throw", "Invalid rule action throw"),
        ("priority 5 table 1 fwmark -1", "Invalid rule fwmark -1 specified"),
    ],
)
def test_a_rule_keepalived_drops_is_dropped_with_its_warning(line, message):
    config = parse(static("static_rules", f"  {line}"))
    assert config.static_rules == []
    assert f"2: {message}" in warnings_of(config)


@pytest.mark.parametrize(
    "option", ["uidrange 1-2", "sport 10", "ipproto tcp", "l3mdev", "realms 3"]
)
def test_a_rule_option_lvs_agent_does_not_apply_is_refused_at_its_line(option):
    name = option.split()[0]
    assert errors_of(static("static_rules", f"  from 10.0.0.0/24 table 1 priority 5 {option}")) == [
        f"2: rule option '{name}': not supported by lvs-agent"
    ]


def test_static_addresses_take_keepalived_default_interface():
    config = parse(static("static_ipaddress", "  10.5.0.1/24 dev eth1 scope link\n  10.5.0.2"))
    first, second = config.static_addresses
    assert (first.address, first.dev, first.scope) == (
        ipaddress.ip_interface("10.5.0.1/24"),
        "eth1",
        "link",
    )
    assert second.dev == "eth0"  # keepalived's default_interface


def test_default_interface_is_the_dev_of_static_addresses_from_its_first_use():
    """keepalived's get_default_if: the interface is looked up once, at the first address
    without dev; a default_interface read after that changes nothing."""
    first = "global_defs {\n  default_interface bond0\n}\n"
    config = parse(first + static("static_ipaddress", "  10.5.0.2"))
    assert [vip.dev for vip in config.static_addresses] == ["bond0"]
    late = (
        static("static_ipaddress", "  10.5.0.2") + "global_defs {\n  default_interface bond0\n}\n"
    )
    assert [vip.dev for vip in parse(late).static_addresses] == ["eth0"]
    assert errors_of("global_defs {\n  default_interface a/b\n}\n") == [
        "2: default_interface: 'a/b' is not a valid interface name"
    ]


@pytest.mark.skipif(not os.path.isdir(SAMPLES), reason="shared reference absent")
def test_rules_sample_keeps_what_keepalived_keeps():
    """Both `to 192.168.x./24` lines are dropped (invalid address), as keepalived -t shows."""
    config = load(os.path.join(SAMPLES, "keepalived.conf.vrrp.rules"), host_checks=False)
    assert config.static_rules == [Rule(16384, source="192.168.100.0/24", table=1)]
    assert config.vrrp_instances[0].virtual_rules == [
        Rule(16383, source="192.168.200.0/24", table=2)
    ]


def test_routes_and_rules_render_back_to_the_same_model():
    config = parse(
        instance_with(
            """
    virtual_routes {
        src 10.0.0.100 10.1.0.0/24 via 10.0.0.254 dev eth1 table 100 metric 7
        to 10.2.0.0/16 dev eth0 scope link tos 0x10 onlink append
        unreachable 10.3.0.0/24 table main no_track protocol bird
        10.4.0.0/24 via 10.0.0.9 or 10.0.0.8
        10.5.0.0/24 nexthop via 10.0.0.1 dev eth0 weight 2 onlink nexthop via 10.0.0.2
        inet6 default via fe80::1 dev eth0 add
    }
    virtual_rules {
        from 10.0.0.0/24 to 10.1.0.0/16 lookup 100 preference 50 fwmark 0x10/0xff iif eth0
        not to 10.2.0.0/24 oif eth1 prohibit priority 51 tos 8
        inet6 iif eth0 table 7 suppress_prefixlength 0
        priority 60 goto 70 no_track
        to 10.3.0.0/24 table 9 no_track protocol 18
        fwmark 7 nop priority 80
    }"""
        )
    )
    (instance,) = config.vrrp_instances
    (again,) = loads(render_instance(instance), "rendered.conf").vrrp_instances
    assert again.virtual_routes == instance.virtual_routes
    assert again.virtual_rules == instance.virtual_rules


def test_host_checks_name_a_missing_route_or_static_address_interface():
    text = """static_ipaddress {
  10.5.0.1 dev nosuch1
}
static_routes {
  10.1.0.0/24 dev lo
  10.2.0.0/24 nexthop via 10.0.0.1 dev nosuch2
}
vrrp_instance VI_1 {
  interface lo
  virtual_router_id 51
  virtual_ipaddress {
    10.0.0.100
  }
  virtual_routes {
    10.3.0.0/24 dev nosuch3
  }
  virtual_rules {
    iif nosuch4 table 5 priority 9
  }
}
"""
    with pytest.raises(ConfigError) as raised:
        loads(text, "test.conf", host_checks=True)
    assert [f"{p.line}: {p.message}" for p in raised.value.errors] == [
        "2: static_ipaddress 10.5.0.1/32: interface nosuch1 does not exist on this host",
        "6: static_routes 10.2.0.0/24: interface nosuch2 does not exist on this host",
        "15: (VI_1) virtual_routes 10.3.0.0/24: interface nosuch3 does not exist on this host",
        "18: (VI_1) virtual_rules preference 9: interface nosuch4 does not exist on this host",
    ]


WORDS = [
    *[
        "inet",
        "inet6",
        "src",
        "via",
        "gw",
        "dev",
        "oif",
        "table",
        "protocol",
        "scope",
        "metric",
        "tos",
        "onlink",
        "add",
        "append",
        "or",
    ],
    *[
        "nexthop",
        "weight",
        "no_track",
        "to",
        "from",
        "not",
        "lookup",
        "preference",
        "fwmark",
        "iif",
        "goto",
        "nop",
        "type",
    ],
    *[
        "blackhole",
        "unreachable",
        "throw",
        "local",
        "mtu",
        "track_group",
        "suppress_prefixlength",
        "default",
    ],
    *[
        "10.0.0.1",
        "10.0.0.0/24",
        "10.0.0.0/33",
        "fd00::1",
        "fd00::/64",
        "eth0",
        "0",
        "1",
        "255",
        "256",
        "0x10",
        "0x10/0xff",
    ],
    *["-1", "/", "x", "main", "4294967296", "::"],
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))
def test_any_line_is_read_or_refused_never_a_crash(words):
    """Whatever the words, a line gives an entry (that renders back to itself) or is refused or
    dropped with a message."""
    said = []
    route = routing.read_route(words, lambda severity, message: said.append(message))
    assert route is not None or said
    said.clear()
    rule = routing.read_rule(words, lambda severity, message: said.append(message), {})
    assert rule is not None or said

    def ignore(severity, message):
        pass

    if route is not None:  # what is read renders back to the same entry
        assert routing.read_route(render_route(route).split(), ignore) == route
    if rule is not None:
        assert routing.read_rule(render_rule(rule).split(), ignore, {}) == rule
