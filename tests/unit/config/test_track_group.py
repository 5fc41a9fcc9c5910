"""track_group blocks and the track_group option of static_ipaddress / static_routes /
static_rules, read as keepalived 2.2.7 reads them (vrrp_parser.c static_track_group_handler,
vrrp_ipaddress.c / vrrp_iproute.c / vrrp_iprule.c, vrrp_static_track.c)."""

from __future__ import annotations

from config_helpers import parse, warnings_of

INSTANCES = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        10.0.0.101
    }
}
"""
GROUP = "track_group G1 {\n  group {\n    VI_1 VI_2\n  }\n}\n"  # lines 1-5


def instance(config, name):
    return next(i for i in config.vrrp_instances if i.name == name)


def test_the_instances_of_a_group_track_the_interface_of_each_tracked_static_entry():
    text = (
        GROUP
        + "static_ipaddress {\n  10.5.0.1/24 dev eth1 track_group G1\n}\n"
        + "static_routes {\n  10.6.0.0/24 dev eth2 track_group G1\n"
        + "  10.7.0.0/24 dev eth3\n}\n"
        + "static_rules {\n  from 10.8.0.0/24 iif eth4 table 5 priority 7 track_group G1\n}\n"
        + INSTANCES
    )
    config = parse(text)
    assert config.static_track_groups["G1"].group == ["VI_1", "VI_2"]
    assert config.static_addresses[0].track_group == "G1"
    assert [r.track_group for r in config.static_routes] == ["G1", None]
    assert config.static_rules[0].track_group == "G1"
    for name in ("VI_1", "VI_2"):
        assert instance(config, name).static_track_interfaces == ["eth1", "eth2", "eth4"]
    assert warnings_of(config) == []


def test_a_group_is_looked_up_when_the_line_is_read():
    """keepalived finds the group while parsing the line: one defined below is not found and
    the entry is kept without it."""
    text = "static_routes {\n  10.6.0.0/24 dev eth2 track_group G1\n}\n" + GROUP + INSTANCES
    config = parse(text)
    assert config.static_routes[0].track_group is None
    assert "2: track_group G1 not found" in warnings_of(config)
    assert instance(config, "VI_1").static_track_interfaces == []


def test_unknown_group_names_on_each_static_kind_are_warnings_and_the_entry_stays():
    text = (
        "static_ipaddress {\n  10.5.0.1/24 dev eth1 track_group NOPE\n}\n"
        "static_rules {\n  from 10.8.0.0/24 iif eth4 table 5 priority 7 track_group NOPE\n}\n"
        + INSTANCES
    )
    config = parse(text)
    assert [w for w in warnings_of(config) if "NOPE" in w] == [
        "2: track_group NOPE not found",
        "5: track_group NOPE not found",
    ]
    assert len(config.static_addresses) == 1 and len(config.static_rules) == 1


def test_entries_without_their_interface_cannot_be_tracked():
    """keepalived drops the group of a route without oif and of a rule without iif."""
    text = (
        GROUP
        + "static_routes {\n  10.6.0.0/24 via 10.0.0.1 track_group G1 no_track\n}\n"
        + "static_rules {\n  from 10.8.0.0/24 table 5 priority 7 track_group G1\n}\n"
        + INSTANCES
    )
    config = parse(text)
    assert "7: Static route cannot have track group if no oif specified" in warnings_of(config)
    assert "10: Static rule cannot have track_group if dev/iif not specified" in warnings_of(config)
    assert config.static_routes[0].track_group is None
    assert config.static_rules[0].track_group is None


def test_no_track_wins_over_track_group():
    text = GROUP + "static_ipaddress {\n  10.5.0.1/24 dev eth1 track_group G1 no_track\n}\n"
    config = parse(text + INSTANCES)
    assert "7: Static address has both track_group and no_track set - not tracking" in (
        warnings_of(config)
    )
    assert instance(config, "VI_1").static_track_interfaces == []


def test_a_second_track_group_on_a_line_stops_it_as_keepalived_does():
    """Address: the rest of the line is not read; route: "trailing nonsense", dropped; rule:
    kept as read so far."""
    groups = GROUP + "track_group G2 {\n  group {\n    VI_2\n  }\n}\n"  # lines 1-10
    text = (
        groups
        + "static_ipaddress {\n  10.5.0.1/24 dev eth1 track_group G1 track_group G2 scope link\n}\n"
        + "static_routes {\n  10.6.0.0/24 dev eth2 track_group G1 track_group G2\n}\n"
        + "static_rules {\n  from 10.8.0.0/24 iif eth4 table 5 track_group G1 track_group G2"
        + " priority 7\n}\n"
        + INSTANCES
    )
    config = parse(text)
    warnings = warnings_of(config)
    assert "12: track_group G2 is a duplicate" in warnings
    (address,) = config.static_addresses
    assert (address.track_group, address.scope) == ("G1", None)
    assert "15: track_group G2 is a duplicate" in warnings
    assert "15: Route has trailing nonsense - G2" in warnings
    assert config.static_routes == []
    assert "18: track_group G2 is a duplicate" in warnings
    (rule,) = config.static_rules
    assert rule.track_group == "G1" and rule.priority != 7  # `priority 7` was not read


def test_track_group_elsewhere_is_keepalived_unknown_word():
    """Only static lines take it (the man page: "The track_group option only applies to static
    addresses/routes/rules"): a virtual address warns twice and stays, a virtual route or
    rule is dropped."""
    text = GROUP + INSTANCES.replace(
        "        10.0.0.100\n",
        "        10.0.0.100 track_group G1\n    }\n    virtual_routes {\n"
        "        10.6.0.0/24 dev eth2 track_group G1\n    }\n    virtual_rules {\n"
        "        from 10.8.0.0/24 table 5 priority 7 track_group G1\n",
        1,
    )
    config = parse(text)
    warnings = warnings_of(config)
    assert "11: Unknown configuration entry 'track_group' for ip address - ignoring" in warnings
    assert "11: Unknown configuration entry 'G1' for ip address - ignoring" in warnings
    assert "14: unknown route keyword track_group" in warnings
    assert "17: Unknown rule option track_group" in warnings
    vi_1 = instance(config, "VI_1")
    assert len(vi_1.virtual_ipaddresses) == 1
    assert vi_1.virtual_routes == [] and vi_1.virtual_rules == []


def test_group_blocks_follow_keepalived_messages():
    text = (
        "track_group {\n  group {\n    VI_1\n  }\n}\n"  # 1: no name
        "track_group G1 {\n  group {\n    VI_1 NOPE\n  }\n  group {\n    VI_2\n  }\n}\n"  # 6
        "track_group G1 {\n  group {\n    VI_2\n  }\n}\n"  # 14: again
        "track_group G3 {\n  group {\n  }\n}\n"  # 19: empty
        "track_group G4 {\n  group {\n    GHOST\n  }\n}\n" + INSTANCES  # 23: no instance left
    )
    config = parse(text)
    warnings = warnings_of(config)
    for expected in (
        "1: track_group must have a name - skipping",
        "10: Group list already specified for sync group G1",
        "14: track_group G1 already defined",
        "20: Warning - track group G3 has empty group block",
        "19: Static track group G3 has no virtual router(s)",
        "19: Static track group G3 init fails - removing",
        "6: vrrp instance NOPE specified in track group G1 doesn't exist - ignoring",
        "23: vrrp instance GHOST specified in track group G4 doesn't exist - ignoring",
        "23: Static track group G4 has no VRRP instance(s)",
        "23: Static track group G4 init fails - removing",
    ):
        assert expected in warnings
    assert list(config.static_track_groups) == ["G1"]
    assert config.static_track_groups["G1"].group == ["VI_1"]


def test_an_entry_of_a_removed_group_tracks_nothing():
    text = (
        "track_group G4 {\n  group {\n    GHOST\n  }\n}\n"
        "static_routes {\n  10.6.0.0/24 dev eth2 track_group G4\n}\n" + INSTANCES
    )
    config = parse(text)
    assert all(not i.static_track_interfaces for i in config.vrrp_instances)


def test_a_static_address_without_dev_tracks_the_default_interface():
    text = GROUP + "static_ipaddress {\n  10.5.0.1/24 track_group G1\n}\n" + INSTANCES
    assert instance(parse(text), "VI_2").static_track_interfaces == ["eth0"]


def test_track_group_without_a_name_drops_the_static_address_or_route():
    text = (
        "static_ipaddress {\n  10.5.0.1/24 dev eth1 track_group\n  10.5.0.2/24 dev eth1\n}\n"
        "static_routes {\n  10.6.0.0/24 dev eth2 track_group\n}\n" + INSTANCES
    )
    config = parse(text)
    assert "2: No track_group parameter specified for 10.5.0.1/24" in warnings_of(config)
    assert "6: missing value after 'track_group'" in warnings_of(config)
    assert [str(a.address) for a in config.static_addresses] == ["10.5.0.2/24"]
    assert config.static_routes == []
